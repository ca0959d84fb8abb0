"""Entropic OT for a factored cost: balanced and semi-relaxed Sinkhorn, streamed.

Potentials ``f, g`` are kept in cost units (``T_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)``) so
they warm-start the next GW step whatever its cost features are; the plan stores the shifted
forms ``p = f − |u|² + ε log a`` and ``q = g − |v|² + ε log b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan


#: L1 marginal error below which over-relaxation starts (the local-convergence regime).
RELAX_BELOW = 0.1


@dataclass
class SinkhornResult:
    """Plan and potentials after a Sinkhorn solve."""

    plan: FactoredPlan
    f: torch.Tensor
    g: torch.Tensor
    n_iter: int
    error: float
    converged: bool
    col_mass: Optional[torch.Tensor] = None
    """Column marginal of ``plan`` when already known (converged: the last pass computed it)."""


def sinkhorn(u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float,
             f: Optional[torch.Tensor] = None, g: Optional[torch.Tensor] = None, *,
             rho: Optional[float] = None, extra: Optional[torch.Tensor] = None,
             max_iter: int = 300, tol: float = 1e-5,
             block_rows: int = 256, block_cols: int = 4096,
             row_cost: Optional[torch.Tensor] = None,
             col_cost: Optional[torch.Tensor] = None,
             precision: Optional[str] = None, omega: float = 1.0) -> SinkhornResult:
    """Solve entropic OT with cost ``‖u_i − v_j‖² + extra_ij`` by log-domain Sinkhorn.

    With ``row_cost``/``col_cost`` given, the cost is ``row_cost_i + col_cost_j − 2⟨u_i, v_j⟩
    + extra_ij`` instead (the low-rank GW gradient has that form).

    Parameters
    ----------
    u, v
        Row (N×d) and column (K×d) cost features.
    a, b
        Marginals (positive, summing to one).
    eps
        Absolute regularisation.
    f, g
        Warm-start potentials in cost units (zeros when ``None``).
    rho
        ``None`` for balanced OT. Otherwise semi-relaxed: the row marginal is enforced and the
        column marginal is penalised by ``rho · KL(Tᵀ1 | b)``; the column update is the exact
        minimiser of that penalised dual, ``g = ρ/(ρ+ε) · g_balanced``, whose fixed point differs
        from the balanced one (mass can leave columns with no counterpart).
    extra
        Optional dense N×K additive cost.
    max_iter, tol
        Iteration cap, and tolerance on the L1 column-marginal error (balanced) or on the L1
        change of the column marginal between iterations (semi-relaxed).
    precision
        GPU kernel dot precision (see :func:`gwalign.engine.ops.lse_rows`).
    omega
        Over-relaxation factor of balanced solves (1 = plain Sinkhorn, < 2).

    Returns
    -------
    SinkhornResult
        The row marginal is exact on return (the last update is a row update).
    """
    alpha = (u * u).sum(dim=1) if row_cost is None else row_cost
    beta = (v * v).sum(dim=1) if col_cost is None else col_cost
    # Loop-invariant parts of p = f − α + ε log a and q = g − β + ε log b, and fused forms
    # (torch.add with alpha=, lerp): each small op is a kernel launch, and on the GPU launches,
    # not arithmetic, bound the many small solves of start screening.
    eps_log_a, eps_log_b = eps * torch.log(a), eps * torch.log(b)
    row_shift, col_shift = alpha - eps_log_a, beta - eps_log_b
    f = torch.zeros_like(alpha) if f is None else f
    g = torch.zeros_like(beta) if g is None else g
    damping = 1.0 if rho is None else rho / (rho + eps)
    q = g - col_shift
    extra_t = None if extra is None else extra.T
    previous_mass: Optional[torch.Tensor] = None
    # Over-relaxation (Thibault, Chizat, Dossal, Papadakis 2017): each potential moves ω times
    # the Sinkhorn step. It converges locally for ω < 2, so it starts only once the marginal
    # error is below RELAX_BELOW, and is dropped for good if the error then exceeds twice the
    # best seen (safeguard). Balanced solves only.
    allowed = omega if rho is None else 1.0     # set to 1 for good by the safeguard
    relax = 1.0                                 # factor of the current step
    relaxed = False                             # any relaxed step taken
    best_error = float("inf")
    error, converged, it = float("inf"), False, 0
    for it in range(1, max_iter + 1):
        r = ops.lse_rows(u, v, q, eps, extra, block_rows, block_cols, precision)
        if relax == 1.0:
            f = torch.add(alpha, r, alpha=-eps)
            p = torch.add(eps_log_a, r, alpha=-eps)      # f − α + ε log a, without the α round trip
        else:
            f = torch.lerp(f, torch.add(alpha, r, alpha=-eps), relax)
            p = f - row_shift
        # Column log-sum-exp: gives the column marginal for free, then the column update.
        c = ops.lse_rows(v, u, p, eps, extra_t, block_cols, block_rows, precision)
        mass = torch.exp(torch.add(c, q, alpha=1.0 / eps))
        if rho is None:
            error = float(torch.dist(mass, b, 1))
        elif previous_mass is not None:
            error = float(torch.dist(mass, previous_mass, 1))
        previous_mass = mass
        if error < tol:
            converged = True
            break
        if relaxed and error > 2.0 * best_error:
            allowed = 1.0
        best_error = min(best_error, error)
        relax = allowed if error < RELAX_BELOW else 1.0
        g_step = torch.add(beta, c, alpha=-eps)
        if damping != 1.0:
            g_step = g_step.mul_(damping)
        relaxed = relaxed or relax != 1.0
        g = g_step if relax == 1.0 else torch.lerp(g, g_step, relax)
        q = g - col_shift
    if relaxed or not converged:
        # End on a plain row update so that the enforced marginal holds exactly (over-relaxed
        # row potentials do not); after relaxation, measure the column error of that plan.
        r = ops.lse_rows(u, v, q, eps, extra, block_rows, block_cols, precision)
        f = torch.add(alpha, r, alpha=-eps)
        p = torch.add(eps_log_a, r, alpha=-eps)
        if relaxed:
            c = ops.lse_rows(v, u, p, eps, extra_t, block_cols, block_rows, precision)
            mass = torch.exp(torch.add(c, q, alpha=1.0 / eps))
            if rho is None:
                error = float(torch.dist(mass, b, 1))
            converged = error < tol
    plan = FactoredPlan(u=u, v=v, p=p, q=q, eps=eps, extra=extra,
                        block_rows=block_rows, block_cols=block_cols)
    return SinkhornResult(plan=plan, f=f, g=g, n_iter=it, error=error, converged=converged,
                          col_mass=mass if converged else None)

