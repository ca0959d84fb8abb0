"""UMAP (McInnes, Healy & Melville 2018) of a low-dimensional embedding, without numba.

``gwalign run`` draws its ``joint_umap.png`` with these functions. They compute what
``scanpy.pp.neighbors`` (exact neighbours, ``method="umap"``) and ``scanpy.tl.umap`` compute, with
the same parameters: the fuzzy simplicial set of each cell's ``n_neighbors`` nearest cells (itself
included), the curve parameters ``a``, ``b`` fitted to ``min_dist`` and ``spread``, a spectral
initial layout, then stochastic gradient descent with ``negative_sample_rate`` negative samples
per edge sample and a learning rate falling linearly to zero. The graph equals scanpy's
(``tests/results/test_umap_layout.py`` compares them). The layout differs from umap-learn's in its
random draws, in that the updates of one epoch are computed from the positions at its start and
applied together (vectorised), where umap-learn applies each edge's update before the next, and in
the start of a graph in several pieces: the first two principal components of the points, where
umap-learn lays the pieces out one by one.

umap-learn compiles its functions with numba on first use in every process, and importing it
compiles pynndescent's on the first run after installation: on 2 CPU cores scanpy's UMAP of the
example pair takes about 7 s in a new process, most of it compiling, and 17 s more once; this one
takes under 2 s (docs/performance.md, "Start-up, figures and the example command").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: umap-learn's tolerance of the search of each cell's bandwidth, and the floor of the bandwidth
#: relative to the mean neighbour distance (``SMOOTH_K_TOLERANCE``, ``MIN_K_DIST_SCALE``).
BANDWIDTH_TOLERANCE = 1e-5
MIN_BANDWIDTH_SCALE = 1e-3


@dataclass(frozen=True)
class UmapGraph:
    """A kNN graph in scanpy's form.

    Attributes
    ----------
    distances
        CSR N×N: each cell's ``n_neighbors - 1`` nearest other cells and their distances
        (``obsp["distances"]``).
    connectivities
        CSR N×N, symmetric: the fuzzy union of the cells' fuzzy simplicial sets
        (``obsp["connectivities"]``).
    n_neighbors
        Neighbours per cell, the cell itself included (scanpy's ``n_neighbors``).
    """

    distances: sp.csr_matrix
    connectivities: sp.csr_matrix
    n_neighbors: int


def umap_graph(x: np.ndarray, n_neighbors: int = 15) -> UmapGraph:
    """The exact kNN graph of ``x`` and its UMAP connectivities, as ``scanpy.pp.neighbors(adata,
    n_neighbors, transformer="sklearn")`` computes them.

    Parameters
    ----------
    x
        N×d points (Euclidean).
    n_neighbors
        Neighbours per cell, the cell itself included; at most N.

    Returns
    -------
    UmapGraph
    """
    import torch

    from gwalign.geometry.knn import exact_knn

    n = x.shape[0]
    n_neighbors = max(2, min(n_neighbors, n))
    points = torch.as_tensor(np.asarray(x, dtype=np.float64))
    dist, idx = exact_knn(points, points, n_neighbors)
    # Each cell first (scanpy's convention), also where a duplicate point came before it.
    own = idx == np.arange(n)[:, None]
    missing = ~own.any(axis=1)
    own[missing, -1] = True
    others = np.where(own, -1, np.arange(n_neighbors))
    order = np.argsort(others, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    dist = np.take_along_axis(dist, order, axis=1)
    idx[:, 0], dist[:, 0] = np.arange(n), 0.0
    rows = np.repeat(np.arange(n), n_neighbors - 1)
    distances = sp.csr_matrix((dist[:, 1:].ravel(), (rows, idx[:, 1:].ravel())), shape=(n, n))
    return UmapGraph(distances, fuzzy_simplicial_set(idx, dist), n_neighbors)


def fuzzy_simplicial_set(idx: np.ndarray, dist: np.ndarray) -> sp.csr_matrix:
    """UMAP's connectivities of a kNN table whose first column is each cell itself.

    Each cell's distances beyond its nearest neighbour's (ρ) are scaled by the bandwidth σ at
    which its memberships ``exp(-(d - ρ) / σ)`` sum to ``log2(k)`` (bisection, as umap-learn's
    ``smooth_knn_dist`` with ``local_connectivity`` 1); the symmetric graph is the fuzzy union
    ``W + Wᵀ - W ∘ Wᵀ``.

    Parameters
    ----------
    idx, dist
        N×k neighbour indices and distances, nearest first, column 0 the cell itself.

    Returns
    -------
    scipy.sparse.csr_matrix
        N×N, symmetric, float32.
    """
    n, k = idx.shape
    dist = np.asarray(dist, dtype=np.float32).astype(np.float64)
    positive = dist > 0.0
    has = positive.any(axis=1)
    rho = np.where(has, dist[np.arange(n), np.argmax(positive, axis=1)], 0.0)
    sigma = _bandwidths(dist[:, 1:], rho, np.log2(k))
    mean_row = dist.mean(axis=1)
    sigma = np.maximum(sigma, MIN_BANDWIDTH_SCALE * np.where(rho > 0.0, mean_row, dist.mean()))
    # Membership 1 up to ρ (and wherever σ is 0), exp(-(d - ρ) / σ) beyond.
    excess = np.maximum(dist - rho[:, None], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(sigma[:, None] > 0.0, np.exp(-excess / sigma[:, None]), 1.0)
    weights[idx == np.arange(n)[:, None]] = 0.0
    rows = np.repeat(np.arange(n), k)
    local = sp.csr_matrix((weights.ravel(), (rows, idx.ravel())), shape=(n, n))
    local.eliminate_zeros()
    product = local.multiply(local.T)
    union = (local + local.T - product).tocsr().astype(np.float32)
    union.eliminate_zeros()
    return union


def _bandwidths(dist: np.ndarray, rho: np.ndarray, target: float, n_iter: int = 64) -> np.ndarray:
    """σ per row such that ``Σ_j exp(-max(d_j - ρ, 0) / σ)`` is ``target``: the bisection of
    umap-learn's ``smooth_knn_dist``, on all rows at once (a row stops where its sum is within
    ``BANDWIDTH_TOLERANCE``)."""
    n = dist.shape[0]
    excess = np.maximum(dist - rho[:, None], 0.0)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        rows = np.nonzero(active)[0]
        if not len(rows):
            break
        total = np.exp(-excess[rows] / mid[rows, None]).sum(axis=1)
        done = np.abs(total - target) < BANDWIDTH_TOLERANCE
        active[rows[done]] = False
        rows, total = rows[~done], total[~done]
        above = total > target
        hi[rows[above]] = mid[rows[above]]
        lo[rows[~above]] = mid[rows[~above]]
        bounded = np.isfinite(hi[rows])
        mid[rows] = np.where(bounded, (lo[rows] + hi[rows]) / 2.0, mid[rows] * 2.0)
    return mid


#: :func:`curve_parameters` of scanpy's defaults (``min_dist`` 0.5, ``spread`` 1) and umap-learn's
#: (0.1, 1), stored: importing ``scipy.optimize`` for the fit costs about 0.3 s (the tests refit them).
STORED_CURVES = {(0.5, 1.0): (0.5830300203414425, 1.3341669924314914),
                 (0.1, 1.0): (1.5769434602697652, 0.8950608778515733)}


def curve_parameters(min_dist: float = 0.5, spread: float = 1.0) -> tuple[float, float]:
    """``a``, ``b`` of the embedding's similarity ``1 / (1 + a d^(2b))``, least-squares fitted to
    ``exp(-(d - min_dist) / spread)`` beyond ``min_dist`` and 1 below (umap-learn's
    ``find_ab_params``; :data:`STORED_CURVES` for the usual two)."""
    stored = STORED_CURVES.get((float(min_dist), float(spread)))
    if stored is not None:
        return stored
    from scipy.optimize import curve_fit

    xv = np.linspace(0.0, spread * 3.0, 300)
    yv = np.where(xv < min_dist, 1.0, np.exp(-(xv - min_dist) / spread))
    params, _ = curve_fit(lambda d, a, b: 1.0 / (1.0 + a * d ** (2.0 * b)), xv, yv)
    return float(params[0]), float(params[1])


def default_epochs(n_cells: int) -> int:
    """scanpy's and umap-learn's number of epochs: 500 up to 10,000 cells, 200 above."""
    return 500 if n_cells <= 10_000 else 200


def umap_layout(connectivities: sp.spmatrix, x: np.ndarray, seed: int = 0, *, n_epochs: int | None = None,
                min_dist: float = 0.5, spread: float = 1.0, negative_sample_rate: int = 5,
                gamma: float = 1.0, learning_rate: float = 1.0) -> tuple[np.ndarray, tuple[float, float]]:
    """Lay out the graph ``connectivities`` in two dimensions as UMAP does (scanpy's defaults).

    Parameters
    ----------
    connectivities
        N×N symmetric UMAP connectivities (:func:`umap_graph`).
    x
        The N×d points the graph was built on: the initial layout of a graph in several pieces is
        their first two principal components.
    seed
        Seed of the noise of the initial layout and of the negative samples.
    n_epochs
        ``None``: :func:`default_epochs`.
    min_dist, spread, negative_sample_rate, gamma, learning_rate
        As in ``scanpy.tl.umap`` (``alpha`` there is ``learning_rate``).

    Returns
    -------
    tuple
        The N×2 layout (float32) and the curve parameters ``(a, b)``.

    Raises
    ------
    ValueError
        If ``connectivities`` is not symmetric.
    """
    rng = np.random.default_rng(seed)
    n = connectivities.shape[0]
    epochs = default_epochs(n) if n_epochs is None else int(n_epochs)
    a, b = curve_parameters(min_dist, spread)
    graph = _sampled_graph(connectivities, epochs)
    layout = initial_layout(graph, x, rng)
    if epochs <= 0 or not graph.nnz:
        return layout, (a, b)
    edges = graph.tocoo()   # row-major: the heads of any subset of edges come sorted
    head, tail, weight = edges.row.astype(np.int64), edges.col.astype(np.int64), edges.data
    # Edge e is sampled every weight.max() / weight[e] epochs (at least every epoch), and each
    # sample brings negative_sample_rate repulsions from cells drawn uniformly.
    every = weight.max() / weight
    every_negative = every / negative_sample_rate
    next_sample, next_negative = every.copy(), every_negative.copy()
    px, py = layout[:, 0].copy(), layout[:, 1].copy()
    a32, b32 = np.float32(a), np.float32(b)
    for epoch in range(epochs):
        now = np.nonzero(next_sample <= epoch)[0]
        if not len(now):
            continue
        alpha = np.float32(learning_rate * (1.0 - max(epoch - 1, 0) / float(epochs)))
        heads, tails = head[now], tail[now]
        count = np.maximum(np.floor((epoch - next_negative[now]) / every_negative[now]), 0.0).astype(np.int64)
        next_sample[now] += every[now]
        next_negative[now] += count * every_negative[now]
        # Attraction along the sampled edges. Edge (i, j) moves i by +g and j by -g, and its twin
        # (j, i), sampled in the same epochs (equal weights), moves i by +g again: so each head
        # moves by 2g and no tail needs a move of its own.
        dx, dy = px[heads] - px[tails], py[heads] - py[tails]
        d2 = dx * dx + dy * dy
        with np.errstate(divide="ignore", invalid="ignore"):
            power = np.power(d2, b32 - 1.0)
            coeff = np.where(d2 > 0.0, (-2.0 * a32 * b32) * power / (a32 * power * d2 + 1.0), 0.0)
        _move(px, py, heads, dx, dy, coeff * (2.0 * alpha), 8.0 * alpha)
        # Repulsion from random cells: only the sampled edge's head moves. A cell drawn at the
        # head's own position has ex = ey = 0, so it moves nothing, as in umap-learn.
        sources = np.repeat(heads, count)
        if len(sources):
            _repel(px, py, sources, rng, (a32, b32, np.float32(gamma)), alpha)
    return np.stack([px, py], axis=1), (a, b)


def _sampled_graph(connectivities: sp.spmatrix, epochs: int) -> sp.csr_matrix:
    """A float64 copy of the symmetric ``connectivities`` without the edges too weak to be sampled
    once in all the epochs, as umap-learn drops them (counting the default epochs when given 10 or
    fewer)."""
    # A copy of its own: scipy shares the index arrays of a matrix converted to another dtype, and
    # dropping weak edges edits them in place.
    graph = sp.csr_matrix(connectivities, dtype=np.float64, copy=True)
    graph.sum_duplicates()
    if (abs(graph - graph.T) > 0).nnz:
        raise ValueError("connectivities must be symmetric (UMAP's fuzzy union of the kNN graph)")
    counted = epochs if epochs > 10 else default_epochs(graph.shape[0])
    graph.data[graph.data < graph.data.max() / float(counted)] = 0.0
    graph.eliminate_zeros()
    return graph


def _repel(px: np.ndarray, py: np.ndarray, sources: np.ndarray, rng: np.random.Generator,
           curve: tuple[np.float32, np.float32, np.float32], alpha: np.float32) -> None:
    """Move each of ``sources`` away from one cell drawn uniformly (UMAP's negative sample), in
    place; ``curve`` holds ``(a, b, gamma)``."""
    a32, b32, gamma = curve
    n = len(px)
    others = (rng.random(len(sources), dtype=np.float32) * n).astype(np.int64)
    np.minimum(others, n - 1, out=others)
    ex, ey = px[sources], py[sources]
    ex -= px[others]
    ey -= py[others]
    e2 = ex * ex
    e2 += ey * ey
    denominator = np.power(e2, b32)
    denominator *= a32
    denominator += 1.0
    e2 += 0.001
    denominator *= e2
    coeff = np.divide(2.0 * gamma * b32 * alpha, denominator, out=denominator)
    _move(px, py, sources, ex, ey, coeff, 4.0 * alpha)


def _move(px: np.ndarray, py: np.ndarray, rows: np.ndarray, dx: np.ndarray, dy: np.ndarray,
          coeff: np.ndarray, limit: float) -> None:
    """Add ``coeff * (dx, dy)``, each coordinate clipped to ``±limit``, to the cells ``rows``
    (sorted: each cell's updates are one run, summed with ``reduceat``)."""
    firsts = np.concatenate(([0], np.nonzero(rows[1:] != rows[:-1])[0] + 1))
    cells = rows[firsts]
    for position, delta in ((px, dx), (py, dy)):
        step = np.multiply(coeff, delta, out=delta)
        np.clip(step, -limit, limit, out=step)
        position[cells] += np.add.reduceat(step, firsts)


def initial_layout(graph: sp.csr_matrix, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """UMAP's starting layout: the spectral layout of a connected graph (the eigenvectors of the
    normalised adjacency ``D^-1/2 W D^-1/2`` after the first, which are those of the normalised
    Laplacian umap-learn uses), else the first two principal components of ``x``; scaled to
    ``[0, 10]`` per axis after a little noise (umap-learn's ``noisy_scale_coords``)."""
    from scipy.sparse.csgraph import connected_components

    n = graph.shape[0]
    coords = None
    if n > 3 and connected_components(graph, directed=False)[0] == 1:
        coords = _spectral(graph)
    if coords is None:
        centred = np.asarray(x, dtype=np.float64) - np.asarray(x, dtype=np.float64).mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        coords = u[:, :2] * s[:2]
        if coords.shape[1] < 2:
            coords = np.hstack([coords, np.zeros((n, 2 - coords.shape[1]))])
    scale = np.abs(coords).max()
    coords = coords * (10.0 / scale if scale > 0 else 1.0) + rng.normal(scale=1e-4, size=coords.shape)
    low, high = coords.min(axis=0), coords.max(axis=0)
    return (10.0 * (coords - low) / np.where(high > low, high - low, 1.0)).astype(np.float32)


#: Lanczos vectors of the spectral start's eigensolver. umap-learn takes √N; at 20,000 cells 32 were
#: twice as fast (0.75 s against 1.7 s on one busy core) with the same result to its tolerance.
SPECTRAL_LANCZOS_VECTORS = 32


def _spectral(graph: sp.csr_matrix) -> np.ndarray | None:
    """Eigenvectors 2 and 3 of the normalised adjacency (``None`` if the solver does not converge)."""
    from scipy.sparse.linalg import ArpackError, eigsh

    degree = np.asarray(graph.sum(axis=0)).ravel()
    scale = sp.diags(1.0 / np.sqrt(degree))
    normalised = (scale @ graph @ scale).tocsr()
    n = graph.shape[0]
    if n <= 2 * SPECTRAL_LANCZOS_VECTORS:
        values, vectors = np.linalg.eigh(normalised.toarray())
    else:
        try:
            values, vectors = eigsh(normalised, k=3, which="LA", ncv=SPECTRAL_LANCZOS_VECTORS, tol=1e-4,
                                    v0=np.ones(n), maxiter=n * 5)
        except ArpackError:
            return None
    order = np.argsort(values)[::-1]
    return vectors[:, order[1:3]]
