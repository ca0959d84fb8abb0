"""Every pair of a manifest on one machine: one worker process per listed GPU (or one on the CPU).

Each pair runs in its own process (``gwalign batch run ... --task-id N``), the same path a SLURM
array task takes: a GPU is chosen by ``CUDA_VISIBLE_DEVICES`` before the process starts, peak
memory is the pair's own, and a crash costs one pair. SIGTERM and Ctrl-C are passed on to the
workers, which record their pairs as terminated; no new pair starts after them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable, Optional, Sequence

from gwalign.batch.runner import EXIT_INTERRUPTED, EXIT_TERMINATED, combine
from gwalign.threads import available_cores

POLL_S = 0.2


def worker_env(gpu: Optional[str], workers: int) -> dict[str, str]:
    """A worker's environment: its GPU, and its share of the CPU cores (so that workers running
    side by side do not oversubscribe them)."""
    env = dict(os.environ)
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_JOB_ID"):
        env.pop(name, None)   # a worker runs the pair it is given, not the array task's
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if workers > 1:
        env["OMP_NUM_THREADS"] = str(max(1, available_cores() // workers))
    return env


def run_locally(numbers: Sequence[int], command: Callable[[int], list[str]], gpus: Optional[list[str]] = None,
                log: Callable[[str], None] = print) -> int:
    """Run ``command(number)`` for every pair number, at most one process per GPU at a time
    (one process in all without ``gpus``); the combined exit code (:func:`~gwalign.batch.runner.combine`)."""
    slots: list[Optional[str]] = list(gpus) if gpus else [None]
    pending, running, codes = list(numbers), {}, []
    stop: dict[str, int] = {}

    def forward(signum, _frame):
        stop["signal"] = signum
        for process in running:
            process.send_signal(signum)

    handlers = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while running or (pending and not stop):
            while pending and slots and not stop:
                slot = slots.pop(0)
                process = subprocess.Popen(command(pending.pop(0)), env=worker_env(slot, len(gpus or [None])))
                running[process] = slot
            for process in [p for p in running if p.poll() is not None]:
                codes.append(_exit_code(process.returncode))
                slots.append(running.pop(process))
            time.sleep(POLL_S)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if stop:
        log(f"stopped by {signal.Signals(stop['signal']).name}: {len(pending)} pair(s) not started")
        return EXIT_TERMINATED if stop["signal"] == signal.SIGTERM else EXIT_INTERRUPTED
    return combine(codes)


def _exit_code(returncode: int) -> int:
    """A worker's exit code, a death by signal N read as the shell reads it (128 + N)."""
    return 128 - returncode if returncode < 0 else returncode
