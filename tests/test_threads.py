"""One thread limit for every library: what the default is on free, shared and confined cores."""

import os
import subprocess
import sys
import threading
import time

import torch

from gwalign import threads


def test_the_default_leaves_cores_that_other_processes_use(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for busy, expected in ((0, 8), (3, 5), (8, 1), (20, 1)):
        monkeypatch.setattr(threads, "busy_cores", lambda busy=busy: busy)
        assert threads.default_threads() == expected
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setattr(threads, "busy_cores", lambda: 3)
    assert threads.default_threads() == 4   # OMP_NUM_THREADS caps it; 5 cores are free


def test_cores_a_scheduler_confined_the_process_to_are_all_used(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5, 6, 7})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda: 60)   # other jobs, on other cores
    assert threads.default_threads() == 4


def test_a_spinning_process_is_counted_busy():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert threads.busy_cores(samples=9) >= 1
    finally:
        spinner.kill()
        spinner.wait()


def test_limited_threads_applies_the_default_and_restores(monkeypatch):
    monkeypatch.setattr(threads, "default_threads", lambda: 1)
    before = torch.get_num_threads()
    with threads.limited_threads() as limit:
        assert limit == 1 and torch.get_num_threads() == 1 and threads.thread_limit() == 1
    assert torch.get_num_threads() == before


def test_numba_imported_inside_the_block_follows_the_limit():
    """scanpy imports numba inside a run: its threads take the run's limit, then their default back."""
    probe = ("import sys; from gwalign.threads import limited_threads\n"
             "assert 'numba' not in sys.modules\n"
             "with limited_threads(1):\n"
             "    import numba\n"
             "    inside = numba.get_num_threads()\n"
             "print(inside, numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "True"]


def test_a_default_sized_run_follows_load_that_starts_later(monkeypatch):
    """Between solver steps, a run whose count was chosen by default drops to the cores that
    other processes leave free and goes back up when they leave; an asked-for count stays."""
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0)
    monkeypatch.setattr(threads, "LOAD_CHECK_INTERVAL", 0.0)
    before = torch.get_num_threads()
    with threads.limited_threads():
        assert torch.get_num_threads() == 4
        for others, expected in ((3, 1), (2, 2), (9, 1), (0, 4)):
            monkeypatch.setattr(threads, "busy_cores", lambda others=others, **_: others)
            threads.follow_load()
            assert torch.get_num_threads() == expected
    with threads.limited_threads(3):
        monkeypatch.setattr(threads, "busy_cores", lambda **_: 3)
        threads.follow_load()
        assert torch.get_num_threads() == 3
    threads.follow_load()   # outside a run: nothing to follow
    assert torch.get_num_threads() == before


def test_this_process_busy_threads_are_its_own_not_other_jobs():
    """Threads of this process that compute (NumPy releases the GIL) count as its own, so they
    are not taken for other jobs when the load is read."""
    import numpy as np

    stop = threading.Event()
    matrix = np.random.default_rng(0).normal(size=(300, 300))

    def compute() -> None:
        while not stop.is_set():
            matrix @ matrix

    workers = [threading.Thread(target=compute) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.2)
        own = max(threads._own_running() for _ in range(50))
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert own >= 2


def test_side_by_side_keeps_order_restores_threads_and_raises():
    torch.set_num_threads(2)
    seen = []

    def task(i):
        seen.append(threading.current_thread().name)
        return i * i

    assert threads.side_by_side([lambda i=i: task(i) for i in range(6)]) == [i * i for i in range(6)]
    assert torch.get_num_threads() == 2
    # Fewer than two tasks a thread run in turn, on the caller's thread.
    for count in (2, 3):
        seen.clear()
        threads.side_by_side([lambda i=i: task(i) for i in range(count)])
        assert set(seen) == {threading.current_thread().name}

    def failing():
        raise ValueError("task failed")

    try:
        threads.side_by_side([lambda: 1, lambda: 2, lambda: 3, failing])
    except ValueError as err:
        assert "task failed" in str(err)
    else:
        raise AssertionError("the task's error was lost")
    assert torch.get_num_threads() == 2


def test_sweeps_side_by_side_give_the_bits_of_one_after_another(monkeypatch):
    """Batched Sinkhorn sweeps on the CPU's cores, one problem a core, equal the sweeps computed
    one after another with torch's own two threads (the CPU path's results do not depend on it)."""
    from gwalign.engine import ops

    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(700, 12, generator=gen) * 0.3
    y = torch.randn(4, 650, 12, generator=gen) * 0.3
    bias = torch.randn(4, 650, generator=gen) * 0.1

    def col_bias_of(s, rows, r_rows):
        return -0.05 * r_rows + 0.01 * s

    together = ops.lse_sweep(x, y, bias, 0.05, col_bias_of, 128)
    monkeypatch.setattr(threads, "side_by_side", lambda tasks: [task() for task in tasks])
    in_turn = ops.lse_sweep(x, y, bias, 0.05, col_bias_of, 128)
    assert torch.equal(together[0], in_turn[0]) and torch.equal(together[1], in_turn[1])
