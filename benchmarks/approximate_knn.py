"""Approximate kNN on the CPU (nearest-neighbour descent, pynndescent) against scikit-learn's exact search.

    python benchmarks/approximate_knn.py --sizes 20000 50000 100000 200000

Each search runs in a new process under a run's thread limit (``gwalign.threads``, ``--threads``),
on the points of ``benchmarks/knn.py`` (8 Gaussian clusters on a 10-dimensional subspace of 30
dimensions, with noise) and with its k = 31. Prints one row per size: scikit-learn's seconds, the
approximate search's seconds in a new process (numba's compiled functions loaded from its cache,
or compiled on the first run after installation) and a second call in the same process, and the
approximate search's recall: the share of its neighbours within each point's exact k-th distance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np
import torch
from gwalign.threads import limited_threads

n, dims, k, method, seed, threads, path = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                           int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
rng = np.random.default_rng(seed)
basis = np.linalg.qr(rng.normal(size=(dims, 10)))[0]
centres = rng.normal(scale=4.0, size=(8, 10))
x = (centres[rng.integers(0, 8, size=n)] + rng.normal(size=(n, 10))) @ basis.T + 0.3 * rng.normal(size=(n, dims))
points = torch.as_tensor(x)
times = []
with limited_threads(threads):
    for _ in range(1 if method == "exact" else 2):
        tick = time.perf_counter()
        if method == "exact":
            from sklearn.neighbors import NearestNeighbors
            dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
        else:
            from gwalign.geometry.approximate_knn import approximate_knn
            dist, idx = approximate_knn(points, points, k, seed=0)
        times.append(time.perf_counter() - tick)
np.save(path, dist)
print(json.dumps({"seconds": times}))
"""


def measure(n: int, dims: int, k: int, method: str, threads: int, path: str) -> list[float]:
    """One search (two for the approximate one) in a new process; its distances saved at ``path``."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), str(dims), str(k), method, str(n), str(threads), path],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 50000, 100000, 200000])
    parser.add_argument("--dims", type=int, default=30)
    parser.add_argument("--k", type=int, default=31)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from gwalign.geometry.approximate_knn import recall

    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; d = {args.dims}, "
          f"k = {args.k}, threads = {args.threads}")
    print("| points | scikit-learn, exact (s) | approximate, new process (s) | approximate, second call (s) | recall |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            exact = measure(n, args.dims, args.k, "exact", args.threads, f"{folder}/exact.npy")
            approximate = measure(n, args.dims, args.k, "approximate", args.threads, f"{folder}/approximate.npy")
            found = recall(np.load(f"{folder}/approximate.npy"), np.load(f"{folder}/exact.npy"))
            print(f"| {n:,} | {exact[0]:.1f} | {approximate[0]:.1f} | {approximate[1]:.1f} | {found:.4f} |", flush=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
