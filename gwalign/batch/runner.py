"""Run manifest pairs in this process: skip the done ones, lock, run, record ``status.json``.

Exit codes, for a scheduler to act on: 0 done or skipped; 2 a bad input or setting (permanent);
75 retryable (CUDA out of memory or a transient device error); 143 SIGTERM (a time limit or
preemption: no partial output, no ``ok``); 130 Ctrl-C; 1 an unexpected error. A task that runs
several pairs stops at a signal and otherwise exits with the most actionable of its pairs' codes
(:func:`combine`).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from gwalign import __version__
from gwalign.batch.lock import STALE_AFTER_S, LockHeld, PairLock, slurm_ids
from gwalign.batch.manifest import Pair
from gwalign.batch.status import (ERROR, FAILED, OK, RETRYABLE, STATUS_FILE, TERMINATED, done_reason,
                                  input_record, parameters_hash, read_status, result_summary, write_json_atomic)
from gwalign.errors import GPUMemoryError, GWAlignWarning
from gwalign.io.h5ad import InputError
from gwalign.io.outputs import Terminated, terminate_as_exception

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_RETRY, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 75, 130, 143
#: Messages of device errors that say nothing about the data: another attempt (or node) may pass.
TRANSIENT_DEVICE_ERRORS = ("out of memory", "CUDA error: unspecified launch failure", "ECC error",
                           "busy or unavailable", "CUBLAS_STATUS_ALLOC_FAILED", "NCCL error",
                           "CUDA driver version is insufficient")
Log = Callable[[str], None]


def combine(codes: Iterable[int]) -> int:
    """One exit code for several pairs: a signal first, then retryable (a resubmission helps),
    then an unexpected error, then a bad input, else 0."""
    codes = set(codes)
    for code in (EXIT_TERMINATED, EXIT_INTERRUPTED, EXIT_RETRY, EXIT_ERROR, EXIT_INPUT):
        if code in codes:
            return code
    return EXIT_OK


def run_pairs(pairs: list[Pair], numbers: Iterable[int], out_root: Path, task_id: Optional[int] = None, *,
              force: bool = False, stale_after: float = STALE_AFTER_S, log: Log = print) -> int:
    """Run the pairs with these 1-based ``numbers`` one after the other; the exit code of the task."""
    codes = []
    for number in numbers:
        code = run_pair_row(pairs[number - 1], out_root, task_id, force=force, stale_after=stale_after, log=log)
        codes.append(code)
        if code in (EXIT_TERMINATED, EXIT_INTERRUPTED):
            break
    return combine(codes)


def run_pair_row(pair: Pair, out_root: Path, task_id: Optional[int] = None, *, force: bool = False,
                 stale_after: float = STALE_AFTER_S, log: Log = print) -> int:
    """Run one manifest pair into ``out_root/<pair_id>/`` unless it is done; its exit code.

    The pair's ``status.json`` is written last (atomically); a live task holding the pair's lock
    makes this one skip it (exit 0).
    """
    folder = Path(out_root) / pair.pair_id
    if pair.error is not None:
        log(f"[{pair.pair_id}] failed (exit {EXIT_INPUT}): {pair.error}")
        _record_refusal(pair, folder, task_id)
        return EXIT_INPUT
    settings_hash = parameters_hash(pair.config.to_dict())
    if not force and _skip(pair, folder, settings_hash, log):
        return EXIT_OK
    try:
        with PairLock(folder, stale_after=stale_after) as lock:
            # Checked again under the lock: another task may have finished the pair meanwhile.
            if not force and _skip(pair, folder, settings_hash, log):
                return EXIT_OK
            return _run_locked(pair, folder, task_id, settings_hash, lock, log)
    except LockHeld as held:
        log(f"[{pair.pair_id}] skipped: {held}")
        return EXIT_OK


def _skip(pair: Pair, folder: Path, settings_hash: str, log: Log) -> bool:
    done, _why = done_reason(folder, (pair.source, pair.target), settings_hash)
    if done:
        log(f"[{pair.pair_id}] skipped: done (status ok, same inputs and settings)")
    return done


def _run_locked(pair: Pair, folder: Path, task_id: Optional[int], settings_hash: str, lock: PairLock,
                log: Log) -> int:
    """Run the pair while holding its lock, then write its status."""
    for leftover in folder.glob(".gwalign-tmp-*"):   # staging of a run killed without clean-up
        shutil.rmtree(leftover, ignore_errors=True)
    previous = read_status(folder) or {}
    log(f"[{pair.pair_id}] running: {pair.source} -> {pair.target}")
    started, tick = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
    attempt = _attempt(pair, folder, lock, log)
    record = {
        "pair_id": pair.pair_id, "row": pair.number, "task_id": task_id, **attempt["outcome"],
        "attempts": 1 if previous.get("status") in (None, OK) else int(previous.get("attempts", 0)) + 1,
        "started_at": started, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(time.perf_counter() - tick, 3), "host": socket.gethostname(), "slurm": slurm_ids(),
        "version": __version__, "parameters_sha256": settings_hash,
        "inputs": _input_records(pair, attempt.get("report"), previous.get("inputs") or {}),
        **attempt["facts"],
    }
    write_json_atomic(folder / STATUS_FILE, record)
    outcome = attempt["outcome"]
    message = f"ok in {record['wall_time_s']:.1f} s" if outcome["status"] == OK else \
        f"{outcome['status']} (exit {outcome['exit_code']}): {outcome['error']}"
    log(f"[{pair.pair_id}] {message}")
    if outcome.get("advice"):
        log(f"[{pair.pair_id}] advice: {outcome['advice']}")
    return outcome["exit_code"]


def _attempt(pair: Pair, folder: Path, lock: PairLock, log: Log) -> dict[str, Any]:
    """Run the pair; its outcome (status, exit code, error) and the facts its status records."""
    from gwalign.pipeline import run_pair

    stages: dict[str, float] = {}

    def stage(name: str) -> None:
        stages[name] = time.perf_counter()
        lock.set_stage(name)

    with terminate_as_exception(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outputs = run_pair(pair.source, pair.target, folder, pair.config, overwrite=True, stage=stage)
        except BaseException as error:   # every ending is recorded; signals end the task after that
            outcome = classify(error)
            if outcome is None:
                raise
            _log_warnings(caught, pair, log)
            return {"outcome": outcome, "facts": _failure_facts(stages, pair)}
    _log_warnings(caught, pair, log)
    report = outputs.report
    names = [p.name for p in (outputs.source, outputs.target, outputs.joint, outputs.report_path)]
    names += [name for name, what in (report.get("figures") or {}).items() if str(what).startswith("written")]
    facts = {"timings_s": report.get("timings_s"), "peak_memory_gb": report.get("peak_memory_gb"),
             "device": report.get("device"), "outputs": names, "result": result_summary(report)}
    return {"outcome": {"status": OK, "exit_code": EXIT_OK, "error": None}, "facts": facts, "report": report}


def classify(error: BaseException) -> Optional[dict[str, Any]]:
    """Status, exit code, one-line error and advice for a pair that ended with ``error``;
    ``None`` for what must not be caught (``SystemExit``)."""
    if isinstance(error, Terminated):
        return {"status": TERMINATED, "exit_code": EXIT_TERMINATED, "error": "terminated (SIGTERM)"}
    if isinstance(error, KeyboardInterrupt):
        return {"status": TERMINATED, "exit_code": EXIT_INTERRUPTED, "error": "interrupted (Ctrl-C)"}
    if isinstance(error, InputError):
        return {"status": FAILED, "exit_code": EXIT_INPUT, "error": str(error)}
    text = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    if isinstance(error, GPUMemoryError) or (isinstance(error, RuntimeError)
                                             and any(m in str(error) for m in TRANSIENT_DEVICE_ERRORS)):
        return {"status": RETRYABLE, "exit_code": EXIT_RETRY, "error": text,
                "advice": "resubmit the task (gwalign batch status OUT --failed-ids lists it); for out of "
                          "memory, on a GPU with more memory or with the setting the message names lowered"}
    if isinstance(error, Exception):
        return {"status": ERROR, "exit_code": EXIT_ERROR, "error": text}
    return None


def _failure_facts(stages: dict[str, float], pair: Pair) -> dict[str, Any]:
    """Stage timings so far and peak memory of a pair that did not finish."""
    import torch

    from gwalign.device import peak_memory

    marks = sorted(stages.items(), key=lambda item: item[1]) + [("", time.perf_counter())]
    timings = {name: round(marks[i + 1][1] - tick, 4) for i, (name, tick) in enumerate(marks[:-1])}
    used_gpu = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {"timings_s": timings, "peak_memory_gb": peak_memory("cuda" if used_gpu else "cpu"),
            "device": pair.config.engine.compute.device, "outputs": [], "result": None}


def _input_records(pair: Pair, report: Optional[dict[str, Any]], previous: dict[str, Any]) -> dict[str, Any]:
    """Each input's path, size, time and SHA-256 (from the run's report when it read the file)."""
    records = {}
    for role, path in (("source", pair.source), ("target", pair.target)):
        if not Path(path).is_file():
            records[role] = {"path": str(path), "sha256": None}
            continue
        known = (report or {}).get("inputs", {}).get(role, {}).get("sha256")
        stat = os.stat(path)
        hint = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": known} \
            if known else previous.get(role)
        records[role] = input_record(path, hint)
    return records


def _record_refusal(pair: Pair, folder: Path, task_id: Optional[int]) -> None:
    """``status.json`` of a row refused before it ran (bad settings or missing files)."""
    previous = read_status(folder) or {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / STATUS_FILE, {
            "pair_id": pair.pair_id, "row": pair.number, "task_id": task_id, "status": FAILED,
            "exit_code": EXIT_INPUT, "error": pair.error,
            "attempts": 1 if previous.get("status") in (None, OK) else int(previous.get("attempts", 0)) + 1,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
            "slurm": slurm_ids(), "version": __version__, "outputs": [], "result": None})
    except OSError:
        pass   # an unwritable output root is reported by the run itself


def _log_warnings(caught: list[warnings.WarningMessage], pair: Pair, log: Log) -> None:
    for warning in caught:
        if issubclass(warning.category, GWAlignWarning):
            log(f"[{pair.pair_id}] warning: {warning.message}")
