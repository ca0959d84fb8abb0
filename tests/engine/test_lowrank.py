"""Low-rank GW: factorisation identities and the exact objective, against dense float64."""

import dataclasses

import numpy as np
import pytest
import torch

import gwalign
from gwalign.engine.lowrank import LowRankGW
from gwalign.geometry.factors import factor_dense


def random_distances(rng, n, dim=3):
    x = rng.normal(size=(n, dim))
    return torch.as_tensor(np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)))


def test_factor_identities_match_dense(rng):
    d = random_distances(rng, 57)
    w = torch.as_tensor(rng.dirichlet(np.ones(57)))
    full = factor_dense(d, 57)
    assert full.relative_error < 1e-6
    assert full.quad(w) == pytest.approx(float(w @ d @ w), rel=1e-9)
    assert torch.allclose(full.squared_apply(w), (d * d) @ w, rtol=1e-8, atol=1e-12)
    truncated = factor_dense(d, 5)
    approx = truncated.phi @ torch.diag(truncated.lam) @ truncated.phi.T
    error = float(torch.linalg.norm(d - approx) / torch.linalg.norm(d))
    assert error == pytest.approx(truncated.relative_error, rel=1e-6)


def test_subspace_iteration_finds_the_full_eigendecomposition_s_factors(rng, monkeypatch):
    """From SUBSPACE_MIN_POINTS points the factors come from subspace iteration: the eigenpairs of
    the full eigendecomposition to its tolerance (up to each vector's sign), or those very ones
    when the iteration does not settle."""
    from gwalign.geometry import factors

    d = random_distances(rng, 300)
    full = factors.factor_dense(d, 12)                     # below SUBSPACE_MIN_POINTS
    monkeypatch.setattr(factors, "SUBSPACE_MIN_POINTS", 100)
    assert factors.iterated_eigenpairs(0.5 * (d + d.T), 12, 0) is not None
    iterated = factors.factor_dense(d, 12)
    signs = torch.sign((iterated.phi * full.phi).sum(0))
    assert torch.allclose(iterated.lam, full.lam, rtol=1e-9, atol=0)
    assert torch.allclose(iterated.phi * signs, full.phi, atol=1e-6)
    assert iterated.relative_error == pytest.approx(full.relative_error, rel=1e-9)
    monkeypatch.setattr(factors, "SUBSPACE_MAX_ITERATIONS", 1)
    assert factors.iterated_eigenpairs(0.5 * (d + d.T), 12, 0) is None
    fallback = factors.factor_dense(d, 12)
    assert torch.equal(fallback.phi, full.phi) and torch.equal(fallback.lam, full.lam)


def test_objective_equals_dense_gw_loss_of_the_plan(rng):
    n, k = 40, 33
    ds, dt = random_distances(rng, n), random_distances(rng, k, dim=2)
    ds, dt = ds / ds.mean(), dt / dt.mean()
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    config = gwalign.GWConfig(dtype="float64", device="cpu", max_iter=6, epsilon_decay_iters=3)
    solver = LowRankGW(factor_dense(ds, n), factor_dense(dt, k), a, b, config)
    state = solver.start(solver.product_gram())
    solver.run([state], until=4)
    assert len(state.history) == 4
    plan = state.plan
    dense = torch.exp((plan.p[:, None] + plan.q[None, :] + 2 * plan.u @ plan.v.T) / plan.eps)
    assert torch.allclose(dense.sum(1), a, rtol=1e-9)
    ra, cb = dense.sum(1), dense.sum(0)
    loss = float(ra @ (ds * ds) @ ra + cb @ (dt * dt) @ cb - 2 * ((ds @ dense @ dt) * dense).sum())
    assert state.history[-1] == pytest.approx(loss, rel=1e-8)
    gram = solver.fs.phi.T @ dense @ solver.ft.phi
    assert solver.objectives([dataclasses.replace(state, gram=gram, col_mass=cb)])[0] == pytest.approx(loss, rel=1e-8)


def test_nystrom_with_every_point_a_landmark_is_the_truncated_eigendecomposition(rng):
    from gwalign.geometry.factors import factor_nystrom

    d = random_distances(rng, 60)
    landmarks = rng.permutation(60)
    table = d[torch.as_tensor(landmarks)].numpy()          # L×N rows, landmarks in random order
    for rank in (5, 60):
        ny = factor_nystrom(table, landmarks, 2.0, rank, torch.device("cpu"), torch.float64)
        exact = factor_dense(d / 2.0, rank)
        assert torch.allclose((ny.phi * ny.lam) @ ny.phi.T, (exact.phi * exact.lam) @ exact.phi.T, atol=1e-8)
        assert torch.allclose(ny.phi.T @ ny.phi, torch.eye(rank, dtype=torch.float64), atol=1e-8)


def test_nystrom_from_few_landmarks_approximates_graph_geodesics(rng):
    """64 farthest-point landmarks of a 1500-point Swiss roll: close to the exact rank-32 truncation."""
    from scipy.sparse.csgraph import dijkstra

    from gwalign.geometry.distances import LandmarkDistances
    from gwalign.geometry.factors import factor_nystrom
    from gwalign.geometry.knn import knn_graph
    from gwalign.datasets.synthetic import spiral_and_roll

    _, _, xt, _ = spiral_and_roll(10, 1500, seed=int(rng.integers(1 << 30)))
    graph = knn_graph(torch.tensor(xt), k=10)
    land = LandmarkDistances(graph, torch.device("cpu"), torch.float64, n_landmarks=64, dim=8,
                             points=torch.tensor(xt))
    exact = torch.as_tensor(dijkstra(graph.matrix, directed=False)) / land.scale
    ny = factor_nystrom(land.table, land.landmarks, land.scale, 32, torch.device("cpu"), torch.float64)
    error = float(torch.linalg.norm((ny.phi * ny.lam) @ ny.phi.T - exact) / torch.linalg.norm(exact))
    best = factor_dense(exact, 32).relative_error
    assert error < best + 0.02, (error, best)


def test_starts_stepped_side_by_side_follow_their_solo_runs(rng):
    """Batched screening changes launches, not iterates: every start's history, plan and
    stopping point equal those of the same start run on its own."""
    n, k = 45, 38
    ds, dt = random_distances(rng, n), random_distances(rng, k, dim=2)
    ds, dt = ds / ds.mean(), dt / dt.mean()
    a = torch.as_tensor(rng.dirichlet(np.ones(n) * 5))
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    config = gwalign.GWConfig(dtype="float64", device="cpu", max_iter=12, min_iter=6, epsilon_decay_iters=4,
                              sinkhorn_omega=1.5)
    solver = LowRankGW(factor_dense(ds, 12), factor_dense(dt, 12), a, b, config)
    grams = solver.start_grams(5)
    together = [solver.start(gram) for gram in grams]
    solver.run(together, until=config.solver.max_iter)
    for gram, batched in zip(grams, together):
        alone = solver.start(gram)
        solver.run([alone], until=config.solver.max_iter)
        assert alone.iteration == batched.iteration and alone.converged == batched.converged
        assert alone.sinkhorn_iters == batched.sinkhorn_iters
        assert np.allclose(alone.history, batched.history, rtol=1e-10, atol=1e-14)
        assert torch.allclose(alone.plan.p, batched.plan.p, rtol=1e-10, atol=1e-10)
        # Anderson weights come from small least-squares solves whose rounding follows the batch's
        # shape; their extrapolation carries it to about 1e-12 of G's largest entry.
        assert torch.allclose(alone.gram, batched.gram, rtol=1e-10, atol=1e-12)
    assert len({round(state.history[-1], 8) for state in together}) > 1, "starts should differ"


def test_cell_distortion_matches_dense_gradient_and_sums_to_objective(rng):
    n, k = 36, 31
    ds, dt = random_distances(rng, n), random_distances(rng, k, dim=2)
    ds, dt = ds / ds.mean(), dt / dt.mean()
    a = torch.as_tensor(rng.dirichlet(np.ones(n) * 3))
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    config = gwalign.GWConfig(dtype="float64", device="cpu", max_iter=8, epsilon_decay_iters=3)
    solver = LowRankGW(factor_dense(ds, n), factor_dense(dt, k), a, b, config)
    state = solver.start(solver.product_gram())
    solver.run([state], until=5)
    plan = state.plan
    dense = torch.exp((plan.p[:, None] + plan.q[None, :] + 2 * plan.u @ plan.v.T) / plan.eps)
    ra, cb = dense.sum(1), dense.sum(0)
    grad = ((ds * ds) @ ra)[:, None] + ((dt * dt) @ cb)[None, :] - 2 * ds @ dense @ dt
    source, target = solver.cell_distortion(plan)
    assert torch.allclose(source, (dense * grad).sum(1) / ra, rtol=1e-8)
    assert torch.allclose(target, (dense * grad).sum(0) / cb, rtol=1e-8)
    loss = float((dense * grad).sum())
    assert float(source @ ra) == pytest.approx(loss, rel=1e-8)
    assert float(target @ cb) == pytest.approx(loss, rel=1e-8)
    # The step that made the plan left its column marginal and T Φ_t: the same values from them.
    reused = solver.cell_distortion(plan, state.col_mass, state.pulled)
    assert state.pulled is not None
    assert torch.allclose(reused[0], source, rtol=1e-10) and torch.allclose(reused[1], target, rtol=1e-10)
    # As a run ends: the best iterate's linearisation restored (its T Φ_t is not the plan's), then
    # polished, whose step leaves the new plan's; the distortion returned equals a fresh one.
    solver.restore_best(state)
    assert state.pulled is None
    solver.polish(state)
    returned = solver.returned_distortion(state)
    fresh = solver.cell_distortion(state.plan)
    assert np.allclose(returned[0], fresh[0].numpy(), rtol=1e-10) and np.allclose(returned[1], fresh[1].numpy(), rtol=1e-10)
    assert "distortion" in solver.timings


def test_distinct_lowest_skips_starts_that_reached_one_basin():
    from gwalign.engine.starts import distinct_lowest

    # SNARE-seq screened on 500 cells (seed 1): five starts in one basin, then two other groups.
    objectives = [0.2394, 0.2378, 0.2378, 0.23780001, 0.2378, 0.2596, 0.2590, 0.2589]
    assert distinct_lowest(objectives, 3) == [1, 0, 7]
    assert distinct_lowest(objectives, 1) == [1]
    assert distinct_lowest([0.5, 0.5, 0.5], 3) == [0]
    # A start whose objective is not finite never takes a finite one's place.
    assert distinct_lowest([float("nan"), 0.3, 0.2], 3) == [2, 1]
    assert distinct_lowest([float("nan"), float("nan")], 2) == [0]


@pytest.mark.real_data
@pytest.mark.parametrize("seed", [1, 2])
def test_subsample_screening_keeps_the_basin_of_the_full_problem(seed):
    """SNARE-seq with its starts screened on 500 of its 1047 cells: on the subsample one basin
    ranked first that is a mirror at full size (seeds 1 and 2 end at FOSCTTM 0.474 when only
    the subsample's winner continued). Distinct finalists continue at full size, and the lowest
    full-size objective is kept."""
    from pathlib import Path

    from gwalign.metrics import foscttm
    from gwalign.preprocess.row_scaling import scale_pair

    data = Path(__file__).parents[1] / "data" / "snareseq"
    xs, xt, _ = scale_pair(*(np.load(data / f"{name}.npy") for name in ("rna", "atac")), "auto")
    # k = 10 and ε = 0.03, where the race was measured (docs/how-it-works/engine.md). With k = 15
    # seed 1 keeps the mirror even with the race when screened on 500 cells (FOSCTTM 0.49), not on
    # 750 (0.147).
    config = gwalign.GWConfig(device="cpu", seed=seed, screen_points=500, one_sided_check=False, k=10,
                              epsilon=0.03)
    result = gwalign.align(xs, xt, config)
    emb_s, emb_t = gwalign.joint_embedding(result, xs, xt)
    assert foscttm(emb_s, emb_t) <= 0.2


def test_runner_up_is_the_lowest_finalist_that_is_a_different_matching():
    from gwalign.results.report import runner_up

    finalists = {"cells": [10, 12], "objectives": [0.2, 0.201, 0.21, 0.3], "scores": [1.0, 1.005, 1.05, 1.5],
                 "shared_mass": [1.0, 0.97, 0.3, 0.01]}
    assert runner_up(finalists) == {"objective_gap": pytest.approx(0.05), "shared_mass": 0.3}
    # Finalists that all ended in the chosen basin: no different matching was found.
    assert runner_up({"cells": [10, 12], "objectives": [0.2, 0.2001], "scores": [1.0, 1.0005],
                      "shared_mass": [1.0, 0.9]}) is None
    assert runner_up(None) is None


def test_runner_up_gap_is_small_for_a_symmetric_shape_and_large_for_an_asymmetric_one(rng):
    """A 2:1 rectangle matches its other sample in four near-isometric ways, so a different
    matching ends close to the chosen one (gap 0.3-11% over fifteen draws); a right triangle with
    legs 2 and 1 has no symmetry (16-437%, always above the same draw's rectangle)."""
    from gwalign.results.report import runner_up

    def sample(n: int, triangle: bool) -> np.ndarray:
        points = rng.uniform(size=(4 * n, 2)) * [2, 1]
        return (points[points[:, 1] < points[:, 0] / 2] if triangle else points)[:n]

    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    config = gwalign.GWConfig(device="cpu", one_sided_check=False)
    gaps = {}
    for triangle in (False, True):
        xs, xt = sample(300, triangle), sample(330, triangle)
        result = gwalign.align(xs, np.c_[xt, np.zeros(len(xt))] @ rotation.T, config)
        finalists = result.solve.finalists
        assert finalists["cells"] == [300, 330] and finalists["shared_mass"][0] == 1.0
        assert finalists["scores"] == sorted(finalists["scores"]) and finalists["scores"][0] >= 1.0
        assert all(0.0 <= shared <= 1.0 + 1e-5 for shared in finalists["shared_mass"])
        gaps[triangle] = runner_up(finalists)
    assert gaps[False] is not None and gaps[False]["objective_gap"] < 0.2 and gaps[False]["shared_mass"] < 0.5
    assert gaps[True] is None or gaps[True]["objective_gap"] > gaps[False]["objective_gap"]


def test_rank_plans_by_mean_relative_objective_over_both_graphs():
    from gwalign.engine.finalists import rank_plans

    # PBMC's half-size draw 7: the k = 15 winner is 3% worse under k = 30 than the third finalist.
    objectives, coarse = [0.11975, 0.11989, 0.12062], [0.11635, 0.11656, 0.11287]
    order, scores = rank_plans(objectives, coarse)
    assert order == [2, 0, 1]
    assert scores[2] == pytest.approx((0.12062 / 0.11975 + 1.0) / 2)
    # The run's own graph alone: the lowest objective first, scored relative to it.
    order, scores = rank_plans(objectives)
    assert order == [0, 1, 2] and scores[0] == 1.0 and scores[1] == pytest.approx(0.11989 / 0.11975)
    # A plan whose objective is not finite under either graph ranks last.
    assert rank_plans([0.2, 0.1, 0.3], [0.2, float("nan"), 0.25])[0] == [0, 2, 1]


def test_finalist_k_factor_is_off_or_coarser():
    with pytest.raises(ValueError, match="finalist_k_factor"):
        gwalign.GWConfig(finalist_k_factor=0.5)
    assert gwalign.GWConfig().finalist_k(1000, 900) == 30
    assert gwalign.GWConfig(finalist_k_factor=0).finalist_k(1000, 900) is None
    # Never more neighbours than a side has other cells, and none when that is no coarser.
    assert gwalign.GWConfig().finalist_k(20, 25) == 19
    assert gwalign.GWConfig().finalist_k(16, 25) is None


def test_randomized_factors_match_the_truncated_eigendecomposition(rng):
    """Graph geodesics of a noisy 2-D sheet in 5-D: the randomized range finder keeps the same
    leading eigenvalues and almost the optimal rank-r error."""
    from gwalign.geometry.distances import PrecomputedDistances
    from gwalign.geometry.factors import factor_randomized
    from gwalign.geometry.knn import knn_graph

    sheet = rng.uniform(size=(700, 2)) @ rng.normal(size=(2, 5)) + 0.01 * rng.normal(size=(700, 5))
    graph = knn_graph(torch.as_tensor(sheet, dtype=torch.float64), 12)
    dense = PrecomputedDistances.from_graph(graph, torch.device("cpu"), torch.float64, 0).dense()
    exact, fast = factor_dense(dense, 16), factor_randomized(dense, 16, seed=int(rng.integers(1 << 30)))
    assert torch.allclose(fast.lam, exact.lam, rtol=1e-3)
    assert fast.relative_error <= exact.relative_error * 1.05 + 1e-9

    def error(factors):
        return float(torch.linalg.norm(dense - (factors.phi * factors.lam) @ factors.phi.T) / torch.linalg.norm(dense))

    assert error(fast) == pytest.approx(fast.relative_error, rel=1e-6)
    assert error(fast) <= error(exact) * 1.05


def test_coincident_stops_the_higher_of_two_starts_with_the_same_plan():
    from gwalign.engine.starts import SAME_PLAN, coincident

    base = torch.eye(4, dtype=torch.float64)
    far = base.clone()
    far[1, 1] = -1.0
    near = base * (1.0 + 0.1 * SAME_PLAN)
    grams = torch.stack([base, far, near, far.clone()])
    # The lower objective of each coinciding pair is kept, whatever its position.
    assert coincident(grams, [0.3, 0.2, 0.1, 0.25]) == {0: 2, 3: 1}
    assert coincident(grams[:2], [0.3, 0.2]) == {}


def test_screening_stops_a_repeated_start_and_reports_its_twins_objective(rng):
    """A start that repeats another leaves the screening at once; its screened objective is its
    twin's, and the finalists are those of the screening without it."""
    from gwalign.engine.solve_lowrank import screen_starts

    n, k = 40, 36
    ds, dt = random_distances(rng, n), random_distances(rng, k, dim=2)
    ds, dt = ds / ds.mean(), dt / dt.mean()
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    config = gwalign.GWConfig(dtype="float64", device="cpu", max_iter=12, min_iter=6, epsilon_decay_iters=4)
    factors = (factor_dense(ds, 10), factor_dense(dt, 10))
    grams = LowRankGW(*factors, a, b, config).start_grams(4)

    def screened(chosen: list[torch.Tensor]):
        solver = LowRankGW(*factors, a, b, config)
        solver.start_grams = lambda count: [gram.clone() for gram in chosen]
        return screen_starts(solver, len(chosen), config, None)

    once, objectives_once, _ = screened(grams)
    twice, objectives_twice, _ = screened([grams[0], grams[1], grams[1], grams[2], grams[3]])
    assert objectives_twice[2] == objectives_twice[1]
    assert objectives_twice[:2] + objectives_twice[3:] == pytest.approx(objectives_once, rel=1e-12)
    assert [state.history[-1] for state in twice] == pytest.approx([state.history[-1] for state in once], rel=1e-12)


def test_column_potential_from_every_row_is_the_converged_column_potential(rng):
    """With the 'subsample' holding every row, the c-transform of converged row potentials is
    the Sinkhorn solution's column potential (balanced fixed point)."""
    n, k = 30, 27
    ds, dt = random_distances(rng, n), random_distances(rng, k, dim=2)
    ds, dt = ds / ds.mean(), dt / dt.mean()
    a = torch.as_tensor(rng.dirichlet(np.ones(n) * 5))
    b = torch.full((k,), 1.0 / k, dtype=torch.float64)
    config = gwalign.GWConfig(dtype="float64", device="cpu", sinkhorn_max_iter=5000, sinkhorn_tol=1e-12,
                              epsilon_decay_iters=0)
    solver = LowRankGW(factor_dense(ds, 10), factor_dense(dt, 10), a, b, config)
    state = solver.start(solver.product_gram())
    solver.run([state], until=2)
    fresh = solver.start(state.gram)
    converged = solver.start(state.gram)
    solver.step([converged], solver.config.solver.epsilon, 5000, 1e-12, "ieee")
    g = solver.column_potential(fresh, solver, converged)
    assert torch.allclose(g, converged.g, rtol=1e-8, atol=1e-9)


def test_fixed_point_is_one_sinkhorn_iteration_or_two_settled_steps_with_one_objective():
    from gwalign.engine.lowrank import SolverState, at_fixed_point

    config = gwalign.GWConfig(tol_rel=1e-3)
    cap = config.step_sinkhorn_max_iter("lowrank")

    def state(history, iters):
        return SolverState(plan=None, f=None, g=None, gram=torch.zeros(1, 1), col_mass=torch.ones(1),
                           history=history, sinkhorn_iters=iters)

    assert at_fixed_point(state([0.5], [1]), config, 1)                 # the potentials already solved it
    assert not at_fixed_point(state([0.5], [4]), config, 1)             # nothing to compare with yet
    assert at_fixed_point(state([0.03125, 0.0312503], [4, 2]), config, 2)
    assert not at_fixed_point(state([0.0312, 0.0313], [4, 2]), config, 2)        # moved by 0.3%
    assert not at_fixed_point(state([0.03125, 0.0312503], [4, 2]), config, 1)    # the step before: another ε
    assert not at_fixed_point(state([0.03125, 0.0312503], [cap, 2]), config, 2)  # the step before: at the cap

