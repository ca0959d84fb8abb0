"""Which basin do low-rank GW starts reach, and does the objective agree with the labels?

For one real pair, builds kNN geodesics, factors them (rank 32), and runs low-rank GW to
convergence from every start of ``--starts`` (``sign``: product + distance profile + sign
patterns, as the default; ``noise``: product + distance profile + 8 Gaussian perturbations) and from a label-consistent "oracle" plan
(``T ∝ 1[label_i = label_j]``). Prints each start's final objective and label transfer. If the
oracle ends with a *higher* objective than the best start, the model (graph, row scaling) prefers
a wrong answer; if lower, the starts missed its basin.

    python benchmarks/start_basins.py --dataset scnmt-met --normalise l2 auto --k 10
    python benchmarks/start_basins.py --dataset pbmc --edge-weights connectivity --k 9 11 13
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import gwalign
from gwalign.distances import PrecomputedDistances
from gwalign.engine import ops
from gwalign.engine.lowrank import LowRankGW, factor_dense
from gwalign.graph import knn_graph
from gwalign.metrics import label_transfer_accuracy, shared_label_masks
from gwalign.preprocess import scale_rows
from real_data import DATASETS, data_folder


def geodesic_factors(x: np.ndarray, k: int, weights: str = "distance"):
    graph = knn_graph(torch.tensor(x), k, weights=weights)
    return factor_dense(PrecomputedDistances.from_graph(graph, torch.device("cpu"), torch.float64).dense(), 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="snareseq", choices=list(DATASETS))
    parser.add_argument("--normalise", nargs="+", default=["auto"], choices=["auto", "l2", "none"])
    parser.add_argument("--k", type=int, nargs="+", default=[10])
    parser.add_argument("--starts", default="sign", choices=["sign", "noise"])
    parser.add_argument("--edge-weights", default="distance", choices=["distance", "connectivity", "local"],
                        help="kNN edge lengths (gwalign.graph.knn_graph)")
    args = parser.parse_args()
    data = DATASETS[args.dataset]
    folder = data_folder(args.dataset, None)
    ls, lt = np.load(folder / f"{data.source_labels}.npy"), np.load(folder / f"{data.target_labels}.npy")
    keep_s, keep_t = shared_label_masks(ls, lt)
    a = torch.full((len(ls),), 1.0 / len(ls), dtype=torch.float64)
    b = torch.full((len(lt),), 1.0 / len(lt), dtype=torch.float64)
    oracle = (ls[:, None] == lt[None, :]).astype(np.float64)
    oracle /= oracle.sum()
    print("| normalise | k | best start: objective / label transfer | oracle: objective / label transfer "
          "| starts with label transfer > 0.6 |")
    print("|---|---|---|---|---|")
    for norm in args.normalise:
        xs = scale_rows(np.load(folder / f"{data.source}.npy"), norm)[0]
        xt = scale_rows(np.load(folder / f"{data.target}.npy"), norm)[0]
        for k in args.k:
            fs, ft = geodesic_factors(xs, k, args.edge_weights), geodesic_factors(xt, k, args.edge_weights)
            config = gwalign.GWConfig(device="cpu", dtype="float64", start_signs=3 if args.starts == "sign" else 0)
            solver = LowRankGW(fs, ft, a, b, config)
            grams = solver.start_grams(10)
            grams.append(fs.phi.T @ torch.tensor(oracle) @ ft.phi)
            results = []
            states = [solver.start(gram) for gram in grams]
            solver.run(states, config.max_iter)
            for state in states:
                projected = (ops.apply(state.plan, torch.tensor(xt)) / ops.row_mass(state.plan)[:, None]).numpy()
                results.append((state.history[-1], label_transfer_accuracy(
                    projected, ls, xt, lt, keep_source=keep_s, keep_target=keep_t)))
            best = min(results[:-1])
            good = sum(score > 0.6 for _, score in results[:-1])
            print(f"| {norm} | {k} | {best[0]:.4f} / {best[1]:.3f} | {results[-1][0]:.4f} / {results[-1][1]:.3f} "
                  f"| {good}/{len(results) - 1} |", flush=True)


if __name__ == "__main__":
    main()
