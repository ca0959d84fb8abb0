"""``gwalign run`` as a library call: two .h5ad files in, AnnData outputs and a report out."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from gwalign import __version__
from gwalign.alignment import GWAlignWarning
from gwalign.align import align
from gwalign.device import resolve_device
from gwalign.config import RunConfig
from gwalign.io.h5ad import InputError, file_checksum, names_checksum, read_h5ad
from gwalign.io.outputs import check_output_dir, staged_outputs, write_json
from gwalign.results.one_sided import one_sided_groups, suggestion
from gwalign.preprocess.representation import Representation, representation
from gwalign.preprocess.row_scaling import scale_rows, size_factor
from gwalign.results.anndata_keys import add_outputs, joint_anndata
from gwalign.results.embedding import joint_embedding
from gwalign.results.transfer import label_transfers
from gwalign.results.report import summary
from gwalign.alignment import Alignment
from gwalign.device import peak_memory
from gwalign.preprocess.shared_features import shared_features
from gwalign.results.figures import write_figures

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


FIGURE_FILES = ("convergence.png", "joint_umap.png")


def run_pair(source_path: str | Path, target_path: str | Path, out_dir: str | Path,
             config: Optional[RunConfig] = None, *, overwrite: bool = False,
             stage: Optional[StageCallback] = None,
             progress: Optional[Callable[[int, int, Optional[float]], None]] = None) -> RunOutputs:
    """Align two .h5ad files and write the contract's outputs into ``out_dir`` atomically.

    The steps: read both files, prepare a representation of each, align them, annotate both
    AnnData objects with the results, write every output in one staged move.

    Raises
    ------
    InputError
        For any problem with the files, representations, labels or output directory.
    """
    config = config or RunConfig()
    stage = stage or (lambda _name: None)
    paths = (Path(source_path), Path(target_path))
    out_dir = Path(out_dir)
    names = output_names(*paths)
    check_output_dir(out_dir, [*names, "joint.gwalign.h5ad", "report.json", *FIGURE_FILES], overwrite)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    stage("read")
    adatas = read_pair(paths, config.outputs.transfer_labels)
    timings["read"] = time.perf_counter() - tick

    tick = time.perf_counter()
    stage("preprocess")
    prepared = prepare_pair(adatas, paths, config)
    timings["preprocess"] = time.perf_counter() - tick

    stage("align")
    alignment = align_pair(prepared, paths, config, progress)
    timings.update(alignment.timings)

    tick = time.perf_counter()
    stage("write")
    annotated = annotate_pair(alignment, prepared, paths, config, timings)
    timings["write_outputs"] = time.perf_counter() - tick - timings["write_embedding"] - timings["write_labels"]
    report = write_outputs(out_dir, names, annotated, alignment, config, timings, tick, started)
    return RunOutputs(out_dir / names[0], out_dir / names[1], out_dir / "joint.gwalign.h5ad",
                      out_dir / "report.json", report)


def read_pair(paths: tuple[Path, Path], label_keys: tuple[str, ...]) -> tuple[Any, Any]:
    """Both files as AnnData, after checking that every label column to transfer has labels."""
    source, target = read_h5ad(paths[0]), read_h5ad(paths[1])
    for key in label_keys:
        if key not in source.obs and key not in target.obs:
            raise InputError(f"{paths[0]}, {paths[1]}: label column {key!r} is in neither file's obs")
        for path, adata in zip(paths, (source, target)):
            if key in adata.obs and adata.obs[key].isna().all():
                raise InputError(f"{path}: label column {key!r} has no labelled cells (all missing)")
    return source, target


@dataclass
class PreparedPair:
    """Both sides ready to align: the cells kept, their representations and shared features."""

    source: Any
    target: Any
    reps: tuple[Representation, Representation]
    joint: Optional[tuple[np.ndarray, np.ndarray]]


def prepare_pair(adatas: tuple[Any, Any], paths: tuple[Path, Path], config: RunConfig) -> PreparedPair:
    """Each side's representation (with its rows scaled), the cells it keeps, shared features."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GWAlignWarning)   # align() says it once when it falls back to the CPU
        try:
            device = resolve_device(config.engine.compute.device)
        except ValueError as err:
            raise InputError(str(err)) from None
    inputs, seed = config.inputs, config.engine.compute.seed
    reps = (representation(adatas[0], paths[0], inputs.rep_source, inputs.modality_source,
                           inputs.n_components, inputs.n_top_genes, seed, device),
            representation(adatas[1], paths[1], inputs.rep_target, inputs.modality_target,
                           inputs.n_components, inputs.n_top_genes, seed, device))
    for rep in reps:
        _scale_representation(rep, inputs.normalise_rows)
    source, target = adatas[0][reps[0].kept].copy(), adatas[1][reps[1].kept].copy()
    joint = shared_features(source, target, paths[0], paths[1], config)
    for path, rep in zip(paths, reps):
        if rep.matrix.shape[0] < config.engine.min_points:
            raise InputError(f"{path}: {rep.matrix.shape[0]} cells, fewer than k+1 = {config.engine.min_points}")
    return PreparedPair(source, target, reps, joint)


def _scale_representation(rep: Representation, normalise_rows: str) -> None:
    """Scale the representation's rows as ``normalise_rows`` says, noting why."""
    if normalise_rows == "auto":
        # One test decides and says why (uncentred sides), as scale_rows would decide.
        scale, reason = size_factor(rep.matrix)
    else:
        scale, reason = normalise_rows == "l2", "rows scaled to unit L2 norm" if normalise_rows == "l2" else None
    rep.matrix, _ = scale_rows(rep.matrix, "l2" if scale else "none")
    if reason is not None:
        rep.notes.append(reason)


def align_pair(prepared: PreparedPair, paths: tuple[Path, Path], config: RunConfig,
               progress: Optional[Callable[[int, int, Optional[float]], None]]) -> Alignment:
    """Run :func:`gwalign.align` on the prepared representations."""
    joint = prepared.joint
    try:
        return align(prepared.reps[0].matrix, prepared.reps[1].matrix, config.engine,
                     joint_source=None if joint is None else joint[0],
                     joint_target=None if joint is None else joint[1], progress=progress)
    except ValueError as err:
        raise InputError(f"{paths[0]}, {paths[1]}: {err}") from None


@dataclass
class AnnotatedPair:
    """Both sides with their output keys, the joint AnnData and the report so far."""

    source: Any
    target: Any
    joint: Any
    label_keys: list[str]
    report: dict[str, Any]


def annotate_pair(alignment: Alignment, prepared: PreparedPair, paths: tuple[Path, Path], config: RunConfig,
                  timings: dict[str, float]) -> AnnotatedPair:
    """Joint embedding, transferred labels and the one-sided check, written into both AnnData
    objects; the joint AnnData; the report."""
    tick = time.perf_counter()
    source, target, (rep_s, rep_t) = prepared.source, prepared.target, prepared.reps
    outputs = config.outputs
    emb_s, emb_t = joint_embedding(alignment, rep_s.matrix, rep_t.matrix, outputs.joint_embedding,
                                   outputs.cca_diffusion)
    timings["write_embedding"] = time.perf_counter() - tick
    label_keys = list(outputs.transfer_labels)
    to_source, to_target = label_transfers(alignment, source, target, label_keys,
                                           (emb_s, emb_t) if outputs.transfer == "knn" else None, outputs.transfer_k)
    timings["write_labels"] = time.perf_counter() - tick - timings["write_embedding"]
    check = one_sided_groups(alignment)
    advice = None if check is None else suggestion(check, paths[0].name, paths[1].name)
    base = summary(alignment, {
        "version": __version__,
        "parameters": config.to_dict(),
        "representation": {"source": _rep_info(rep_s), "target": _rep_info(rep_t)},
        "one_sided": None if check is None else {"source": check[0].summary(), "target": check[1].summary(),
                                                 "suggestion": advice},
    })
    for adata, emb, partner, partner_path, labels, role in ((source, emb_s, target, paths[1], to_source, "source"),
                                                             (target, emb_t, source, paths[0], to_target, "target")):
        add_outputs(adata, alignment, emb, partner.obs_names, is_source=role == "source", top_k=outputs.top_k,
                    labels=labels, info={**base, "role": role, "partner_file": partner_path.name,
                                         "partner_obs_names_sha256": names_checksum(partner.obs_names)},
                    one_sided=None if check is None else check[0 if role == "source" else 1])
    if advice is not None:
        warnings.warn(advice, GWAlignWarning, stacklevel=3)
    dataset_names = (paths[0].stem, paths[1].stem if paths[1].stem != paths[0].stem else f"{paths[1].stem}_target")
    joint_ad = joint_anndata(source, target, dataset_names, label_keys)
    report = {**base, "inputs": {role: {"path": str(path), "sha256": file_checksum(path), "cells": int(adata.n_obs)}
                                 for role, path, adata in (("source", paths[0], source), ("target", paths[1], target))},
              "label_transfer": {k: {"mean_confidence": float(np.mean(v[1]))}
                                 for k, v in {**{f"{k}->source": v for k, v in to_source.items()},
                                              **{f"{k}->target": v for k, v in to_target.items()}}.items()}}
    return AnnotatedPair(source, target, joint_ad, label_keys, report)


def write_outputs(out_dir: Path, names: tuple[str, str], annotated: AnnotatedPair, alignment: Alignment,
                  config: RunConfig, timings: dict[str, float], write_started: float, started: float
                  ) -> dict[str, Any]:
    """Write both annotated files, the joint file, the figures and report.json in one staged move."""
    report = annotated.report
    with staged_outputs(out_dir) as staging:
        files = time.perf_counter()
        annotated.source.write_h5ad(staging / names[0])
        annotated.target.write_h5ad(staging / names[1])
        annotated.joint.write_h5ad(staging / "joint.gwalign.h5ad")
        timings["write_files"] = time.perf_counter() - files
        if config.outputs.figures:
            drawn = time.perf_counter()
            report["figures"] = write_figures(alignment.history, annotated.joint, annotated.label_keys, staging,
                                              config.engine.compute.seed)
            timings["write_figures"] = time.perf_counter() - drawn
        timings["write"] = time.perf_counter() - write_started
        timings["total"] = time.perf_counter() - started
        report["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
        report["peak_memory_gb"] = peak_memory(alignment.device)
        write_json(staging / "report.json", report)
    # With --overwrite, a figure of an earlier run that this run did not redraw would describe other
    # outputs than the ones beside it: it goes once this run's outputs are in place.
    for name in FIGURE_FILES:
        if not report.get("figures", {}).get(name, "").startswith("written"):
            (out_dir / name).unlink(missing_ok=True)
    return report


def _rep_info(rep: Representation) -> dict[str, Any]:
    return {"modality": rep.modality, "method": rep.source, "dims": int(rep.matrix.shape[1]),
            "dropped_cells": rep.dropped_cells, "notes": rep.notes}
