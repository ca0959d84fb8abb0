"""``gwalign run`` as a library call: two .h5ad files in, AnnData outputs and a report out.

Between reading and writing, ``gwalign run`` and :func:`gwalign.tl.align` take one path,
:func:`align_adatas`: check, prepare, align and annotate two AnnData objects.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from gwalign import __version__
from gwalign.errors import GWAlignWarning
from gwalign.align_arrays import align
from gwalign.device import resolve_device
from gwalign.config import RunConfig
from gwalign.threads import limited_threads, thread_limit
from gwalign.io.content import same_rows
from gwalign.io.h5ad import InputError, check_anndata, distinct_inputs, names_checksum, read_h5ad
from gwalign.io.outputs import check_output_dir, name_limit, staged_outputs, write_json
from gwalign.results.one_sided import one_sided_groups, size_note, suggestion
from gwalign.preprocess.representation import Representation, representation
from gwalign.preprocess.row_scaling import pair_size_factor, scale_rows
from gwalign.results.anndata_keys import add_outputs, joint_anndata
from gwalign.results.embedding import joint_embedding
from gwalign.results.transfer import label_transfers
from gwalign.results.report import summary
from gwalign.alignment import Alignment
from gwalign.device import peak_memory
from gwalign.preprocess.shared_features import shared_features
from gwalign.results.figures import write_figures

StageCallback = Callable[[str], None]
ProgressCallback = Callable[[int, int, Optional[float]], None]


class InMemory:
    """An AnnData object given in memory, named where a file's path would stand: ``str()``,
    ``name`` and ``stem`` are all its name (``adata_a``), in messages, in
    ``uns["gwalign"]["partner_file"]`` and in the joint AnnData."""

    def __init__(self, name: str) -> None:
        self.name = self.stem = str(name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"InMemory({self.name!r})"


#: What names a data set: its file's path (``gwalign run``) or :class:`InMemory` (:func:`gwalign.tl.align`).
Where = Union[Path, InMemory]


@dataclass
class RunOutputs:
    """Paths written by :func:`run_pair` and the report it wrote."""

    source: Path
    target: Path
    joint: Path
    report_path: Path
    report: dict[str, Any]


def output_names(source: Path, target: Path, out_dir: Optional[Path] = None) -> tuple[str, str]:
    """``A.gwalign.h5ad`` and ``B.gwalign.h5ad`` (distinct even when the stems are equal).

    Raises
    ------
    InputError
        When an input's name is too long to form its output's name on the output directory's
        file system.
    """
    a, b = f"{source.stem}.gwalign.h5ad", f"{target.stem}.gwalign.h5ad"
    if a == b:
        a, b = f"{source.stem}.source.gwalign.h5ad", f"{target.stem}.target.gwalign.h5ad"
    limit = name_limit(Path(".") if out_dir is None else out_dir)
    for path, name in ((source, a), (target, b)):
        if len(name.encode()) > limit:
            raise InputError(f"{path}: file name too long for its output name {name[:24]}... "
                             f"({len(name.encode())} bytes, the file system allows {limit}); rename the file")
    return a, b


FIGURE_FILES = ("convergence.png", "joint_umap.png")


def run_pair(source_path: str | Path, target_path: str | Path, out_dir: str | Path,
             config: Optional[RunConfig] = None, *, overwrite: bool = False,
             stage: Optional[StageCallback] = None, progress: Optional[ProgressCallback] = None) -> RunOutputs:
    """Align two .h5ad files and write the contract's outputs into ``out_dir`` atomically.

    The steps: read both files, then :func:`align_adatas` (prepare a representation of each, align
    them, annotate both AnnData objects with the results), then write every output in one staged move.

    Raises
    ------
    InputError
        For any problem with the files, representations, labels or output directory.
    """
    config = config or RunConfig()
    with limited_threads(config.engine.compute.threads):
        return _run_steps(Path(source_path), Path(target_path), Path(out_dir), config, overwrite,
                          stage or (lambda _name: None), progress)


def _run_steps(source_path: Path, target_path: Path, out_dir: Path, config: RunConfig, overwrite: bool,
               stage: StageCallback, progress: Optional[ProgressCallback]) -> RunOutputs:
    """:func:`run_pair`'s steps, under its thread limit."""
    paths = (Path(source_path), Path(target_path))
    out_dir = Path(out_dir)
    names = output_names(*paths, out_dir)
    check_output_dir(out_dir, [*names, "joint.gwalign.h5ad", "report.json", *FIGURE_FILES], overwrite)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    stage("read")
    adatas, checksums = read_pair(paths, config)
    timings["read"] = time.perf_counter() - tick

    alignment, annotated, write_started = align_adatas(adatas, paths, config, timings, stage, progress)
    annotated.report["inputs"] = {role: {"path": str(path), "sha256": checksum, **cells}
                                  for (role, cells), path, checksum in zip(annotated.report["inputs"].items(),
                                                                           paths, checksums)}
    report = write_outputs(out_dir, names, annotated, alignment, config, timings, write_started, started)
    return RunOutputs(out_dir / names[0], out_dir / names[1], out_dir / "joint.gwalign.h5ad",
                      out_dir / "report.json", report)


def read_pair(paths: tuple[Path, Path], config: RunConfig) -> tuple[tuple[Any, Any], tuple[str, str]]:
    """Both files as AnnData and their SHA-256 checksums, after checking that they are two
    different files."""
    inputs = config.inputs
    source = read_h5ad(paths[0], need_features=inputs.rep_source is None)
    target = read_h5ad(paths[1], need_features=inputs.rep_target is None)
    return (source, target), distinct_inputs(*paths)


def align_adatas(adatas: tuple[Any, Any], wheres: tuple[Where, Where], config: RunConfig,
                 timings: Optional[dict[str, float]] = None, stage: Optional[StageCallback] = None,
                 progress: Optional[ProgressCallback] = None) -> tuple[Alignment, "AnnotatedPair", float]:
    """Check, prepare, align and annotate two AnnData objects: what ``gwalign run`` does between
    reading and writing, and all that :func:`gwalign.tl.align` does.

    Parameters
    ----------
    adatas
        The source and the target. Both receive the output keys (every cell; those not aligned
        with empty results and ``obs["gw_aligned"]`` False); nothing else in them changes.
    wheres
        How messages and outputs name them (:data:`Where`).
    config
        The run's configuration.
    timings
        Filled with seconds per stage (``preprocess``, the engine's, ``write_embedding``,
        ``write_labels``, ``write_outputs``).
    stage, progress
        Called with each stage's name, and after each GW iteration.

    Returns
    -------
    tuple
        The :class:`~gwalign.Alignment`, the :class:`AnnotatedPair` and the ``time.perf_counter()``
        at which annotation started (the ``write`` stage of ``gwalign run``).

    Raises
    ------
    InputError
        For any problem with the data sets, representations or labels; the message names them.
    """
    timings = {} if timings is None else timings
    stage = stage or (lambda _name: None)
    check_pair(adatas, wheres, config)
    tick = time.perf_counter()
    stage("preprocess")
    prepared = prepare_pair(adatas, wheres, config)
    timings["preprocess"] = time.perf_counter() - tick

    stage("align")
    alignment = align_pair(prepared, wheres, config, progress)
    timings.update(alignment.timings)

    tick = time.perf_counter()
    stage("write")
    annotated = annotate_pair(alignment, prepared, wheres, config, timings)
    timings["write_outputs"] = time.perf_counter() - tick - timings["write_embedding"] - timings["write_labels"]
    return alignment, annotated, tick


def check_pair(adatas: tuple[Any, Any], wheres: tuple[Where, Where], config: RunConfig) -> None:
    """Refuse a pair that cannot be aligned before any work: each side has cells, features where
    ``X`` is used and unique ``obs_names``; the two are different objects; every label column to
    transfer is on a side and has labels there."""
    inputs = config.inputs
    memory = isinstance(wheres[0], InMemory)
    for adata, where, rep in zip(adatas, wheres, (inputs.rep_source, inputs.rep_target)):
        check_anndata(adata, where, need_features=rep is None,
                      rep_hint="rep_a/rep_b" if memory else "--rep-source/--rep-target")
    if adatas[0] is adatas[1]:
        raise InputError(f"{wheres[0]}, {wheres[1]}: the same AnnData object given twice; "
                         "gwalign aligns two different data sets")
    for key in config.outputs.transfer_labels:
        if key not in adatas[0].obs and key not in adatas[1].obs:
            raise InputError(f"{wheres[0]}, {wheres[1]}: label column {key!r} is in neither "
                             f"{'object' if memory else 'file'}'s obs")
        for where, adata in zip(wheres, adatas):
            if key in adata.obs and adata.obs[key].isna().all():
                raise InputError(f"{where}: label column {key!r} has no labelled cells (all missing)")


@dataclass
class PreparedPair:
    """Both sides ready to align: every cell (``inputs``), the cells aligned (``source``,
    ``target``, the ``kept`` rows of ``inputs``), their representations and shared features."""

    source: Any
    target: Any
    reps: tuple[Representation, Representation]
    joint: Optional[tuple[np.ndarray, np.ndarray]]
    inputs: Optional[tuple[Any, Any]] = None

    @property
    def kept(self) -> tuple[np.ndarray, np.ndarray]:
        """Each file's aligned cells (boolean masks over its ``obs``)."""
        return self.reps[0].kept, self.reps[1].kept


def prepare_pair(adatas: tuple[Any, Any], paths: tuple[Where, Where], config: RunConfig) -> PreparedPair:
    """Each side's representation (with its rows scaled), the cells it aligns, shared features.

    Cells with all-zero counts are not aligned but stay in the outputs; a warning says how many.
    ``paths`` name the two data sets in messages (:data:`Where`). ``adatas`` are not modified.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GWAlignWarning)   # align() says it once when it falls back to the CPU
        try:
            device = resolve_device(config.engine.compute.device)
        except ValueError as err:
            raise InputError(str(err)) from None
    inputs, seed, min_points = config.inputs, config.engine.compute.seed, config.engine.min_points
    for path, adata in zip(paths, adatas):
        if adata.n_obs < min_points:
            raise InputError(f"{path}: {adata.n_obs} cells, fewer than k+1 = {min_points} "
                             "(each file needs k+1 cells for its kNN graph)")
    reps = tuple(representation(adata, path, key, modality, inputs.n_components, inputs.n_top_genes, seed,
                                device, min_cells=min_points)
                 for adata, path, key, modality in ((adatas[0], paths[0], inputs.rep_source, inputs.modality_source),
                                                    (adatas[1], paths[1], inputs.rep_target, inputs.modality_target)))
    # One row-scaling decision for the pair: both sides are measured alike.
    decision = pair_size_factor(reps[0].matrix, reps[1].matrix) if inputs.normalise_rows == "auto" else None
    for side, (rep, path, adata) in enumerate(zip(reps, paths, adatas)):
        _scale_representation(rep, inputs.normalise_rows, path,
                              None if decision is None else (decision[0], decision[1][side]))
        if rep.unaligned_cells:
            warnings.warn(f"{path.name}: {len(rep.unaligned_cells)} of {adata.n_obs} cells have all-zero counts and "
                          "were not aligned; they stay in the outputs with obs['gw_aligned'] False and empty results",
                          GWAlignWarning, stacklevel=2)
    source, target = (adata if rep.kept.all() else adata[rep.kept].copy() for adata, rep in zip(adatas, reps))
    joint = shared_features(source, target, paths[0], paths[1], config)
    return PreparedPair(source, target, reps, joint, inputs=adatas)


def _scale_representation(rep: Representation, normalise_rows: str, path: Where,
                          decision: Optional[tuple[bool, Optional[str]]]) -> None:
    """Scale the representation's rows as ``normalise_rows`` says (``auto``: as ``decision``, the
    pair's, with this side's reason), noting why; never into a representation whose cells are all
    the same, nor a one-column one."""
    if decision is not None:
        scale, reason = decision[0] and rep.matrix.shape[1] > 1, decision[1]
    else:
        scale, reason = normalise_rows == "l2", "rows scaled to unit L2 norm" if normalise_rows == "l2" else None
    if scale:
        scaled, _ = scale_rows(rep.matrix, "l2")
        if not same_rows(scaled):
            rep.matrix = scaled
        elif normalise_rows == "l2":
            raise InputError(f"{path}: rows scaled to unit length (--normalise-rows l2) leave every cell the same "
                             "(all rows point one way); use --normalise-rows none")
        else:
            reason = "rows kept: unit length would leave every cell the same (all rows point one way)"
    if reason is not None:
        rep.notes.append(reason)


def align_pair(prepared: PreparedPair, paths: tuple[Where, Where], config: RunConfig,
               progress: Optional[ProgressCallback]) -> Alignment:
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


def annotate_pair(alignment: Alignment, prepared: PreparedPair, paths: tuple[Where, Where], config: RunConfig,
                  timings: dict[str, float]) -> AnnotatedPair:
    """Joint embedding, transferred labels and the one-sided check, written into both AnnData
    objects (every cell; those not aligned with empty results); the joint AnnData (the aligned
    cells); the report (its ``inputs`` give each side's cells and aligned cells)."""
    tick = time.perf_counter()
    source, target, (rep_s, rep_t) = prepared.source, prepared.target, prepared.reps
    full = prepared.inputs or (source, target)
    kept = prepared.kept
    outputs = config.outputs
    emb_s, emb_t = joint_embedding(alignment, rep_s.matrix, rep_t.matrix, outputs.joint_embedding,
                                   outputs.cca_diffusion)
    timings["write_embedding"] = time.perf_counter() - tick
    label_keys = list(outputs.transfer_labels)
    to_source, to_target = label_transfers(alignment, source, target, label_keys,
                                           (emb_s, emb_t) if outputs.transfer == "knn" else None, outputs.transfer_k)
    timings["write_labels"] = time.perf_counter() - tick - timings["write_embedding"]
    check = one_sided_groups(alignment)
    advice = None if check is None else suggestion(check, paths[0].name, paths[1].name,
                                                   python=isinstance(paths[0], InMemory))
    base = summary(alignment, {
        "version": __version__,
        "parameters": config.to_dict(),
        "representation": {"source": _rep_info(rep_s), "target": _rep_info(rep_t)},
        "one_sided": None if check is None else {"source": check[0].summary(), "target": check[1].summary(),
                                                 "suggestion": advice},
    })
    for side, (emb, labels, role) in enumerate(((emb_s, to_source, "source"), (emb_t, to_target, "target"))):
        adata, partner = full[side], full[1 - side]
        add_outputs(adata, alignment, emb, partner.obs_names, is_source=role == "source", top_k=outputs.top_k,
                    labels=labels, info={**base, "role": role, "partner_file": paths[1 - side].name,
                                         "partner_obs_names_sha256": names_checksum(partner.obs_names)},
                    one_sided=None if check is None else check[side], kept=kept[side], partner_kept=kept[1 - side])
    sizes = (int(kept[0].sum()), int(kept[1].sum()))
    notes = (advice, size_note(sizes, (paths[0].name, paths[1].name), config.engine.solver.fgw_alpha > 0,
                               python=isinstance(paths[0], InMemory)))
    for note in filter(None, notes):
        warnings.warn(note, GWAlignWarning, stacklevel=3)
    dataset_names = (paths[0].stem, paths[1].stem if paths[1].stem != paths[0].stem else f"{paths[1].stem}_target")
    aligned = tuple(adata if mask.all() else adata[mask] for adata, mask in zip(full, kept))
    joint_ad = joint_anndata(*aligned, dataset_names, label_keys)
    report = {**base, "inputs": {role: {"cells": int(adata.n_obs), "aligned_cells": int(mask.sum())}
                                 for role, adata, mask in zip(("source", "target"), full, kept)},
              "label_transfer": {k: {"mean_confidence": float(np.mean(v[1]))}
                                 for k, v in {**{f"{k}->source": v for k, v in to_source.items()},
                                              **{f"{k}->target": v for k, v in to_target.items()}}.items()}}
    return AnnotatedPair(full[0], full[1], joint_ad, label_keys, report)


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
        report["threads"] = thread_limit()
        write_json(staging / "report.json", report)
    # With --overwrite, a figure of an earlier run that this run did not redraw would describe other
    # outputs than the ones beside it: it goes once this run's outputs are in place.
    for name in FIGURE_FILES:
        if not report.get("figures", {}).get(name, "").startswith("written"):
            (out_dir / name).unlink(missing_ok=True)
    return report


def _rep_info(rep: Representation) -> dict[str, Any]:
    return {"modality": rep.modality, "method": rep.source, "dims": int(rep.matrix.shape[1]),
            "unaligned_cells": rep.unaligned_cells, "notes": rep.notes}
