"""Low-rank (fused, semi-relaxed) entropic GW with screened starts: the driver."""

from __future__ import annotations

from typing import Callable, Optional
import numpy as np
import torch
from gwalign.config import GWConfig
from gwalign.engine.schedule import ProgressCallback, SolveResult
from gwalign.geometry.build import CoarseFactors
from gwalign.geometry.factors import LowRankDistances
from gwalign.engine.lowrank import LowRankGW
from gwalign.engine.lowrank import SolverState
from gwalign.geometry.factors import nearest_sample_mass, restrict_rows
from gwalign.engine.starts import FINALISTS
from gwalign.engine.finalists import compare_finalists
from gwalign.engine.starts import coincident, distinct_lowest
from gwalign.engine.finalists import rank_plans


def screen_starts(solver: "LowRankGW", n_starts: int, config: GWConfig,
                  progress: Optional[ProgressCallback],
                  coarse: Optional[Callable[[], "LowRankGW"]] = None
                  ) -> tuple[list[SolverState], list[float], Optional[dict]]:
    """Screen the starts, run the finalists to convergence, return them best first (each at
    its best iterate, not yet polished; ranked by :func:`rank_plans`, with the objectives under
    the solver ``coarse()`` makes, on the same cells, when there are two finalists or more),
    every start's screened objective and the finalists' comparison (:func:`compare_finalists`;
    ``None`` with one start)."""
    # All starts step side by side (one batched Sinkhorn per iteration), then the finalists.
    states = [solver.start(gram) for gram in solver.start_grams(n_starts)]
    if n_starts > 1:
        kept = _screen(solver, states, config)
    else:
        solver.run(states, config.solver.max_iter, progress)
        kept = states
    screened = [state.history[-1] for state in states]
    lowest = distinct_lowest([state.history[-1] for state in kept], FINALISTS)
    finalists = [kept[i] for i in lowest]
    solver.run(finalists, config.solver.max_iter, progress)
    for state in finalists:
        solver.restore_best(state)
    objectives = [state.history[-1] for state in finalists]
    coarse_objectives = None if coarse is None or len(finalists) < 2 else \
        coarse().plan_objectives([state.plan for state in finalists])
    order, scores = rank_plans(objectives, coarse_objectives)
    finalists = [finalists[i] for i in order]
    if n_starts == 1:
        return finalists, screened, None
    compared = compare_finalists(finalists, solver.a, config.compute.seed)
    compared["scores"] = [scores[i] for i in order]
    if coarse_objectives is not None:
        compared["coarse_objectives"] = [coarse_objectives[i] for i in order]
    return finalists, screened, compared


def _screen(solver: LowRankGW, states: list[SolverState], config: GWConfig) -> list[SolverState]:
    """Step the starts side by side through the annealing plus two iterations, stopping a start
    as soon as it has reached the same plan as a lower one (:func:`coincident`); return the
    starts that ran to the end. A stopped start's history is continued with its twin's, so
    every start reports a screened objective."""
    screen = min(config.solver.max_iter, config.solver.epsilon_decay_iters + 2)
    running = list(states)
    twins: list[tuple[SolverState, SolverState]] = []
    for step in range(1, screen + 1):
        solver.run(running, step, None, config.starts.screen_sinkhorn_iters)
        objectives = [state.history[-1] for state in running]
        stopped = coincident(torch.stack([state.gram for state in running]), objectives)
        twins += [(running[i], running[twin]) for i, twin in stopped.items()]
        running = [state for i, state in enumerate(running) if i not in stopped]
    for state, twin in reversed(twins):
        state.history.extend(twin.history[len(state.history):])
    return running


#: Full-size steps the finalists of a subsample screening take side by side before only the
#: lowest goes on: with one step SNARE-seq screened on a subsample can keep its mirror, and each
#: step costs a Sinkhorn solve per finalist (docs/how-it-works/engine.md, "Finalists in distinct
#: basins").
RACE_STEPS = 2


def solve_lowrank_gw(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor,
                     config: GWConfig, n_starts: int, *,
                     joint: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                     progress: Optional[ProgressCallback] = None, coarse: Optional[CoarseFactors] = None,
                     polish: bool = True) -> SolveResult:
    """Low-rank (fused, semi-relaxed) entropic GW with screened starts.

    The starts (:func:`gwalign.engine.starts.start_grams`: product plan, distance profiles, sign
    patterns of the leading components, then noise) step side by side through the ε annealing;
    the :data:`~gwalign.engine.starts.FINALISTS` lowest in distinct basins run to convergence and
    are ranked by :func:`gwalign.engine.finalists.rank_plans` (under this run's graph and, when
    ``coarse`` is given, a coarser one). Above ``screen_points`` cells a side the screening runs on
    a uniform subsample and the finalists continue at full size (:func:`_continue_finalists`);
    above ``race_points`` they race on a second, larger subsample and only the winner goes on.
    Semi-relaxed runs screen their starts as balanced GW, then race the balanced finalists from
    their ``G`` under the semi-relaxed objective. The plan is polished unless ``polish`` is off.

    Parameters
    ----------
    fs, ft
        Factored normalised distances of the source (N points) and target (K points).
    a, b
        Marginals.
    config
        Run parameters.
    n_starts
        Starts to screen.
    joint
        Shared features (N×p, K×p) for fused GW.
    progress
        Called as ``progress(iteration, max_iter, objective)``.
    coarse
        Builds a coarser graph's factors on given rows of each side, for the finalists' ranking.
    polish
        Polish the returned plan at the final ε (off where another step replaces it).

    Returns
    -------
    SolveResult
        ``start_objectives``: every start's objective after screening; ``finalists``: the finalists'
        converged objectives and shared mass (of the subsample or the balanced selection if used).
    """
    solver = LowRankGW(fs, ft, a, b, config, joint)

    def coarse_solver(rows_s: Optional[np.ndarray], rows_t: Optional[np.ndarray], a_: torch.Tensor,
                      b_: torch.Tensor, config_: GWConfig) -> Optional[Callable[[], LowRankGW]]:
        # Scores plans under the coarser graph's distances of these cells (finalist_k_factor);
        # only its objectives are used, never its steps. Begun here, before the screening.
        factors = None if coarse is None else coarse.begin(rows_s, rows_t)
        return None if factors is None else lambda: LowRankGW(*factors(), a_, b_, config_)

    # Semi-relaxed runs screen their starts as balanced GW (screened under the penalised objective,
    # plans that pour a source cluster onto a wrong target cluster win), then race the balanced
    # finalists under it: where one side holds a cell type the other lacks, the balanced winner
    # can be the basin that places it, and relaxing it keeps that basin (docs/how-it-works/engine.md).
    select_config = config.replace(semi_relaxed=False) if config.solver.semi_relaxed else config
    if n_starts > 1 and max(a.shape[0], b.shape[0]) > config.starts.screen_points:
        chosen, screened, compared, sample = _screen_subsample(solver, n_starts, select_config, joint,
                                                               coarse_solver)
        best = _continue_finalists(solver, *_race_on_subsample(solver, chosen, sample, joint), progress)
    elif config.solver.semi_relaxed:
        balanced = LowRankGW(fs, ft, a, b, select_config, joint)
        chosen, screened, compared = screen_starts(balanced, n_starts, select_config, None,
                                                   coarse_solver(None, None, a, b, select_config))
        solver.timings["screen"] = sum(balanced.timings.values())
        best = _continue_finalists(solver, chosen, None, progress)
    else:
        chosen, screened, compared = screen_starts(solver, n_starts, config, progress,
                                                   coarse_solver(None, None, a, b, config))
        best = chosen[0]
    if polish:
        solver.polish(best)
    distortion = solver.returned_distortion(best)
    return SolveResult(plan=best.plan, history=best.history, objective=best.history[-1],
                       n_iter=len(best.history), converged=best.converged, epsilon=solver.config.solver.epsilon,
                       cost_scale=solver.scale, sinkhorn_iters=best.sinkhorn_iters,
                       timings=dict(solver.timings), start_objectives=screened, finalists=compared,
                       marginal_error=best.marginal_error,
                       cell_distortion=distortion)


def _screen_subsample(solver: LowRankGW, n_starts: int, config: GWConfig,
                      joint: Optional[tuple[torch.Tensor, torch.Tensor]], coarse_solver: Callable
                      ) -> tuple[list[SolverState], list[float], Optional[dict], LowRankGW]:
    """Screen the starts on ``screen_points`` cells drawn uniformly per side (seeded), with the
    same factors' rows; ``G = Φ_sᵀ T Φ_t`` is a sum over cell pairs, so a uniform subsample
    estimates it for the same plan. Returns :func:`screen_starts`' finalists, objectives and
    comparison, of the subsample, and the subsample's solver."""
    gen = np.random.default_rng(config.compute.seed)
    sub, rows = _subsample(solver, config.starts.screen_points, gen, config, joint)
    coarse = coarse_solver(rows[0], rows[1], sub.a, sub.b, config)
    chosen = screen_starts(sub, n_starts, config, None, coarse)
    solver.timings["screen"] = sum(sub.timings.values())
    return (*chosen, sub)


def _subsample(solver: LowRankGW, points: int, gen: np.random.Generator, config: GWConfig,
               joint: Optional[tuple[torch.Tensor, torch.Tensor]]
               ) -> tuple[LowRankGW, tuple[np.ndarray, np.ndarray]]:
    """A solver of ``config`` on at most ``points`` cells a side drawn uniformly without
    replacement (the same factors' rows; each cell's mass moved to its nearest drawn cell,
    :func:`~gwalign.geometry.factors.nearest_sample_mass`), and the rows drawn."""
    a, b = solver.a, solver.b
    rows_s = np.sort(gen.choice(a.shape[0], size=min(a.shape[0], points), replace=False))
    rows_t = np.sort(gen.choice(b.shape[0], size=min(b.shape[0], points), replace=False))
    sub_joint = None if joint is None else (joint[0][rows_s], joint[1][rows_t])
    # The marginals follow the full density, not a draw's fluctuations of it: a subsample's
    # potentials then carry over to the next, larger problem with little left for its Sinkhorn
    # to correct (docs/how-it-works/engine.md).
    sub_a, sub_b = nearest_sample_mass(solver.fs, a, rows_s), nearest_sample_mass(solver.ft, b, rows_t)
    sub = LowRankGW(restrict_rows(solver.fs, rows_s), restrict_rows(solver.ft, rows_t), sub_a, sub_b, config,
                    sub_joint)
    return sub, (rows_s, rows_t)


def _race_on_subsample(solver: LowRankGW, chosen: list[SolverState], sample: LowRankGW,
                       joint: Optional[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[SolverState], LowRankGW]:
    """Race the finalists of a screening on ``race_points`` cells a side instead of every cell,
    when the run is larger than that; returns the winner (as a state of the race's solver) and
    that solver. Smaller runs, or a single finalist, are returned unchanged."""
    config = solver.config
    points = config.starts.race_points
    if len(chosen) < 2 or max(solver.a.shape[0], solver.b.shape[0]) <= points or points <= config.starts.screen_points:
        return chosen, sample
    # Another seeded draw than the screening's: the race checks the subsample's ranking on new cells.
    race, _ = _subsample(solver, points, np.random.default_rng(config.compute.seed + 1), config, joint)
    winner = _race(race, chosen, sample, config.solver.epsilon_decay_iters + RACE_STEPS)
    race.restore_best(winner)      # at the linearisation of its best plan, as screened finalists are
    solver.timings["race"] = sum(race.timings.values())
    return [winner], race


def _race(solver: LowRankGW, chosen: list[SolverState], sample: Optional[LowRankGW], until: int) -> SolverState:
    """Start every state of ``chosen`` (screened on another problem) on this one at the final ε
    (``continue_winner``) from its ``G``; with several, run them side by side for
    :data:`RACE_STEPS` steps (no further than iteration ``until``) and return the lowest.
    ``sample``: the solver ``chosen`` ran on, whose row potentials give each first step its
    column potentials (:meth:`LowRankGW.column_potential`)."""
    config = solver.config
    states = [solver.start(state.gram, at_final_epsilon=config.starts.continue_winner) for state in chosen]
    if sample is not None and config.starts.continue_winner:
        for state, screened in zip(states, chosen):
            if screened.f is not None:
                state.g = solver.column_potential(state, sample, screened)
    if len(states) == 1:
        return states[0]
    solver.run(states, min(until, states[0].iteration + RACE_STEPS), None)
    return min(states, key=lambda state: min(state.best_objective, state.history[-1]))


def _continue_finalists(solver: LowRankGW, chosen: list[SolverState], sample: Optional[LowRankGW],
                        progress: Optional[ProgressCallback]) -> SolverState:
    """Continue finalists screened on another problem (a subsample, or balanced GW) on this one.

    They have been through the annealing already, so each starts at the final ε from the ``G``
    of its best linearisation (``continue_winner``). With several, they race side by side for
    :data:`RACE_STEPS` steps (:func:`_race`) and only the lowest full-size objective goes on: a
    subsample can rank the basins differently from the full problem. ``sample``: the subsample's
    solver, whose row potentials give each finalist's first full-size Sinkhorn its column
    potentials (:meth:`LowRankGW.column_potential`).
    """
    config = solver.config
    # max_iter counts the skipped annealing: a budget spent by it still gets one full-size step.
    start = config.solver.epsilon_decay_iters if config.starts.continue_winner else 0
    until = max(config.solver.max_iter, start + 1)
    best = _race(solver, chosen, sample, until)
    # After a subsample screening it has converged once already: a step that leaves the plan
    # where it was ends the run, where the objective window would take ten full-size steps.
    solver.run([best], until, progress, stop_at_fixed_point=sample is not None)
    solver.restore_best(best)
    return best
