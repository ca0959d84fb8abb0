"""The ``gwalign`` command line (Typer + rich)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gwalign import __version__
from gwalign.device import GPUMemoryError
from gwalign.alignment import GWAlignWarning
from gwalign.config import AUTO_ONE_SIDED_MAX_POINTS, RunConfig, load_toml
from gwalign.io.h5ad import InputError
from gwalign.io.outputs import to_jsonable

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Align two single-cell data sets with Gromov-Wasserstein optimal transport.")
err = Console(stderr=True)
out = Console()
RUN_DEFAULTS = RunConfig()


def _said(value: str) -> str:
    """``[default: value]`` for help texts, escaped for rich."""
    return escape(f"[default: {value}]")


def _default(name: str) -> str:
    value = RUN_DEFAULTS.to_dict()[name]
    # Escaped: rich help rendering would otherwise read "[default: …]" as a markup tag and drop it.
    return escape(f"[default: {'auto' if value is None else value}]")


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr, then exit."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"gwalign {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """gwalign: cell-to-cell couplings, joint embeddings and label transfer across modalities."""


@app.command()
def run(
    source: Path = typer.Argument(..., help="Source .h5ad (e.g. scRNA-seq)."),
    target: Path = typer.Argument(..., help="Target .h5ad (e.g. scATAC-seq)."),
    out_dir: Path = typer.Option(Path("gwalign_out"), "--out-dir", "-o", help="Output directory."),
    rep_source: Optional[str] = typer.Option(None, help="obsm key of the source representation " + _default("rep_source")),
    rep_target: Optional[str] = typer.Option(None, help="obsm key of the target representation " + _default("rep_target")),
    modality_source: Optional[str] = typer.Option(None, help="auto | rna | atac " + _default("modality_source")),
    modality_target: Optional[str] = typer.Option(None, help="auto | rna | atac " + _default("modality_target")),
    distance: Optional[str] = typer.Option(None, help="auto | precomputed | dijkstra | landmark " + _default("distance")),
    epsilon: Optional[float] = typer.Option(None, help="Entropic regularisation, relative to the cost scale (auto: 0.01 with exact geodesics, 0.03 with landmark distances) " + _default("epsilon")),
    n_anchors: Optional[int] = typer.Option(None, help="Anchor pairs per GW step " + _default("n_anchors")),
    k: Optional[int] = typer.Option(None, "--k", help="Neighbours in the kNN graph (auto: 15, fewer only for tinier sides) " + _default("k")),
    max_iter: Optional[int] = typer.Option(None, help="Maximum GW iterations " + _default("max_iter")),
    semi_relaxed: Optional[bool] = typer.Option(None, "--semi-relaxed/--balanced",
                                                help="Relax the target marginal (cell types missing from the source) " + _said("balanced")),
    rho: Optional[float] = typer.Option(None, help="Semi-relaxed KL weight, relative to the cost scale " + _default("rho")),
    one_sided_check: Optional[bool] = typer.Option(None, "--one-sided-check/--no-one-sided-check",
                                                   help="Look for cell groups without counterpart and suggest --semi-relaxed "
                                                        + _said(f"on up to {AUTO_ONE_SIDED_MAX_POINTS:,} cells per side")),
    fgw_alpha: Optional[float] = typer.Option(None, help="Fused GW weight of shared features " + _default("fgw_alpha")),
    joint_rep_source: Optional[str] = typer.Option(None, help="obsm key of shared features (source) for fused GW " + _said("none")),
    joint_rep_target: Optional[str] = typer.Option(None, help="obsm key of shared features (target) for fused GW " + _said("none")),
    transfer_labels: Optional[List[str]] = typer.Option(None, "--transfer-labels", help="obs column to carry across (repeatable) " + _said("none")),
    transfer: Optional[str] = typer.Option(None, "--transfer", help="Labels by knn (in X_gw) | plan (most plan mass) " + _default("transfer")),
    transfer_k: Optional[int] = typer.Option(None, "--transfer-k", help="Neighbours of the kNN label transfer " + _default("transfer_k")),
    top_k: Optional[int] = typer.Option(None, help="Plan entries kept per cell in obsm['gw_coupling'] " + _default("top_k")),
    joint_embedding: Optional[str] = typer.Option(None, "--joint-embedding",
                                                  help="X_gw: cca | target | source | spectral " + _default("joint_embedding")),
    cca_diffusion: Optional[int] = typer.Option(None, "--cca-diffusion",
                                                 help="Random-walk steps averaging the plan over kNN neighbourhoods before "
                                                      "the cca embedding (0: as is) " + _default("cca_diffusion")),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:i " + _default("device")),
    seed: Optional[int] = typer.Option(None, help="Random seed " + _default("seed")),
    figures: Optional[bool] = typer.Option(None, "--figures/--no-figures", help="Write PNG figures " + _said("figures")),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML preset (see configs/); flags override it. " + _said("none")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs. " + _said("off")),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output. " + _said("off")),
    as_json: bool = typer.Option(False, "--json", help="Print only the report as JSON on stdout. " + _said("off")),
) -> None:
    """Align SOURCE to TARGET and write AnnData outputs ready for scanpy."""
    from gwalign.pipeline import run_pair

    flags = dict(rep_source=rep_source, rep_target=rep_target, modality_source=modality_source,
                 modality_target=modality_target, distance=distance, epsilon=epsilon,
                 n_anchors=n_anchors, k=k, max_iter=max_iter, semi_relaxed=semi_relaxed, rho=rho,
                 one_sided_check=one_sided_check,
                 fgw_alpha=fgw_alpha, joint_rep_source=joint_rep_source,
                 joint_rep_target=joint_rep_target, transfer_labels=transfer_labels, transfer=transfer,
                 transfer_k=transfer_k, top_k=top_k,
                 joint_embedding=joint_embedding, cca_diffusion=cca_diffusion,
                 device=device, seed=seed, figures=figures)
    try:
        values: dict[str, Any] = load_toml(config) if config is not None else {}
        values.update({key: value for key, value in flags.items() if value not in (None, [])})
        run_config = RunConfig.from_flat(values, source=str(config) if config else "options")
    except ValueError as error:
        fail(str(error))
    show = not (quiet or as_json)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outputs = _run_with_progress(run_pair, source, target, out_dir, run_config, overwrite, show)
        except InputError as error:
            fail(str(error))
        except GPUMemoryError as error:
            fail(str(error), code=1)
        except KeyboardInterrupt:
            fail("interrupted: no output was written", code=130)
    for warning in caught:
        # stderr, so that --json keeps stdout for the report and a batch log still shows the warning.
        if issubclass(warning.category, GWAlignWarning):
            err.print(f"[yellow]warning:[/yellow] {warning.message}")
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(outputs.report)) + "\n")
        return
    if not quiet:
        _print_summary(outputs)


def _run_with_progress(run_pair, source, target, out_dir, run_config, overwrite, show):
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


def _print_summary(outputs) -> None:
    report = outputs.report
    table = Table(title="gwalign run", show_header=False)
    table.add_row("GW objective", f"{report['gw_objective']:.5g}")
    table.add_row("iterations", f"{report['iterations']} ({'converged' if report['converged'] else 'max_iter reached'})")
    rival = report.get("runner_up")
    if rival is not None:
        # How decisively the geometry chose: the closest different matching among the finalists.
        table.add_row("runner-up matching", f"GW objective +{100 * rival['objective_gap']:.1f}% (mean over two "
                                            f"graph scales), {100 * rival['shared_mass']:.0f}% of the mass shared")
    table.add_row("device", report["device"])
    table.add_row("time", f"{report['timings_s']['total']:.1f} s")
    for key, value in report.get("label_transfer", {}).items():
        table.add_row(f"{key} confidence", f"{value['mean_confidence']:.3f}")
    for path in (outputs.source, outputs.target, outputs.joint, outputs.report_path):
        table.add_row("wrote", str(path))
    err.print(table)


@app.command()
def example(out_dir: Path = typer.Option(Path("example_data"), "--out-dir", "-o", help="Where to write rna.h5ad and atac.h5ad."),
            seed: int = typer.Option(0, help="Seed of the simulation."),
            cells: int = typer.Option(600, "--cells", min=50,
                                      help="Cells per file (atlas sizes to try a machine: counts are drawn in blocks).")) -> None:
    """Write the bundled example pair (simulated RNA counts and ATAC peaks, shared cell states)."""
    from gwalign.datasets.example import write_example

    paths = write_example(out_dir, seed=seed, n_cells=cells)
    for path in paths:
        out.print(str(path))


@app.command()
def check(path: Path = typer.Argument(..., help="An .h5ad file.")) -> None:
    """Say what gwalign sees in a file: cells, features, modality, obsm keys, problems."""
    import numpy as np
    import scipy.sparse as sp

    from gwalign.io.h5ad import read_h5ad
    from gwalign.preprocess.representation import is_counts, detect_modality

    try:
        adata = read_h5ad(path)
    except InputError as error:
        fail(str(error))
    table = Table(title=str(path), show_header=False)
    table.add_row("cells", str(adata.n_obs))
    table.add_row("features", str(adata.n_vars))
    table.add_row("modality (detected)", detect_modality(adata.var_names))
    table.add_row("X", "integer counts" if adata.X is not None and is_counts(adata.X) else "non-integer (treated as normalised)")
    table.add_row("obsm keys", ", ".join(f"{k} {adata.obsm[k].shape}" for k in adata.obsm) or "none")
    table.add_row("obs columns", ", ".join(map(str, adata.obs.columns)) or "none")
    problems = []
    if adata.X is not None:
        values = adata.X.data if sp.issparse(adata.X) else np.asarray(adata.X)
        if not np.isfinite(values).all():
            problems.append("X contains NaN/Inf")
        zero = int((np.asarray(adata.X.sum(axis=1)).ravel() == 0).sum())
        if zero:
            problems.append(f"{zero} cell(s) with all-zero counts (would be dropped)")
    table.add_row("problems", "; ".join(problems) or "none")
    out.print(table)


@app.command()
def evaluate(source: Path = typer.Argument(..., help="Source output (.gwalign.h5ad)."),
             target: Path = typer.Argument(..., help="Target output (.gwalign.h5ad)."),
             truth_key: Optional[str] = typer.Option(None, help="obs column naming each cell's true partner (FOSCTTM)."),
             label_key: Optional[str] = typer.Option(None, help="obs column of labels (label transfer accuracy)."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Score an alignment against a ground truth: FOSCTTM and kNN label transfer accuracy (on the
    labels found on both sides; cells of one-sided labels are counted and scored apart)."""
    from gwalign.evaluate import score_files

    try:
        scores = score_files(source, target, truth_key, label_key)
    except InputError as error:
        fail(str(error))
    if as_json:
        sys.stdout.write(json.dumps(scores) + "\n")
    else:
        for key, value in scores.items():
            out.print(f"{key}\t{value}" if isinstance(value, int) else f"{key}\t{value:.4f}")


if __name__ == "__main__":  # pragma: no cover
    app()
