"""How well landmark rows stand in for each real pair's geodesics, by landmark count and choice.

Above ``gwalign.config.AUTO_PRECOMPUTED_MAX_POINTS`` cells a side, low-rank GW factorises each
side's kNN geodesic matrix from its landmarks' rows (Nyström, ``gwalign.engine.lowrank.
factor_nystrom``) instead of the exact eigendecomposition. The real pairs are small enough to
compute the exact matrix, so this prints the relative Frobenius error of the Nyström factors
(rank ``GWConfig.rank``) against it, next to the exact rank-r truncation's (the floor), for each
landmark choice (``gwalign.distances.choose_landmarks``) and count, as the mean over seeds.
Graphs are built as ``gwalign.align`` builds them (automatic k, rows scaled as the CLI default).

What the alignment makes of it: ``benchmarks/real_data.py --set distance="landmark"
landmark_choice="farthest" n_landmarks=128`` (and so on) runs the pairs on landmark distances.

    python benchmarks/landmarks.py --datasets all --counts 64 128 256 512 --seeds 0 1 2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.sparse.csgraph import dijkstra

from gwalign.config import GWConfig
from gwalign.distances import choose_landmarks
from gwalign.engine.lowrank import LowRankDistances, factor_dense, factor_nystrom
from gwalign.graph import knn_graph
from real_data import DATASETS, load_pair

CHOICES = ("farthest", "uniform", "mixed")


def relative_error(exact: torch.Tensor, factors: LowRankDistances) -> float:
    """``‖D − Φ Λ Φᵀ‖_F / ‖D‖_F``."""
    approx = (factors.phi.double() * factors.lam.double()) @ factors.phi.double().T
    return float(torch.linalg.norm(approx - exact) / torch.linalg.norm(exact))


def side_errors(points: np.ndarray, k: int, rank: int, counts: list[int], seeds: list[int]
                ) -> tuple[float, dict[tuple[str, int], float]]:
    """Exact rank-``rank`` error and mean Nyström error per (choice, count) for one side."""
    tensor = torch.as_tensor(points, dtype=torch.float64)
    geodesics = dijkstra(knn_graph(tensor, k).matrix, directed=True)
    scale = float(geodesics.mean())
    exact = torch.as_tensor(geodesics / scale)
    floor = relative_error(exact, factor_dense(exact, rank))
    errors = {}
    for choice in CHOICES:
        for count in counts:
            if count >= len(points):
                continue
            runs = []
            for seed in seeds:
                landmarks = choose_landmarks(tensor, count, seed, choice)
                factors = factor_nystrom(geodesics[landmarks], landmarks, scale, rank,
                                         torch.device("cpu"), torch.float64)
                runs.append(relative_error(exact, factors))
            errors[(choice, count)] = float(np.mean(runs))
    return floor, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["all"], choices=[*DATASETS, "all"])
    parser.add_argument("--counts", nargs="+", type=int, default=[64, 128, 256, 512])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rank", type=int, default=GWConfig().rank)
    args = parser.parse_args()
    names = list(DATASETS) if "all" in args.datasets else args.datasets
    print(f"# Nyström error of the rank-{args.rank} geodesic factors (mean over seeds {args.seeds}); "
          f"'exact' is the rank-{args.rank} eigendecomposition's")
    header = " | ".join(f"{choice} {count}" for count in args.counts for choice in CHOICES)
    print(f"| pair | side | cells | exact | {header} |")
    print("|" + "---|" * (4 + len(args.counts) * len(CHOICES)))
    for name in names:
        xs, xt, _, _ = load_pair(name)
        k = GWConfig().knn_k(len(xs), len(xt))
        for side, points in (("source", xs), ("target", xt)):
            floor, errors = side_errors(points, k, args.rank, args.counts, args.seeds)
            cells = " | ".join(f"{errors[(c, n)]:.3f}" if (c, n) in errors else "–"
                               for n in args.counts for c in CHOICES)
            print(f"| {name} | {side} | {len(points)} | {floor:.3f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
