"""``gwalign batch``: many pairs from a manifest, as SLURM array tasks or local workers, and
``gwalign batch status``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from gwalign.cli.console import err, fail, out, said

#: Short headers of the status table (``--tsv`` keeps the column names).
HEADERS = {"pair_id": "pair", "task_id": "task", "time_s": "time s", "host_gb": "host GB", "gpu_gb": "GPU GB",
           "gw_objective": "GW obj.", "converged": "conv.", "runner_up_gap": "runner-up", "one_sided_groups": "1-sided",
           "confidence": "conf."}
STALE_HELP = "Seconds without a heartbeat after which another task takes a pair's lock over "


class ManifestFirstGroup(TyperGroup):
    """``gwalign batch MANIFEST ...`` means ``gwalign batch run MANIFEST ...``; ``status`` and
    ``run`` are named commands."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


batch_app = typer.Typer(cls=ManifestFirstGroup, no_args_is_help=True,
                        help="Align many pairs listed in a manifest: `gwalign batch pairs.tsv --out-root OUT` "
                             "(as SLURM array tasks or one worker per GPU), and `gwalign batch status OUT`.")


def _log(line: str) -> None:
    err.print(escape(line), highlight=False, soft_wrap=True)


def _task_id(task_id: Optional[int]) -> Optional[int]:
    """The task id given, else SLURM's array task id, else ``None`` (run every pair here)."""
    if task_id is not None:
        return task_id
    value = os.environ.get("SLURM_ARRAY_TASK_ID", "")
    return int(value) if value.isdigit() else None


@batch_app.command("run")
def batch_run(
    manifest: Path = typer.Argument(..., help="TSV manifest: pair_id, source, target, optional config and run options."),
    out_root: Path = typer.Option(..., "--out-root", help="Each pair writes OUT_ROOT/<pair_id>/."),
    task_id: Optional[int] = typer.Option(None, "--task-id", min=1, help="Run only this array task's pair(s) "
                                          + said("$SLURM_ARRAY_TASK_ID; without it, every pair")),
    tasks_per_job: int = typer.Option(1, "--tasks-per-job", min=1, help="Consecutive pairs each array task runs."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Without a task id: GPUs to run pairs on side by side, "
                                       "one worker each (e.g. 0,1) " + said("one worker")),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check every row and say what would run; run nothing."),
    force: bool = typer.Option(False, "--force", help="Redo pairs that are done. " + said("skip them")),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML preset for every pair (a row's config and "
                                          "columns override it). " + said("none")),
    settings: Optional[List[str]] = typer.Option(None, "--set", help="NAME=VALUE for every pair, above configs "
                                                 "and below a row's columns (repeatable). " + said("none")),
    stale_after: float = typer.Option(600.0, "--stale-after", min=1.0, help=STALE_HELP),
) -> None:
    """Run the pairs of MANIFEST; skip those done with the same inputs and settings.

    Exit codes: 0 done or skipped, 2 bad input (permanent), 75 retryable (CUDA out of memory or a
    transient device error), 143 SIGTERM (time limit or preemption), 1 unexpected error."""
    from gwalign.batch.manifest import read_manifest, rows_of_task
    from gwalign.batch.table import write_batch_file
    from gwalign.config import load_toml
    from gwalign.config.fields import parse_settings
    from gwalign.io.h5ad import InputError

    try:
        base = load_toml(config) if config is not None else {}
        pairs = read_manifest(manifest, base, parse_settings(settings or []))
        task = _task_id(task_id)
        numbers = list(rows_of_task(len(pairs), task, tasks_per_job)) if task else list(range(1, len(pairs) + 1))
    except (InputError, ValueError) as error:
        fail(str(error))
    if dry_run:
        raise typer.Exit(_dry_run(pairs, numbers, out_root, tasks_per_job if task else 1))
    rank = _launch_rank()
    if rank is not None and not task:
        fail("launched as several processes (torchrun, srun): give the array task to run (--task-id, or "
             "SLURM_ARRAY_TASK_ID); each pair then runs on every process")
    try:
        if not rank:   # one process, or rank 0 of several: the others only compute
            write_batch_file(out_root, manifest, pairs, tasks_per_job if task else 1)
    except OSError as error:
        fail(f"{out_root}: cannot write the output root ({error.strerror})")
    if task:
        raise typer.Exit(_run_task(pairs, numbers, out_root, task, force, stale_after))
    raise typer.Exit(_run_all(pairs, manifest, out_root, gpus, force, config, settings or [], stale_after))


def _launch_rank() -> Optional[int]:
    """This process's rank when torchrun or srun started several; ``None`` for one process."""
    from gwalign.distributed.launch import launch_environment
    from gwalign.errors import DistributedError

    try:
        where = launch_environment()
    except DistributedError as error:
        fail(str(error), code=1)
    return None if where is None else where[0]


def _run_task(pairs, numbers: list[int], out_root: Path, task: int, force: bool, stale_after: float) -> int:
    """The task's pairs, one after the other. Under torchrun or srun, rank 0 runs them (skipping,
    locking, writing) and the other ranks take part in each alignment it starts."""
    from gwalign.align_arrays import align_call
    from gwalign.batch.runner import EXIT_ERROR, run_pairs
    from gwalign.config import RunConfig
    from gwalign.distributed.launch import launched, serve
    from gwalign.errors import DistributedError

    device = (pairs[numbers[0] - 1].config or RunConfig()).engine.compute.device
    try:
        with launched(device) as group:
            if group is not None and group.rank > 0:
                serve(group, lambda call: align_call(call, group))
                return 0
            return run_pairs(pairs, numbers, out_root, task, force=force, stale_after=stale_after, log=_log)
    except DistributedError as error:
        _log(f"error: {error}")
        return EXIT_ERROR


def _run_all(pairs, manifest: Path, out_root: Path, gpus: Optional[str], force: bool, config: Optional[Path],
             settings: list[str], stale_after: float) -> int:
    """Every pair on this machine, each in its own worker process; done pairs are skipped here."""
    from gwalign.batch.local import run_locally
    from gwalign.batch.status import done_reason, parameters_hash

    todo = []
    for pair in pairs:
        if not force and pair.error is None and done_reason(out_root / pair.pair_id, (pair.source, pair.target),
                                                            parameters_hash(pair.config.to_dict()))[0]:
            _log(f"[{pair.pair_id}] skipped: done (status ok, same inputs and settings)")
        else:
            todo.append(pair.number)
    extra = ["--force"] if force else []
    extra += ["--config", str(config)] if config is not None else []
    extra += [arg for item in settings for arg in ("--set", item)] + ["--stale-after", str(stale_after)]

    def command(number: int) -> list[str]:
        return [sys.executable, "-m", "gwalign.cli", "batch", "run", str(manifest), "--out-root", str(out_root),
                "--task-id", str(number), "--tasks-per-job", "1", *extra]

    slots = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    return run_locally(todo, command, slots, log=_log)


def _dry_run(pairs, numbers: list[int], out_root: Path, tasks_per_job: int) -> int:
    """Print what each row would do; 2 when a row is invalid."""
    from gwalign.batch.lock import is_stale, read_owner
    from gwalign.batch.manifest import task_of
    from gwalign.batch.status import done_reason, parameters_hash

    table = Table(title=f"gwalign batch --dry-run ({len(pairs)} pairs)")
    for column in ("task", "pair_id", "source", "target", "would"):
        table.add_column(column)
    bad = 0
    for pair in (pairs[n - 1] for n in numbers):
        if pair.error is not None:
            would, bad = f"[red]fail[/red]: {escape(pair.error)}", bad + 1
        else:
            owner = read_owner(out_root / pair.pair_id)
            done, why = done_reason(out_root / pair.pair_id, (pair.source, pair.target),
                                    parameters_hash(pair.config.to_dict()))
            would = "skip (done)" if done else ("wait (running elsewhere)" if owner and not is_stale(owner)
                                                 else f"run ({why})")
        table.add_row(str(task_of(pair.number, tasks_per_job)), escape(pair.pair_id), escape(pair.source.name),
                      escape(pair.target.name), would)
    out.print(table)
    return 2 if bad else 0


@batch_app.command("status")
def batch_status(
    out_root: Path = typer.Argument(..., help="The --out-root of gwalign batch."),
    tsv: bool = typer.Option(False, "--tsv", help="Tab-separated values with a header, for machines."),
    failed_ids: bool = typer.Option(False, "--failed-ids", help="Print only the array task ids to resubmit "
                                    "(sbatch --array=$(gwalign batch status OUT --failed-ids) job.sh)."),
    stale_after: float = typer.Option(600.0, "--stale-after", min=1.0, help=STALE_HELP),
) -> None:
    """Summarise an output root of gwalign batch, one row per pair.

    Columns: status, time, peak host and GPU memory, GW objective, convergence, runner-up gap,
    one-sided groups, mean transfer confidence, error."""
    from gwalign.batch.table import COLUMNS, cell_text, failed_task_ids, status_rows
    from gwalign.io.h5ad import InputError

    try:
        rows = status_rows(out_root, stale_after)
    except InputError as error:
        fail(str(error))
    if failed_ids:
        sys.stdout.write(failed_task_ids(rows) + "\n")
    elif tsv:
        sys.stdout.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(_tsv_cell(row[c]) for c in COLUMNS) + "\n")
    else:
        # Errors are long: they follow the table, one line per pair, instead of squeezing it.
        out.print(_rich_table(rows, [c for c in COLUMNS if c != "error"], cell_text))
        for row in rows:
            if row["error"]:
                out.print(f"[bold]{escape(str(row['pair_id']))}[/bold]: {escape(str(row['error']))}", soft_wrap=True)


def _tsv_cell(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _rich_table(rows: list[dict[str, Any]], columns, cell_text) -> Table:
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["status"]).split(" ")[0]] = counts.get(str(row["status"]).split(" ")[0], 0) + 1
    table = Table(title="gwalign batch: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for column in columns:
        table.add_column(HEADERS.get(column, column), no_wrap=True)
    for row in rows:
        table.add_row(*(escape(cell_text(row[c], c)) for c in columns))
    return table
