"""Approximate kNN (nearest-neighbour descent): its neighbours against the exact ones, and when it is used."""

import numpy as np
import pytest
import torch

import gwalign
from gwalign.geometry.approximate_knn import APPROXIMATE_MIN_POINTS, approximate_knn, recall, searches_approximately
from gwalign.geometry.knn import exact_knn, knn_graph


def _clusters(n: int, seed: int = 0) -> torch.Tensor:
    """Points of 6 clusters on a 5-dimensional subspace of 20 dimensions, with noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(20, 5)))[0]
    centres = rng.normal(scale=4.0, size=(6, 5))
    x = (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, 5))) @ basis.T + 0.1 * rng.normal(size=(n, 20))
    return torch.as_tensor(x)


def test_self_search_finds_nearly_every_exact_neighbour():
    x = _clusters(3000)
    dist, idx = approximate_knn(x, x, 16)
    exact_dist, _ = exact_knn(x, x, 16)
    assert dist.dtype == np.float64 and idx.dtype == np.int64 and idx.shape == (3000, 16)
    assert (idx[:, 0] == np.arange(3000)).mean() > 0.99          # each point first, as in an exact search
    assert (np.diff(dist, axis=1) >= 0).all()
    assert recall(dist, exact_dist) > 0.95
    # The distances returned are the points' own.
    rows = np.arange(3000)[:, None]
    np.testing.assert_allclose(dist, np.linalg.norm(x.numpy()[rows] - x.numpy()[idx], axis=2), rtol=1e-5, atol=1e-5)


def test_query_search_finds_nearly_every_exact_neighbour():
    train, query = _clusters(3000, seed=1), _clusters(400, seed=1)[:400] + 0.05
    dist, _ = approximate_knn(train, query, 10)
    assert recall(dist, exact_knn(train, query, 10)[0]) > 0.9


def test_recall_counts_ties_with_the_kth_as_found():
    exact = np.array([[0.0, 1.0, 2.0]])
    assert recall(np.array([[0.0, 1.0, 2.0]]), exact) == 1.0
    assert recall(np.array([[0.0, 1.0, 3.0]]), exact) == pytest.approx(2 / 3)


def test_policy():
    small, large = torch.empty(10, 2), torch.empty(APPROXIMATE_MIN_POINTS + 1, 1)
    assert not searches_approximately(small, "auto")
    assert searches_approximately(large, "auto")
    assert not searches_approximately(large, "exact")
    assert searches_approximately(small, "approximate")
    assert not searches_approximately(large, "fused")
    with pytest.raises(ValueError, match="search must be"):
        searches_approximately(small, "fast")


def test_graph_from_approximate_search_keeps_the_exact_edges():
    x = _clusters(2000, seed=2)
    exact = knn_graph(x, 15, search="exact")
    approximate = knn_graph(x, 15, search="approximate")
    shared = exact.matrix.multiply(approximate.matrix > 0).nnz
    assert shared / exact.matrix.nnz > 0.95
    assert approximate.n_points == 2000


def test_alignment_with_approximate_search():
    rng = np.random.default_rng(3)
    xs = _clusters(300, seed=4).numpy()
    xt = xs @ np.linalg.qr(rng.normal(size=(20, 20)))[0] + 0.01 * rng.normal(size=(300, 20))
    config = gwalign.GWConfig(device="cpu", knn_search="approximate")
    approximate = gwalign.align(xs, xt, config)
    exact = gwalign.align(xs, xt, config.replace(knn_search="exact"))
    assert gwalign.foscttm(xs, approximate.project_to_source(xt)) <= gwalign.foscttm(xs, exact.project_to_source(xt)) + 0.02


def test_fused_search_is_the_exact_search_off_the_gpu():
    """``fused`` is exact: on the CPU it is the exact search (the kernel itself is compared with
    cdist in tests/kernels/test_kernels.py)."""
    x = _clusters(400, seed=3)
    fused, exact = knn_graph(x, 10, search="fused"), knn_graph(x, 10, search="exact")
    assert (fused.matrix != exact.matrix).nnz == 0
