"""``gwalign example``, ``gwalign check`` and ``gwalign evaluate``: commands on single files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from gwalign.cli.console import RUN_DEFAULTS, fail, out, said
from gwalign.io.h5ad import InputError

#: How ``gwalign check`` describes each kind of X (:func:`gwalign.io.content.x_kind`).
X_KINDS = {
    "counts": "integer counts",
    "negative integers": "integers with negative values (not valid counts)",
    "normalised": "non-negative, not integers (taken as log-normalised)",
    "scaled": "has negative values (taken as scaled data)",
}

#: Exit code of ``gwalign check`` when it lists problems (2 is kept for a file it cannot read).
EXIT_PROBLEMS = 1


def example(out_dir: Path = typer.Option(Path("example_data"), "--out-dir", "-o", help="Where to write rna.h5ad and atac.h5ad."),
            seed: int = typer.Option(0, help="Seed of the simulation."),
            cells: int = typer.Option(600, "--cells", min=50,
                                      help="Cells per file (atlas sizes to try a machine: counts are drawn in blocks)."),
            overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files. " + said("off"))) -> None:
    """Write the bundled example pair (simulated RNA counts and ATAC peaks, shared cell states)."""
    from gwalign.datasets.example import write_example

    try:
        paths = write_example(out_dir, seed=seed, n_cells=cells, overwrite=overwrite)
    except InputError as error:
        fail(str(error))
    for path in paths:
        out.print(str(path))


def check(path: Path = typer.Argument(..., help="An .h5ad file.")) -> None:
    """Say what gwalign sees in a file: cells, features, modality, X, obsm keys, problems.

    Problems are what gwalign run would refuse; warnings are what it runs with, and how. Exit
    code 1 when problems are listed, 2 when the file cannot be read."""
    from gwalign.io.content import file_findings, x_kind
    from gwalign.io.h5ad import read_h5ad
    from gwalign.preprocess.representation import detect_modality

    try:
        adata = read_h5ad(path, need_features=False)
    except InputError as error:
        fail(str(error))
    problems, warnings = file_findings(adata, RUN_DEFAULTS.engine.min_points)
    has_x = adata.X is not None and adata.n_vars > 0
    table = Table(title=escape(str(path)), show_header=False)
    table.add_row("cells", str(adata.n_obs))
    table.add_row("features", str(adata.n_vars))
    table.add_row("modality (detected)", detect_modality(adata.var_names) if adata.n_vars else "none (no features)")
    table.add_row("X", X_KINDS[x_kind(adata.X)] if has_x and "X contains NaN/Inf" not in problems else
                  ("contains NaN/Inf" if has_x else "none"))
    table.add_row("obsm keys", escape(", ".join(f"{k} {adata.obsm[k].shape}" for k in adata.obsm) or "none"))
    table.add_row("obs columns", escape(", ".join(map(str, adata.obs.columns)) or "none"))
    table.add_row("problems", escape("; ".join(problems) or "none"))
    table.add_row("warnings", escape("; ".join(warnings) or "none"))
    out.print(table)
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)


def evaluate(source: Path = typer.Argument(..., help="Source output (.gwalign.h5ad)."),
             target: Path = typer.Argument(..., help="Target output (.gwalign.h5ad)."),
             truth_key: Optional[str] = typer.Option(None, help="obs column naming each cell's true partner (FOSCTTM)."),
             label_key: Optional[str] = typer.Option(None, help="obs column of labels (label transfer accuracy)."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Score an alignment against a ground truth: FOSCTTM and kNN label transfer accuracy.

    Label transfer is scored on the labels found on both sides; cells of one-sided labels are
    counted and scored apart. The two files must be the source and target outputs of one run;
    give --truth-key, --label-key or both."""
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
