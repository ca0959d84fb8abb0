"""Score aligned .h5ad outputs against a ground truth (what ``gwalign evaluate`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from gwalign.io.h5ad import InputError, names_checksum, read_h5ad
from gwalign.metrics import foscttm, label_separability, shared_label_masks, transferred_labels
from gwalign.results.transfer import label_strings


def check_pair(source, target, source_path: Path, target_path: Path) -> None:
    """Refuse two files that are not the two outputs of one ``gwalign run``.

    Each output stores the SHA-256 checksum of its partner's ``obs_names``
    (``uns["gwalign"]["partner_obs_names_sha256"]``) and its role: the two files must name each
    other, one as source and one as target, and carry the same GW objective (one run wrote both).
    """
    if Path(source_path).resolve() == Path(target_path).resolve():
        raise InputError(f"{source_path}: the same file given twice; give the two outputs of one gwalign run")
    infos = []
    for adata, path in ((source, source_path), (target, target_path)):
        if "X_gw" not in adata.obsm:
            raise InputError(f"{path}: no obsm['X_gw']; run gwalign run first")
        info = adata.uns.get("gwalign")
        if not isinstance(info, dict) or "partner_obs_names_sha256" not in info:
            raise InputError(f"{path}: no uns['gwalign'] with the partner's checksum; not an output of gwalign run")
        infos.append(info)
    if {infos[0].get("role"), infos[1].get("role")} != {"source", "target"}:
        raise InputError(f"{source_path}, {target_path}: both files are the {infos[0].get('role')} output of a run; "
                         "give the source and the target output of one run")
    for info, path, partner, partner_path in ((infos[0], source_path, target, target_path),
                                              (infos[1], target_path, source, source_path)):
        if info["partner_obs_names_sha256"] != names_checksum(partner.obs_names):
            raise InputError(f"{path}, {partner_path}: not the outputs of one run ({Path(path).name} was aligned with "
                             f"{info.get('partner_file')!r}, whose cells differ from {Path(partner_path).name}'s)")
    # Files whose cells are named alike (paired data) pass the checksum; one run wrote one objective.
    if infos[0].get("gw_objective") != infos[1].get("gw_objective"):
        raise InputError(f"{source_path}, {target_path}: not the outputs of one run (GW objectives "
                         f"{infos[0].get('gw_objective')} and {infos[1].get('gw_objective')})")


def aligned_rows(adata) -> np.ndarray:
    """The cells with an embedding: ``gwalign run`` leaves cells it did not align NaN in ``X_gw``."""
    return np.isfinite(np.asarray(adata.obsm["X_gw"], dtype=np.float64)).all(axis=1)


def score_files(source_path: Path, target_path: Path, truth_key: Optional[str],
                label_key: Optional[str]) -> dict[str, float | int]:
    """Scores of an alignment's outputs against a ground truth.

    Returns ``foscttm`` (cells paired through ``obs[truth_key]``); with ``label_key``:
    ``label_transfer`` (kNN, k = 5, in ``X_gw``, both directions averaged) and each direction
    (``label_transfer_into_source``/``_target``), ``label_separability_source``/``_target`` (each
    side's own labels predicted within its own ``X_gw``, 5-fold cross-validated: the reference
    that the transfer into that side can be held against), and ``labels_written`` (the labels the
    run carried across, ``obs["<label_key>_gw"]`` where present, against each side's own).

    Label transfer is scored on the cells whose label also occurs on the other side (a cell of a
    type the other side lacks has no right answer to receive); every labelled cell trains. When
    some labels are one-sided, ``cells_one_sided_source``/``_target`` count their cells,
    ``label_transfer_all`` scores every labelled cell, and where the run wrote a transfer
    confidence (``obs["<label_key>_gw_confidence"]``), ``confidence_shared_<side>`` and
    ``confidence_one_sided_<side>`` are its means over the two groups. Cells with a missing label
    neither train nor count. Cells the run did not align (NaN in ``X_gw``) are left out and counted
    (``cells_not_aligned_source``/``_target``).

    Raises
    ------
    InputError
        Without ``truth_key`` and ``label_key``, or for two files that are not the two outputs of
        one run (:func:`check_pair`).
    """
    if truth_key is None and label_key is None:
        raise InputError(f"{source_path}, {target_path}: nothing to score; give --truth-key and/or --label-key")
    source, target = read_h5ad(source_path), read_h5ad(target_path)
    check_pair(source, target, source_path, target_path)
    scores: dict[str, float] = {}
    for side, adata in (("source", source), ("target", target)):
        unaligned = int((~aligned_rows(adata)).sum())
        if unaligned:
            scores[f"cells_not_aligned_{side}"] = unaligned
    source, target = source[aligned_rows(source)], target[aligned_rows(target)]
    if truth_key is not None:
        scores["foscttm"] = truth_score(source, target, (source_path, target_path), truth_key)
    if label_key is not None:
        scores.update(label_scores(source, target, (source_path, target_path), label_key))
    return scores


def truth_score(source, target, paths: tuple[Path, Path], truth_key: str) -> float:
    """FOSCTTM of the cells paired through ``obs[truth_key]`` (see :func:`score_files`)."""
    for adata, path in ((source, paths[0]), (target, paths[1])):
        if truth_key not in adata.obs:
            raise InputError(f"{path}: obs column {truth_key!r} not found")
    truth_s, truth_t = label_strings(source.obs[truth_key]), label_strings(target.obs[truth_key])
    shared = np.intersect1d(truth_s[pd.notna(truth_s)].astype(str), truth_t[pd.notna(truth_t)].astype(str))
    if len(shared) < 2:
        raise InputError(f"{paths[0]}, {paths[1]}: fewer than 2 cells share a {truth_key!r} value")
    pos_s = {v: i for i, v in enumerate(truth_s)}
    pos_t = {v: i for i, v in enumerate(truth_t)}
    xs = source.obsm["X_gw"][[pos_s[v] for v in shared]]
    xt = target.obsm["X_gw"][[pos_t[v] for v in shared]]
    return foscttm(xs, xt)


def label_scores(source, target, paths: tuple[Path, Path], label_key: str) -> dict[str, float | int]:
    """The label transfer scores of :func:`score_files` for ``obs[label_key]``."""
    scores: dict[str, float | int] = {}
    for adata, path in ((source, paths[0]), (target, paths[1])):
        if label_key not in adata.obs:
            raise InputError(f"{path}: obs column {label_key!r} not found")
    known = [adata.obs[label_key].notna().to_numpy() for adata in (source, target)]
    for adata, path, mask in ((source, paths[0], known[0]), (target, paths[1], known[1])):
        if mask.sum() < 5:
            raise InputError(f"{path}: obs column {label_key!r} has fewer than 5 labelled cells")
    xs, xt = (np.asarray(adata.obsm["X_gw"])[mask] for adata, mask in zip((source, target), known))
    ls, lt = (label_strings(adata.obs[label_key])[mask].astype(str) for adata, mask in zip((source, target), known))
    shared_s, shared_t = shared_label_masks(ls, lt)
    if not (shared_s.any() and shared_t.any()):
        raise InputError(f"{paths[0]}, {paths[1]}: no {label_key!r} value occurs on both sides")
    # One kNN fit and prediction per direction serves both the shared-type and the all-cell score.
    to_target, to_source = transferred_labels(xs, ls, xt, lt)
    hit_s, hit_t = to_source == ls, to_target == lt
    scores["label_transfer_into_source"] = float(hit_s[shared_s].mean())
    scores["label_transfer_into_target"] = float(hit_t[shared_t].mean())
    scores["label_transfer"] = (scores["label_transfer_into_source"] + scores["label_transfer_into_target"]) / 2.0
    if not (shared_s.all() and shared_t.all()):
        scores["label_transfer_all"] = float((hit_s.mean() + hit_t.mean()) / 2.0)
        for side, adata, mask, shared in (("source", source, known[0], shared_s),
                                          ("target", target, known[1], shared_t)):
            scores[f"cells_one_sided_{side}"] = int((~shared).sum())
            column = f"{label_key}_gw_confidence"
            if column in adata.obs and not shared.all():
                confidence = adata.obs[column].to_numpy(dtype=float)[mask]
                scores[f"confidence_shared_{side}"] = float(confidence[shared].mean())
                scores[f"confidence_one_sided_{side}"] = float(confidence[~shared].mean())
    for side, x, labels in (("source", xs, ls), ("target", xt, lt)):
        try:
            scores[f"label_separability_{side}"] = label_separability(x, labels)
        except ValueError:   # too few labelled cells to cross-validate: no reference
            pass
    # The labels `gwalign run --transfer-labels` wrote (obs["<key>_gw"]) against each side's own,
    # on the same cells as the label transfer.
    written = []
    for adata, mask, own, shared in ((source, known[0], ls, shared_s), (target, known[1], lt, shared_t)):
        if f"{label_key}_gw" in adata.obs:
            carried = label_strings(adata.obs[f"{label_key}_gw"])[mask].astype(str)
            written.append(float(np.mean(own[shared] == carried[shared])))
    if written:
        scores["labels_written"] = float(np.mean(written))
    return scores
