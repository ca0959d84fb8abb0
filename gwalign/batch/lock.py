"""A per-pair lock that holds on network file systems, so that two tasks never run one pair.

The lock is a directory: ``mkdir`` is atomic on local file systems and on NFS (unlike ``flock``,
which NFS may not honour, and ``O_EXCL`` file creation, which old NFS clients emulate). Inside it,
``owner.json`` names the holder (host, process, SLURM job) and its stage; a thread rewrites it
every ``heartbeat`` seconds. A lock is stale, and is taken over, when its holder is a process of
this host that no longer exists, or when its heartbeat is older than ``stale_after`` seconds (a
node that died). Taking over renames the stale directory first, an atomic step that only one of
several contending tasks can win.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

LOCK_NAME = ".gwalign-lock"
OWNER_FILE = "owner.json"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0


class LockHeld(Exception):
    """The pair is being run by another live task (the message names it)."""


def slurm_ids() -> dict[str, str]:
    """The SLURM job's ids in this process's environment (empty outside SLURM)."""
    names = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID",
             "array_task_id": "SLURM_ARRAY_TASK_ID", "node_list": "SLURM_JOB_NODELIST"}
    return {key: os.environ[name] for key, name in names.items() if os.environ.get(name)}


def read_owner(folder: Path) -> Optional[dict[str, Any]]:
    """The holder of ``folder``'s lock, or ``None`` when it is not locked (or is being released).
    ``age_s`` is the time since its last heartbeat."""
    owner_file = Path(folder) / LOCK_NAME / OWNER_FILE
    try:
        owner = json.loads(owner_file.read_text())
        owner["age_s"] = time.time() - owner_file.stat().st_mtime
    except (OSError, ValueError):
        lock = Path(folder) / LOCK_NAME
        if not lock.is_dir():
            return None
        # Created, owner file not written yet (or lost with a dead node): age of the directory.
        try:
            return {"age_s": time.time() - lock.stat().st_mtime}
        except OSError:
            return None
    return owner


def _alive_here(owner: dict[str, Any]) -> Optional[bool]:
    """Whether the owner's process is alive, when it ran on this host (``None``: cannot tell)."""
    if owner.get("host") != socket.gethostname() or "pid" not in owner:
        return None
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(owner: dict[str, Any], stale_after: float = STALE_AFTER_S) -> bool:
    """Whether a lock's holder is gone: a dead process of this host, or no heartbeat for
    ``stale_after`` seconds."""
    alive = _alive_here(owner)
    if alive is not None:
        return not alive
    return owner.get("age_s", 0.0) > stale_after


class PairLock:
    """Hold the lock of one pair's output folder while it runs (a context manager).

    Parameters
    ----------
    folder
        The pair's output folder (created if missing).
    heartbeat, stale_after
        Seconds between heartbeats, and without one before another task may take the lock over.

    Raises
    ------
    LockHeld
        On entry, when a live task holds the lock.
    """

    def __init__(self, folder: Path, heartbeat: float = HEARTBEAT_S, stale_after: float = STALE_AFTER_S) -> None:
        self.folder, self.heartbeat, self.stale_after = Path(folder), heartbeat, stale_after
        self.path = self.folder / LOCK_NAME
        self.stage = "start"
        self.since = ""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "PairLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                os.mkdir(self.path)
                break
            except FileExistsError:
                owner = read_owner(self.folder)
                if owner is None:
                    continue   # released meanwhile
                if not is_stale(owner, self.stale_after):
                    raise LockHeld(_describe(owner)) from None
                self._break_stale()
        else:
            raise LockHeld(f"{self.path}: could not take the lock (other tasks keep taking it)")
        self.since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._write_owner()
        self._thread = threading.Thread(target=self._beat, name="gwalign-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        shutil.rmtree(self.path, ignore_errors=True)

    def set_stage(self, stage: str) -> None:
        """Record the stage the pair is in (seen by ``gwalign batch status``)."""
        self.stage = stage
        self._write_owner()

    def _break_stale(self) -> None:
        grave = self.folder / f"{LOCK_NAME}.stale-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.path, grave)
        except OSError:
            return   # another task took it over first, or its holder released it
        shutil.rmtree(grave, ignore_errors=True)

    def _write_owner(self) -> None:
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "stage": self.stage,
                 "since": self.since, "slurm": slurm_ids()}
        partial = self.path / f".{OWNER_FILE}.{uuid.uuid4().hex}"
        try:
            partial.write_text(json.dumps(owner))
            os.replace(partial, self.path / OWNER_FILE)
        except OSError:
            pass   # the lock directory is being removed (exit) or was taken over as stale

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            self._write_owner()


def _describe(owner: dict[str, Any]) -> str:
    slurm = owner.get("slurm") or {}
    job = f", SLURM job {slurm['job_id']}" if slurm.get("job_id") else ""
    return (f"running elsewhere (host {owner.get('host', '?')}, process {owner.get('pid', '?')}{job}, "
            f"stage {owner.get('stage', '?')}, last heartbeat {owner.get('age_s', 0):.0f} s ago)")
