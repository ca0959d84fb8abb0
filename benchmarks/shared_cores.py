"""``gwalign run`` on cores that other processes keep busy: wall time at the default threads and at
a fixed count, with 0, 1, 2, ... busy-loop processes beside it.

    python benchmarks/shared_cores.py --busy 0 2 --threads auto 1

Prints one row per (busy processes, threads): the wall time of the whole command, the threads the
run chose (report.json ``threads``) and its GW objective. Run it on an otherwise idle machine: the
busy loops are the only load it means to measure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def busy_loops(count: int) -> list[subprocess.Popen]:
    """``count`` processes that spin on one core each until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def timed_run(pair: tuple[Path, Path], out: Path, threads: str, extra: list[str]) -> dict:
    """One ``gwalign run`` (``threads``: ``auto`` or a count); its wall time and report."""
    command = [sys.executable, "-m", "gwalign.cli", "run", str(pair[0]), str(pair[1]), "--out-dir", str(out),
               "--overwrite", "--json", *extra] + ([] if threads == "auto" else ["--threads", threads])
    tick = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - tick
    report = json.loads(done.stdout)
    return {"wall_s": wall, "threads": report.get("threads"), "objective": report["gw_objective"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="busy-loop processes beside the run")
    parser.add_argument("--threads", nargs="+", default=["auto", "1"], help="auto (the default) or counts")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--source", type=Path, default=REPO / "example_data" / "rna.h5ad")
    parser.add_argument("--target", type=Path, default=REPO / "example_data" / "atac.h5ad")
    parser.add_argument("--extra", nargs="*", default=["--no-figures", "--transfer-labels", "cell_type",
                                                        "--device", "cpu"],
                        help="further gwalign run options")
    args = parser.parse_args()
    print("| busy processes | threads asked | threads used | wall time (s) | GW objective |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for busy in args.busy:
            loops = busy_loops(busy)
            try:
                time.sleep(1.0)   # let the loops reach the run queue
                for threads in args.threads:
                    for _ in range(args.repeats):
                        row = timed_run((args.source, args.target), Path(folder) / "out", threads, args.extra)
                        print(f"| {busy} | {threads} | {row['threads']} | {row['wall_s']:.1f} | "
                              f"{row['objective']:.5f} |", flush=True)
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()


if __name__ == "__main__":
    main()
