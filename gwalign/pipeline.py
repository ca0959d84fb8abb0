"""``gwalign run`` as a library call: two .h5ad files in, AnnData outputs and a report out."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from gwalign import __version__
from gwalign.align import GWAlignWarning, align, resolve_device
from gwalign.config import RunConfig
from gwalign.io import (InputError, check_output_dir, file_checksum, names_checksum, read_h5ad,
                        staged_outputs, write_json)
from gwalign.one_sided import one_sided_groups, suggestion
from gwalign.preprocess import Representation, representation, scale_rows, size_factor
from gwalign.results import add_outputs, joint_anndata, joint_embedding, label_transfers, summary

StageCallback = Callable[[str], None]


@dataclass
class RunOutputs:
    """Paths written by :func:`run_pair` and the report it wrote."""

    source: Path
    target: Path
    joint: Path
    report_path: Path
    report: dict[str, Any]


def output_names(source: Path, target: Path) -> tuple[str, str]:
    """``A.gwalign.h5ad`` and ``B.gwalign.h5ad`` (distinct even when the stems are equal)."""
    a, b = f"{source.stem}.gwalign.h5ad", f"{target.stem}.gwalign.h5ad"
    if a == b:
        a, b = f"{source.stem}.source.gwalign.h5ad", f"{target.stem}.target.gwalign.h5ad"
    return a, b


def run_pair(source_path: str | Path, target_path: str | Path, out_dir: str | Path,
             config: Optional[RunConfig] = None, *, overwrite: bool = False,
             stage: Optional[StageCallback] = None,
             progress: Optional[Callable[[int, int, Optional[float]], None]] = None) -> RunOutputs:
    """Align two .h5ad files and write the contract's outputs into ``out_dir`` atomically.

    Raises
    ------
    InputError
        For any problem with the files, representations, labels or output directory.
    """
    config = config or RunConfig()
    stage = stage or (lambda _name: None)
    source_path, target_path, out_dir = Path(source_path), Path(target_path), Path(out_dir)
    names = output_names(source_path, target_path)
    all_names = [*names, "joint.gwalign.h5ad", "report.json", "convergence.png", "joint_umap.png"]
    check_output_dir(out_dir, all_names, overwrite)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    stage("read")
    source = read_h5ad(source_path)
    target = read_h5ad(target_path)
    for key in config.transfer_labels:
        if key not in source.obs and key not in target.obs:
            raise InputError(f"{source_path}, {target_path}: label column {key!r} is in neither file's obs")
        for path, adata in ((source_path, source), (target_path, target)):
            if key in adata.obs and adata.obs[key].isna().all():
                raise InputError(f"{path}: label column {key!r} has no labelled cells (all missing)")
    timings["read"] = time.perf_counter() - tick

    tick = time.perf_counter()
    stage("preprocess")
    seed = config.engine.seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GWAlignWarning)   # align() says it once when it falls back to the CPU
        try:
            device = resolve_device(config.engine.device)
        except ValueError as err:
            raise InputError(str(err)) from None
    rep_s = representation(source, source_path, config.rep_source, config.modality_source,
                           config.n_components, config.n_top_genes, seed, device)
    rep_t = representation(target, target_path, config.rep_target, config.modality_target,
                           config.n_components, config.n_top_genes, seed, device)
    for rep in (rep_s, rep_t):
        # auto: one test decides and says why (uncentred sides), as scale_rows would decide.
        scale, reason = size_factor(rep.matrix) if config.normalise_rows == "auto" else (
            config.normalise_rows == "l2", "rows scaled to unit L2 norm" if config.normalise_rows == "l2" else None)
        rep.matrix, _ = scale_rows(rep.matrix, "l2" if scale else "none")
        if reason is not None:
            rep.notes.append(reason)
    source = source[rep_s.kept].copy()
    target = target[rep_t.kept].copy()
    joint = _joint_features(source, target, source_path, target_path, config)
    for path, rep in ((source_path, rep_s), (target_path, rep_t)):
        if rep.matrix.shape[0] < config.engine.min_points:
            raise InputError(f"{path}: {rep.matrix.shape[0]} cells, fewer than k+1 = {config.engine.min_points}")
    timings["preprocess"] = time.perf_counter() - tick

    stage("align")
    try:
        alignment = align(rep_s.matrix, rep_t.matrix, config.engine,
                          joint_source=None if joint is None else joint[0],
                          joint_target=None if joint is None else joint[1], progress=progress)
    except ValueError as err:
        raise InputError(f"{source_path}, {target_path}: {err}") from None
    timings.update(alignment.timings)

    tick = time.perf_counter()
    stage("write")
    emb_s, emb_t = joint_embedding(alignment, rep_s.matrix, rep_t.matrix, config.joint_embedding, config.cca_diffusion)
    timings["write_embedding"] = time.perf_counter() - tick
    label_keys = list(config.transfer_labels)
    to_source, to_target = label_transfers(alignment, source, target, label_keys,
                                           (emb_s, emb_t) if config.transfer == "knn" else None,
                                           config.transfer_k)
    timings["write_labels"] = time.perf_counter() - tick - timings["write_embedding"]
    check = one_sided_groups(alignment)
    advice = None if check is None else suggestion(check, source_path.name, target_path.name)
    base = summary(alignment, {
        "version": __version__,
        "parameters": config.to_dict(),
        "representation": {"source": _rep_info(rep_s), "target": _rep_info(rep_t)},
        "one_sided": None if check is None else {"source": check[0].summary(), "target": check[1].summary(),
                                                 "suggestion": advice},
    })
    add_outputs(source, alignment, emb_s, target.obs_names, is_source=True, top_k=config.top_k,
                labels=to_source, info={**base, "role": "source", "partner_file": target_path.name,
                                        "partner_obs_names_sha256": names_checksum(target.obs_names)},
                one_sided=None if check is None else check[0])
    add_outputs(target, alignment, emb_t, source.obs_names, is_source=False, top_k=config.top_k,
                labels=to_target, info={**base, "role": "target", "partner_file": source_path.name,
                                        "partner_obs_names_sha256": names_checksum(source.obs_names)},
                one_sided=None if check is None else check[1])
    if advice is not None:
        warnings.warn(advice, GWAlignWarning, stacklevel=2)
    dataset_names = (source_path.stem, target_path.stem if target_path.stem != source_path.stem
                     else f"{target_path.stem}_target")
    joint_ad = joint_anndata(source, target, dataset_names, label_keys)
    report = {**base, "inputs": {"source": {"path": str(source_path), "sha256": file_checksum(source_path),
                                            "cells": int(source.n_obs)},
                                 "target": {"path": str(target_path), "sha256": file_checksum(target_path),
                                            "cells": int(target.n_obs)}},
              "label_transfer": {k: {"mean_confidence": float(np.mean(v[1]))}
                                 for k, v in {**{f"{k}->source": v for k, v in to_source.items()},
                                              **{f"{k}->target": v for k, v in to_target.items()}}.items()}}
    timings["write_outputs"] = time.perf_counter() - tick - timings["write_embedding"] - timings["write_labels"]
    with staged_outputs(out_dir) as staging:
        files = time.perf_counter()
        source.write_h5ad(staging / names[0])
        target.write_h5ad(staging / names[1])
        joint_ad.write_h5ad(staging / "joint.gwalign.h5ad")
        timings["write_files"] = time.perf_counter() - files
        if config.figures:
            drawn = time.perf_counter()
            report["figures"] = _write_figures(alignment.history, joint_ad, label_keys, staging, seed)
            timings["write_figures"] = time.perf_counter() - drawn
        timings["write"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - started
        report["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
        report["peak_memory_gb"] = peak_memory(alignment.device)
        write_json(staging / "report.json", report)
    # With --overwrite, a figure of an earlier run that this run did not redraw would describe other
    # outputs than the ones beside it: it goes once this run's outputs are in place.
    for name in ("convergence.png", "joint_umap.png"):
        if not report.get("figures", {}).get(name, "").startswith("written"):
            (out_dir / name).unlink(missing_ok=True)
    return RunOutputs(out_dir / names[0], out_dir / names[1], out_dir / "joint.gwalign.h5ad",
                      out_dir / "report.json", report)


def peak_memory(device) -> dict[str, float]:
    """The process's peak resident memory and, on CUDA, the peak GPU memory allocated by torch, in GB:
    what a batch job must request."""
    import resource
    import sys

    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    peak = {"host_rss": round(rss / (2**30 if sys.platform == "darwin" else 2**20), 3)}
    if torch.device(device).type == "cuda":
        peak["gpu_allocated"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return peak


def _write_figures(history: list[float], joint_ad, label_keys: list[str], folder: Path, seed: int
                   ) -> dict[str, str]:
    """Both PNGs, each on its own: a figure that fails is reported and warned about, and the run's
    data outputs are written all the same (figures are a view of them, never worth losing them)."""
    from gwalign.figures import convergence_figure, umap_figure

    status: dict[str, str] = {}
    for name, draw in (("convergence.png", lambda path: convergence_figure(history, path)),
                       ("joint_umap.png", lambda path: umap_figure(joint_ad, label_keys, path, seed))):
        try:
            drawn = draw(folder / name)
        except Exception as err:  # noqa: BLE001 - any plotting failure must spare the outputs
            (folder / name).unlink(missing_ok=True)
            status[name] = f"not written: {type(err).__name__}: {err}"
            warnings.warn(f"{name} {status[name]}", GWAlignWarning, stacklevel=3)
            continue
        status[name] = "written" if drawn is None or drawn == joint_ad.n_obs else (
            f"written, {drawn} of {joint_ad.n_obs} cells drawn at random")
    return status


def _rep_info(rep: Representation) -> dict[str, Any]:
    return {"modality": rep.modality, "method": rep.source, "dims": int(rep.matrix.shape[1]),
            "dropped_cells": rep.dropped_cells, "notes": rep.notes}


def _joint_features(source, target, source_path: Path, target_path: Path, config: RunConfig):
    """Shared features for fused GW: obsm keys, else shared var names (log-normalised)."""
    if config.engine.fgw_alpha == 0:
        return None
    if config.joint_rep_source is not None:
        for adata, path, key in ((source, source_path, config.joint_rep_source),
                                 (target, target_path, config.joint_rep_target)):
            if key not in adata.obsm:
                keys = ", ".join(sorted(adata.obsm.keys())) or "none"
                raise InputError(f"{path}: obsm key {key!r} not found (obsm keys: {keys})")
        js = np.asarray(source.obsm[config.joint_rep_source], dtype=np.float64)
        jt = np.asarray(target.obsm[config.joint_rep_target], dtype=np.float64)
        if js.shape[1] != jt.shape[1]:
            raise InputError(f"{source_path}, {target_path}: joint representations have different widths "
                             f"({js.shape[1]} and {jt.shape[1]})")
        return js, jt
    shared = source.var_names.intersection(target.var_names)
    if len(shared) == 0:
        raise InputError(f"{source_path}, {target_path}: --fgw-alpha needs --joint-rep-source/--joint-rep-target "
                         "or shared var names, and the files share none")
    return _lognorm(source[:, shared].X), _lognorm(target[:, shared].X)


def _lognorm(x) -> np.ndarray:
    import scipy.sparse as sp

    dense = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
    totals = np.maximum(dense.sum(axis=1, keepdims=True), 1e-12)
    return np.log1p(dense / totals * 1e4)
