"""GW with low-rank couplings: the projection, the factored gradient and objective against dense
float64 computations, and an alignment through ``coupling_rank``."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import gwalign
from gwalign.datasets.synthetic import spiral_and_roll
from gwalign.engine import lowrank_coupling as lc
from gwalign.geometry.factors import factor_dense


def _distance(n, dim, seed):
    x = torch.tensor(np.random.default_rng(seed).normal(size=(n, dim)))
    d = torch.cdist(x, x)
    return d / d.mean()


def _marginal(n, seed):
    w = torch.tensor(np.random.default_rng(seed).uniform(0.5, 1.5, n))
    return w / w.sum()


@pytest.fixture(scope="module")
def problem():
    """Two exactly factored distance matrices (full rank), random marginals and a coupling."""
    n, k, m = 40, 35, 6
    ds, dt = _distance(n, 3, 0), _distance(k, 4, 1)
    fs, ft = factor_dense(ds, n), factor_dense(dt, k)
    a, b = _marginal(n, 2), _marginal(k, 3)
    start, _ = lc.initial_coupling(a, b, m, seed=4)
    coupling, _, _ = lc.project(start.q.log(), start.r.log(), start.g.log(), a, b, 1e-6, max_iter=5000, tol=1e-14)
    return ds, dt, fs, ft, a, b, coupling


def test_projection_meets_its_marginals(problem):
    *_, a, b, _ = problem
    gen = torch.Generator().manual_seed(5)
    m = 7
    xi_q = torch.randn(a.shape[0], m, generator=gen, dtype=torch.float64) * 3
    xi_r = torch.randn(b.shape[0], m, generator=gen, dtype=torch.float64) * 3
    xi_g = torch.randn(m, generator=gen, dtype=torch.float64)
    floor = 0.05
    coupling, n_iter, error = lc.project(xi_q, xi_r, xi_g, a, b, floor, max_iter=5000, tol=1e-12)
    q, r, g = coupling.q, coupling.r, coupling.g
    assert error < 1e-12 and n_iter < 5000
    torch.testing.assert_close(q.sum(1), a, atol=1e-12, rtol=0)
    torch.testing.assert_close(r.sum(1), b, atol=1e-12, rtol=0)
    torch.testing.assert_close(q.sum(0), g, atol=1e-12, rtol=0)
    torch.testing.assert_close(r.sum(0), g, atol=1e-12, rtol=0)
    assert float(g.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(g.min()) >= floor * (1 - 1e-12)


def test_projection_of_a_feasible_point_is_itself(problem):
    *_, a, b, coupling = problem
    again, _, _ = lc.project(coupling.q.log(), coupling.r.log(), coupling.g.log(), a, b, 1e-6,
                             max_iter=500, tol=1e-13)
    torch.testing.assert_close(again.q, coupling.q, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(again.g, coupling.g, atol=1e-10, rtol=1e-8)


def _dense_objective(ds, dt, plan):
    diff = (ds[:, None, :, None] - dt[None, :, None, :]) ** 2          # N×K×N×K
    return float(torch.einsum("ijkl,ij,kl->", diff, plan, plan))


def test_factored_objective_and_gram_equal_dense(problem):
    ds, dt, fs, ft, a, b, coupling = problem
    plan = coupling.q / coupling.g @ coupling.r.T
    assert lc.gw_objective(coupling, fs, ft) == pytest.approx(_dense_objective(ds, dt, plan), rel=1e-9)
    torch.testing.assert_close(coupling.gram(fs, ft), fs.phi.T @ plan @ ft.phi, atol=1e-12, rtol=1e-9)


def test_factored_gradients_equal_dense(problem):
    ds, dt, fs, ft, a, b, coupling = problem
    q = coupling.q.clone().requires_grad_(True)
    r = coupling.r.clone().requires_grad_(True)
    g = coupling.g.clone().requires_grad_(True)
    plan = q / g @ r.T
    # The gradient of the GW objective in P with the marginals a, b, taken through P's factors.
    cost = 2.0 * ((ds * ds) @ a[:, None] + ((dt * dt) @ b)[None, :] - 2.0 * ds @ plan.detach() @ dt)
    (cost * plan).sum().backward()
    h_s, h_t = fs.squared_apply(a), ft.squared_apply(b)
    grad_q, grad_r, grad_g = lc.gradients(coupling, fs, ft, h_s, h_t)
    torch.testing.assert_close(grad_q, q.grad, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(grad_r, r.grad, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(grad_g, g.grad, atol=1e-10, rtol=1e-8)


def test_mirror_descent_lowers_the_objective(problem):
    ds, dt, fs, ft, a, b, _ = problem
    coupling, history, _ = lc.mirror_descent(fs, ft, a, b, 5, 32.0, 40, scale=1.0, epsilon=0.01, seed=0)
    assert history[-1] < 0.8 * history[0]
    plan = coupling.q / coupling.g @ coupling.r.T
    assert history[-1] == pytest.approx(_dense_objective(ds, dt, plan), rel=1e-9)
    assert float((plan.sum(1) - a).abs().sum()) < 1e-2
    assert float((plan.sum(0) - b).abs().sum()) < 1e-2


def test_spiral_to_swiss_roll_through_a_low_rank_coupling():
    xs, ts, xt, tt = spiral_and_roll(500, 600, seed=4)
    config = gwalign.GWConfig(device="cpu", coupling_rank=10, one_sided_check=False)
    result = gwalign.align(xs, xt, config)
    rho = spearmanr(ts, result.project_to_source(tt))[0]
    assert abs(rho) >= 0.99, rho
    solve = result.solve
    assert len(solve.start_objectives) == 1 and solve.start_objectives[0] > 0
    assert solve.timings["coupling_rank"] > 0 and solve.timings["coupling_rank_steps"] >= 1
    assert np.abs(result.row_marginal() - 1 / 500).sum() < 1e-3
