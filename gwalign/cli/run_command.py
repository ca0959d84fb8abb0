"""``gwalign run``: its options, progress display and summary table."""

from __future__ import annotations

import gc
import json
import sys
import warnings
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gwalign.cli.console import default_help, err, fail, print_warnings, said
from gwalign.config import RunConfig, load_toml
from gwalign.config.fields import parse_settings
from gwalign.errors import DistributedError, GPUMemoryError
from gwalign.io.h5ad import InputError
from gwalign.io.outputs import Terminated, to_jsonable

#: Parameters of ``gwalign run`` that are not settings of the run.
NOT_SETTINGS = frozenset({"source", "target", "out_dir", "settings", "config", "overwrite", "quiet", "as_json"})

#: Exit codes of a run stopped by Ctrl-C (SIGINT) and by SIGTERM: 128 + the signal's number.
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def run(
    source: Path = typer.Argument(..., help="Source .h5ad (e.g. scRNA-seq)."),
    target: Path = typer.Argument(..., help="Target .h5ad (e.g. scATAC-seq)."),
    out_dir: Path = typer.Option(Path("gwalign_out"), "--out-dir", "-o", help="Output directory."),
    rep_source: Optional[str] = typer.Option(None, help="obsm key of the source representation " + default_help("rep_source")),
    rep_target: Optional[str] = typer.Option(None, help="obsm key of the target representation " + default_help("rep_target")),
    modality_source: Optional[str] = typer.Option(None, help="auto | rna | atac " + default_help("modality_source")),
    modality_target: Optional[str] = typer.Option(None, help="auto | rna | atac " + default_help("modality_target")),
    n_components: Optional[int] = typer.Option(None, help="Dimensions of a computed representation (RNA PCA, ATAC LSI) "
                                               + default_help("n_components")),
    n_top_genes: Optional[int] = typer.Option(None, help="Highly variable genes kept before the RNA PCA "
                                              + default_help("n_top_genes")),
    normalise_rows: Optional[str] = typer.Option(None, help="Row scaling: auto (unit length where the norm is a size "
                                                 "factor) | l2 | none " + default_help("normalise_rows")),
    distance: Optional[str] = typer.Option(None, help="auto | precomputed | dijkstra | landmark " + default_help("distance")),
    n_landmarks: Optional[int] = typer.Option(None, help="Landmarks per side for landmark distances "
                                              + default_help("n_landmarks")),
    epsilon: Optional[float] = typer.Option(None, help="Entropic regularisation, relative to the cost scale (auto: 0.01 with exact geodesics, 0.03 with landmark distances) " + default_help("epsilon")),
    n_anchors: Optional[int] = typer.Option(None, help="Anchor pairs per GW step " + default_help("n_anchors")),
    k: Optional[int] = typer.Option(None, "--k", help="Neighbours in the kNN graph (auto: 15, fewer only for tinier sides) " + default_help("k")),
    max_iter: Optional[int] = typer.Option(None, help="Maximum GW iterations " + default_help("max_iter")),
    n_starts: Optional[int] = typer.Option(None, help="GW starts (auto: 10 with the low-rank solver, 3 with the sampled one) "
                                           + default_help("n_starts")),
    coupling_rank: Optional[int] = typer.Option(None, help="Solve over couplings of this rank first (linear time in the "
                                                "cells), then refine, instead of screening starts " + said("off")),
    semi_relaxed: Optional[bool] = typer.Option(None, "--semi-relaxed/--balanced",
                                                help="Relax the target marginal (cell types missing from the source) " + said("balanced")),
    rho: Optional[float] = typer.Option(None, help="Semi-relaxed KL weight, relative to the cost scale " + default_help("rho")),
    one_sided_check: Optional[bool] = typer.Option(None, "--one-sided-check/--no-one-sided-check",
                                                   help="Look for cell groups without counterpart and suggest --semi-relaxed "
                                                        + said("on")),
    fgw_alpha: Optional[float] = typer.Option(None, help="Fused GW weight of shared features " + default_help("fgw_alpha")),
    joint_rep_source: Optional[str] = typer.Option(None, help="obsm key of shared features (source) for fused GW " + said("none")),
    joint_rep_target: Optional[str] = typer.Option(None, help="obsm key of shared features (target) for fused GW " + said("none")),
    gene_activity: Optional[bool] = typer.Option(None, "--gene-activity/--no-gene-activity",
                                                 help="Fused GW on RNA expression and ATAC gene activity, from the files' "
                                                      "genomic coordinates (--fgw-alpha, else 0.5) " + said("off")),
    transfer_labels: Optional[List[str]] = typer.Option(None, "--transfer-labels", help="obs column to carry across (repeatable) " + said("none")),
    transfer: Optional[str] = typer.Option(None, "--transfer", help="Labels by knn (in X_gw) | plan (most plan mass) " + default_help("transfer")),
    transfer_k: Optional[int] = typer.Option(None, "--transfer-k", help="Neighbours of the kNN label transfer " + default_help("transfer_k")),
    top_k: Optional[int] = typer.Option(None, help="Plan entries kept per cell in obsm['gw_coupling'] " + default_help("top_k")),
    joint_embedding: Optional[str] = typer.Option(None, "--joint-embedding",
                                                  help="X_gw: cca | target | source | spectral " + default_help("joint_embedding")),
    cca_diffusion: Optional[int] = typer.Option(None, "--cca-diffusion",
                                                 help="Random-walk steps averaging the plan over kNN neighbourhoods before "
                                                      "the cca embedding (0: as is) " + default_help("cca_diffusion")),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:i " + default_help("device")),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch, BLAS, numba and the shortest-path workers "
                                          "(auto: the cores this process may use, at most OMP_NUM_THREADS) "
                                          + default_help("threads")),
    seed: Optional[int] = typer.Option(None, help="Random seed " + default_help("seed")),
    figures: Optional[bool] = typer.Option(None, "--figures/--no-figures", help="Write PNG figures " + said("figures")),
    settings: Optional[List[str]] = typer.Option(None, "--set", help="Any other setting, NAME=VALUE as in a TOML preset "
                                                 "(e.g. --set rank=32; repeatable) " + said("none")),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML preset (see configs/); --set and options override it. " + said("none")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs. " + said("off")),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output and no CPU notice; warnings about the result are still printed. " + said("off")),
    as_json: bool = typer.Option(False, "--json", help="Print only the report as JSON on stdout. " + said("off")),
) -> None:
    """Align SOURCE to TARGET and write AnnData outputs ready for scanpy."""
    # Every parameter but these is a setting of the run (RunConfig's flat name): first statement.
    flags = {name: value for name, value in locals().items() if name not in NOT_SETTINGS}
    try:
        values: dict[str, Any] = load_toml(config) if config is not None else {}
        values.update(parse_settings(settings or []))
        values.update({key: value for key, value in flags.items() if value not in (None, [])})
        run_config = RunConfig.from_flat(values, source=str(config) if config else "options")
    except ValueError as error:
        fail(str(error))
    outputs = execute(source, target, out_dir, run_config, overwrite, quiet or as_json)
    if outputs is None:   # a rank other than 0 of a distributed run: rank 0 reports
        return
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(outputs.report)) + "\n")
    elif not quiet:
        print_summary(outputs)


def execute(source: Path, target: Path, out_dir: Path, run_config: RunConfig, overwrite: bool, quiet: bool):
    """:func:`gwalign.pipeline.run_pair` with progress (unless ``quiet``), its warnings printed,
    and every error a user can act on turned into one line and an exit code.

    Launched as several processes (torchrun, srun), rank 0 does this and the other ranks take part
    in its alignment (:mod:`gwalign.distributed`), then return ``None``."""
    # Importing torch and anndata creates most of the process's objects, all long-lived: the
    # garbage collector is off while they load, and they are then frozen out of its reach for the
    # run. Its full collections over them took about 0.3 s during the imports and 0.3 s during a
    # SNARE-seq run on 2 CPU cores (docs/performance.md).
    gc.disable()
    try:
        from gwalign.align_arrays import align_call
        from gwalign.distributed.launch import launched, serve
        from gwalign.pipeline import run_pair  # noqa: F401 - loaded before the freeze
        import anndata  # noqa: F401 - read_h5ad loads it on first use
    finally:
        gc.freeze()
        gc.enable()
    try:
        with launched(run_config.engine.compute.device) as group:
            if group is not None and group.rank > 0:
                serve(group, lambda call: align_call(call, group))
                return None
            return _execute(source, target, out_dir, run_config, overwrite, quiet)
    except DistributedError as error:
        fail(str(error), code=1)
    finally:
        gc.unfreeze()


def _execute(source: Path, target: Path, out_dir: Path, run_config: RunConfig, overwrite: bool, quiet: bool):
    """:func:`execute` on one process (rank 0 of several)."""
    from gwalign.pipeline import run_pair

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outputs = run_with_progress(run_pair, source, target, out_dir, run_config, overwrite, not quiet)
        except InputError as error:
            print_warnings(caught, quiet)
            fail(str(error))
        except GPUMemoryError as error:
            fail(str(error), code=1)
        except Terminated:   # SIGTERM while the outputs were being written (before, it ends the process)
            fail("terminated: no output was written", code=EXIT_TERMINATED)
        except KeyboardInterrupt:
            fail("interrupted: no output was written", code=EXIT_INTERRUPTED)
    print_warnings(caught, quiet)
    return outputs


def run_with_progress(run_pair, source, target, out_dir, run_config, overwrite, show):
    """Call ``run_pair`` with a progress display on stderr when ``show``."""
    if not show:
        return run_pair(source, target, out_dir, run_config, overwrite=overwrite)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=err)
    tasks: dict[str, Any] = {}

    def stage(name: str) -> None:
        for task in tasks.values():
            progress.update(task, completed=progress.tasks[task].total)
        total = run_config.engine.solver.max_iter if name == "align" else 1
        tasks[name] = progress.add_task(name, total=total, detail="")

    def iteration(it: int, total: int, objective: Optional[float]) -> None:
        detail = "" if objective is None else f"GW objective {objective:.4g}"
        progress.update(tasks["align"], completed=it, detail=detail)

    with progress:
        result = run_pair(source, target, out_dir, run_config, overwrite=overwrite, stage=stage,
                          progress=iteration)
        for task in tasks.values():
            progress.update(task, completed=progress.tasks[task].total)
    return result


def print_summary(outputs) -> None:
    """The run's summary table on stderr."""
    report = outputs.report
    table = Table(title="gwalign run", show_header=False)
    table.add_row("GW objective", f"{report['gw_objective']:.5g}")
    table.add_row("iterations", f"{report['iterations']} ({'converged' if report['converged'] else 'max_iter reached'})")
    rival = report.get("runner_up")
    if rival is not None:
        # How decisively the geometry chose: the closest different matching among the finalists.
        table.add_row("runner-up matching", f"GW objective +{100 * rival['objective_gap']:.1f}% (mean over two "
                                            f"graph scales), {100 * rival['shared_mass']:.0f}% of the mass shared")
    for role, info in report["inputs"].items():
        if info["aligned_cells"] < info["cells"]:
            table.add_row(f"{role} cells", f"{info['aligned_cells']} of {info['cells']} aligned")
    table.add_row("device", report["device"])
    table.add_row("time", f"{report['timings_s']['total']:.1f} s")
    for key, value in report.get("label_transfer", {}).items():
        table.add_row(f"{key} confidence", f"{value['mean_confidence']:.3f}")
    for path in (outputs.source, outputs.target, outputs.joint, outputs.report_path):
        table.add_row("wrote", str(path))
    err.print(table)
