"""A batch of problems side by side on the CPU's cores, against one after another on torch's threads.

On the CPU the engine runs a batch's problems (the screened starts' Sinkhorn sweeps and their
plan passes) one per core, torch held at one thread meanwhile (:func:`gwalign.threads.side_by_side`).
This script times :func:`gwalign.align` on a real pair both ways, alternating in one process, with
``--busy N`` busy-loop processes beside it and the thread count fixed by ``--threads`` (a
default-sized run would see the loops and shrink its threads; a fixed count stands for load that
the run cannot see, such as other virtual machines on the same host). "in turn" replaces
:func:`~gwalign.threads.side_by_side` by a plain loop: one problem after another, torch's own
threads splitting each operation.

    python benchmarks/cpu_tasks.py --pair pbmc --busy 0 1 --threads 2 --repeats 3

Prints one row per run: the mode, the busy loops, the wall time of the call, its Sinkhorn time and
the GW objective (the two modes give the same bits, so the same objective).

``--sweeps S ...`` instead times one batched Sinkhorn sweep (:func:`gwalign.engine.ops.lse_sweep`)
of S problems both ways, on random rank-32 factors of PBMC's size (1,985 × 1,919 cells), ten
sweeps per measurement, alternating: milliseconds per problem and sweep.

    python benchmarks/cpu_tasks.py --sweeps 2 4 10 --repeats 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings

import gwalign
from gwalign import threads
from real_data import DATASETS, load_pair


def in_turn(tasks):
    return [task() for task in tasks]


def timed(xs, xt, thread_count: int, side_by_side: bool) -> tuple[float, float, float]:
    """Wall time, Sinkhorn time and objective of one default alignment."""
    saved = threads.side_by_side
    threads.side_by_side = saved if side_by_side else in_turn
    try:
        tick = time.perf_counter()
        result = gwalign.align(xs, xt, gwalign.GWConfig(threads=thread_count))
        return time.perf_counter() - tick, result.timings["solve_sinkhorn"], result.solve.objective
    finally:
        threads.side_by_side = saved


def sweep_rows(batch_sizes: list[int], repeats: int) -> None:
    """Print, per batch size, the milliseconds a problem's sweep took side by side and in turn."""
    import torch
    from gwalign.engine import ops

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1985, 32, generator=gen) * 0.1
    torch.set_flush_denormal(True)
    print("| problems | side by side (ms a problem) | in turn (ms a problem) |")
    print("|---|---|---|")
    for size in batch_sizes:
        y = torch.randn(size, 1919, 32, generator=gen) * 0.1
        bias = torch.zeros(size, 1919)
        # Relative to the previous sweep's row log-sum-exps, as every sweep after a solve's first.
        guess = ops.lse_sweep(x, y, bias, 0.05, lambda s, rows, r: -0.05 * r, 546)[0]
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for together in (True, False):
                saved = threads.side_by_side
                threads.side_by_side = saved if together else in_turn
                try:
                    tick = time.perf_counter()
                    for _ in range(10):
                        ops.lse_sweep(x, y, bias, 0.05, lambda s, rows, r: -0.05 * r, 546, guess)
                    times[together].append(1e3 * (time.perf_counter() - tick) / 10 / size)
                finally:
                    threads.side_by_side = saved
        print(f"| {size} | {min(times[True]):.2f}–{max(times[True]):.2f} | "
              f"{min(times[False]):.2f}–{max(times[False]):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", choices=sorted(DATASETS), default="pbmc")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweeps", type=int, nargs="*", default=None, metavar="S",
                        help="time batched Sinkhorn sweeps of S problems instead of whole alignments")
    args = parser.parse_args()
    if args.sweeps:
        sweep_rows(args.sweeps, args.repeats)
        return
    warnings.simplefilter("ignore")
    xs, xt, _, _ = load_pair(args.pair)
    gwalign.align(xs[:200], xt[:200])       # imports and first-call set-up, untimed
    print("| mode | busy loops | time (s) | Sinkhorn (s) | GW objective |")
    print("|---|---|---|---|---|")
    for busy in args.busy:
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            for _ in range(args.repeats):
                for mode in ("side by side", "in turn"):
                    wall, sinkhorn, objective = timed(xs, xt, args.threads, mode == "side by side")
                    print(f"| {mode} | {busy} | {wall:.1f} | {sinkhorn:.1f} | {objective:.6f} |", flush=True)
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()


if __name__ == "__main__":
    main()
