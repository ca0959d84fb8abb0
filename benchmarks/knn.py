"""The exact kNN search of the CPU: gwalign's blocked ``topk`` (:func:`gwalign.geometry.knn.cpu_topk`)
against scikit-learn's ``NearestNeighbors``, on the same points.

    python benchmarks/knn.py --sizes 600 1000 2400 10000 50000 --repeats 3

Each measurement runs in a new process under the thread limit of a run (``gwalign.threads``; one
row per ``--threads``), the two searches alternating (A, B, A, B, ...), so that load that comes
and goes on shared cores falls on both. Prints one row per (size, threads, search): the
range of its seconds over the repeats, the memory it added (peak resident memory during the search
less the resident memory before it), whether its neighbours equal the other search's (ties aside:
rows whose neighbour sets differ only by points at the same distance count as equal), and, once,
the seconds of importing each search's library into a process that has torch and NumPy.

The points: a mixture of 8 Gaussian clusters on a 10-dimensional subspace of ``--dims`` (30, the
dimension of gwalign's default representations) with isotropic noise; ``--k`` 31 neighbours (the
``k`` = 15 graph's search with the 30 candidates of component stitching, and the point itself).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np
import torch

def rss_kb(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1])

n, dims, k, method, seed, threads = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                     int(sys.argv[5]), int(sys.argv[6]))
from gwalign.threads import limited_threads
rng = np.random.default_rng(seed)
basis = np.linalg.qr(rng.normal(size=(dims, 10)))[0]
centres = rng.normal(scale=4.0, size=(8, 10))
x = (centres[rng.integers(0, 8, size=n)] + rng.normal(size=(n, 10))) @ basis.T + 0.3 * rng.normal(size=(n, dims))
tick = time.perf_counter()
if method == "sklearn":
    from sklearn.neighbors import NearestNeighbors
else:
    from gwalign.geometry.knn import cpu_topk
imported = time.perf_counter() - tick
points = torch.as_tensor(x)
before = rss_kb("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:   # reset the peak (VmHWM) to the current size
    handle.write("5")
with limited_threads(threads):   # torch, BLAS and OpenMP (scikit-learn's) alike, as in a run
    tick = time.perf_counter()
    if method == "sklearn":
        dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    else:
        dist, idx = cpu_topk(points, points, k)
    seconds = time.perf_counter() - tick
peak = rss_kb("VmHWM")
np.save(sys.argv[7], np.stack([dist, idx.astype(np.float64)]))
print(json.dumps({"seconds": seconds, "import_s": imported, "added_mb": (peak - before) / 1024}))
"""


def measure(n: int, dims: int, k: int, method: str, seed: int, threads: int, path: str) -> dict:
    """One search in a new process."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), str(dims), str(k), method, str(seed), str(threads),
                           path], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_neighbours(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal neighbour sets row by row, where a row may differ only among points at the k-th
    distance (ties)."""
    (dist_a, idx_a), (dist_b, idx_b) = a, b
    # scikit-learn's distances come from |q|² + |t|² - 2 q·t: close to the exact ones, not equal.
    if not np.allclose(dist_a, dist_b, rtol=1e-6, atol=1e-6):
        return False
    for row in np.nonzero((np.sort(idx_a, axis=1) != np.sort(idx_b, axis=1)).any(axis=1))[0]:
        differ = set(idx_a[row].astype(int)) ^ set(idx_b[row].astype(int))
        last = dist_a[row, -1]
        kth = [dist_a[row][idx_a[row] == j] for j in differ] + [dist_b[row][idx_b[row] == j] for j in differ]
        if not all(np.allclose(d, last, rtol=1e-6) for d in kth if len(d)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[600, 1000, 2400, 10000, 50000])
    parser.add_argument("--dims", type=int, default=30)
    parser.add_argument("--k", type=int, default=31)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread limits (gwalign.threads)")
    args = parser.parse_args()
    import tempfile

    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; d = {args.dims}, k = {args.k}")
    print("| points | threads | search | seconds (min–max) | memory added (MB) | neighbours equal |")
    print("|---|---|---|---|---|---|")
    imports: dict[str, list[float]] = {"torch": [], "sklearn": []}
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            for threads in args.threads:
                runs: dict[str, list[dict]] = {"torch": [], "sklearn": []}
                for _ in range(args.repeats):
                    for method in ("torch", "sklearn"):
                        runs[method].append(measure(n, args.dims, args.k, method, n, threads, f"{folder}/{method}.npy"))
                        imports[method].append(runs[method][-1]["import_s"])
                equal = same_neighbours(np.load(f"{folder}/torch.npy"), np.load(f"{folder}/sklearn.npy"))
                for method, label in (("torch", "gwalign cpu_topk"), ("sklearn", "scikit-learn NearestNeighbors")):
                    seconds = [r["seconds"] for r in runs[method]]
                    memory = max(r["added_mb"] for r in runs[method])
                    print(f"| {n:,} | {threads} | {label} | {min(seconds):.3f}–{max(seconds):.3f} | {memory:.0f} | "
                          f"{'yes' if equal else 'no'} |", flush=True)
    print(f"import (s, min–max): gwalign.geometry.knn {min(imports['torch']):.2f}–{max(imports['torch']):.2f}, "
          f"sklearn.neighbors {min(imports['sklearn']):.2f}–{max(imports['sklearn']):.2f}")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
