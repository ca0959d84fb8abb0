"""What both GW solvers share: the ε schedule, the stopping rule, the product plan and the result type."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional
import numpy as np
import torch
from gwalign.config import GWConfig
from gwalign.engine.plan import FactoredPlan


ProgressCallback = Callable[[int, int, Optional[float]], None]


@dataclass
class SolveResult:
    """Outcome of a GW solve (sampled or low-rank).

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
        product plan at the first step), so this equals ``config.solver.epsilon``.
    cost_scale
        That mean; ``epsilon * cost_scale`` is ε in units of squared normalised distances.
    sinkhorn_iters
        Sinkhorn iterations of each outer step, then of the final polish.
    timings
        Seconds spent in distances, Sinkhorn steps, the final polish and estimation.
    start_objectives
        Final objective of every start (filled by :func:`gwalign.align`), the lowest kept.
    marginal_error
        Marginal error the final polish reached (L1; compare with ``config.solver.final_tol``).
    cell_distortion
        (source, target) arrays: each cell's share of the GW objective per unit of its mass
        (low-rank GW only; see :meth:`gwalign.engine.lowrank.LowRankGW.cell_distortion`).
    finalists
        Low-rank GW with several starts: the finalists' converged objectives (lowest first),
        the mass each plan shares with the lowest's, and the cells they ran on
        (:func:`gwalign.engine.finalists.compare_finalists`); else ``None``.
    relaxed_mass
        (source, target) arrays: each cell's mass ratio when its side's marginal is freed
        (:func:`gwalign.engine.one_sided_probe.relaxed_mass`; balanced low-rank runs for which
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


def epsilon_at(config: GWConfig, iteration: int) -> float:
    """Annealed ε (relative): geometric decay from ``epsilon * start_factor`` to ``epsilon``."""
    if config.solver.epsilon_decay_iters == 0 or iteration >= config.solver.epsilon_decay_iters:
        return config.solver.epsilon
    frac = 1.0 - iteration / config.solver.epsilon_decay_iters
    return config.solver.epsilon * config.solver.epsilon_start_factor ** frac


def should_stop(history: list[float], n_settled: int, config: GWConfig, iterations: Optional[int] = None) -> bool:
    """Noise-aware stopping rule on the objective history.

    Compares the mean of the last ``window`` estimates with the window before, using only
    estimates taken at the final ε (``n_settled`` of them). Stops when the improvement is below
    both the sampling noise (``noise_z`` standard errors) and ``tol_rel`` of the objective.
    ``iterations`` (default: the history's length) is what ``min_iter`` counts; a run that
    continues from a screened start counts the annealing it skipped.
    """
    w = config.solver.window
    done = len(history) if iterations is None else iterations
    if done < config.solver.min_iter or n_settled < 2 * w:
        return False
    last = np.asarray(history[-w:])
    prev = np.asarray(history[-2 * w:-w])
    improvement = prev.mean() - last.mean()
    std_err = math.sqrt(last.var(ddof=1) / w + prev.var(ddof=1) / w)
    return bool(improvement < max(config.solver.noise_z * std_err, config.solver.tol_rel * abs(last.mean())))


def product_plan(a: torch.Tensor, b: torch.Tensor, blocks: tuple[int, int]) -> FactoredPlan:
    """The independent coupling ``a bᵀ`` as an implicit plan (zero features)."""
    zeros_a = torch.zeros(a.shape[0], 1, dtype=a.dtype, device=a.device)
    zeros_b = torch.zeros(b.shape[0], 1, dtype=b.dtype, device=b.device)
    return FactoredPlan(u=zeros_a, v=zeros_b, p=torch.log(a), q=torch.log(b), eps=1.0,
                        block_rows=blocks[0], block_cols=blocks[1])


def product_mean_cost(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean of ``‖x_i − y_j‖²`` under the product plan, in O((N+K)·d)."""
    return float(a @ (x * x).sum(1) + b @ (y * y).sum(1) - 2.0 * (a @ x) @ (b @ y))
