"""``status.json``: what became of one pair, written last and atomically into its folder.

A pair is done when its ``status.json`` says ``ok`` for the same input files (SHA-256) and the
same settings (the SHA-256 of every resolved setting) and its outputs are in place. Statuses:

``ok``
    Outputs written.
``failed``
    A permanent problem with the inputs or settings (exit code 2): fix them, then rerun.
``retryable``
    A CUDA out-of-memory or transient device error (exit code 75): rerunning may succeed.
``terminated``
    Stopped by SIGTERM (a time limit, preemption, ``scancel``; exit code 143) or by Ctrl-C.
``error``
    An unexpected error (exit code 1).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Optional

from gwalign.io.h5ad import file_checksum

STATUS_FILE = "status.json"
BATCH_FILE = "batch.json"
OK, FAILED, RETRYABLE, TERMINATED, ERROR = "ok", "failed", "retryable", "terminated", "error"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` through a temporary file and a rename, so a reader
    sees the old file or the new one, never a part."""
    path = Path(path)
    # Unique across the nodes of a cluster: tasks on two nodes may share a process id.
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    partial.write_text(json.dumps(payload, indent=2))
    os.replace(partial, path)


def read_json(path: Path) -> Optional[dict[str, Any]]:
    """A JSON file's object, or ``None`` when it is missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_status(folder: Path) -> Optional[dict[str, Any]]:
    """The pair's ``status.json``, or ``None`` when it has none."""
    return read_json(Path(folder) / STATUS_FILE)


def parameters_hash(settings: dict[str, Any]) -> str:
    """SHA-256 of a run's resolved settings (flat names, sorted)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def input_record(path: Path, previous: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Path, size, modification time and SHA-256 of an input file.

    The checksum of ``previous`` (an earlier record of the same path) is reused when size and
    modification time are unchanged, so checking a finished pair does not reread large files.
    """
    stat = Path(path).stat()
    record = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    same = previous is not None and all(previous.get(key) == record[key] for key in record)
    record["sha256"] = previous["sha256"] if same and previous.get("sha256") else file_checksum(path)
    return record


def done_reason(folder: Path, files: tuple[Path, Path], settings_hash: str) -> tuple[bool, str]:
    """Whether the pair in ``folder`` is done for these input ``files`` and settings, and why not."""
    status = read_status(folder)
    if status is None:
        return False, "no status.json"
    if status.get("status") != OK:
        return False, f"last run {status.get('status')}"
    if status.get("parameters_sha256") != settings_hash:
        return False, "settings changed"
    recorded = status.get("inputs") or {}
    for role, path in zip(("source", "target"), files):
        before = recorded.get(role) or {}
        if not Path(path).is_file() or input_record(path, before)["sha256"] != before.get("sha256"):
            return False, f"{role} file changed"
    missing = [name for name in status.get("outputs", []) if not (Path(folder) / name).exists()]
    if missing:
        return False, f"output {missing[0]} missing"
    return True, "done"


def result_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The facts of a run's report that the batch status table shows."""
    one_sided = report.get("one_sided") or {}
    groups = sum(len((one_sided.get(role) or {}).get("groups", [])) for role in ("source", "target"))
    confidences = [v["mean_confidence"] for v in (report.get("label_transfer") or {}).values()]
    rival = report.get("runner_up") or {}
    return {"gw_objective": report.get("gw_objective"), "converged": report.get("converged"),
            "runner_up_gap": rival.get("objective_gap"),
            "one_sided_groups": groups if one_sided else None,
            "mean_transfer_confidence": sum(confidences) / len(confidences) if confidences else None}
