"""The public entry point: ``align(X_source, X_target, config) -> Alignment``."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional
import numpy as np
import torch
from gwalign.config import GWConfig
from gwalign.geometry.distances import DistanceProvider, PrecomputedDistances
from gwalign.engine.exact_finish import finish_exact
from gwalign.engine.one_sided_probe import relaxed_mass
from gwalign.engine.solve_lowrank import solve_lowrank_gw
from gwalign.engine.lowrank_coupling import solve_coupling_rank
from gwalign.engine.schedule import ProgressCallback, SolveResult
from gwalign.engine.sampled import solve_sampled_gw
from gwalign.threads import limited_threads
from gwalign.io.arrays import as_linear_cost, as_marginal, as_matrix, as_square_distances
from gwalign.alignment import Alignment
from gwalign.errors import GWAlignWarning
from gwalign.geometry.build import CoarseFactors
from gwalign.geometry.build import all_pairs_paths, distance_provider, graphs_and_paths
from gwalign.geometry.build import factor_distances
from gwalign.device import resolve_device
from gwalign.device import timed_stage
from gwalign.geometry.knn import KNNGraph
from gwalign.distributed import Group, activated, share
from gwalign.distributed.launch import lead



def align(x_source, x_target, config: Optional[GWConfig] = None, *,
          a=None, b=None, joint_source=None, joint_target=None, linear_cost=None,
          d_source=None, d_target=None, progress: Optional[ProgressCallback] = None) -> Alignment:
    """Align two point clouds living in different spaces with (fused, semi-relaxed) GW.

    Parameters
    ----------
    x_source, x_target
        Representations, N×d and K×d' (any d, d'). Geodesic distances of their kNN graphs are
        matched. Ignored for a side whose distance matrix is given.
    config
        All run parameters (:class:`GWConfig`); defaults when ``None``.
    a, b
        Cell weights (positive, summing to one); uniform by default.
    joint_source, joint_target
        Shared features (N×p, K×p) for fused GW (used when ``fgw_alpha > 0``).
    linear_cost
        Dense N×K feature cost for fused GW, small problems only (``dense_limit``).
    d_source, d_target
        User distance matrices (N×N, K×K), used as ``precomputed`` distances.
    progress
        Optional callback ``progress(iteration, max_iter, objective)``.

    Returns
    -------
    Alignment
        The streamed plan, its objective and convergence history, and the graphs it was built on.
    """
    call = dict(config=config or GWConfig(), x_source=x_source, x_target=x_target, a=a, b=b,
                joint_source=joint_source, joint_target=joint_target, linear_cost=linear_cost,
                d_source=d_source, d_target=d_target)
    # Rank 0 of a torchrun/srun launch shares the call with the other ranks (large problems only).
    group = lead(call, lambda: _cells(x_source, d_source) * _cells(x_target, d_target))
    return align_call(call, group, progress)


def align_call(call: dict[str, Any], group: Optional[Group] = None,
               progress: Optional[ProgressCallback] = None) -> Alignment:
    """:func:`align` with its arguments in ``call``, on this process or, with ``group``, on every
    rank of a distributed alignment (each rank calls it with rank 0's ``call``; only the streamed
    passes are split, so every rank ends with the same result)."""
    config = call["config"]
    arrays = [call[name] for name in ("x_source", "x_target", "a", "b", "joint_source", "joint_target",
                                      "linear_cost", "d_source", "d_target")]
    waited = 0.0 if group is None else group.collective_seconds
    with limited_threads(config.compute.threads), activated(group):
        alignment = _align(config, *arrays, progress)
    if group is not None:
        alignment.world_size, alignment.backend = group.world_size, group.backend
        alignment.timings["collectives"] = group.collective_seconds - waited
    return alignment


def _cells(points, distances) -> int:
    """Cells of one side, from its points or its distance matrix (0 when neither has a shape:
    the checks of :func:`align` then refuse the call on rank 0 alone)."""
    shape = np.shape(points if distances is None else distances)
    return int(shape[0]) if shape else 0


def _align(config: GWConfig, x_source, x_target, a, b, joint_source, joint_target, linear_cost, d_source, d_target,
           progress: Optional[ProgressCallback]) -> Alignment:
    """:func:`align`'s steps, under its thread limit."""
    problem = _checked_problem(config, x_source, x_target, a, b, joint_source, joint_target, linear_cost,
                               d_source, d_target)
    n_source, n_target = problem.sizes
    mode = config.resolved_distance(n_source, n_target)
    # ε is set by the distances when left automatic; the engine and the result see the value used.
    config = config.with_epsilon(mode)
    device = resolve_device(config.compute.device)
    dtype = torch.float64 if config.compute.dtype == "float64" else torch.float32
    timings: dict[str, float] = {}
    geometry = _geometry(problem, config, mode, device, dtype, timings)
    exact = _finish_mode(geometry, problem, config) == "exact"
    with timed_stage("solve", timings, (n_source, n_target)):
        # An exact finish replaces the entropic plan, so that plan's polish would be wasted.
        solve = _solve(geometry, problem, config, mode, timings, progress, polish=not exact)
        if exact:
            (dist_s, dist_t), to_device = geometry.distances, geometry.to_device
            solve = finish_exact(solve, dist_s.dense(), dist_t.dense(), to_device(problem.marginals[0]),
                                 to_device(problem.marginals[1]))
    if not solve.marginal_error <= config.solver.final_tol:
        # The plan is still usable, but its marginals are off: say so instead of returning silently.
        warnings.warn(f"final Sinkhorn stopped at marginal error {solve.marginal_error:.2g} > final_tol "
                      f"{config.solver.final_tol:g} after {solve.sinkhorn_iters[-1]} iterations: raise "
                      f"final_max_iter or epsilon", GWAlignWarning, stacklevel=2)
    timings.update({f"solve_{key}": value for key, value in solve.timings.items()})
    return Alignment(plan=solve.plan, solve=solve, config=config, graphs=geometry.graphs,
                     distance_mode=mode, timings=timings,
                     gradient_mode=config.resolved_gradient(mode, problem.linear_cost is not None),
                     marginals=problem.marginals)


@dataclass
class _Problem:
    """The checked inputs of :func:`align`, as NumPy arrays (``None`` where not given)."""

    points: tuple[Optional[np.ndarray], Optional[np.ndarray]]
    distances: tuple[Optional[np.ndarray], Optional[np.ndarray]]
    marginals: tuple[np.ndarray, np.ndarray]
    joint: Optional[tuple[np.ndarray, np.ndarray]]
    linear_cost: Optional[np.ndarray]

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.marginals[0]), len(self.marginals[1])


def _checked_problem(config: GWConfig, x_source, x_target, a, b, joint_source, joint_target, linear_cost,
                     d_source, d_target) -> _Problem:
    """Check every array argument of :func:`align`; raise ``ValueError`` naming the first bad one."""
    min_rows = config.min_points
    xs = as_matrix("x_source", x_source, min_rows=min_rows) if d_source is None else None
    xt = as_matrix("x_target", x_target, min_rows=min_rows) if d_target is None else None
    n_source = xs.shape[0] if xs is not None else np.asarray(d_source).shape[0]
    n_target = xt.shape[0] if xt is not None else np.asarray(d_target).shape[0]
    ds = as_square_distances("d_source", d_source, n_source) if d_source is not None else None
    dt = as_square_distances("d_target", d_target, n_target) if d_target is not None else None
    marginals = (as_marginal("a", a, n_source), as_marginal("b", b, n_target))
    joint = _joint(joint_source, joint_target, n_source, n_target)
    if config.solver.fgw_alpha > 0 and joint is None and linear_cost is None:
        raise ValueError("fgw_alpha > 0 needs joint_source/joint_target or linear_cost")
    if joint is not None and linear_cost is not None:
        raise ValueError("give either joint_source/joint_target or linear_cost, not both")
    lin = as_linear_cost("linear_cost", linear_cost, n_source, n_target, config.compute.dense_limit)
    return _Problem((xs, xt), (ds, dt), marginals, joint, lin)


@dataclass
class _Geometry:
    """Both sides' graphs and distances on the run's device, and the coarser graph's factory."""

    graphs: tuple[Optional[KNNGraph], Optional[KNNGraph]]
    distances: tuple[DistanceProvider, DistanceProvider]
    coarse: Optional[CoarseFactors]
    to_device: Callable[[Optional[np.ndarray]], Optional[torch.Tensor]]


def _geometry(problem: _Problem, config: GWConfig, mode: str, device: torch.device, dtype: torch.dtype,
              timings: dict[str, float]) -> _Geometry:
    """kNN graphs, distance providers and (for screened low-rank runs) the coarser graph's factors."""
    n_source, n_target = problem.sizes
    seed = config.compute.seed

    def to_device(arr: Optional[np.ndarray]) -> Optional[torch.Tensor]:
        return None if arr is None else torch.as_tensor(arr, dtype=dtype, device=device)

    with timed_stage("graph", timings, (n_source, n_target)):
        points = (to_device(problem.points[0]), to_device(problem.points[1]))
        graphs, pending_paths = graphs_and_paths(points, problem.sizes, config, mode)
    with timed_stage("distances", timings, (n_source, n_target)):
        # Exact runs search both sides' all-pairs paths side by side in the worker pool.
        paths = all_pairs_paths(graphs, problem.distances, config) if mode == "precomputed" \
            else pending_paths.result()
        dist_s = distance_provider(mode, graphs[0], problem.distances[0], device, dtype, config, seed, points[0],
                                   paths[0])
        dist_t = distance_provider(mode, graphs[1], problem.distances[1], device, dtype, config, seed + 1, points[1],
                                   paths[1])
    for part in set(dist_s.timings) | set(dist_t.timings):
        timings[f"distances_{part}"] = dist_s.timings.get(part, 0.0) + dist_t.timings.get(part, 0.0)
    coarse = None
    coarse_k = config.finalist_k(n_source, n_target)
    if coarse_k is not None and points[0] is not None and points[1] is not None and config.lowrank_starts > 1:
        coarse = CoarseFactors(points, coarse_k, config, device, dtype, timings)
    return _Geometry(graphs, (dist_s, dist_t), coarse, to_device)


def _solve(geometry: _Geometry, problem: _Problem, config: GWConfig, mode: str, timings: dict[str, float],
           progress: Optional[ProgressCallback], polish: bool = True) -> SolveResult:
    """Run the chosen GW solver (low-rank with screened starts, or sampled with full starts);
    ``polish=False``: the low-rank solver skips its final polish."""
    to_dev, (dist_s, dist_t), lin = geometry.to_device, geometry.distances, problem.linear_cost
    a, b = to_dev(problem.marginals[0]), to_dev(problem.marginals[1])
    joint_t = None if problem.joint is None else (to_dev(problem.joint[0]), to_dev(problem.joint[1]))
    if config.resolved_gradient(mode, lin is not None) == "lowrank":
        tick = time.perf_counter()
        factors = (factor_distances(dist_s, config.distances.rank), factor_distances(dist_t, config.distances.rank))
        # Each rank built its own factors from the same inputs: rank 0's make sure they are equal.
        share([tensor for factor in factors for tensor in (factor.phi, factor.lam)])
        timings["factorise"] = time.perf_counter() - tick
        if config.solver.coupling_rank is not None:
            solve = solve_coupling_rank(factors[0], factors[1], a, b, config, joint=joint_t, progress=progress)
        else:
            solve = solve_lowrank_gw(factors[0], factors[1], a, b, config, config.lowrank_starts,
                                     joint=joint_t, progress=progress, coarse=geometry.coarse,
                                     polish=polish)
        if config.runs_one_sided_check(a.shape[0], b.shape[0]):
            tick = time.perf_counter()
            ratios = relaxed_mass(factors[0], factors[1], a, b, solve.plan, config, joint_t)
            solve.relaxed_mass = (ratios[0].cpu().numpy(), ratios[1].cpu().numpy())
            timings["one_sided_check"] = time.perf_counter() - tick
        return solve
    starts = []
    for start in range(config.sampled_starts):
        starts.append(solve_sampled_gw(dist_s, dist_t, a, b, config.replace(seed=config.compute.seed + start),
                                       joint=joint_t, linear_cost=to_dev(lin), progress=progress))
    solve = min(starts, key=lambda result: result.objective)
    solve.start_objectives = [result.objective for result in starts]
    return solve


def _finish_mode(geometry: _Geometry, problem: _Problem, config: GWConfig) -> str:
    """How the run's plan is finished (:meth:`GWConfig.resolved_finish`): ``entropic`` or ``exact``."""
    given = problem.distances[0] is not None and problem.distances[1] is not None
    dense = all(isinstance(provider, PrecomputedDistances) for provider in geometry.distances)
    n_source, n_target = problem.sizes
    return config.resolved_finish(given, dense, n_source * n_target)


def _joint(js, jt, n_source: int, n_target: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    if js is None and jt is None:
        return None
    if js is None or jt is None:
        raise ValueError("joint_source and joint_target must be given together")
    js_arr = as_matrix("joint_source", js)
    jt_arr = as_matrix("joint_target", jt)
    if js_arr.shape[0] != n_source or jt_arr.shape[0] != n_target:
        raise ValueError(f"joint_source/joint_target need {n_source} and {n_target} rows, got "
                         f"{js_arr.shape[0]} and {jt_arr.shape[0]}")
    if js_arr.shape[1] != jt_arr.shape[1]:
        raise ValueError(f"joint_source and joint_target must have equal width, got "
                         f"{js_arr.shape[1]} and {jt_arr.shape[1]}")
    return js_arr, jt_arr
