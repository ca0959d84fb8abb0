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
from typing import Optional
import numpy as np
import torch
from gwalign.config import GWConfig
from gwalign.geometry.distances import DistanceProvider
from gwalign import distributed
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan, centre_features, choose_blocks
from gwalign.engine.precision import round_to_tf32
from gwalign.engine.sinkhorn import sinkhorn
from gwalign.engine.schedule import ProgressCallback
from gwalign.engine.schedule import SolveResult
from gwalign.engine.schedule import epsilon_at
from gwalign.engine.schedule import product_mean_cost
from gwalign.engine.schedule import product_plan
from gwalign.engine.schedule import should_stop


def _sample_anchors(plan: FactoredPlan, a: torch.Tensor, m: int,
                    generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """M pairs from the plan: rows from its row marginal (= a after a row update), then columns."""
    rows = torch.multinomial(a, m, replacement=True, generator=generator)
    cols = ops.sample_columns(plan, rows, generator)
    return rows.cpu().numpy(), cols.cpu().numpy()


#: Rows the per-iteration objective estimate visits (sampled by the row marginal beyond this):
#: exact estimates cost as much as all the Sinkhorn steps at 45,000 cells a side (one H100).
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
    n_source, n_target = a.shape[0], b.shape[0]
    m = config.anchors_per_step(n_source, n_target)
    step_precision = config.step_precision("sampled")
    blocks = choose_blocks(n_source, n_target, config.compute.block_elements, config.compute.block_rows, config.compute.block_cols)
    generator = torch.Generator(device=a.device).manual_seed(config.compute.seed)
    alpha = config.solver.fgw_alpha
    timings = {"distances": 0.0, "sinkhorn": 0.0, "polish": 0.0, "estimate": 0.0}

    joint_features, extra = _fused_terms(joint, linear_cost, a, b, alpha)

    plan = product_plan(a, b, blocks)
    f = g = None
    history: list[float] = []
    sinkhorn_iters: list[int] = []
    gw_scale: Optional[float] = None
    converged = False
    n_iter = 0
    for it in range(config.solver.max_iter):
        us, vt = _anchor_columns(plan, a, m, generator, dist_s, dist_t, timings)
        if it > 0:
            tick = time.perf_counter()
            # The stopping rule reads the history: every rank takes rank 0's estimate.
            history.append(distributed.agree([estimate_cost(plan, us, vt, a, ESTIMATE_ROWS, generator)])[0])
            timings["estimate"] += time.perf_counter() - tick
            n_settled = it - max(config.solver.epsilon_decay_iters, 1)
            if progress is not None:
                progress(it, config.solver.max_iter, history[-1])
            if should_stop(history, n_settled, config):
                converged = True
                break
        if gw_scale is None:
            # Cost scale fixed once at the first step (product plan), never rescaled.
            gw_scale = max(product_mean_cost(us, vt, a, b), 1e-30)
        u, v = _step_features(us, vt, math.sqrt((1.0 - alpha) / gw_scale), joint_features, a, b, step_precision)
        tick = time.perf_counter()
        result = sinkhorn(u, v, a, b, epsilon_at(config, it), f, g, max_iter=config.step_sinkhorn_max_iter("sampled"),
                          tol=config.solver.sinkhorn_tol, **_sinkhorn_options(config, extra, blocks, step_precision))
        timings["sinkhorn"] += time.perf_counter() - tick
        plan, f, g = result.plan, result.f, result.g
        sinkhorn_iters.append(result.n_iter)
        n_iter = it + 1
    final, objective = _polish_and_estimate(plan, f, g, a, b, extra, blocks, step_precision, config, m, generator,
                                            dist_s, dist_t, timings)
    plan = final.plan
    sinkhorn_iters.append(final.n_iter)
    if not converged:
        history.append(objective)
    else:
        history[-1] = objective
    return SolveResult(plan=plan, history=history, objective=objective, n_iter=n_iter,
                       converged=converged, epsilon=plan.eps,
                       cost_scale=(gw_scale or 1.0) / max(1.0 - alpha, 1e-12), sinkhorn_iters=sinkhorn_iters,
                       timings=timings, marginal_error=final.error)


def _polish_and_estimate(plan: FactoredPlan, f, g, a: torch.Tensor, b: torch.Tensor, extra: Optional[torch.Tensor],
                         blocks: tuple[int, int], precision: str, config: GWConfig, m: int,
                         generator: torch.Generator, dist_s: DistanceProvider, dist_t: DistanceProvider,
                         timings: dict[str, float]):
    """The final Sinkhorn polish of the last step's cost, then a fresh estimate of its GW objective."""
    tick = time.perf_counter()
    # The features were rounded for the step precision, so the polish runs at it too: the plan's
    # cost is exactly representable there (gwalign.engine.precision).
    final = sinkhorn(plan.u, plan.v, a, b, plan.eps, f, g, max_iter=config.solver.final_max_iter,
                     tol=config.solver.final_tol, **_sinkhorn_options(config, extra, blocks, precision))
    timings["polish"] = time.perf_counter() - tick
    tick = time.perf_counter()
    objective = distributed.agree([_estimate_objective(final.plan, dist_s, dist_t, a, config.solver.n_eval_anchors,
                                                       m, generator)])[0]
    timings["estimate"] += time.perf_counter() - tick
    return final, objective


def _sinkhorn_options(config: GWConfig, extra: Optional[torch.Tensor], blocks: tuple[int, int],
                      precision: str) -> dict:
    """Keyword arguments every Sinkhorn solve of a sampled run shares."""
    return dict(rho=config.solver.rho if config.solver.semi_relaxed else None, extra=extra, block_rows=blocks[0],
                block_cols=blocks[1], precision=precision, omega=config.solver.sinkhorn_omega,
                anderson=config.solver.sinkhorn_anderson)


def _anchor_columns(plan: FactoredPlan, a: torch.Tensor, m: int, generator: torch.Generator,
                    dist_s: DistanceProvider, dist_t: DistanceProvider, timings: dict[str, float]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``m`` anchor pairs from the plan; return their distance columns over √m."""
    tick = time.perf_counter()
    rows, cols = _sample_anchors(plan, a, m, generator)
    us = dist_s.columns(rows) / math.sqrt(m)
    vt = dist_t.columns(cols) / math.sqrt(m)
    timings["distances"] += time.perf_counter() - tick
    return us, vt


def _fused_terms(joint: Optional[tuple[torch.Tensor, torch.Tensor]], linear_cost: Optional[torch.Tensor],
                 a: torch.Tensor, b: torch.Tensor, alpha: float
                 ) -> tuple[Optional[tuple[torch.Tensor, torch.Tensor]], Optional[torch.Tensor]]:
    """The fused-GW feature term: shared features scaled so that their mean cost under the
    product plan is ``alpha``, or a dense linear cost scaled the same way."""
    features = extra = None
    if joint is not None and alpha > 0:
        scale = product_mean_cost(joint[0], joint[1], a, b)
        features = (joint[0] * math.sqrt(alpha / scale), joint[1] * math.sqrt(alpha / scale))
    if linear_cost is not None and alpha > 0:
        extra = linear_cost * (alpha / float(a @ linear_cost @ b))
    return features, extra


def _step_features(us: torch.Tensor, vt: torch.Tensor, weight: float,
                   joint_features: Optional[tuple[torch.Tensor, torch.Tensor]], a: torch.Tensor, b: torch.Tensor,
                   precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of one step's squared-Euclidean cost: the anchors' distance columns, weighted,
    with the fused features appended, centred, and rounded to TF32 when the step runs in it."""
    u, v = us * weight, vt * weight
    if joint_features is not None:
        u, v = torch.cat([u, joint_features[0]], dim=1), torch.cat([v, joint_features[1]], dim=1)
    u, v = centre_features(u, v, a, b)
    if precision == "tf32":
        u, v = round_to_tf32(u), round_to_tf32(v)
    return u, v
