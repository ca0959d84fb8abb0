"""The figure's UMAP: scanpy's graph, umap-learn's curve, a layout that keeps neighbourhoods."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from gwalign.results import umap_layout as ul


def blobs(rng, sizes=(150, 120, 90), dims=8, gap=30.0):
    """Gaussian blobs ``gap`` apart (their kNN graphs are separate pieces) and their labels."""
    centres = rng.normal(size=(len(sizes), dims)) * gap
    x = np.concatenate([c + rng.normal(size=(n, dims)) for c, n in zip(centres, sizes)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


def neighbour_overlap(x, y, k=10):
    """Mean share of each point's k nearest points in ``x`` that are among its k nearest in ``y``."""
    def nearest(z):
        d = ((z[:, None] - z[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1)[:, :k]
    a, b = nearest(x), nearest(y)
    return np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(x))])


def test_graph_equals_scanpys_exact_neighbours(rng):
    import anndata as ad
    import scanpy as sc

    x = np.concatenate([rng.normal(size=(200, 6)), rng.normal(size=(100, 6)) + 3.0])
    x[7] = x[3]   # a duplicate cell: its twin is at distance 0, and it stays first in its own row
    adata = ad.AnnData(np.zeros((len(x), 1), np.float32))
    adata.obsm["X"] = x
    sc.pp.neighbors(adata, use_rep="X", transformer="sklearn")
    graph = ul.umap_graph(x)
    assert graph.n_neighbors == 15
    expected = adata.obsp["connectivities"]
    assert abs(graph.connectivities - expected).max() < 1e-5
    assert graph.connectivities.nnz == expected.nnz
    assert abs(graph.distances - adata.obsp["distances"]).max() < 1e-9


def test_stored_curves_are_the_fit():
    for (min_dist, spread), stored in ul.STORED_CURVES.items():
        saved = dict(ul.STORED_CURVES)
        ul.STORED_CURVES.clear()
        try:
            fitted = ul.curve_parameters(min_dist, spread)
        finally:
            ul.STORED_CURVES.update(saved)
        assert fitted == pytest.approx(stored, rel=1e-6)


def test_bandwidths_meet_their_target(rng):
    dist = np.sort(rng.gamma(2.0, size=(50, 14)), axis=1)
    rho = dist[:, 0]
    sigma = ul._bandwidths(dist, rho, np.log2(15))
    sums = np.exp(-np.maximum(dist - rho[:, None], 0.0) / sigma[:, None]).sum(axis=1)
    assert np.allclose(sums, np.log2(15), atol=1e-4)


def test_layout_keeps_separate_groups_apart_and_repeats_with_its_seed(rng):
    x, labels = blobs(rng)
    graph = ul.umap_graph(x)
    layout, (a, b) = ul.umap_layout(graph.connectivities, x, seed=3, n_epochs=200)
    assert layout.shape == (len(x), 2) and layout.dtype == np.float32 and np.isfinite(layout).all()
    assert (a, b) == ul.curve_parameters()
    d = ((layout[:, None] - layout[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    same = labels[np.argsort(d, axis=1)[:, :10]] == labels[:, None]
    assert same.mean() > 0.99
    again, _ = ul.umap_layout(graph.connectivities, x, seed=3, n_epochs=200)
    other, _ = ul.umap_layout(graph.connectivities, x, seed=4, n_epochs=200)
    assert np.array_equal(layout, again) and not np.array_equal(layout, other)


def test_layout_of_a_connected_curve_keeps_neighbourhoods(rng):
    """One connected graph (spectral start): a noisy helix in 5 dimensions."""
    t = np.sort(rng.uniform(0, 4 * np.pi, size=400))
    x = np.column_stack([np.cos(t), np.sin(t), t / 3, np.zeros((400, 2))]) + 0.02 * rng.normal(size=(400, 5))
    graph = ul.umap_graph(x)
    assert connected_components(graph.connectivities)[0] == 1
    layout, _ = ul.umap_layout(graph.connectivities, x, seed=0)
    assert neighbour_overlap(x, layout) > 0.6
    # Cells far along the curve stay far apart: the layout does not fold the curve onto itself.
    ends = np.linalg.norm(layout[:40].mean(0) - layout[-40:].mean(0))
    assert ends > 5 * np.median(np.linalg.norm(np.diff(layout, axis=0), axis=1))


def test_an_asymmetric_graph_is_refused():
    graph = sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        ul.umap_layout(graph, np.eye(3), seed=0)


def test_joint_umap_holds_scanpys_keys_for_scanpys_umap(rng):
    import anndata as ad
    import scanpy as sc

    from gwalign.results.figures import joint_umap

    x, labels = blobs(rng, sizes=(60, 60))
    joint = ad.AnnData(np.zeros((len(x), 0), np.float32),
                       obs=pd.DataFrame({"gw_dataset": pd.Categorical(np.where(labels, "a", "b"))},
                                        index=[f"c{i}" for i in range(len(x))]))
    joint.obsm["X_gw"] = x
    work = joint_umap(joint, seed=0)
    assert "X_umap" not in joint.obsm and work.obsm["X_umap"].shape == (len(x), 2)
    assert work.uns["neighbors"]["params"]["method"] == "umap"
    redone = work.copy()
    sc.tl.umap(redone, maxiter=5)
    assert redone.obsm["X_umap"].shape == (len(x), 2)
