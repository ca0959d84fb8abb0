"""Every streamed operation against its dense float64 reference, on fresh random inputs."""

import numpy as np
import ot
import pytest
import torch

from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan, choose_blocks
from gwalign.engine.sinkhorn import sinkhorn

TOL = {torch.float64: 1e-6, torch.float32: 1e-4}
SHAPES = [(37, 53, 7, 8, 16), (64, 64, 1, 64, 64), (101, 29, 80, 32, 7), (5, 300, 3, 2, 128)]


def rel(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).norm() / b.norm())


def random_plan(gen, n, k, d, br, bc, dtype, with_extra=False):
    u = torch.randn(n, d, generator=gen, dtype=torch.float64) * 0.5
    v = torch.randn(k, d, generator=gen, dtype=torch.float64) * 0.5
    p = torch.randn(n, generator=gen, dtype=torch.float64) * 0.1
    q = torch.randn(k, generator=gen, dtype=torch.float64) * 0.1
    extra = torch.rand(n, k, generator=gen, dtype=torch.float64) if with_extra else None
    eps = 0.3
    plan = FactoredPlan(u.to(dtype), v.to(dtype), p.to(dtype), q.to(dtype), eps,
                        None if extra is None else extra.to(dtype), br, bc)
    logt = (p[:, None] + q[None, :] + 2 * u @ v.T - (0 if extra is None else extra)) / eps
    cost = torch.cdist(u, v) ** 2 + (0 if extra is None else extra)
    return plan, logt, cost


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_extra", [False, True])
def test_streamed_ops_match_dense(torch_gen, dtype, shape, with_extra):
    n, k, d, br, bc = shape
    plan, logt, cost = random_plan(torch_gen, n, k, d, br, bc, dtype, with_extra)
    dense = torch.exp(logt)
    tol = TOL[dtype]
    assert rel(ops.row_lse(plan), torch.logsumexp(logt - (plan.p.double() / plan.eps)[:, None], 1)) < tol
    assert rel(ops.row_mass(plan), dense.sum(1)) < tol
    assert rel(ops.col_mass(plan), dense.sum(0)) < tol
    z_t = torch.randn(k, 3, generator=torch_gen, dtype=torch.float64)
    z_s = torch.randn(n, 2, generator=torch_gen, dtype=torch.float64)
    assert rel(ops.apply(plan, z_t.to(dtype)), dense @ z_t) < tol
    assert rel(ops.apply_t(plan, z_s.to(dtype)), dense.T @ z_s) < tol
    assert rel(ops.apply(plan, z_t[:, 0].to(dtype)), dense @ z_t[:, 0]) < tol
    assert rel(ops.transport_cost(plan), (dense * cost).sum()) < tol
    cu = torch.randn(n, 4, generator=torch_gen, dtype=torch.float64)
    cv = torch.randn(k, 4, generator=torch_gen, dtype=torch.float64)
    expected = (dense * torch.cdist(cu, cv) ** 2).sum()
    assert rel(ops.transport_cost(plan, cu.to(dtype), cv.to(dtype)), expected) < tol
    kk = min(5, k)
    values, indices = ops.topk_rows(plan, kk)
    ref_values, ref_indices = dense.topk(kk, dim=1)
    assert rel(values, ref_values) < tol
    # Indices agree wherever the values are not (near-)tied.
    assert (indices == ref_indices).double().mean() > 0.95


@pytest.mark.parametrize("with_extra", [False, True])
def test_shared_mass_of_two_plans_matches_dense(torch_gen, with_extra):
    first, logt_1, _ = random_plan(torch_gen, 70, 90, 6, 16, 32, torch.float64, with_extra)
    second, logt_2, _ = random_plan(torch_gen, 70, 90, 6, 16, 32, torch.float64, with_extra)
    rows = torch.randperm(70, generator=torch_gen)[:25]
    expected = torch.minimum(torch.exp(logt_1), torch.exp(logt_2))[rows].sum(1)
    assert rel(ops.shared_mass(first, second, rows), expected) < 1e-10
    # A plan shares all of its mass with itself.
    assert rel(ops.shared_mass(first, first, rows), torch.exp(logt_1)[rows].sum(1)) < 1e-10


def test_sampling_follows_plan_rows(torch_gen):
    plan, logt, _ = random_plan(torch_gen, 6, 23, 3, 4, 5, torch.float64)
    rows = torch.tensor([1, 4]).repeat_interleave(40000)
    cols = ops.sample_columns(plan, rows, torch_gen)
    for r, sl in ((1, slice(0, 40000)), (4, slice(40000, None))):
        freq = torch.bincount(cols[sl], minlength=23).double() / 40000
        prob = torch.softmax(logt[r], 0)
        # 5 standard errors of a multinomial frequency.
        assert ((freq - prob).abs() <= 5 * torch.sqrt(prob * (1 - prob) / 40000) + 1e-3).all()


def test_choose_blocks_respects_budget():
    rows, cols = choose_blocks(3000, 3000, 1 << 20)
    assert rows * cols <= 1 << 20
    assert choose_blocks(10, 7, 1 << 20) == (10, 7)
    assert choose_blocks(3000, 3000, 1 << 20, 100, 50) == (100, 50)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sinkhorn_matches_pot(torch_gen, dtype):
    n, k, d = 61, 47, 5
    u = torch.randn(n, d, generator=torch_gen, dtype=torch.float64)
    v = torch.randn(k, d, generator=torch_gen, dtype=torch.float64)
    a = torch.rand(n, generator=torch_gen, dtype=torch.float64) + 0.5
    b = torch.rand(k, generator=torch_gen, dtype=torch.float64) + 0.5
    a, b = a / a.sum(), b / b.sum()
    cost = torch.cdist(u, v) ** 2
    eps = 0.1 * float(cost.mean())
    res = sinkhorn(u.to(dtype), v.to(dtype), a.to(dtype), b.to(dtype), eps, max_iter=5000,
                   tol=1e-7 if dtype == torch.float64 else 1e-5, block_rows=16, block_cols=32)
    assert res.converged
    mine = ops.apply(res.plan, torch.eye(k, dtype=dtype))
    ref = ot.sinkhorn(a.numpy(), b.numpy(), cost.numpy(), eps, method="sinkhorn_log",
                      numItermax=100000, stopThr=1e-12)
    assert rel(mine, ref) < (1e-5 if dtype == torch.float64 else 1e-3)
    assert rel(ops.row_mass(res.plan), a) < TOL[dtype]


def uniform_problem(gen, n, k, d):
    """Random float64 features, uniform marginals and the squared-Euclidean cost between them."""
    u = torch.randn(n, d, generator=gen, dtype=torch.float64)
    v = torch.randn(k, d, generator=gen, dtype=torch.float64)
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    return u, v, a, b, torch.cdist(u, v) ** 2


def test_semi_relaxed_sinkhorn_matches_pot_unbalanced(torch_gen):
    """ρ·KL on the columns only: POT's unbalanced solver with reg_m=(inf, ρ)."""
    n, k = 40, 55
    u, v, a, b, cost = uniform_problem(torch_gen, n, k, 3)
    eps, rho = 0.2 * float(cost.mean()), 0.5 * float(cost.mean())
    res = sinkhorn(u, v, a, b, eps, rho=rho, max_iter=20000, tol=1e-12, block_rows=8, block_cols=16)
    mine = ops.apply(res.plan, torch.eye(k, dtype=torch.float64))
    ref = ot.unbalanced.sinkhorn_unbalanced(a.numpy(), b.numpy(), cost.numpy(), eps, (float("inf"), rho),
                                            method="sinkhorn", reg_type="kl", numItermax=100000,
                                            stopThr=1e-13)
    assert rel(mine, ref) < 1e-5
    assert rel(mine.sum(1), a) < 1e-8


def test_row_sampled_cost_estimate_is_unbiased(torch_gen):
    from gwalign.engine.sampled import estimate_cost

    n, k = 600, 500
    u = torch.randn(n, 3, generator=torch_gen, dtype=torch.float64)
    v = torch.randn(k, 3, generator=torch_gen, dtype=torch.float64)
    a = torch.rand(n, generator=torch_gen, dtype=torch.float64) + 0.2
    a /= a.sum()
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    plan = sinkhorn(u, v, a, b, 0.5, max_iter=500, tol=1e-9, block_rows=64, block_cols=128).plan
    cu = torch.randn(n, 4, generator=torch_gen, dtype=torch.float64)
    cv = torch.randn(k, 4, generator=torch_gen, dtype=torch.float64)
    exact = ops.transport_cost(plan, cu, cv)
    assert estimate_cost(plan, cu, cv, a, n, torch_gen) == pytest.approx(exact, rel=1e-12)
    draws = np.array([estimate_cost(plan, cu, cv, a, 32, torch_gen) for _ in range(300)])
    # Unbiased: the mean of 300 draws lies within 4 standard errors of the exact value.
    assert abs(draws.mean() - exact) <= 4 * draws.std(ddof=1) / np.sqrt(len(draws))
    assert draws.std() > 0


def test_tf32_rounding_keeps_ten_mantissa_bits_and_rounds_to_nearest():
    from gwalign.engine.precision import round_to_tf32

    gen = torch.Generator().manual_seed(int.from_bytes(__import__("os").urandom(3), "little"))
    x = torch.randn(10000, generator=gen) * torch.exp(torch.randn(10000, generator=gen) * 5)
    r = round_to_tf32(x)
    assert int((r.view(torch.int32) & 0x1FFF).abs().sum()) == 0
    rel = ((r.double() - x.double()).abs() / x.double().abs())
    assert float(rel.max()) <= 2.0 ** -11 * (1 + 1e-6)
    # Nearest: no other TF32 number (one step up or down) is closer.
    step = r.double().abs() * 2.0 ** -10
    assert bool(((r.double() - x.double()).abs() <= 0.5 * step * (1 + 1e-6)).all())
    assert torch.equal(round_to_tf32(r), r)
    assert torch.equal(round_to_tf32(x.double()), x.double())  # only float32 is rounded


def test_tf32_plans_name_their_exact_cost_precision(torch_gen):
    """A plan solved in tf32 (on features the solvers round) tells later passes that its cost dots
    are exact in TF32; plans of other precisions leave each pass its own."""
    u, v = torch.randn(30, 4, generator=torch_gen), torch.randn(20, 4, generator=torch_gen)
    a, b = torch.full((30,), 1 / 30), torch.full((20,), 1 / 20)
    assert sinkhorn(u, v, a, b, 1.0, max_iter=5, precision="tf32").plan.cost_precision == "tf32"
    for precision in ("tf32x3", None):
        assert sinkhorn(u, v, a, b, 1.0, max_iter=5, precision=precision).plan.cost_precision is None
    plan = sinkhorn(u, v, a, b, 1.0, max_iter=5, precision="tf32").plan
    assert plan.T.cost_precision == "tf32"


def assert_pot_plan(result, a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor, eps: float) -> None:
    """``result``'s plan is POT's log-domain Sinkhorn plan, with an exact row marginal and its
    column marginal within 1e-8."""
    ref = ot.sinkhorn(a.numpy(), b.numpy(), cost.numpy(), eps, method="sinkhorn_log", numItermax=200000,
                      stopThr=1e-13)
    assert rel(ops.apply(result.plan, torch.eye(len(b), dtype=torch.float64)), ref) < 1e-5
    assert rel(ops.row_mass(result.plan), a) < 1e-10
    assert float((ops.col_mass(result.plan) - b).abs().sum()) < 1e-8


@pytest.mark.parametrize("omega", [1.3, 1.5, 1.9])
def test_over_relaxed_sinkhorn_reaches_the_same_plan_in_fewer_iterations(torch_gen, omega):
    """Same fixed point as plain Sinkhorn (POT's plan) and exact row marginals; at ω = 1.3 and 1.5
    clearly fewer iterations at small ε (measured 666 → 384 / 257); 1.9 may trip the safeguard."""
    n, k = 90, 70
    u, v, a, b, cost = uniform_problem(torch_gen, n, k, 4)
    eps = 0.01 * float(cost.mean())
    plain = sinkhorn(u, v, a, b, eps, max_iter=20000, tol=1e-8, block_rows=16, block_cols=32)
    relaxed = sinkhorn(u, v, a, b, eps, max_iter=20000, tol=1e-8, block_rows=16, block_cols=32, omega=omega)
    assert plain.converged and relaxed.converged
    assert_pot_plan(relaxed, a, b, cost, eps)
    if omega < 1.7:
        assert relaxed.n_iter <= 0.8 * plain.n_iter, (relaxed.n_iter, plain.n_iter)


def test_anderson_sinkhorn_reaches_the_same_plan_in_fewer_iterations(torch_gen):
    """Anderson acceleration keeps plain Sinkhorn's fixed point (POT's plan) and exact row
    marginals, and at small ε takes clearly fewer iterations than over-relaxation at ω = 1.5
    (measured 127 against 209 to 1e-8)."""
    n, k = 90, 70
    u, v, a, b, cost = uniform_problem(torch_gen, n, k, 4)
    eps = 0.01 * float(cost.mean())
    settings = dict(max_iter=20000, tol=1e-8, block_rows=16, block_cols=32)
    relaxed = sinkhorn(u, v, a, b, eps, omega=1.5, **settings)
    mixed = sinkhorn(u, v, a, b, eps, omega=1.5, anderson=5, **settings)
    assert relaxed.converged and mixed.converged
    assert_pot_plan(mixed, a, b, cost, eps)
    assert mixed.n_iter <= 0.8 * relaxed.n_iter, (mixed.n_iter, relaxed.n_iter)


def test_anderson_mixer_solves_a_linear_fixed_point_and_weighs_only_its_history():
    """On a contraction g ← Mg + c the mixed iterates reach the fixed point in far fewer steps
    than plain iteration; a problem outside the local regime steps plainly, and its weights
    never touch entries it has not filled."""
    from gwalign.engine.anderson import AndersonMixer

    gen = torch.Generator().manual_seed(3)
    size = 40
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    m = q @ torch.diag(torch.linspace(0.0, 0.97, size, dtype=torch.float64)) @ q.T
    c = torch.randn(size, generator=gen, dtype=torch.float64)
    fixed = torch.linalg.solve(torch.eye(size, dtype=torch.float64) - m, c)

    def steps_to_fixed_point(memory: int) -> int:
        mixer = AndersonMixer(2, size, memory, c)
        g = torch.zeros(2, size, dtype=torch.float64)
        for step in range(1, 2000):
            if float((g[0] - fixed).norm()) < 1e-8 * float(fixed.norm()):
                return step
            image = g @ m.T + c
            g_next = mixer.step(g, image, [True, False])
            assert torch.equal(g_next[1], image[1])          # the inactive problem steps plainly
            assert mixer.counts == [min(step, memory), 0]
            g = g_next
        return 2000

    assert steps_to_fixed_point(5) * 5 < steps_to_fixed_point(1)

    # At an exact fixed point every residual is zero and the system singular: the step is plain.
    mixer = AndersonMixer(1, size, 5, c)
    for _ in range(3):
        out = mixer.step(fixed[None], fixed[None], [True])
    assert torch.equal(out, fixed[None])


@pytest.mark.parametrize("rho, anderson", [(None, 0), (None, 5), (0.5, 0)])
def test_sinkhorn_batch_equals_separate_solves(rho, anderson):
    """Problems solved side by side stop, relax and end exactly as when solved one at a time,
    although they converge at different iterations."""
    from gwalign.engine.sinkhorn import sinkhorn, sinkhorn_batch

    gen = torch.Generator().manual_seed(11)
    n, k, d, s = 37, 29, 5, 4
    u = torch.randn(n, d, generator=gen, dtype=torch.float64)
    v = torch.randn(s, k, d, generator=gen, dtype=torch.float64) * torch.linspace(0.3, 1.5, s,
                                                                                   dtype=torch.float64)[:, None, None]
    a = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    a /= a.sum()
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    g0 = torch.randn(s, k, generator=gen, dtype=torch.float64) * 0.1
    col = torch.rand(s, k, generator=gen, dtype=torch.float64)
    settings = dict(rho=rho, max_iter=60, tol=1e-7, block_rows=8, block_cols=16, omega=1.6, anderson=anderson,
                    row_cost=(u * u).sum(1))
    batch = sinkhorn_batch(u, v, a, b, 0.3, None, g0, col_cost=col, **settings)
    iterations = set()
    for i, got in enumerate(batch):
        alone = sinkhorn(u, v[i], a, b, 0.3, None, g0[i], col_cost=col[i], **settings)
        assert (got.n_iter, got.converged) == (alone.n_iter, alone.converged)
        # The error is a difference of near-equal masses: ulp-level differences in exp() between
        # batch shapes (vectorised vs scalar tails) are amplified, hence the looser tolerance.
        assert got.error == pytest.approx(alone.error, rel=1e-6, abs=1e-15)
        # Anderson mixing solves a small least-squares problem each iteration, which amplifies
        # those ulp-level differences over 60 iterations (measured up to 3e-12 on potentials of ~5).
        atol = 1e-10 if anderson else 1e-13
        for name in ("f", "g"):
            assert torch.allclose(getattr(got, name), getattr(alone, name), rtol=1e-12, atol=atol), name
        assert torch.allclose(got.plan.q, alone.plan.q, rtol=1e-12, atol=atol)
        assert (got.col_mass is None) == (alone.col_mass is None)
        iterations.add(got.n_iter)
    assert len(iterations) > 1, "the problems should converge at different iterations"


def test_sweep_equals_a_row_pass_then_a_column_pass():
    """One product per tile gives the row log-sum-exp and, from the rows' new bias, the column
    log-sum-exp, as two streamed passes do (several row blocks, the last one short)."""
    from gwalign.engine.logsumexp import lse_rows_reference, lse_sweep_reference

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(53, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(41, 6, generator=gen, dtype=torch.float64)
    q = torch.randn(41, generator=gen, dtype=torch.float64)
    shift = torch.randn(53, generator=gen, dtype=torch.float64)

    def bias_of(rows, r_rows):
        return shift[rows] - 0.2 * r_rows

    r, c = lse_sweep_reference(x, y, q, 0.2, bias_of, block_rows=16)
    r_two = lse_rows_reference(x, y, q, 0.2, block_rows=16, block_cols=41)
    c_two = lse_rows_reference(y, x, bias_of(slice(None), r_two), 0.2, block_rows=41, block_cols=16)
    assert torch.allclose(r, r_two, rtol=1e-12, atol=1e-12)
    assert torch.allclose(c, c_two, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("guess_error", [0.0, 0.3, 1000.0, -1000.0])
def test_sweep_from_guessed_row_sums_equals_two_passes(guess_error):
    """Tiles exponentiated relative to guessed row log-sum-exps give the two passes' result,
    close guesses and stale ones alike (a guess 1000 off overflows or underflows every entry of
    its rows, which are then redone from their maxima); so does a column whose entries all lie
    below the exponent floor relative to their rows (summed again on its own)."""
    from gwalign.engine.logsumexp import lse_rows_reference, lse_sweep_reference

    gen = torch.Generator().manual_seed(8)
    x = torch.randn(53, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(41, 6, generator=gen, dtype=torch.float64)
    q = torch.randn(41, generator=gen, dtype=torch.float64)
    q[7] = -200.0      # column 7: 2^-1400 of each row's sum in the row pass
    shift = torch.randn(53, generator=gen, dtype=torch.float64)

    def bias_of(rows, r_rows):
        return shift[rows] - 0.2 * r_rows

    r_two = lse_rows_reference(x, y, q, 0.2, block_rows=16, block_cols=41)
    c_two = lse_rows_reference(y, x, bias_of(slice(None), r_two), 0.2, block_rows=41, block_cols=16)
    guess = r_two + torch.randn(53, generator=gen, dtype=torch.float64) * 0.1
    guess[20:30] += guess_error
    r, c = lse_sweep_reference(x, y, q, 0.2, bias_of, block_rows=16, guess=guess)
    assert torch.allclose(r, r_two, rtol=1e-12, atol=1e-12)
    assert torch.allclose(c, c_two, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("guess_error", [0.3, 1000.0, -1000.0])
def test_row_pass_from_guessed_sums_equals_running_maxima(guess_error):
    """A row pass over several column tiles, with a dense extra cost, exponentiated relative to
    guessed row log-sum-exps, gives the running-maximum pass's result, close guesses and stale
    ones alike (stale rows are done again)."""
    from gwalign.engine.logsumexp import lse_rows_reference

    gen = torch.Generator().manual_seed(9)
    x = torch.randn(37, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(50, 5, generator=gen, dtype=torch.float64)
    bias = torch.randn(50, generator=gen, dtype=torch.float64)
    extra = torch.rand(37, 50, generator=gen, dtype=torch.float64)
    expected = lse_rows_reference(x, y, bias, 0.3, extra, block_rows=8, block_cols=16)
    guess = expected + torch.randn(37, generator=gen, dtype=torch.float64) * 0.3
    guess[::5] += guess_error
    got = lse_rows_reference(x, y, bias, 0.3, extra, block_rows=8, block_cols=16, guess=guess)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", [float("inf"), -float("inf"), float("nan"), 1e4])
def test_sweep_from_unusable_guesses_keeps_its_float32_accuracy(bad):
    """Non-finite or far-off guesses (a zero weight makes one NaN) leave the sweep as accurate as
    two passes in float32: a row block redone from its maxima does not carry the guess."""
    from gwalign.engine.logsumexp import lse_rows_reference, lse_sweep_reference

    gen = torch.Generator().manual_seed(4)
    x = torch.randn(40, 8, generator=gen, dtype=torch.float64) * 3.0
    y = torch.randn(30, 8, generator=gen, dtype=torch.float64) * 3.0
    q = torch.randn(30, generator=gen, dtype=torch.float64)

    def bias_of(rows, r_rows):
        return -0.05 * r_rows

    r64 = lse_rows_reference(x, y, q, 0.05, block_rows=16, block_cols=30)
    c64 = lse_rows_reference(y, x, bias_of(slice(None), r64), 0.05, block_rows=30, block_cols=16)
    guess = r64.clone()
    guess[5] = bad
    r, c = lse_sweep_reference(x.float(), y.float(), q.float(), 0.05, bias_of, block_rows=16, guess=guess.float())
    r_two = lse_rows_reference(x.float(), y.float(), q.float(), 0.05, block_rows=16, block_cols=30)
    tolerance = 4.0 * float((r_two.double() - r64).abs().max()) + 1e-5
    assert float((r.double() - r64).abs().max()) <= tolerance
    assert float((c.double() - c64).abs().max()) <= tolerance


def test_row_sums_far_below_their_guess_are_redone():
    """Rows whose entries span far more than the exponent floor's range: relative to a guess 75
    nats high (row sums near 2^-108), their small entries would sit on the floor and be
    over-counted, so their block is redone; the result matches the running-maximum pass."""
    from gwalign.engine.logsumexp import lse_rows_reference

    gen = torch.Generator().manual_seed(6)
    x = torch.randn(24, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    bias = torch.linspace(0.0, -3.0, 200, dtype=torch.float64)    # entries over ~90 nats at ε = 0.03
    expected = lse_rows_reference(x, y, bias, 0.03, block_rows=8, block_cols=64)
    got = lse_rows_reference(x, y, bias, 0.03, block_rows=8, block_cols=64, guess=expected + 75.0)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_guessed_row_pass_rounds_alike_in_any_shards_of_row_blocks():
    """A distributed pass splits rows at row-block boundaries; with stale guesses in several
    blocks, each shard's result is bit-for-bit the whole pass's (float32, as the engine runs; one
    thread, where the GEMM's rounding was seen to depend on how many rows a tile holds)."""
    from gwalign.engine.logsumexp import lse_rows_reference

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        for d in (3, 10, 31):
            x = torch.randn(512, d, generator=gen)
            y = torch.randn(800, d, generator=gen)
            bias = torch.randn(800, generator=gen)
            guess = lse_rows_reference(x, y, bias, 0.3, block_rows=256, block_cols=256)
            guess[[7, 300]] += 1000.0
            whole = lse_rows_reference(x, y, bias, 0.3, block_rows=256, block_cols=256, guess=guess)
            for lo, hi in [(0, 256), (256, 512)]:
                part = lse_rows_reference(x[lo:hi], y, bias, 0.3, block_rows=256, block_cols=256, guess=guess[lo:hi])
                assert torch.equal(part, whole[lo:hi]), d
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("rho, anderson", [(None, 0), (None, 5), (0.5, 0)])
def test_sinkhorn_with_fused_sweeps_equals_two_passes(monkeypatch, rho, anderson):
    """Batched Sinkhorn (plain, over-relaxed, Anderson, semi-relaxed) ends where it ends with a
    row pass and a column pass per iteration."""
    from gwalign.engine.sinkhorn import sinkhorn_batch

    gen = torch.Generator().manual_seed(12)
    n, k, d, s = 45, 31, 4, 3
    u = torch.randn(n, d, generator=gen, dtype=torch.float64)
    v = torch.randn(s, k, d, generator=gen, dtype=torch.float64) * 0.7
    a = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    a /= a.sum()
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    f0 = torch.randn(n, generator=gen, dtype=torch.float64) * 0.1     # one warm start shared by all
    settings = dict(rho=rho, max_iter=80, tol=1e-7, block_rows=16, block_cols=k, omega=1.6, anderson=anderson)
    assert ops.sweep_fusable(u, v, None, k)
    fused = sinkhorn_batch(u, v, a, b, 0.3, f0, **settings)
    monkeypatch.setattr(ops, "sweep_fusable", lambda *args: False)
    two_passes = sinkhorn_batch(u, v, a, b, 0.3, f0, **settings)
    for got, expected in zip(fused, two_passes):
        assert (got.n_iter, got.converged) == (expected.n_iter, expected.converged)
        for name in ("f", "g"):
            assert torch.allclose(getattr(got, name), getattr(expected, name), rtol=1e-10, atol=1e-10), name
