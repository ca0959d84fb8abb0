"""Symmetric kNN distance graphs, stitched into one connected component.

Geodesic (shortest-path) distances on a kNN graph approximate distances along the data manifold
(Isomap; SCOT uses the same construction). A disconnected graph would give infinite distances, so
components are joined by bridge edges between their closest points.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional
import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from gwalign import distributed
from gwalign.geometry.approximate_knn import Search, approximate_knn, searches_approximately
from gwalign.geometry.symmetric import symmetric_graph


@dataclass(frozen=True)
class KNNGraph:
    """A symmetric, connected kNN graph.

    Attributes
    ----------
    matrix
        CSR N×N with Euclidean edge weights (strictly positive).
    k
        Neighbours per point used to build it.
    n_components
        Connected components before stitching.
    n_bridges
        Bridge edges added to connect them.
    """

    matrix: sp.csr_matrix
    k: int
    n_components: int
    n_bridges: int

    @property
    def n_points(self) -> int:
        return self.matrix.shape[0]


def knn_graph(x: torch.Tensor, k: int, candidate_k: int = 30, block_rows: int = 2048,
              weights: str = "distance", search: Search = "auto", seed: int = 0) -> KNNGraph:
    """Build the symmetric kNN graph of ``x`` and stitch its components.

    Parameters
    ----------
    x
        N×d representation.
    k
        Neighbours per point (excluding the point itself).
    candidate_k
        Neighbours searched per point when looking for bridges between components.
    block_rows
        Rows per block on the GPU path.
    weights
        ``distance``: Euclidean edge lengths (geodesics approximate manifold distances).
        ``connectivity``: every kNN edge has length 1, so shortest paths count hops (SCOT's
        choice); a bridge between components gets its length over the mean kNN edge length.
        ``local``: ``d_ij / sqrt(σ_i σ_j)`` with σ the distance to the k-th neighbour (self-tuning
        scale, Zelnik-Manor & Perona 2004): dense and sparse regions count alike, lengths kept.
    search, seed
        Neighbour search: ``exact`` (:func:`exact_knn`; ``cdist`` + ``topk`` on a GPU),
        ``fused`` (exact; :func:`fused_topk` on a GPU), ``approximate``
        (:func:`~gwalign.geometry.approximate_knn.approximate_knn`, seeded) or ``auto`` (fused on
        a GPU, approximate on the CPU above ``APPROXIMATE_MIN_POINTS`` points).

    Returns
    -------
    KNNGraph
    """
    n = x.shape[0]
    search_k = min(n - 1, max(k, candidate_k))
    dist, idx = _nearest(x, search_k, block_rows, search, seed)
    graph = symmetric_graph(_positive(dist[:, :k]), idx[:, :k], x.device)
    if weights not in ("distance", "connectivity", "local"):
        raise ValueError(f"weights must be 'distance', 'connectivity' or 'local', got {weights!r}")
    unit = float(graph.data.mean()) if weights == "connectivity" else 1.0
    sigma = np.maximum(_positive(dist[:, k - 1]), 1e-300)
    if weights == "connectivity":
        graph.data[:] = 1.0
    elif weights == "local":
        coo = graph.tocoo()
        graph = sp.csr_matrix((coo.data / np.sqrt(sigma[coo.row] * sigma[coo.col]), (coo.row, coo.col)),
                              shape=(n, n))
    n_components, labels = connected_components(graph, directed=False)
    bridges = _stitch(x, labels, dist, idx) if n_components > 1 else []
    if bridges:
        b_rows, b_cols, b_w = (np.array(t) for t in zip(*bridges))
        if weights == "connectivity":
            b_w = np.maximum(b_w / unit, 1.0)
        elif weights == "local":
            b_w = b_w / np.sqrt(sigma[b_rows] * sigma[b_cols])
        extra = sp.csr_matrix((_positive(b_w), (b_rows, b_cols)), shape=(n, n))
        graph = graph.maximum(extra).maximum(extra.T).tocsr()
        # Without bridges the first count already said one component.
        final_components, _ = connected_components(graph, directed=False)
        assert final_components == 1, "graph stitching failed to connect the graph"
    return KNNGraph(matrix=graph, k=k, n_components=n_components, n_bridges=len(bridges))


def _positive(weights: np.ndarray) -> np.ndarray:
    """Duplicate points give zero-length edges; csgraph would drop them, so keep them tiny."""
    weights = np.asarray(weights, dtype=np.float64)
    floor = max(float(weights.max(initial=0.0)), 1.0) * 1e-12
    return np.maximum(weights, floor)


#: Largest distance block of the GPU kNN search.
KNN_BLOCK_ELEMENTS = 1 << 28


def _nearest(x: torch.Tensor, k: int, block_rows: int, search: Search = "auto", seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (self excluded), sorted by distance: (distances, indices) N×k."""
    return _drop_self(*search_knn(x, x, k + 1, block_rows, search, seed), k)


def nearest_between(train: torch.Tensor, query: torch.Tensor, k: int, block_rows: int = 2048,
                    search: Search = "auto") -> np.ndarray:
    """Indices (Q×k) of each query row's ``k`` nearest training rows, nearest first, searched
    where the tensors live (so atlas-sized label transfer stays on the GPU)."""
    return search_knn(train, query, min(k, train.shape[0]), block_rows, search)[1]


def search_knn(train: torch.Tensor, query: torch.Tensor, k: int, block_rows: int = 2048,
               search: Search = "auto", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_knn`, or :func:`~gwalign.geometry.approximate_knn.approximate_knn` where the
    policy ``search`` says so (:func:`~gwalign.geometry.approximate_knn.searches_approximately`)."""
    if searches_approximately(train, search):
        return approximate_knn(train, query, k, seed)
    return exact_knn(train, query, k, block_rows, fused=search in ("fused", "auto"))


def exact_knn(train: torch.Tensor, query: torch.Tensor, k: int, block_rows: int = 2048, fused: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of the query rows among the training rows, searched where the tensors live.

    CUDA: :func:`blocked_topk`. CPU: :func:`cpu_topk` up to :func:`brute_force_limit` training
    rows, scikit-learn's ``NearestNeighbors`` above. Both exact; ties come in either order.

    Parameters
    ----------
    train, query
        M×d and Q×d points (``query`` may be ``train`` itself, then each point finds itself).
    k
        Neighbours per query row, at most M.
    block_rows
        Query rows per block on the GPU.
    fused
        On the GPU, search with :func:`fused_topk` where it applies, instead of ``cdist`` + ``topk``.

    Returns
    -------
    tuple of numpy.ndarray
        Distances (float64) and indices, each Q×k, nearest first.
    """
    if train.is_cuda:
        return blocked_topk(train, query, k, block_rows, fused)
    if train.shape[0] <= brute_force_limit():
        return cpu_topk(train, query, k)
    from sklearn.neighbors import NearestNeighbors
    data = train.detach().cpu().numpy().astype(np.float64, copy=False)
    queries = data if query is train else query.detach().cpu().numpy().astype(np.float64, copy=False)
    return NearestNeighbors(n_neighbors=k).fit(data).kneighbors(queries)


#: Training rows up to which the CPU search is :func:`cpu_topk` (hundredths of a second there);
#: above, scikit-learn's is faster (1.4–1.8× at 10,000 and 50,000 points on one thread) and keeps
#: its speed on shared cores. Until scikit-learn is imported, its import (1.2–1.4 s) outweighs that
#: up to :data:`CPU_BRUTE_MAX_POINTS_COLD`: at 5,000 points ``cpu_topk`` takes 0.16–0.19 s on 2
#: threads, scikit-learn 0.10–0.15 s (``python benchmarks/knn.py``, docs/performance.md).
CPU_BRUTE_MAX_POINTS = 2_000
CPU_BRUTE_MAX_POINTS_COLD = 5_000


def brute_force_limit() -> int:
    """Training rows up to which the CPU search is :func:`cpu_topk`: :data:`CPU_BRUTE_MAX_POINTS`
    once scikit-learn is imported, :data:`CPU_BRUTE_MAX_POINTS_COLD` before."""
    return CPU_BRUTE_MAX_POINTS if "sklearn.neighbors" in sys.modules else CPU_BRUTE_MAX_POINTS_COLD


#: Largest distance block of the CPU kNN search (float64: 8 MiB): the memory the search adds stays
#: below 100 MB up to 50,000 points, and larger blocks were no faster.
CPU_KNN_BLOCK_ELEMENTS = 1 << 20


def cpu_topk(train: torch.Tensor, query: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN on the CPU by blocks of squared distances and ``topk``, in float64.

    Candidates are ranked by ``|t|² - 2 q·t`` of the centred points (the query's own norm does not
    change its ranking), which is what scikit-learn's brute-force search computes too; the
    distances returned are then recomputed as ``|q - t|`` of the chosen pairs, and each row is
    sorted by them. Points at equal distance come in either order, as with scikit-learn; a
    candidate whose distance to the query is within rounding (about 1e-16 of the squared norms) of
    the k-th may be chosen in its place.

    Returns
    -------
    tuple of numpy.ndarray
        Distances (float64) and indices (int64), each Q×k, nearest first.
    """
    data = train.detach().cpu().to(torch.float64)
    centre = data.mean(dim=0, keepdim=True)
    data = data - centre
    queries = data if query is train else query.detach().cpu().to(torch.float64) - centre
    norms = (data * data).sum(dim=1).unsqueeze(0)
    rows = max(1, min(queries.shape[0], CPU_KNN_BLOCK_ELEMENTS // max(data.shape[0], 1)))
    dists = np.empty((queries.shape[0], k))
    idxs = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], rows):
        block = queries[start:start + rows]
        # norms - 2 block @ data.T, in one BLAS call.
        scores = torch.addmm(norms, block, data.T, beta=1.0, alpha=-2.0)
        chosen = scores.topk(k, dim=1, largest=False, sorted=False).indices
        exact = (block.unsqueeze(1) - data[chosen]).square_().sum(dim=2).sqrt_()
        exact, order = exact.sort(dim=1, stable=True)
        dists[start:start + rows] = exact.numpy()
        idxs[start:start + rows] = chosen.gather(1, order).numpy()
    return dists, idxs


def blocked_topk(train: torch.Tensor, query: torch.Tensor, k: int, block_rows: int, fused: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Blocked exact kNN with ``cdist`` + ``topk`` (GPU path), or with :func:`fused_topk` when
    ``fused`` and it applies.

    A block holds at most ``KNN_BLOCK_ELEMENTS`` distances (1 GiB in float32; at 1M points
    2048 rows would take 8 GiB), and results stay on the device until one final copy.
    """
    rows = max(64, min(block_rows, KNN_BLOCK_ELEMENTS // max(train.shape[0], 1)))
    fused = fused and _fused_search_fits(train, query, k)

    def search(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        if fused:
            return fused_topk(train, query[lo:hi], k)
        dists, idxs = [], []
        for i0 in range(lo, hi, rows):
            d, i = torch.cdist(query[i0:min(i0 + rows, hi)], train).topk(k, dim=1, largest=False)
            dists.append(d)
            idxs.append(i)
        if not dists:
            return query.new_zeros((0, k)), torch.zeros((0, k), dtype=torch.long, device=query.device)
        return torch.cat(dists), torch.cat(idxs)

    group = distributed.active()
    # In a distributed alignment each rank searches its share of the query blocks (the same
    # blocks as one process) and every rank gets all of them.
    found = search(0, query.shape[0]) if group is None else \
        group.rows(query.shape[0], rows, query.shape[0] * train.shape[0], search)
    return found[0].double().cpu().numpy(), found[1].cpu().numpy()


def _fused_search_fits(train: torch.Tensor, query: torch.Tensor, k: int) -> bool:
    """Whether :func:`fused_topk` can search these points (CUDA, float32, the top-k kernel's
    limits on k and on the feature width)."""
    from gwalign.engine.ops import triton_enabled

    if not triton_enabled(train):
        return False
    from gwalign.kernels.tiles import plan_supports
    from gwalign.kernels.topk import MAX_TOPK

    return 0 < k <= MAX_TOPK and plan_supports(train, query)


#: Query rows whose neighbours' distances are recomputed at once in :func:`fused_topk`.
DISTANCE_ROWS = 1 << 15


def fused_topk(train: torch.Tensor, query: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact kNN with the fused top-k kernel: no block of distances is written to memory.

    A query row's nearest training rows are those with the largest ``2⟨q_i, t_j⟩ − |t_j|²``,
    which is a plan's logit (:func:`gwalign.kernels.topk.topk_triton` with ``p_i = −|q_i|²``,
    ``q_j = −|t_j|²``, ε = 1) on points centred on the training mean (translation leaves the
    order unchanged and keeps the products small). The distances of the neighbours found are
    then computed directly from the points, and each row sorted by them.

    Returns
    -------
    tuple of torch.Tensor
        Distances and indices, Q×k each, nearest first, on the points' device.
    """
    import triton
    from gwalign.kernels.topk import MAX_TOPK, topk_triton

    centre = train.mean(dim=0)
    points, queries = train - centre, query - centre
    # The kernel keeps a buffer of the next power of two ≥ k; all of it is taken and the cut to
    # k made on distances recomputed from the points: the kernel's logits 2⟨q, t⟩ − |t|² lose
    # digits to cancellation, so near-ties at the k-th place may be out of order there.
    kept = min(triton.next_power_of_2(k), MAX_TOPK, points.shape[0])
    _, found = topk_triton(queries, points, -(queries * queries).sum(dim=1), -(points * points).sum(dim=1), 1.0, kept,
                           early_exit=True)
    dists = torch.empty(found.shape, dtype=train.dtype, device=train.device)
    for lo in range(0, queries.shape[0], DISTANCE_ROWS):
        hi = min(lo + DISTANCE_ROWS, queries.shape[0])
        dists[lo:hi] = (queries[lo:hi, None, :] - points[found[lo:hi]]).norm(dim=2)
    dists, order = dists.sort(dim=1)
    return dists[:, :k], found.gather(1, order[:, :k])


def _drop_self(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each point from its own neighbour list (ties with duplicates may put it anywhere)."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    # Rows where self is absent (many exact duplicates): drop the last column instead.
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    keep = ~is_self
    return dist[keep].reshape(n, k), idx[keep].reshape(n, k)


def _stitch(x: torch.Tensor, labels: np.ndarray, cand_dist: np.ndarray,
            cand_idx: np.ndarray) -> list[tuple[int, int, float]]:
    """Borůvka rounds: join every component to its closest other component.

    Each round, every component takes its shortest edge to another component among the
    precomputed neighbour candidates (one search for all rounds: no tree is rebuilt). When no
    component has a candidate (well-separated clusters), the smallest component is searched
    exhaustively against the rest. Rounds at least halve the number of components.
    """
    labels = labels.copy()
    bridges: list[tuple[int, int, float]] = []
    points = x.detach().cpu().to(torch.float64)
    while True:
        n_comp = labels.max() + 1
        if n_comp == 1:
            return bridges
        other = labels[cand_idx] != labels[:, None]
        has = other.any(axis=1)
        first = np.argmax(other, axis=1)
        rows = np.nonzero(has)[0]
        cols = cand_idx[rows, first[rows]]
        dists = cand_dist[rows, first[rows]]
        comps = labels[rows]
        # Shortest candidate edge per component: sort by (component, distance), keep the first.
        order = np.lexsort((dists, comps))
        lead = order[np.r_[True, comps[order][1:] != comps[order][:-1]]] if len(order) else order
        edges: dict[int, tuple[float, int, int]] = {
            int(comps[t]): (float(dists[t]), int(rows[t]), int(cols[t])) for t in lead
        }
        if not edges:
            sizes = np.bincount(labels)
            smallest = int(np.argmin(sizes))
            inside = np.nonzero(labels == smallest)[0]
            outside = np.nonzero(labels != smallest)[0]
            d_best, i_best, j_best = np.inf, -1, -1
            for start in range(0, len(inside), 1024):
                block = inside[start:start + 1024]
                dist = torch.cdist(points[block], points[outside])
                flat = int(torch.argmin(dist))
                r, c = divmod(flat, dist.shape[1])
                if float(dist[r, c]) < d_best:
                    d_best, i_best, j_best = float(dist[r, c]), int(block[r]), int(outside[c])
            edges[smallest] = (d_best, i_best, j_best)
        # Keep a forest: shortest first, skip edges whose ends are already joined (two
        # components often pick the same edge, and candidate-limited choices can close a cycle).
        parent = list(range(n_comp))

        def root(c: int) -> int:
            while parent[c] != c:
                parent[c] = parent[parent[c]]
                c = parent[c]
            return c

        kept = []
        for d, i, j in sorted(edges.values()):
            ri, rj = root(int(labels[i])), root(int(labels[j]))
            if ri != rj:
                parent[ri] = rj
                kept.append((i, j, d))
        bridges.extend(kept)
        # Merge the components joined by this round's bridges.
        link = sp.csr_matrix((np.ones(len(kept)), ([labels[i] for i, _, _ in kept],
                                                    [labels[j] for _, j, _ in kept])),
                             shape=(n_comp, n_comp))
        _, merged = connected_components(link, directed=False)
        labels = merged[labels]


def knn_vote(train: np.ndarray, codes: np.ndarray, query: np.ndarray, n_classes: int, k: int,
             device: torch.device, dtype: Optional[torch.dtype] = None, search: Search = "auto") -> np.ndarray:
    """Majority class code among each query row's ``k`` nearest training rows (Euclidean; ties go
    to the smallest code, as scikit-learn's ``KNeighborsClassifier``), searched on ``device``
    (default precision: float64 on the CPU, float32 on a GPU)."""
    dtype = dtype or (torch.float64 if device.type == "cpu" else torch.float32)
    idx = nearest_between(torch.as_tensor(train, dtype=dtype, device=device),
                          torch.as_tensor(query, dtype=dtype, device=device), k, search=search)
    votes = np.zeros((len(query), n_classes))
    np.add.at(votes, (np.repeat(np.arange(len(query)), idx.shape[1]), np.asarray(codes)[idx].ravel()), 1.0)
    return votes.argmax(axis=1)
