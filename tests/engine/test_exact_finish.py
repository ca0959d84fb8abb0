"""The exact finish: its linear problems, its rounding, its steps against POT's, and how align uses it."""

import numpy as np
import ot
import pytest
import torch
from scipy.spatial.distance import cdist

import gwalign
from gwalign.engine.exact_finish import (conditional_gradient, dense_plan, is_assignment, linear_vertex,
                                         round_to_marginals)


def _pair(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distances of n points of a 2-D cloud and of the first k points' image in 3-D (rotated, with a
    little noise)."""
    rng = np.random.default_rng(seed)
    cloud = rng.normal(size=(max(n, k), 2)) * [3.0, 1.0]
    xs = cloud[:n]
    lifted = np.c_[cloud[:k], np.zeros(k)] @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    xt = lifted + 0.05 * rng.normal(size=lifted.shape)
    return cdist(xs, xs), cdist(xt, xt)


def _gw_loss(ds: np.ndarray, dt: np.ndarray, plan: np.ndarray) -> float:
    p, q = plan.sum(axis=1), plan.sum(axis=0)
    return float(ot.gromov.gwloss(*ot.gromov.init_matrix(ds, dt, p, q, "square_loss"), plan))


@pytest.mark.parametrize("n,k", [(12, 12), (9, 14)])
def test_linear_vertex_is_an_optimal_transport_plan(n, k):
    rng = np.random.default_rng(1)
    cost = rng.random((n, k))
    a, b = np.full(n, 1.0 / n), np.full(k, 1.0 / k)
    rows, cols, masses = linear_vertex(cost, a, b, assignment=(n == k))
    plan = np.zeros((n, k))
    np.add.at(plan, (rows, cols), masses)
    np.testing.assert_allclose(plan.sum(axis=1), a, atol=1e-12)
    np.testing.assert_allclose(plan.sum(axis=0), b, atol=1e-12)
    assert (plan * cost).sum() == pytest.approx(ot.emd2(a, b, cost), rel=1e-9)


def test_assignment_needs_equal_sizes_and_uniform_weights():
    uniform = torch.full((5,), 0.2, dtype=torch.float64)
    assert is_assignment(uniform, uniform)
    assert not is_assignment(uniform, torch.full((4,), 0.25, dtype=torch.float64))
    skewed = torch.tensor([0.1, 0.2, 0.2, 0.2, 0.3], dtype=torch.float64)
    assert not is_assignment(uniform, skewed)


def test_rounding_meets_both_marginals_and_moves_little():
    rng = np.random.default_rng(2)
    plan = torch.as_tensor(rng.random((7, 5)), dtype=torch.float64)
    a = torch.full((7,), 1 / 7, dtype=torch.float64)
    b = torch.as_tensor(rng.dirichlet(np.ones(5)), dtype=torch.float64)
    plan = plan / plan.sum() * (1 + 1e-3)           # a plan slightly off both marginals
    error = float((plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum())
    rounded = round_to_marginals(plan, a, b)
    torch.testing.assert_close(rounded.sum(1), a, atol=1e-15, rtol=0)
    torch.testing.assert_close(rounded.sum(0), b, atol=1e-15, rtol=0)
    assert (rounded >= 0).all()
    assert float((rounded - plan).abs().sum()) <= 2 * error + 1e-15


@pytest.mark.parametrize("n,k", [(40, 40), (30, 36)])
def test_steps_match_pot_conditional_gradient_from_the_same_start(n, k):
    ds, dt = _pair(n, k, seed=3)
    a, b = np.full(n, 1.0 / n), np.full(k, 1.0 / k)
    start = np.outer(a, b) * (1 + 0.5 * np.random.default_rng(4).random((n, k)))
    start = round_to_marginals(torch.as_tensor(start), torch.as_tensor(a), torch.as_tensor(b)).numpy()
    tensors = [torch.as_tensor(x) for x in (ds, dt, a, b, start)]
    plan, objectives = conditional_gradient(*tensors)
    ours = _gw_loss(ds, dt, plan.numpy())
    assert objectives[-1] == pytest.approx(ours, rel=1e-9)
    assert all(later <= earlier + 1e-12 for earlier, later in zip(objectives, objectives[1:]))
    theirs = _gw_loss(ds, dt, ot.gromov.gromov_wasserstein(ds, dt, a, b, "square_loss", G0=start))
    assert ours <= theirs * 1.001
    np.testing.assert_allclose(plan.sum(1).numpy(), a, atol=1e-12)
    np.testing.assert_allclose(plan.sum(0).numpy(), b, atol=1e-12)


def test_align_with_given_distances_finishes_exact_by_default():
    ds, dt = _pair(60, 60, seed=5)
    finished = gwalign.align(None, None, gwalign.GWConfig(device="cpu", seed=0), d_source=ds, d_target=dt)
    entropic = gwalign.align(None, None, gwalign.GWConfig(device="cpu", seed=0, finish="entropic"),
                             d_source=ds, d_target=dt)
    plan = finished.to_dense()
    loss = _gw_loss(ds / ds.mean(), dt / dt.mean(), plan)
    assert finished.gw_objective == pytest.approx(loss, rel=1e-3)
    assert loss < 0.8 * _gw_loss(ds / ds.mean(), dt / dt.mean(), entropic.to_dense())
    np.testing.assert_allclose(finished.row_marginal(), 1 / 60, rtol=1e-4)
    np.testing.assert_allclose(finished.col_marginal(), 1 / 60, rtol=1e-4)
    assert finished.solve.timings["finish_steps"] >= 1
    # A near-permutation: each source cell's largest entry holds nearly all its mass.
    assert (plan.max(axis=1) > 0.9 / 60).mean() > 0.9


def test_dense_plan_matches_the_streamed_plan():
    # In float64: the plan's logits reach ~500 here, where float32 evaluations in another order
    # (base e at once, base 2 by tiles) differ by up to ~2e-4 relative.
    ds, dt = _pair(25, 20, seed=6)
    config = gwalign.GWConfig(device="cpu", finish="entropic", dtype="float64")
    alignment = gwalign.align(None, None, config, d_source=ds, d_target=dt)
    np.testing.assert_allclose(dense_plan(alignment.plan).numpy(), alignment.to_dense(), rtol=1e-9, atol=1e-30)


def test_representations_keep_the_entropic_plan_unless_asked():
    rng = np.random.default_rng(7)
    xs, xt = rng.normal(size=(50, 3)), rng.normal(size=(50, 4))
    assert "solve_finish" not in gwalign.align(xs, xt, gwalign.GWConfig(device="cpu")).timings
    asked = gwalign.align(xs, xt, gwalign.GWConfig(device="cpu", finish="exact"))
    assert "solve_finish" in asked.timings


@pytest.mark.parametrize("changes,message", [
    ({"finish": "exact", "semi_relaxed": True}, "balanced GW"),
    ({"finish": "exact", "distance": "landmark"}, "dense distances"),
])
def test_exact_finish_refuses_what_it_cannot_do(changes, message):
    rng = np.random.default_rng(8)
    xs, xt = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    with pytest.raises(ValueError, match=message):
        gwalign.align(xs, xt, gwalign.GWConfig(device="cpu", **changes))
