"""The symmetric kNN graph assembled by SciPy on the host against one sort on the run's device.

:func:`gwalign.geometry.symmetric.symmetric_graph` assembles ``max(A, Aᵀ)`` of the directed kNN
graph from each point's neighbour list; on a GPU run it sorts the edges there
(``symmetric._on_device``), elsewhere SciPy converts them on the host. This script times both on
the same neighbour lists (the Swiss roll of ``benchmarks/scale.py``, k = 15), alternating, after
one untimed call of each, and checks that they give the same arrays.

    python benchmarks/graph_assembly.py --device cuda --sizes 45000 1000000 --repeats 3

Prints one row per size: the range of milliseconds of each, and whether the arrays are equal.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gwalign.datasets.synthetic import spiral_and_roll
from gwalign.geometry import symmetric
from gwalign.geometry.knn import _nearest, _positive

K = 15


def timed(call, device: torch.device):
    """Milliseconds of one call (the device synchronised on both ends) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    tick = time.perf_counter()
    out = call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - tick), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[45000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"# device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")
    print("| cells | SciPy on the host (ms) | one sort on the device (ms) | same arrays |")
    print("|---|---|---|---|")
    for n in args.sizes:
        _, _, points, _ = spiral_and_roll(n, n, seed=0)
        dist, idx = _nearest(torch.as_tensor(points, dtype=torch.float32, device=device), K, 2048)
        lengths = _positive(dist)
        ways = {"host": lambda: symmetric.symmetric_graph(lengths, idx, torch.device("cpu")),
                "device": lambda: symmetric._on_device(lengths, idx, device)}
        for call in ways.values():
            call()
        times: dict[str, list[float]] = {name: [] for name in ways}
        graphs = {}
        for _ in range(args.repeats):
            for name, call in ways.items():
                ms, graphs[name] = timed(call, device)
                times[name].append(ms)
        same = all(np.array_equal(getattr(graphs["host"], part), getattr(graphs["device"], part))
                   for part in ("indptr", "indices", "data"))
        host, dev = times["host"], times["device"]
        print(f"| {n:,} | {min(host):.1f}–{max(host):.1f} | {min(dev):.1f}–{max(dev):.1f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
