"""``gwalign batch status``: one row per pair of an output root, and the task ids to resubmit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from gwalign import __version__
from gwalign.batch.lock import STALE_AFTER_S, is_stale, read_owner
from gwalign.batch.manifest import Pair, task_of
from gwalign.batch.status import BATCH_FILE, OK, read_json, read_status, write_json_atomic
from gwalign.io.h5ad import InputError

RUNNING, PENDING, STALE = "running", "pending", "stale lock"
COLUMNS = ("pair_id", "task_id", "status", "time_s", "host_gb", "gpu_gb", "gw_objective", "converged",
           "runner_up_gap", "one_sided_groups", "confidence", "error")


def write_batch_file(out_root: Path, manifest: Path, pairs: list[Pair], tasks_per_job: int) -> None:
    """``OUT/batch.json``: the manifest's pairs and their task ids, for ``gwalign batch status``.
    Every task of a submission writes the same content, atomically."""
    Path(out_root).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out_root) / BATCH_FILE, {
        "manifest": str(Path(manifest).resolve()), "tasks_per_job": tasks_per_job, "version": __version__,
        "pairs": [{"pair_id": p.pair_id, "row": p.number, "task_id": task_of(p.number, tasks_per_job)}
                  for p in pairs]})


def _listed_pairs(out_root: Path) -> list[dict[str, Any]]:
    """The pairs of ``batch.json``, or, without it, every folder holding a ``status.json``."""
    batch = read_json(out_root / BATCH_FILE)
    if batch is not None:
        return list(batch.get("pairs", []))
    folders = sorted(p for p in out_root.iterdir() if (p / "status.json").is_file())
    return [{"pair_id": folder.name, "task_id": (read_status(folder) or {}).get("task_id")} for folder in folders]


def status_rows(out_root: Path, stale_after: float = STALE_AFTER_S) -> list[dict[str, Any]]:
    """One row per pair: its status (``running`` while a live task holds its lock, ``pending``
    before any run), time, peak memory, GW objective, convergence, runner-up gap, one-sided
    groups, mean transfer confidence and error.

    Raises
    ------
    InputError
        When ``out_root`` is not a batch output folder.
    """
    out_root = Path(out_root)
    if not out_root.is_dir():
        raise InputError(f"{out_root}: no such output root")
    listed = _listed_pairs(out_root)
    if not listed:
        raise InputError(f"{out_root}: no batch.json and no pair folder with a status.json")
    return [_row(out_root / str(entry["pair_id"]), entry, stale_after) for entry in listed]


def _row(folder: Path, entry: dict[str, Any], stale_after: float) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(pair_id=entry["pair_id"], task_id=entry.get("task_id"))
    status, owner = read_status(folder) or {}, read_owner(folder)
    row["status"] = status.get("status", PENDING)
    if owner is not None:
        row["status"] = STALE if is_stale(owner, stale_after) else f"{RUNNING} ({owner.get('stage', '?')})"
    peak = status.get("peak_memory_gb") or {}
    result = status.get("result") or {}
    row.update(time_s=status.get("wall_time_s"), host_gb=peak.get("host_rss"), gpu_gb=peak.get("gpu_allocated"),
               gw_objective=result.get("gw_objective"), converged=result.get("converged"),
               runner_up_gap=result.get("runner_up_gap"), one_sided_groups=result.get("one_sided_groups"),
               confidence=result.get("mean_transfer_confidence"), error=status.get("error"))
    return row


def failed_task_ids(rows: list[dict[str, Any]]) -> str:
    """Array task ids of the pairs not done and not running, as SLURM's ``--array`` reads them
    (``2,5-7``); empty when there are none."""
    ids = sorted({int(row["task_id"]) for row in rows if row["task_id"] is not None
                  and row["status"] != OK and not str(row["status"]).startswith(RUNNING)})
    spans: list[list[int]] = []
    for task in ids:
        if spans and task == spans[-1][1] + 1:
            spans[-1][1] = task
        else:
            spans.append([task, task])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def cell_text(value: Optional[Any], column: str) -> str:
    """A value as the table shows it ("" for none)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if column == "runner_up_gap":
            return f"{100 * value:.1f}%"
        if column == "confidence":
            return f"{value:.3f}"
        return f"{value:.1f}" if column in ("time_s", "host_gb", "gpu_gb") else f"{value:.4g}"
    return str(value)
