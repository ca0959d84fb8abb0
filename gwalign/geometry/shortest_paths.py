"""Geodesic distances from many sources, in worker processes kept for the life of the process.

scipy's Dijkstra holds the GIL, so threads do not help: large jobs run in forked worker
processes. The workers are forked once, on first use, and reused by every later call: forking
per call costs about as much as the parallelism saves on small problems (a process holding a
CUDA context forks slowly). Graphs and result tables travel through files in shared memory
(``/dev/shm`` where there is one), so nothing large is pickled
(docs/how-it-works/distances.md).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import tempfile
from typing import Optional
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from gwalign.threads import thread_limit


#: Work (sources × edges) per worker of :func:`shortest_paths_many` (about 20 ms of Dijkstra on
#: one core): smaller jobs use fewer workers, and one runs in process.
PARALLEL_MIN_WORK = 2_000_000


_POOL: Optional[multiprocessing.pool.Pool] = None


_POOL_PID = -1    # the process that forked _POOL: a forked child must not use its parent's pool


def _worker_pool() -> multiprocessing.pool.Pool:
    """The process-wide pool (one worker per available core), forked on first use."""
    global _POOL, _POOL_PID
    if _POOL is None or _POOL_PID != os.getpid():
        _POOL = multiprocessing.get_context("fork").Pool(thread_limit())
        _POOL_PID = os.getpid()
        atexit.register(_close_pool, _POOL, _POOL_PID)
    return _POOL


def _close_pool(pool: multiprocessing.pool.Pool, owner: int) -> None:
    """Stop the workers at exit (left running, the pool's finaliser warns on every CLI run)."""
    if os.getpid() == owner:
        pool.terminate()
        pool.join()


def _scratch_dir(jobs: list[tuple[sp.csr_matrix, np.ndarray]]) -> Optional[str]:
    """``/dev/shm`` when it has room for the graphs and tables (containers often mount a small
    one, and a full tmpfs kills the writer of a mapped file), else the default temp directory."""
    needed = sum(graph.data.nbytes + graph.indices.nbytes + graph.indptr.nbytes + 8 * len(sources) * graph.shape[0]
                 for graph, sources in jobs)
    if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 2 * needed:
        return "/dev/shm"
    return None


def _paths_task(task: tuple[str, int, int, int]) -> None:
    """Rows ``lo:hi`` of job ``job``'s table, written into its shared file."""
    folder, job, lo, hi = task
    prefix = os.path.join(folder, str(job))
    parts = [np.load(f"{prefix}-{name}.npy", mmap_mode="r") for name in ("data", "indices", "indptr")]
    n = len(parts[2]) - 1
    graph = sp.csr_matrix(tuple(parts), shape=(n, n))
    sources = np.load(f"{prefix}-sources.npy")
    out = np.load(f"{prefix}-out.npy", mmap_mode="r+")
    out[lo:hi] = dijkstra(graph, directed=True, indices=sources[lo:hi])
    out.flush()


def shortest_paths(graph: sp.csr_matrix, sources: np.ndarray, workers: Optional[int] = None) -> np.ndarray:
    """Geodesic distances from ``sources`` to every node: ``len(sources)`` × N, float64."""
    return shortest_paths_many([(graph, sources)], workers)[0]


def shortest_paths_many(jobs: list[tuple[sp.csr_matrix, np.ndarray]],
                        workers: Optional[int] = None) -> list[np.ndarray]:
    """:func:`shortest_paths` for several (graph, sources) jobs, spread over one set of workers.

    ``workers`` caps the processes used (default: every available core, fewer for small jobs,
    see :data:`PARALLEL_MIN_WORK`). Both sides of an alignment go through one call, so they share
    the workers (a pool per side is slower: 0.79–0.86 s against 0.48 s at 45,000 cells a side,
    H100 host). The graph is symmetric, so the directed search (cheaper) is exact.
    """
    return start_shortest_paths(jobs, workers).result()


class PendingPaths:
    """Shortest-path tables being computed by the worker pool; :meth:`result` waits for them."""

    def __init__(self, n_jobs: int, folder: Optional[str] = None,
                 waiting: Optional[multiprocessing.pool.AsyncResult] = None,
                 tables: Optional[list[np.ndarray]] = None):
        self._n_jobs, self._folder, self._waiting, self._tables = n_jobs, folder, waiting, tables

    def result(self) -> list[np.ndarray]:
        """The ``len(sources)`` × N table of every job, in job order (waits for the workers)."""
        if self._tables is None:
            try:
                self._waiting.get()
                # Mapped, not read: a read copies the table into fresh pages (256 × 1,000,000:
                # 7.5 s against 0.5 s mapped, with the checks that follow; docs/how-it-works/
                # distances.md). Copy-on-write, so a caller may write to it; the mapping outlives
                # the file.
                self._tables = [np.load(os.path.join(self._folder, f"{j}-out.npy"), mmap_mode="c")
                                for j in range(self._n_jobs)]
            finally:
                shutil.rmtree(self._folder, ignore_errors=True)
        return self._tables

    def discard(self) -> None:
        """Drop the tables: workers still searching write into unlinked files, read by no one."""
        if self._folder is not None and self._tables is None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._tables = []


def start_shortest_paths(jobs: list[tuple[sp.csr_matrix, np.ndarray]],
                         workers: Optional[int] = None) -> PendingPaths:
    """:func:`shortest_paths_many` without waiting: the workers search while the caller goes on
    (a GPU run builds the other side's kNN graph meanwhile). Small jobs, and callers that may not
    fork, are searched in process before this returns."""
    jobs = [(sp.csr_matrix(graph), np.asarray(sources, dtype=np.int64)) for graph, sources in jobs]
    n_sources = sum(len(sources) for _, sources in jobs)
    work = sum(len(sources) * graph.nnz for graph, sources in jobs)
    cap = thread_limit() if workers is None else workers
    workers = max(1, min(cap, thread_limit(), n_sources, -(-work // max(PARALLEL_MIN_WORK, 1))))
    # Daemonic processes (e.g. workers of the caller's own multiprocessing pool) may not fork.
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods() or \
            multiprocessing.current_process().daemon:
        return PendingPaths(len(jobs), tables=[np.atleast_2d(dijkstra(graph, directed=True, indices=sources))
                                               for graph, sources in jobs])
    folder = tempfile.mkdtemp(prefix="gwalign-paths-", dir=_scratch_dir(jobs))
    try:
        tasks = []
        for j, (graph, sources) in enumerate(jobs):
            prefix = os.path.join(folder, str(j))
            for name in ("data", "indices", "indptr"):
                np.save(f"{prefix}-{name}.npy", getattr(graph, name))
            np.save(f"{prefix}-sources.npy", sources)
            np.lib.format.open_memmap(f"{prefix}-out.npy", mode="w+", dtype=np.float64,
                                      shape=(len(sources), graph.shape[0])).flush()
            share = max(1, round(workers * len(sources) / n_sources))
            edges = np.linspace(0, len(sources), share + 1).astype(int)
            tasks += [(folder, j, int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
        return PendingPaths(len(jobs), folder, _worker_pool().map_async(_paths_task, tasks, chunksize=1))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
