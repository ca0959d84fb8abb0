"""What every ``gwalign`` command shares: the consoles, one-line errors, help text defaults."""

from __future__ import annotations

import warnings

import typer
from rich.console import Console
from rich.markup import escape

from gwalign.errors import GWAlignWarning
from gwalign.config import RunConfig
from gwalign.errors import CPUFallbackWarning

err = Console(stderr=True)
out = Console()
RUN_DEFAULTS = RunConfig()


def said(value: str) -> str:
    """``[default: value]`` for help texts, escaped for rich."""
    return escape(f"[default: {value}]")


def default_help(name: str) -> str:
    """``[default: …]`` of the run setting ``name`` (``auto`` where the default is automatic)."""
    value = RUN_DEFAULTS.to_dict()[name]
    # Escaped: rich help rendering would otherwise read "[default: …]" as a markup tag and drop it.
    return escape(f"[default: {'auto' if value is None else value}]")


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr, then exit."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_warnings(caught: list[warnings.WarningMessage], quiet: bool) -> None:
    """gwalign's warnings on stderr (so that ``--json`` keeps stdout for the report), each on one
    line. ``quiet`` leaves out the notice that the run fell back to the CPU, which says nothing
    about the result; every other warning does, and is printed."""
    for warning in caught:
        if not issubclass(warning.category, GWAlignWarning):
            continue
        if quiet and issubclass(warning.category, CPUFallbackWarning):
            continue
        err.print(f"[yellow]warning:[/yellow] {escape(str(warning.message))}", highlight=False, soft_wrap=True)
