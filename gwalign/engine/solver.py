"""Sampled Gromov-Wasserstein, streamed (Kerdoncuff, Emonet, Sebban 2021, "Sampled GW").

Each outer step draws M anchor pairs (i_m, j_m) from the current plan T and linearises the GW
objective into ``C_ij = (1/M) Σ_m (Ds[i, i_m] − Dt[j, j_m])² = ‖u_i − v_j‖²`` with
``u_i = Ds[i, anchors_s]/√M`` and ``v_j = Dt[j, anchors_t]/√M``: a squared-Euclidean OT problem
with M-dimensional features, solved by streamed Sinkhorn warm-started from the last potentials.
The same draw, taken before the new solve, is an unbiased estimate of the GW objective of the
previous plan; that history drives the stopping rule.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from gwalign.config import GWConfig
from gwalign.distances import DistanceProvider
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan, centre_features, choose_blocks
from gwalign.engine.precision import round_to_tf32
from gwalign.engine.sinkhorn import sinkhorn

ProgressCallback = Callable[[int, int, Optional[float]], None]


@dataclass
class SolveResult:
    """Outcome of a sampled-GW solve.

    Attributes
    ----------
    plan
        Final implicit plan.
    history
        Unbiased GW objective estimate of the plan after each outer iteration (normalised
        distances), the last one from ``n_eval_anchors`` fresh anchors.
    objective
        Final GW objective estimate (the last entry of ``history``).
    n_iter
        Outer iterations run.
    converged
        True when the stopping rule fired before ``max_iter``.
    epsilon
        ε at the end, relative: the cost is divided by ``cost_scale`` (its mean under the
        product plan at the first step), so this equals ``config.epsilon``.
    cost_scale
        That mean; ``epsilon * cost_scale`` is ε in units of squared normalised distances.
    sinkhorn_iters
        Sinkhorn iterations of each outer step, then of the final polish.
    timings
        Seconds spent in distances, Sinkhorn steps, the final polish and estimation.
    start_objectives
        Final objective of every start (filled by :func:`gwalign.align`), the lowest kept.
    marginal_error
        Marginal error the final polish reached (L1; compare with ``config.final_tol``).
    cell_distortion
        (source, target) arrays: each cell's share of the GW objective per unit of its mass
        (low-rank GW only; see :meth:`gwalign.engine.lowrank.LowRankGW.cell_distortion`).
    finalists
        Low-rank GW with several starts: the finalists' converged objectives (lowest first),
        the mass each plan shares with the lowest's, and the cells they ran on
        (:func:`gwalign.engine.lowrank.compare_finalists`); else ``None``.
    relaxed_mass
        (source, target) arrays: each cell's mass ratio when its side's marginal is freed
        (:func:`gwalign.engine.lowrank.relaxed_mass`; balanced low-rank runs for which
        ``config.runs_one_sided_check`` holds, else ``None``).
    """

    plan: FactoredPlan
    history: list[float]
    objective: float
    n_iter: int
    converged: bool
    epsilon: float
    cost_scale: float
    sinkhorn_iters: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    start_objectives: list[float] = field(default_factory=list)
    marginal_error: float = float("nan")
    cell_distortion: Optional[tuple[np.ndarray, np.ndarray]] = None
    finalists: Optional[dict] = None
    relaxed_mass: Optional[tuple[np.ndarray, np.ndarray]] = None


def default_n_anchors(n_source: int, n_target: int) -> int:
    """Anchors per step when not given: ``clip(n/16, 64, 128)``, at most n (n = smaller side).

    The feature dimension of every streamed pass is M, so M sets the cost per Sinkhorn step.
    """
    n = min(n_source, n_target)
    return int(min(n, max(64, min(128, n // 16))))


def epsilon_at(config: GWConfig, iteration: int) -> float:
    """Annealed ε (relative): geometric decay from ``epsilon * start_factor`` to ``epsilon``."""
    if config.epsilon_decay_iters == 0 or iteration >= config.epsilon_decay_iters:
        return config.epsilon
    frac = 1.0 - iteration / config.epsilon_decay_iters
    return config.epsilon * config.epsilon_start_factor ** frac


def should_stop(history: list[float], n_settled: int, config: GWConfig, iterations: Optional[int] = None) -> bool:
    """Noise-aware stopping rule on the objective history.

    Compares the mean of the last ``window`` estimates with the window before, using only
    estimates taken at the final ε (``n_settled`` of them). Stops when the improvement is below
    both the sampling noise (``noise_z`` standard errors) and ``tol_rel`` of the objective.
    ``iterations`` (default: the history's length) is what ``min_iter`` counts; a run that
    continues from a screened start counts the annealing it skipped.
    """
    w = config.window
    done = len(history) if iterations is None else iterations
    if done < config.min_iter or n_settled < 2 * w:
        return False
    last = np.asarray(history[-w:])
    prev = np.asarray(history[-2 * w:-w])
    improvement = prev.mean() - last.mean()
    std_err = math.sqrt(last.var(ddof=1) / w + prev.var(ddof=1) / w)
    return bool(improvement < max(config.noise_z * std_err, config.tol_rel * abs(last.mean())))


def _sample_anchors(plan: FactoredPlan, a: torch.Tensor, m: int,
                    generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """M pairs from the plan: rows from its row marginal (= a after a row update), then columns."""
    rows = torch.multinomial(a, m, replacement=True, generator=generator)
    cols = ops.sample_columns(plan, rows, generator)
    return rows.cpu().numpy(), cols.cpu().numpy()


def product_plan(a: torch.Tensor, b: torch.Tensor, blocks: tuple[int, int]) -> FactoredPlan:
    """The independent coupling ``a bᵀ`` as an implicit plan (zero features)."""
    zeros_a = torch.zeros(a.shape[0], 1, dtype=a.dtype, device=a.device)
    zeros_b = torch.zeros(b.shape[0], 1, dtype=b.dtype, device=b.device)
    return FactoredPlan(u=zeros_a, v=zeros_b, p=torch.log(a), q=torch.log(b), eps=1.0,
                        block_rows=blocks[0], block_cols=blocks[1])


def product_mean_cost(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean of ``‖x_i − y_j‖²`` under the product plan, in O((N+K)·d)."""
    return float(a @ (x * x).sum(1) + b @ (y * y).sum(1) - 2.0 * (a @ x) @ (b @ y))


#: Rows the per-iteration objective estimate visits (sampled by the row marginal beyond this):
#: at 45k×45k on the H100 exact estimates took as long as all Sinkhorn steps (9.8 s vs 9.7 s).
ESTIMATE_ROWS = 4096


def estimate_cost(plan: FactoredPlan, us: torch.Tensor, vt: torch.Tensor, a: torch.Tensor,
                  max_rows: int, generator: torch.Generator) -> float:
    """``Σ_ij T_ij ‖us_i − vt_j‖²``, exactly when N ≤ ``max_rows``, else unbiased from rows ~ a.

    With rows ``i_1…i_R`` drawn from ``a`` (the plan's exact row marginal), the mean of
    ``(1/a_i) Σ_j T_ij c_ij`` is unbiased; dividing row i by ``a_i`` is a shift of its
    potential by ``−ε log a_i``, so the sub-plan streams like any plan.
    """
    n = us.shape[0]
    if n <= max_rows or plan.extra is not None:
        return ops.transport_cost(plan, us, vt)
    rows = torch.multinomial(a, max_rows, replacement=True, generator=generator)
    sub = dataclasses.replace(plan, u=plan.u[rows], p=plan.p[rows] - plan.eps * torch.log(a[rows]))
    return ops.transport_cost(sub, us[rows], vt) / max_rows


def _estimate_objective(plan: FactoredPlan, dist_s: DistanceProvider, dist_t: DistanceProvider,
                        a: torch.Tensor, n_anchors: int, chunk: int, generator: torch.Generator) -> float:
    """Unbiased GW objective estimate of ``plan`` from ``n_anchors`` fresh anchor pairs."""
    total, done = 0.0, 0
    while done < n_anchors:
        m = min(chunk, n_anchors - done)
        rows, cols = _sample_anchors(plan, a, m, generator)
        us = dist_s.columns(rows) / math.sqrt(m)
        vt = dist_t.columns(cols) / math.sqrt(m)
        total += estimate_cost(plan, us, vt, a, 4 * ESTIMATE_ROWS, generator) * m
        done += m
    return total / n_anchors


def solve_sampled_gw(dist_s: DistanceProvider, dist_t: DistanceProvider, a: torch.Tensor,
                     b: torch.Tensor, config: GWConfig, *,
                     joint: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                     linear_cost: Optional[torch.Tensor] = None,
                     progress: Optional[ProgressCallback] = None) -> SolveResult:
    """Run sampled (fused, semi-relaxed) entropic GW between two distance providers.

    Parameters
    ----------
    dist_s, dist_t
        Normalised geodesic distances of the source (N points) and target (K points).
    a, b
        Marginals on the engine's device and dtype.
    config
        Run parameters (``epsilon`` and ``rho`` are relative to the cost scale).
    joint
        Shared features (N×p, K×p) for fused GW with a squared-Euclidean feature cost.
    linear_cost
        Dense N×K feature cost for fused GW (small problems only).
    progress
        Called as ``progress(iteration, max_iter, objective_estimate_or_None)``.

    Returns
    -------
    SolveResult
    """
    config = config.with_epsilon()   # set by gwalign.align; exact distances when called directly
    n, k = a.shape[0], b.shape[0]
    m = config.n_anchors or default_n_anchors(n, k)
    step_precision = config.step_precision("sampled")
    blocks = choose_blocks(n, k, config.block_elements, config.block_rows, config.block_cols)
    generator = torch.Generator(device=a.device).manual_seed(config.seed)
    alpha = config.fgw_alpha
    timings = {"distances": 0.0, "sinkhorn": 0.0, "polish": 0.0, "estimate": 0.0}

    joint_u = joint_v = None
    if joint is not None and alpha > 0:
        scale = product_mean_cost(joint[0], joint[1], a, b)
        joint_u = joint[0] * math.sqrt(alpha / scale)
        joint_v = joint[1] * math.sqrt(alpha / scale)
    extra = None
    if linear_cost is not None and alpha > 0:
        extra = linear_cost * (alpha / float(a @ linear_cost @ b))

    plan = product_plan(a, b, blocks)
    f = g = None
    history: list[float] = []
    sinkhorn_iters: list[int] = []
    recent: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=config.ema_window)
    gw_scale: Optional[float] = None
    converged = False
    n_iter = 0
    for it in range(config.max_iter):
        tick = time.perf_counter()
        rows, cols = _sample_anchors(plan, a, m, generator)
        us = dist_s.columns(rows) / math.sqrt(m)
        vt = dist_t.columns(cols) / math.sqrt(m)
        timings["distances"] += time.perf_counter() - tick
        if it > 0:
            tick = time.perf_counter()
            history.append(estimate_cost(plan, us, vt, a, ESTIMATE_ROWS, generator))
            timings["estimate"] += time.perf_counter() - tick
            n_settled = it - max(config.epsilon_decay_iters, 1)
            if progress is not None:
                progress(it, config.max_iter, history[-1])
            if should_stop(history, n_settled, config):
                converged = True
                break
        if gw_scale is None:
            # Cost scale fixed once at the first step (product plan), never rescaled.
            gw_scale = max(product_mean_cost(us, vt, a, b), 1e-30)
        weight = math.sqrt((1.0 - alpha) / gw_scale)
        recent.appendleft((us * weight, vt * weight))
        u, v = _stacked_features(recent, config)
        if joint_u is not None:
            u, v = torch.cat([u, joint_u], dim=1), torch.cat([v, joint_v], dim=1)
        u, v = centre_features(u, v, a, b)
        if step_precision == "tf32":
            u, v = round_to_tf32(u), round_to_tf32(v)
        tick = time.perf_counter()
        result = sinkhorn(u, v, a, b, epsilon_at(config, it), f, g,
                          rho=config.rho if config.semi_relaxed else None, extra=extra,
                          max_iter=config.step_sinkhorn_max_iter("sampled"), tol=config.sinkhorn_tol,
                          block_rows=blocks[0], block_cols=blocks[1], precision=step_precision, omega=config.sinkhorn_omega)
        timings["sinkhorn"] += time.perf_counter() - tick
        plan, f, g = result.plan, result.f, result.g
        sinkhorn_iters.append(result.n_iter)
        n_iter = it + 1
    tick = time.perf_counter()
    # The features were rounded for the step precision, so the polish runs at it too: the plan's
    # cost is exactly representable there (gwalign.engine.precision).
    final = sinkhorn(plan.u, plan.v, a, b, plan.eps, f, g,
                     rho=config.rho if config.semi_relaxed else None, extra=extra,
                     max_iter=config.final_max_iter, tol=config.final_tol,
                     block_rows=blocks[0], block_cols=blocks[1], precision=step_precision, omega=config.sinkhorn_omega)
    plan = final.plan
    sinkhorn_iters.append(final.n_iter)
    timings["polish"] = time.perf_counter() - tick
    tick = time.perf_counter()
    objective = _estimate_objective(plan, dist_s, dist_t, a, config.n_eval_anchors, m, generator)
    timings["estimate"] += time.perf_counter() - tick
    if not converged:
        history.append(objective)
    else:
        history[-1] = objective
    return SolveResult(plan=plan, history=history, objective=objective, n_iter=n_iter,
                       converged=converged, epsilon=plan.eps,
                       cost_scale=(gw_scale or 1.0) / max(1.0 - alpha, 1e-12), sinkhorn_iters=sinkhorn_iters,
                       timings=timings, marginal_error=final.error)


def _stacked_features(recent: deque, config: GWConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Current cost features: the newest step, or an EMA of recent steps as weighted blocks.

    ``Σ_s w_s ‖u_s,i − v_s,j‖² = ‖[√w_s u_s]_i − [√w_s v_s]_j‖²``: a cost EMA over steps is
    again squared-Euclidean, with the blocks concatenated.
    """
    if config.stabilisation == "none" or len(recent) == 1:
        return recent[0]
    beta = config.cost_ema
    weights = np.array([(1 - beta) * beta ** s for s in range(len(recent))])
    weights /= weights.sum()
    u = torch.cat([us * math.sqrt(w) for (us, _), w in zip(recent, weights)], dim=1)
    v = torch.cat([vt * math.sqrt(w) for (_, vt), w in zip(recent, weights)], dim=1)
    return u, v
