"""The coupled CCA joint embedding against an independent dense reference."""

import numpy as np
import pytest
import torch

import gwalign
from gwalign.geometry.knn import knn_graph
from gwalign.results.embedding import cca_evidence, coupled_cca, joint_embedding
from gwalign.results.diffusion import graph_walk
from gwalign.datasets.synthetic import spiral_and_roll

from reference_plan import DensePlan


def test_canonical_correlations_of_a_permutation_plan_match_plain_cca(rng):
    """A permutation plan pairs cells one to one: the weighted CCA is the ordinary CCA of
    (X, P Y), whose correlations are the singular values of Q_xᵀ Q_y (thin QR of the centred data)."""
    n = 300
    x = rng.normal(size=(n, 4))
    mixed = np.c_[x @ rng.normal(size=(4, 3)), rng.normal(size=(n, 3))] + 0.5 * rng.normal(size=(n, 6))
    order = rng.permutation(n)
    y = np.empty_like(mixed)
    y[order] = mixed                      # target cell order[i] is source cell i's partner
    plan = np.zeros((n, n))
    plan[np.arange(n), order] = 1.0 / n
    left, right, corr = coupled_cca(DensePlan(plan), x, y, ridge=0.0)

    qx = np.linalg.qr(x - x.mean(0))[0]
    qy = np.linalg.qr(y[order] - y.mean(0))[0]
    reference = np.linalg.svd(qx.T @ qy, compute_uv=False)
    assert corr == pytest.approx(reference, rel=1e-8)
    # Each pair of canonical variates: weighted covariance corr², cross-covariance corr³
    # (the variates are whitened, then scaled by their correlation).
    cov_left = left.T @ left / n
    cross = left.T @ right[order] / n
    assert cov_left == pytest.approx(np.diag(corr ** 2), abs=1e-8)
    assert np.diag(cross) == pytest.approx(corr ** 3, rel=1e-8)


def test_ridge_shrinks_correlations_and_keeps_the_width(rng):
    x, y = rng.normal(size=(120, 5)), rng.normal(size=(90, 8))
    plan = rng.random((120, 90))
    plan /= plan.sum()
    _, _, plain = coupled_cca(DensePlan(plan), x, y, ridge=0.0)
    left, right, shrunk = coupled_cca(DensePlan(plan), x, y, ridge=0.3)
    assert left.shape == (120, 5) and right.shape == (90, 5)
    assert (shrunk < plain).all()


def test_cca_embedding_of_an_alignment_recovers_the_shared_parameter():
    """Spiral → roll: on the default (cca) joint embedding, each source cell's nearest target
    cell has nearly the same curve parameter (or its mirror image: GW cannot tell them apart)."""
    xs, ts, xt, tt = spiral_and_roll(400, 500, seed=3)
    # k = 9: the automatic k = 15 short-circuits neighbouring arms of a noise-free 400-point spiral
    # (error 0.17; docs/how-it-works/graphs.md, "Thin trajectories").
    result = gwalign.align(xs, xt, gwalign.GWConfig(device="cpu", k=9))
    left, right = joint_embedding(result, xs, xt)
    nearest = ((left[:, None, :] - right[None, :, :]) ** 2).sum(-1).argmin(axis=1)
    matched = tt[nearest]
    mirrored = tt.min() + tt.max() - matched
    error = min(np.median(np.abs(ts - matched)), np.median(np.abs(ts - mirrored)))
    assert error / np.ptp(tt) < 0.05


def lazy_walk_dense(graph) -> np.ndarray:
    """``(I + D⁻¹A)/2`` of a kNN graph's unweighted adjacency, as a dense reference."""
    adjacency = (graph.matrix.toarray() > 0).astype(np.float64)
    return 0.5 * np.eye(len(adjacency)) + 0.5 * adjacency / adjacency.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("steps", [1, 3])
def test_graph_walk_matches_the_dense_lazy_walk(rng, steps):
    graph = knn_graph(torch.as_tensor(rng.normal(size=(150, 4))), 6)
    z = rng.normal(size=(150, 5))
    power = np.linalg.matrix_power(lazy_walk_dense(graph), steps)
    walk = graph_walk(graph, steps)
    assert walk(z) == pytest.approx(power @ z, abs=1e-12)
    assert walk(z, transpose=True) == pytest.approx(power.T @ z, abs=1e-12)
    assert graph_walk(None, steps)(z) == pytest.approx(z)


def test_diffused_cca_is_the_cca_of_the_diffused_plan(rng):
    """The streamed diffusion (walks on both sides of the plan's products) equals plain coupled
    CCA on the dense plan ``S_s^t T (S_t^t)ᵀ``, marginals included."""
    x, y = rng.normal(size=(120, 5)), rng.normal(size=(90, 7))
    graphs = (knn_graph(torch.as_tensor(x), 6), knn_graph(torch.as_tensor(y), 6))
    plan = rng.random((120, 90)) ** 4
    plan /= plan.sum()
    left, right, corr = coupled_cca(DensePlan(plan, graphs), x, y, diffusion_steps=2)
    walk_s, walk_t = (np.linalg.matrix_power(lazy_walk_dense(g), 2) for g in graphs)
    ref_left, ref_right, ref_corr = coupled_cca(DensePlan(walk_s @ plan @ walk_t.T), x, y, diffusion_steps=0)
    assert corr == pytest.approx(ref_corr, rel=1e-8)
    # Each canonical pair's sign is arbitrary, and flips on both sides at once.
    assert left @ right.T == pytest.approx(ref_left @ ref_right.T, rel=1e-7, abs=1e-10)
    assert not np.allclose(corr, coupled_cca(DensePlan(plan), x, y, diffusion_steps=0)[2])


@pytest.mark.parametrize("steps", [-1, 1.5, True])
def test_diffusion_steps_must_be_a_count(rng, steps):
    x = rng.normal(size=(40, 3))
    plan = np.full((40, 40), 1 / 1600)
    with pytest.raises(ValueError, match="diffusion_steps"):
        coupled_cca(DensePlan(plan, (knn_graph(torch.as_tensor(x), 5), None)), x, x, diffusion_steps=steps)


def test_evidence_weighted_cca_is_the_cca_of_the_weighted_plan(rng):
    """Counterpart evidence weighs the plan's pairs, ``diag(e_s) T diag(e_t)``, before the walks."""
    x, y = rng.normal(size=(120, 5)), rng.normal(size=(90, 7))
    graphs = (knn_graph(torch.as_tensor(x), 6), knn_graph(torch.as_tensor(y), 6))
    plan = rng.random((120, 90)) ** 4
    plan /= plan.sum()
    evidence = (rng.random(120), rng.random(90))
    for steps in (0, 2):
        left, right, corr = coupled_cca(DensePlan(plan, graphs, evidence), x, y, diffusion_steps=steps)
        weighted = evidence[0][:, None] * plan * evidence[1][None, :]
        ref_left, ref_right, ref_corr = coupled_cca(DensePlan(weighted, graphs), x, y, diffusion_steps=steps)
        assert corr == pytest.approx(ref_corr, rel=1e-8)
        assert left @ right.T == pytest.approx(ref_left @ ref_right.T, rel=1e-7, abs=1e-10)
        assert not np.allclose(corr, coupled_cca(DensePlan(plan, graphs), x, y, diffusion_steps=steps)[2])


def test_cca_weighs_only_flagged_groups_by_their_evidence(rng):
    """After a one-sided check, a connected group of low-mass cells keeps its evidence as its CCA
    weight; scattered low-mass cells (the probe's noise) weigh 1, as do cells that kept their mass."""
    x = np.r_[rng.normal(size=(100, 3)), rng.normal(size=(30, 3)) + 20.0]   # a far blob of 30 cells
    y = rng.normal(size=(80, 3))
    graphs = (knn_graph(torch.as_tensor(x), 6), knn_graph(torch.as_tensor(y), 6))
    mass_s = np.r_[np.ones(100), np.full(30, 0.1)]
    mass_s[[3, 40, 77]] = 0.2                       # scattered low-mass cells among the first 100
    mass_t = np.r_[np.full(5, 0.3), np.full(75, 1.4)]   # five low-mass cells: under the group size
    plan = np.full((130, 80), 1 / (130 * 80))
    evidence = (np.minimum(1.0, mass_s), np.minimum(1.0, mass_t))
    weights_s, weights_t = cca_evidence(DensePlan(plan, graphs, evidence, relaxed=(mass_s, mass_t)))
    assert weights_s == pytest.approx(np.r_[np.ones(100), np.full(30, 0.1)])
    assert weights_t == pytest.approx(np.ones(80))
    # Without a check (semi-relaxed runs), the evidence is used as it is.
    assert cca_evidence(DensePlan(plan, graphs, evidence))[0] == pytest.approx(evidence[0])
