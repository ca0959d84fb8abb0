"""The coupled CCA joint embedding against an independent dense reference."""

import numpy as np
import pytest

import gwalign
from gwalign.results import coupled_cca, joint_embedding
from gwalign.synthetic import spiral_and_roll

from conftest import DensePlan


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
    result = gwalign.align(xs, xt, gwalign.GWConfig(device="cpu"))
    left, right = joint_embedding(result, xs, xt)
    nearest = ((left[:, None, :] - right[None, :, :]) ** 2).sum(-1).argmin(axis=1)
    matched = tt[nearest]
    mirrored = tt.min() + tt.max() - matched
    error = min(np.median(np.abs(ts - matched)), np.median(np.abs(ts - mirrored)))
    assert error / np.ptp(tt) < 0.05
