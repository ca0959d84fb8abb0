"""Approximate kNN for large inputs on the CPU: nearest-neighbour descent (pynndescent).

An exact search on the CPU costs O(N²) distance evaluations: minutes at 200,000 points on 2 cores,
hours at 1,000,000. Nearest-neighbour descent (Dong, Moses, Li 2011; pynndescent, which scanpy
already depends on) refines a random-projection-forest guess by exploring neighbours of
neighbours and costs about O(N^1.14). Its neighbours are not all the exact ones; docs/performance.md
("The kNN search on the CPU") gives its recall, its time against scikit-learn's exact search, and
what it does to the real pairs' accuracy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

#: Above this many training points, ``search="auto"`` on the CPU searches approximately
#: (docs/performance.md, "The kNN search on the CPU").
APPROXIMATE_MIN_POINTS = 100_000

Search = Literal["auto", "exact", "approximate", "fused"]


def searches_approximately(train: torch.Tensor, search: Search) -> bool:
    """Whether a kNN search among ``train`` under the policy ``search`` is approximate: always for
    ``approximate``; for ``auto``, on the CPU above :data:`APPROXIMATE_MIN_POINTS` points
    (``fused`` is exact: :func:`gwalign.geometry.knn.fused_topk` on a GPU, ``exact`` elsewhere)."""
    if search not in ("auto", "exact", "approximate", "fused"):
        raise ValueError(f"search must be 'auto', 'exact', 'approximate' or 'fused', got {search!r}")
    if search == "auto":
        return not train.is_cuda and train.shape[0] > APPROXIMATE_MIN_POINTS
    return search == "approximate"


def approximate_knn(train: torch.Tensor, query: torch.Tensor, k: int, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate kNN of the query rows among the training rows (Euclidean), on the CPU.

    Parameters
    ----------
    train, query
        M×d and Q×d points; with ``query is train`` each point's list starts with itself, as an
        exact search's does.
    k
        Neighbours per query row, at most M.
    seed
        Seed of the random projection trees that start the descent.

    Returns
    -------
    tuple of numpy.ndarray
        Distances (float64) and indices (int64), each Q×k, nearest first.
    """
    from pynndescent import NNDescent

    data = train.detach().cpu().numpy().astype(np.float32, copy=False)
    # The index's graph holds n_neighbors per point; a self-search reads it directly.
    index = NNDescent(data, n_neighbors=max(k, 2), metric="euclidean", random_state=seed, low_memory=True,
                      compressed=False, verbose=False)
    if query is train:
        idx, dist = index.neighbor_graph
        idx, dist = idx[:, :k], dist[:, :k]
    else:
        queries = query.detach().cpu().numpy().astype(np.float32, copy=False)
        idx, dist = index.query(queries, k=k)
    return _sorted(dist.astype(np.float64), idx.astype(np.int64))


def _sorted(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered nearest first (stable), whatever order the index returned."""
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


def recall(found_dist: np.ndarray, exact_dist: np.ndarray) -> float:
    """Share of the neighbours found that are as near as an exact neighbour: within each query's
    exact k-th distance (so a neighbour tied with an exact one counts as found)."""
    kth = exact_dist[:, -1:] * (1.0 + 1e-9)
    return float((found_dist <= kth).mean())
