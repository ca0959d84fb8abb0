"""Score aligned .h5ad outputs against a ground truth (what ``gwalign evaluate`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from gwalign.io.h5ad import InputError, read_h5ad
from gwalign.metrics import foscttm, label_separability, shared_label_masks, transferred_labels


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
    neither train nor count.
    """
    source, target = read_h5ad(source_path), read_h5ad(target_path)
    for adata, path in ((source, source_path), (target, target_path)):
        if "X_gw" not in adata.obsm:
            raise InputError(f"{path}: no obsm['X_gw']; run gwalign run first")
    scores: dict[str, float] = {}
    if truth_key is not None:
        for adata, path in ((source, source_path), (target, target_path)):
            if truth_key not in adata.obs:
                raise InputError(f"{path}: obs column {truth_key!r} not found")
        shared = np.intersect1d(source.obs[truth_key].astype(str), target.obs[truth_key].astype(str))
        if len(shared) < 2:
            raise InputError(f"{source_path}, {target_path}: fewer than 2 cells share a {truth_key!r} value")
        pos_s = {v: i for i, v in enumerate(source.obs[truth_key].astype(str))}
        pos_t = {v: i for i, v in enumerate(target.obs[truth_key].astype(str))}
        xs = source.obsm["X_gw"][[pos_s[v] for v in shared]]
        xt = target.obsm["X_gw"][[pos_t[v] for v in shared]]
        scores["foscttm"] = foscttm(xs, xt)
    if label_key is not None:
        for adata, path in ((source, source_path), (target, target_path)):
            if label_key not in adata.obs:
                raise InputError(f"{path}: obs column {label_key!r} not found")
        known = [adata.obs[label_key].notna().to_numpy() for adata in (source, target)]
        for adata, path, mask in ((source, source_path, known[0]), (target, target_path, known[1])):
            if mask.sum() < 5:
                raise InputError(f"{path}: obs column {label_key!r} has fewer than 5 labelled cells")
        xs, xt = (np.asarray(adata.obsm["X_gw"])[mask] for adata, mask in zip((source, target), known))
        ls, lt = (adata.obs[label_key][mask].astype(str).to_numpy() for adata, mask in zip((source, target), known))
        shared_s, shared_t = shared_label_masks(ls, lt)
        if not (shared_s.any() and shared_t.any()):
            raise InputError(f"{source_path}, {target_path}: no {label_key!r} value occurs on both sides")
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
                carried = adata.obs[f"{label_key}_gw"].astype(str).to_numpy()[mask]
                written.append(float(np.mean(own[shared] == carried[shared])))
        if written:
            scores["labels_written"] = float(np.mean(written))
    return scores
