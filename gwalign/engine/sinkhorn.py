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
    return sinkhorn_batch(u, v[None], a, b, eps, None if f is None else f[None],
                          None if g is None else g[None], rho=rho, extra=extra, max_iter=max_iter,
                          tol=tol, block_rows=block_rows, block_cols=block_cols, row_cost=row_cost,
                          col_cost=None if col_cost is None else col_cost[None], precision=precision,
                          omega=omega)[0]


def sinkhorn_batch(u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float,
                   f: Optional[torch.Tensor] = None, g: Optional[torch.Tensor] = None, *,
                   rho: Optional[float] = None, extra: Optional[torch.Tensor] = None,
                   max_iter: int = 300, tol: float = 1e-5,
                   block_rows: int = 256, block_cols: int = 4096,
                   row_cost: Optional[torch.Tensor] = None,
                   col_cost: Optional[torch.Tensor] = None,
                   precision: Optional[str] = None, omega: float = 1.0) -> list[SinkhornResult]:
    """:func:`sinkhorn` for S problems with the same marginals and ε, solved side by side.

    ``v`` is S×K×d, ``g`` and ``col_cost`` S×K; ``u``, ``f`` and ``row_cost`` are S×N(×d) or
    shared (N×d, N). Every iteration makes one batched launch per half-step instead of S, which
    is what matters on the GPU for the small problems of start screening (launch-bound). Each
    problem follows exactly the iteration of a solve on its own: once it meets ``tol`` its
    potentials are frozen while the others go on. ``extra`` is allowed only when S = 1.
    """
    n_batch = v.shape[0]
    if extra is not None and n_batch != 1:
        raise ValueError("a dense extra cost is allowed only for a single problem")
    alpha = (u * u).sum(dim=-1) if row_cost is None else row_cost
    beta = (v * v).sum(dim=-1) if col_cost is None else col_cost
    # Loop-invariant parts of p = f − α + ε log a and q = g − β + ε log b, and fused forms
    # (torch.add with alpha=, lerp): each small op is a kernel launch, and on the GPU launches,
    # not arithmetic, bound the many small solves of start screening.
    eps_log_a, eps_log_b = eps * torch.log(a), eps * torch.log(b)
    row_shift, col_shift = alpha - eps_log_a, beta - eps_log_b
    f = torch.zeros(n_batch, a.shape[0], dtype=u.dtype, device=u.device) if f is None else f
    g = torch.zeros_like(beta) if g is None else g
    damping = 1.0 if rho is None else rho / (rho + eps)
    q = g - col_shift
    extra_t = None if extra is None else extra.T

    def half_step(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, dense: Optional[torch.Tensor],
                  rows: int, cols: int) -> torch.Tensor:
        if n_batch == 1:   # the single-problem path, with a dense extra cost if any
            return ops.lse_rows(x[0] if x.dim() == 3 else x, y[0] if y.dim() == 3 else y, bias[0], eps,
                                dense, rows, cols, precision)[None]
        return ops.lse_rows(x, y, bias, eps, None, rows, cols, precision)

    def l1_error(mass: torch.Tensor, reference: torch.Tensor) -> list[float]:
        if n_batch == 1:
            return [float(torch.dist(mass, reference.expand_as(mass), 1))]
        return torch.linalg.vector_norm(mass - reference, 1, dim=-1).tolist()   # one host sync

    def merge(keep: Optional[torch.Tensor], old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return new if keep is None else torch.where(keep, old, new)

    def weights(factors: list[float]) -> torch.Tensor:
        return torch.tensor(factors, dtype=u.dtype).to(u.device, non_blocking=True)[:, None]

    # Over-relaxation (Thibault, Chizat, Dossal, Papadakis 2017): each potential moves ω times
    # the Sinkhorn step. It converges locally for ω < 2, so it starts only once the marginal
    # error is below RELAX_BELOW, and is dropped for good if the error then exceeds twice the
    # best seen (safeguard). Balanced solves only. All of it is per problem.
    allowed = [omega if rho is None else 1.0] * n_batch   # set to 1 for good by the safeguard
    relax = [1.0] * n_batch                               # factor of the current step
    relaxed = [False] * n_batch                           # any relaxed step taken
    best_error = [float("inf")] * n_batch
    error = [float("inf")] * n_batch
    done = [False] * n_batch
    n_iter = [max_iter] * n_batch
    frozen: Optional[torch.Tensor] = None       # S×1 mask of the problems that have converged
    mass: Optional[torch.Tensor] = None
    previous_mass: Optional[torch.Tensor] = None
    p = None
    for it in range(1, max_iter + 1):
        r = half_step(u, v, q, extra, block_rows, block_cols)
        if all(factor == 1.0 for factor in relax):
            f_new = torch.add(alpha, r, alpha=-eps)
            p_new = torch.add(eps_log_a, r, alpha=-eps)    # f − α + ε log a, without the α round trip
        else:
            f_new = torch.lerp(f, torch.add(alpha, r, alpha=-eps), weights(relax))
            p_new = f_new - row_shift
        f, p = merge(frozen, f, f_new), merge(frozen, p, p_new)
        # Column log-sum-exp: gives the column marginal for free, then the column update.
        c = half_step(v, u, p, extra_t, block_cols, block_rows)
        mass = merge(frozen, mass, torch.exp(torch.add(c, q, alpha=1.0 / eps)))
        if rho is None:
            measured = l1_error(mass, b)
        elif previous_mass is not None:
            measured = l1_error(mass, previous_mass)
        else:
            measured = error
        previous_mass = mass
        for s in range(n_batch):
            if done[s]:
                continue
            error[s] = measured[s]
            if error[s] < tol:
                done[s], n_iter[s], relax[s] = True, it, 1.0
                continue
            if relaxed[s] and error[s] > 2.0 * best_error[s]:
                allowed[s] = 1.0
            best_error[s] = min(best_error[s], error[s])
            relax[s] = allowed[s] if error[s] < RELAX_BELOW else 1.0
            relaxed[s] = relaxed[s] or relax[s] != 1.0
        if all(done):
            break
        if any(done):
            frozen = torch.tensor(done, device=u.device)[:, None]
        g_step = torch.add(beta, c, alpha=-eps)
        if damping != 1.0:
            g_step = g_step.mul_(damping)
        g_new = g_step if all(factor == 1.0 for factor in relax) else torch.lerp(g, g_step, weights(relax))
        g = merge(frozen, g, g_new)
        q = g - col_shift
    # End on a plain row update so that the enforced marginal holds exactly (over-relaxed row
    # potentials do not); after relaxation, measure the column error of that plan.
    final = [relaxed[s] or not done[s] for s in range(n_batch)]
    if any(final):
        keep = None if all(final) else torch.tensor([not x for x in final], device=u.device)[:, None]
        r = half_step(u, v, q, extra, block_rows, block_cols)
        f = merge(keep, f, torch.add(alpha, r, alpha=-eps))
        p = merge(keep, p, torch.add(eps_log_a, r, alpha=-eps))
        if any(relaxed):
            c = half_step(v, u, p, extra_t, block_cols, block_rows)
            mass = torch.exp(torch.add(c, q, alpha=1.0 / eps))
            if rho is None:
                measured = l1_error(mass, b)
                for s in range(n_batch):
                    if relaxed[s]:
                        error[s] = measured[s]
                        done[s] = error[s] < tol
    return [SinkhornResult(plan=FactoredPlan(u=u if u.dim() == 2 else u[s], v=v[s], p=p[s], q=q[s], eps=eps,
                                             extra=extra, block_rows=block_rows, block_cols=block_cols),
                           f=f[s], g=g[s], n_iter=n_iter[s], error=error[s], converged=done[s],
                           col_mass=mass[s] if done[s] else None)
            for s in range(n_batch)]
