"""The ``gwalign`` command line (Typer + rich): ``run``, ``batch``, ``example``, ``check`` and ``evaluate``.

Every error a user can act on is one line on stderr naming the file and the problem, with exit
code 2; ``gwalign check`` exits with 1 when it lists problems.
"""

from __future__ import annotations

import gc

import typer

from gwalign import __version__
from gwalign.cli.batch_command import batch_app
from gwalign.cli.console import out
from gwalign.cli.file_commands import check, evaluate, example
from gwalign.cli.run_command import run

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Align two single-cell data sets with Gromov-Wasserstein optimal transport.")


def _version(value: bool) -> None:
    if value:
        out.print(f"gwalign {__version__}")
        raise typer.Exit()


@app.callback()
def options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                         help="Print the version and exit.")) -> None:
    """gwalign: cell-to-cell couplings, joint embeddings and label transfer across modalities."""


app.command()(run)
app.command()(example)
app.command()(check)
app.command()(evaluate)
app.add_typer(batch_app, name="batch")


def main() -> None:
    """The ``gwalign`` command: :data:`app`, whose objects are then frozen out of the garbage
    collector's reach (:func:`gc.freeze`). The interpreter's last collections at exit would
    otherwise walk every object of torch, anndata and scanpy, about 1 s on 2 CPU cores
    (docs/performance.md); exit handlers and finalisers still run."""
    try:
        app()
    finally:
        gc.freeze()


__all__ = ["app", "main"]
