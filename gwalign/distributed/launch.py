"""Starting and ending a distributed alignment from the launcher's environment.

``torchrun --nproc-per-node P`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; ``srun`` sets ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` and ``SLURM_LOCALID``, and
the job script exports ``MASTER_ADDR`` (and ``MASTER_PORT``, default 29500). With more than one
process, :func:`launched` joins the process group (NCCL when the run's device is a GPU, each rank
on ``cuda:LOCAL_RANK``; gloo on CPUs). Rank 0 then runs the command; every other rank runs
:func:`serve`: it waits for the calls of :func:`gwalign.align` that rank 0 shares, takes part
in them, and returns when rank 0 is done.
"""

from __future__ import annotations

import datetime
import os
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import torch

from gwalign.distributed.group import DEFAULT_MIN_ENTRIES, DEFAULT_TIMEOUT, Group, cause, env_float
from gwalign.errors import DistributedError

#: Seconds the other ranks wait for rank 0 between alignments (it reads, prepares and writes alone).
IDLE_TIMEOUT = 7 * 24 * 3600.0

#: The group joined by :func:`launched` in this process, if any.
_joined: Optional[Group] = None


def launch_environment() -> Optional[tuple[int, int, int]]:
    """(rank, world size, local rank) when this process was started as one of several by torchrun
    or srun; ``None`` for a single process."""
    env = os.environ
    if int(env.get("WORLD_SIZE", "1") or 1) > 1:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0"))
    if int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1:
        if "MASTER_ADDR" not in env:
            raise DistributedError("srun started several tasks but MASTER_ADDR is not set: export the first node's "
                                   "host name as MASTER_ADDR (and a free MASTER_PORT) in the job script")
        env.setdefault("MASTER_PORT", "29500")
        return int(env["SLURM_PROCID"]), int(env["SLURM_STEP_NUM_TASKS"]), int(env.get("SLURM_LOCALID", "0"))
    return None


def joined() -> Optional[Group]:
    """The process group this process joined (:func:`launched`), or ``None``."""
    return _joined


def _backend(device_name: str) -> str:
    """NCCL for GPU runs, gloo for CPU runs; ``GWALIGN_DIST_BACKEND`` overrides."""
    chosen = os.environ.get("GWALIGN_DIST_BACKEND", "").strip()
    if chosen:
        return chosen
    gpu = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    return "nccl" if gpu else "gloo"


def join(device_name: str) -> Optional[Group]:
    """Join the process group described by the environment (:func:`launch_environment`).

    Parameters
    ----------
    device_name
        The run's ``compute.device``: a GPU run uses NCCL, one GPU per rank (``cuda:LOCAL_RANK``).

    Returns
    -------
    Group or None
        ``None`` for a single process: nothing is initialised and nothing changes.
    """
    global _joined
    where = launch_environment()
    if where is None:
        return None
    rank, world_size, local_rank = where
    if device_name.startswith("cuda:"):
        raise DistributedError(f"device={device_name!r}: launched as {world_size} processes, each rank uses GPU "
                               "LOCAL_RANK of its node; give device 'cuda' or 'auto'")
    backend = _backend(device_name)
    device = torch.device("cpu")
    if backend == "nccl":
        # One GPU per rank of a node; a launcher that shows each task only its own GPU leaves one.
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
        # Blocking waits make a timed-out NCCL collective raise in this thread (a clear error)
        # instead of the watchdog aborting the process.
        os.environ.setdefault("TORCH_NCCL_BLOCKING_WAIT", "1")
    timeout = env_float("GWALIGN_DIST_TIMEOUT", DEFAULT_TIMEOUT)
    try:
        torch.distributed.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size,
                                             timeout=datetime.timedelta(seconds=timeout))
        control = torch.distributed.new_group(backend="gloo", timeout=datetime.timedelta(seconds=IDLE_TIMEOUT))
    except Exception as error:   # the store and both backends raise several types
        raise DistributedError(f"rank {rank} of {world_size}: could not join the {backend} process group at "
                               f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {cause(error)}") from None
    _joined = Group(rank, world_size, local_rank, backend, device, timeout,
                    int(env_float("GWALIGN_DIST_MIN_ENTRIES", DEFAULT_MIN_ENTRIES)), control=control)
    return _joined


@contextmanager
def launched(device_name: str) -> Iterator[Optional[Group]]:
    """Join the process group for the block when launched as several processes; on leaving,
    rank 0 tells the others it is done (on success and on errors alike, unless the group itself
    failed) and the group is torn down."""
    global _joined
    group = join(device_name)
    try:
        yield group
    except BaseException:
        if group is not None:
            _finish(group, failing=True)
        raise
    else:
        if group is not None:
            _finish(group, failing=False)
    finally:
        _joined = None


def _finish(group: Group, failing: bool) -> None:
    """Rank 0 tells the others it is done, then the group is torn down. While an error is on its
    way out, a failure to reach the other ranks is left unsaid: the error in flight is the one to
    report."""
    try:
        if group.rank == 0 and not group.broken:
            group.send_object(None)
    except DistributedError:
        if not failing:
            raise
    finally:
        _leave(group)


def _leave(group: Group) -> None:
    """Tear the process group down, after a failure too: a group left to the interpreter's exit can
    abort the process from a backend thread instead of letting it exit with its error."""
    try:
        torch.distributed.destroy_process_group()
    except Exception:   # a failed group may refuse; the process is about to report and exit anyway
        if not group.broken:
            raise


def serve(group: Group, run: Callable[[dict[str, Any]], Any]) -> int:
    """Take part in each alignment rank 0 shares, ``run(call)``, until it says it is done.

    Warnings, and arguments refused with ``ValueError``, are left to rank 0, which reports the
    run. Returns the number of alignments served.
    """
    served = 0
    while True:
        call = group.send_object(None)
        if call is None:
            return served
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                run(call)
            except ValueError:
                # Refused arguments: every rank checks the same call and refuses it alike, and
                # rank 0 reports it. This rank waits for the next call.
                pass
        served += 1


def lead(call: dict[str, Any], entries: Callable[[], int]) -> Optional[Group]:
    """On rank 0 of a joined group: share an alignment's arguments with the other ranks and return
    the group, or return ``None`` to run it alone (any other rank, no group, or a problem of
    fewer than ``min_entries`` plan entries, ``entries()``, where collectives would cost more
    than they save). A single process returns at once."""
    group = _joined
    if group is None or group.rank != 0 or entries() < group.min_entries:
        return None
    group.send_object(call)
    return group
