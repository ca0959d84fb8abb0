"""Engine benchmark on the CPU: spiral (2-D) → Swiss roll (3-D), time and peak memory per size.

Each size runs in its own process so that peak resident memory is per size.

    python benchmarks/engine_cpu.py --sizes 2000 5000 10000 20000 --distance landmark
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def run_one(n: int, distance: str, max_iter: int, gradient: str = "auto") -> dict:
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    import gwalign
    from gwalign.synthetic import spiral_and_roll

    xs, ts, xt, tt = spiral_and_roll(n, n, seed=0)
    config = gwalign.GWConfig(device="cpu", distance=distance, max_iter=max_iter, n_starts=1, gradient=gradient)
    start = time.perf_counter()
    result = gwalign.align(xs, xt, config)
    elapsed = time.perf_counter() - start
    rho = abs(spearmanr(ts, result.project_to_source(tt))[0])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "distance": distance, "seconds": round(elapsed, 2), "peak_rss_mb": round(peak_mb),
            "iterations": result.n_iter, "sinkhorn_steps": int(np.sum(result.solve.sinkhorn_iters)),
            "spearman": round(float(rho), 4), "threads": torch.get_num_threads(),
            "stages": {k: round(v, 2) for k, v in result.timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    parser.add_argument("--distance", default="landmark")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--gradient", default="auto", choices=["auto", "lowrank", "sampled"])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.distance, args.max_iter, args.gradient)))
        return
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"# gradient={args.gradient}")
    print("| N = K | distance | time (s) | peak RSS (MB) | GW iters | Sinkhorn steps | abs Spearman |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--distance", args.distance,
                              "--max-iter", str(args.max_iter), "--gradient", args.gradient], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {n:,} | {row['distance']} | {row['seconds']} | {row['peak_rss_mb']} | "
              f"{row['iterations']} | {row['sinkhorn_steps']} | {row['spearman']} |", flush=True)
        print(f"<!-- stages {json.dumps(row['stages'])} -->", flush=True)


if __name__ == "__main__":
    main()
