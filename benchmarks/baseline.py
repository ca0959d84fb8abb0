"""The simple recipe gwalign must beat: L2-scaled rows, kNN geodesics, POT's entropic GW at one ε.

Both sides' rows scaled to unit length, a kNN graph on each (k = 15, Euclidean edge lengths,
symmetrised), all-pairs shortest paths divided by their mean (a disconnected pair gets the largest
finite distance), and ``ot.gromov.entropic_gromov_wasserstein`` (square loss, uniform marginals,
Sinkhorn as POT runs it) at ε = :data:`EPSILON` of the product plan's GW cost. The target is projected
into the source's space by the plan (barycentric, as SCOT does) and scored there as
``benchmarks/compare_real.py`` scores projections. ``benchmarks/real_data.py --baseline`` prints
its row beside gwalign's; on its own:

    python benchmarks/baseline.py --datasets all
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ot
from scipy.sparse.csgraph import shortest_path
from sklearn.neighbors import kneighbors_graph

from gwalign.metrics import foscttm, label_transfer_accuracy, shared_label_masks

#: Neighbours of each kNN graph (gwalign's automatic k).
K = 15

#: ε relative to the product plan's GW cost (gwalign's automatic relative ε with exact distances).
EPSILON = 0.01


def geodesics(x: np.ndarray, k: int = K) -> np.ndarray:
    """Shortest paths on the symmetrised kNN graph (Euclidean edge lengths), divided by their mean."""
    graph = kneighbors_graph(x, min(k, len(x) - 1), mode="distance")
    dist = shortest_path(graph.maximum(graph.T), directed=False)
    finite = np.isfinite(dist)
    dist[~finite] = dist[finite].max()
    return dist / dist.mean()


def baseline_plan(xs: np.ndarray, xt: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """The recipe's coupling of ``xs``'s cells (rows) with ``xt``'s (columns)."""
    unit = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in (xs, xt)]
    cs, ct = geodesics(unit[0]), geodesics(unit[1])
    p, q = np.full(len(xs), 1 / len(xs)), np.full(len(xt), 1 / len(xt))
    # The product plan's GW cost: the mean of (D_s - D_t)^2 over independent pairs.
    scale = float(p @ (cs ** 2) @ p + q @ (ct ** 2) @ q - 2 * (p @ cs @ p) * (q @ ct @ q))
    return ot.gromov.entropic_gromov_wasserstein(cs, ct, p, q, "square_loss", epsilon=epsilon * scale,
                                                 max_iter=200)


def baseline_scores(xs: np.ndarray, xt: np.ndarray, ls: np.ndarray, lt: np.ndarray, paired: bool
                    ) -> dict[str, float]:
    """FOSCTTM (paired data) and shared-type label transfer of the recipe, the target projected into
    the source's space; ``time`` in seconds."""
    tick = time.perf_counter()
    plan = baseline_plan(xs, xt)
    projected = (plan.T / np.maximum(plan.sum(axis=0)[:, None], 1e-300)) @ xs
    keep_s, keep_t = shared_label_masks(ls, lt)
    scores = {"label_transfer": label_transfer_accuracy(xs, ls, projected, lt, keep_source=keep_s, keep_target=keep_t)}
    if paired:
        scores["foscttm"] = foscttm(xs, projected)
    scores["time"] = time.perf_counter() - tick
    return scores


def main() -> None:
    from real_data import DATASETS, load_pair

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["snareseq"], choices=[*DATASETS, "all"])
    args = parser.parse_args()
    print("| data | FOSCTTM | label transfer | time (s) |")
    print("|---|---|---|---|")
    for name in list(DATASETS) if "all" in args.datasets else args.datasets:
        xs, xt, ls, lt = load_pair(name, normalise="none")
        s = baseline_scores(xs, xt, ls, lt, DATASETS[name].paired)
        fos = f"{s['foscttm']:.3f}" if "foscttm" in s else "–"
        print(f"| {name} | {fos} | {s['label_transfer']:.3f} | {s['time']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
