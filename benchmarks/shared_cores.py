"""``gwalign run`` on cores that other processes keep busy: wall time at the default threads and at
a fixed count, with 0, 1, 2, ... busy-loop processes beside it.

    python benchmarks/shared_cores.py --busy 0 2 --threads auto 1
    python benchmarks/shared_cores.py --cells 2000 --busy 0 2 3 --busy-after 3 --threads auto 2

Prints one row per (busy processes, threads): the wall time of the whole command, the threads the
run chose at its start (report.json ``threads``) and its GW objective. ``--busy-after S`` starts
the loops S seconds after each run, so that the run meets load it did not see when it started
(a default-sized run follows it, ``gwalign.threads.follow_load``); ``--cells N`` aligns the bundled
example made at N cells a side (``gwalign example --cells N``) instead of the shipped files. Run it
on an otherwise idle machine: the busy loops are the only load it means to measure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]


def busy_loops(count: int) -> list[subprocess.Popen]:
    """``count`` processes that spin on one core each until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(loops: list[subprocess.Popen]) -> None:
    for loop in loops:
        loop.kill()
        loop.wait()


def example_pair(cells: int, folder: Path) -> tuple[Path, Path]:
    """The bundled example made at ``cells`` cells a side, written into ``folder``."""
    subprocess.run([sys.executable, "-m", "gwalign.cli", "example", "--cells", str(cells), "-o", str(folder)],
                   check=True, capture_output=True)
    return folder / "rna.h5ad", folder / "atac.h5ad"


def timed_run(pair: tuple[Path, Path], out: Path, threads: str, extra: list[str],
              busy_after: Optional[tuple[int, float]] = None) -> dict:
    """One ``gwalign run`` (``threads``: ``auto`` or a count); its wall time and report.
    ``busy_after``: (loops, seconds) started that long after the run, stopped when it ends."""
    command = [sys.executable, "-m", "gwalign.cli", "run", str(pair[0]), str(pair[1]), "--out-dir", str(out),
               "--overwrite", "--json", *extra] + ([] if threads == "auto" else ["--threads", threads])
    tick = time.perf_counter()
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    loops = []
    if busy_after is not None:
        try:
            run.wait(timeout=busy_after[1])
        except subprocess.TimeoutExpired:
            loops = busy_loops(busy_after[0])
    stdout, stderr = run.communicate()
    wall = time.perf_counter() - tick
    stop(loops)
    if run.returncode != 0:
        raise RuntimeError(f"gwalign run failed: {stderr.strip().splitlines()[-1:]}")
    report = json.loads(stdout)
    return {"wall_s": wall, "threads": report.get("threads"), "objective": report["gw_objective"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="busy-loop processes beside the run")
    parser.add_argument("--threads", nargs="+", default=["auto", "1"], help="auto (the default) or counts")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--busy-after", type=float, default=None, metavar="SECONDS",
                        help="start the busy loops this long after each run instead of before it")
    parser.add_argument("--cells", type=int, default=None, help="align the example made at this many cells a side")
    parser.add_argument("--source", type=Path, default=REPO / "example_data" / "rna.h5ad")
    parser.add_argument("--target", type=Path, default=REPO / "example_data" / "atac.h5ad")
    parser.add_argument("--extra", nargs="*", default=["--no-figures", "--transfer-labels", "cell_type",
                                                        "--device", "cpu"],
                        help="further gwalign run options")
    args = parser.parse_args()
    print("| busy processes | from (s) | threads asked | threads used at the start | wall time (s) | GW objective |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        pair = example_pair(args.cells, Path(folder) / "pair") if args.cells else (args.source, args.target)
        for busy in args.busy:
            for threads in args.threads:
                for _ in range(args.repeats):
                    row = measure(pair, Path(folder) / "out", threads, args.extra, busy, args.busy_after)
                    start = "start" if args.busy_after is None else f"{args.busy_after:g}"
                    print(f"| {busy} | {start} | {threads} | {row['threads']} | {row['wall_s']:.1f} | "
                          f"{row['objective']:.5f} |", flush=True)


def measure(pair: tuple[Path, Path], out: Path, threads: str, extra: list[str], busy: int,
            busy_after: Optional[float]) -> dict:
    """One timed run with ``busy`` loops, started before it (``busy_after`` None) or during it."""
    if busy_after is not None:
        return timed_run(pair, out, threads, extra, (busy, busy_after))
    loops = busy_loops(busy)
    try:
        time.sleep(1.0)   # let the loops reach the run queue
        return timed_run(pair, out, threads, extra)
    finally:
        stop(loops)


if __name__ == "__main__":
    main()
