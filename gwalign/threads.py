"""How many threads gwalign's libraries may use, decided in one place.

torch, the BLAS under NumPy/SciPy and numba (through scanpy's UMAP) each start their own thread
pool, sized to every core of the machine; the shortest-path workers add processes. On a machine
whose cores are shared with other jobs, pools that spin while they wait for each other make a run
many times slower than on one thread. :func:`limited_threads` sizes all of them to one number
(``threads``: by default the cores this process may use that other processes are not using now)
for the duration of a run, and flushes denormal floats to zero, whose slow path costs several times
the arithmetic on CPUs (docs/performance.md).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence, TypeVar

T = TypeVar("T")

#: The limit of the innermost :func:`limited_threads`, read by the shortest-path pool.
_current_limit: Optional[int] = None


#: Seconds between two readings of the load by :func:`follow_load` (a reading costs about 0.1 ms).
LOAD_CHECK_INTERVAL = 0.5


#: Whether the innermost :func:`limited_threads` flushes denormal floats: the flag lives in each
#: thread's floating-point control register, so :func:`side_by_side`'s workers set it themselves.
_flushing = False


#: :func:`side_by_side`'s worker threads, one pool per size (idle workers wait; they do not spin).
_pools: dict[int, ThreadPoolExecutor] = {}


#: The innermost default-sized run's limit and when :func:`follow_load` last read the load;
#: ``None`` when the thread count was asked for or the process is confined to its cores.
_following: Optional[list] = None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count), at most
    ``OMP_NUM_THREADS`` when that is set (the usual way a scheduler or a user caps threads)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(cap))) if cap.strip().isdigit() and int(cap) > 0 else cores


def _own_running() -> int:
    """Threads of this process running or runnable now (state ``R`` in ``/proc/self/task``)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as handle:
                count += handle.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return max(count, 1)   # the reading thread itself runs


def busy_cores(samples: int = 5, interval: float = 0.005) -> int:
    """Threads of other processes running now: the kernel's count of runnable tasks less this
    process's own (its pools' spinning threads count there), the median of a few readings; 0
    where the system does not say (not Linux)."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as handle:
                total = int(handle.read().split()[3].split("/")[0])
            counts.append(total - _own_running())
        except (OSError, ValueError, IndexError):
            return 0
        if interval and i + 1 < samples:
            time.sleep(interval)
    return max(0, sorted(counts)[len(counts) // 2])


def follow_load() -> None:
    """Fit torch's thread count to the cores other processes leave free, within the run's limit.

    Called between Sinkhorn iterations. Only a run whose thread count was chosen by default
    (:func:`default_threads`) follows the load, and at most every ``LOAD_CHECK_INTERVAL`` seconds:
    jobs that start on the machine after the run began would otherwise meet a pool that spins
    against them, which made a 2,000-cell alignment on 2 cores 5–11 times slower
    (docs/performance.md, "Threads on shared cores").
    """
    if _following is None or time.monotonic() - _following[1] < LOAD_CHECK_INTERVAL:
        return
    import torch

    limit = _following[0]
    wanted = max(1, min(limit, (os.cpu_count() or limit) - busy_cores(samples=3, interval=0.0)))
    _following[1] = time.monotonic()
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)


def _confined() -> bool:
    """Whether a scheduler confined this process to some of the machine's cores."""
    return hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < (os.cpu_count() or 1)


def default_threads() -> int:
    """Threads of a run when none are asked for: the cores this process may use, less those that
    other processes are busy on, at least one.

    Only where the process may run on every core of the machine: a scheduler that confines it to
    some cores (SLURM, taskset, a cgroup cpuset) gave it those, and the busy processes counted
    machine-wide run elsewhere. On shared cores a thread pool larger than the free cores spins
    against the other jobs and runs many times slower than one thread (docs/performance.md).
    """
    cores = available_cores()
    if _confined():
        return cores
    return max(1, min(cores, (os.cpu_count() or cores) - busy_cores()))


def thread_limit() -> int:
    """The thread count in force: the innermost :func:`limited_threads`' limit, else every core."""
    return _current_limit if _current_limit is not None else available_cores()


@contextmanager
def limited_threads(threads: Optional[int] = None) -> Iterator[int]:
    """Run the block with torch, BLAS and numba limited to ``threads`` threads (``None``:
    :func:`default_threads`) and denormal floats flushed to zero; restore both afterwards.

    Yields the limit in force.
    """
    import torch
    from threadpoolctl import threadpool_limits

    global _current_limit, _following, _flushing
    limit = max(1, min(int(threads), available_cores())) if threads is not None else default_threads()
    saved = (_current_limit, torch.get_num_threads(), _numba_threads(), _following, _flushing)
    _following = [available_cores(), time.monotonic()] if threads is None and not _confined() else None
    flushed = torch.set_flush_denormal(True)
    _flushing = flushed or _flushing
    _current_limit = limit
    torch.set_num_threads(limit)
    _set_numba_threads(limit)
    # numba is mostly imported later, by scanpy inside the block (importing it up front would cost
    # a fraction of a second where nothing uses it): the limit reaches it as its import ends.
    hook = _NumbaImportHook() if saved[2] is None else None
    if hook is not None:
        sys.meta_path.insert(0, hook)
    try:
        with threadpool_limits(limits=limit):
            yield limit
    finally:
        if hook is not None:
            sys.meta_path.remove(hook)
        _current_limit, _following, _flushing = saved[0], saved[3], saved[4]
        torch.set_num_threads(saved[1])
        # numba imported inside the block gets back its own default (every core) afterwards.
        _set_numba_threads(saved[2] if saved[2] is not None or "numba" not in sys.modules
                           else sys.modules["numba"].config.NUMBA_NUM_THREADS)
        if flushed:
            torch.set_flush_denormal(False)


def side_by_side(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """The results of independent tasks of CPU tensor work, in order: with torch allowed two threads
    or more and at least two tasks a thread, each task runs on one thread of its own, as many at
    once as torch's thread count, and torch's own threads are held at one meanwhile; else one after
    another.

    A task's operations are those of a one-thread run, which on the CPU gives the same bits as
    two threads (``tests/test_threads.py``).
    """
    # The streamed passes are many small operations (a 500 × 2,000 tile each): torch's threads
    # split every one and wait for each other at its end, so a core that another job slows holds
    # up all of them; one problem per core keeps each core on its own tiles (docs/performance.md,
    # "Threads on shared cores").
    import torch

    previous = torch.get_num_threads()
    workers = min(len(tasks), previous)
    # With fewer than two tasks a core, an uneven split leaves a core idle for a whole task, and even
    # two tasks on two free cores ran a little slower than torch's own threads (docs/performance.md).
    if workers < 2 or len(tasks) < 2 * workers:
        return [task() for task in tasks]
    pool = _pools.get(workers)
    if pool is None:
        pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="gwalign-cpu")
    flush = _flushing

    def run(task: Callable[[], T]) -> T:
        # Per thread, both: OpenMP's thread count (which MKL follows) and the denormal flag of the
        # worker's own floating-point register; without the first, each worker's GEMM starts a
        # team of its own.
        torch.set_num_threads(1)
        torch.set_flush_denormal(flush)
        return task()

    torch.set_num_threads(1)
    try:
        return list(pool.map(run, tasks))
    finally:
        torch.set_num_threads(previous)


class _NumbaImportHook:
    """A ``sys.meta_path`` finder that sets numba's thread count to :func:`thread_limit` once numba's
    own import has finished; it finds nothing itself (the other finders load numba as usual)."""

    def find_spec(self, name: str, path=None, target=None):
        if name != "numba":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module, run=run) -> None:
                    run(module)
                    _set_numba_threads(thread_limit())

                spec.loader.exec_module = exec_module
                return spec
            if spec is not None:
                return spec
        return None


def _numba_threads() -> Optional[int]:
    """numba's thread count, when numba is already imported (importing it costs seconds)."""
    numba = sys.modules.get("numba")
    return None if numba is None else numba.get_num_threads()


def _set_numba_threads(count: Optional[int]) -> None:
    numba = sys.modules.get("numba")
    if numba is None or count is None:
        return
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))
