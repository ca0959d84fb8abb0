"""Entropic OT for a factored cost: balanced and semi-relaxed Sinkhorn, streamed.

Potentials ``f, g`` are kept in cost units (``T_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)``) so
they warm-start the next GW step whatever its cost features are; the plan stores the shifted
forms ``p = f − |u|² + ε log a`` and ``q = g − |v|² + ε log b``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

import torch

from gwalign import distributed
from gwalign.engine import ops
from gwalign.engine.anderson import AndersonMixer
from gwalign.engine.plan import FactoredPlan
from gwalign.threads import follow_load


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
             col_cost: Optional[torch.Tensor] = None, **options: Any) -> SinkhornResult:
    """Solve one entropic OT problem with cost ``‖u_i − v_j‖² + extra_ij`` by log-domain Sinkhorn.

    ``u`` (N×d), ``v`` (K×d), ``f`` (N), ``g`` and ``col_cost`` (K): one problem of
    :func:`sinkhorn_batch`, whose keyword ``options`` (``rho``, ``extra``, ``max_iter``, ``tol``,
    ``block_rows``, ``block_cols``, ``row_cost``, ``precision``, ``omega``, ``anderson``) it takes
    unchanged.
    The row marginal is exact on return (the last update is a row update).
    """
    return sinkhorn_batch(u, v[None], a, b, eps, None if f is None else f[None],
                          None if g is None else g[None],
                          col_cost=None if col_cost is None else col_cost[None], **options)[0]


def sinkhorn_batch(u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float,
                   f: Optional[torch.Tensor] = None, g: Optional[torch.Tensor] = None, *,
                   rho: Optional[float] = None, extra: Optional[torch.Tensor] = None,
                   max_iter: int = 300, tol: float = 1e-5,
                   block_rows: int = 256, block_cols: int = 4096,
                   row_cost: Optional[torch.Tensor] = None,
                   col_cost: Optional[torch.Tensor] = None,
                   precision: Optional[str] = None, omega: float = 1.0,
                   anderson: int = 0) -> list[SinkhornResult]:
    """Solve S entropic OT problems with the same marginals and ε side by side.

    Problem s has cost ``‖u_i − v_sj‖² + extra_ij``, or, with ``row_cost``/``col_cost`` given,
    ``row_cost_i + col_cost_sj − 2⟨u_i, v_sj⟩ + extra_ij`` (the low-rank GW gradient has that
    form). Every iteration makes one batched launch per half-step instead of S, which is what
    matters on the GPU for the small problems of start screening (launch-bound). Each problem
    follows exactly the iteration of a solve on its own; once it meets ``tol`` it is finished
    and leaves the batch, so the work is the sum of the problems' iterations, not S times the
    slowest.

    Parameters
    ----------
    u, v
        Row features (N×d, shared, or S×N×d) and column features (S×K×d).
    a, b
        Marginals (positive, summing to one), shared.
    eps
        Absolute regularisation.
    f, g
        Warm-start potentials in cost units, S×N (or N, shared) and S×K (zeros when ``None``).
    rho
        ``None`` for balanced OT. Otherwise semi-relaxed: the row marginal is enforced and the
        column marginal is penalised by ``rho · KL(Tᵀ1 | b)``; the column update is the exact
        minimiser of that penalised dual, ``g = ρ/(ρ+ε) · g_balanced``, whose fixed point differs
        from the balanced one (mass can leave columns with no counterpart).
    extra
        Optional dense N×K additive cost (only when S = 1).
    max_iter, tol
        Iteration cap, and tolerance on the L1 column-marginal error (balanced) or on the L1
        change of the column marginal between iterations (semi-relaxed).
    row_cost, col_cost
        N (or S×N) and S×K cost terms replacing ``|u|²`` and ``|v|²``.
    precision
        GPU kernel dot precision (see :func:`gwalign.engine.ops.lse_rows`).
    omega
        Over-relaxation factor of balanced solves (1 = plain Sinkhorn, < 2); unused when
        ``anderson`` is on.
    anderson
        Memory of the Anderson acceleration of balanced solves' column potentials
        (:mod:`gwalign.engine.anderson`); 0 or 1: off.

    Returns
    -------
    list of SinkhornResult
        One per problem, in order; each row marginal is exact on return.
    """
    n_batch = v.shape[0]
    if extra is not None and n_batch != 1:
        raise ValueError("a dense extra cost is allowed only for a single problem")
    solver = _BatchSinkhorn(u, v, a, b, eps, f, g, rho=rho, extra=extra, block_rows=block_rows,
                            block_cols=block_cols, row_cost=row_cost, col_cost=col_cost,
                            precision=precision, omega=omega, anderson=anderson)
    return solver.solve(max_iter, tol)


class _BatchSinkhorn:
    """State of :func:`sinkhorn_batch`: tensors of the problems still running (leading dimension:
    the running problems), and per-problem host state indexed by the problems' original index."""

    def __init__(self, u, v, a, b, eps, f, g, *, rho, extra, block_rows, block_cols, row_cost, col_cost,
                 precision, omega, anderson) -> None:
        n_batch = v.shape[0]
        self.eps, self.rho, self.extra, self.precision = eps, rho, extra, precision
        self.blocks = (block_rows, block_cols)
        self.guesses = not ops.triton_enabled(u)
        self.b = b
        self.u, self.v = u, v
        self.alpha = (u * u).sum(dim=-1) if row_cost is None else row_cost
        self.beta = (v * v).sum(dim=-1) if col_cost is None else col_cost
        # Loop-invariant parts of p = f − α + ε log a and q = g − β + ε log b, and fused forms
        # (torch.add with alpha=, lerp): each small op is a kernel launch, and on the GPU
        # launches, not arithmetic, bound small solves.
        self.eps_log_a, self.eps_log_b = eps * torch.log(a), eps * torch.log(b)
        self.row_shift, self.col_shift = self.alpha - self.eps_log_a, self.beta - self.eps_log_b
        self.f = torch.zeros(n_batch, a.shape[0], dtype=u.dtype, device=u.device) if f is None else f
        self.g = torch.zeros_like(self.beta) if g is None else g
        self.q = self.g - self.col_shift
        self.p: Optional[torch.Tensor] = None
        self.mass: Optional[torch.Tensor] = None
        self.previous_mass: Optional[torch.Tensor] = None
        self.damping = 1.0 if rho is None else rho / (rho + eps)
        # Over-relaxation (Thibault, Chizat, Dossal, Papadakis 2017): each potential moves ω
        # times the Sinkhorn step. It converges locally for ω < 2, so it starts only once the
        # marginal error is below RELAX_BELOW, and is dropped for good if the error then exceeds
        # twice the best seen (safeguard). Balanced solves only.
        # Anderson acceleration, where on, replaces over-relaxation: it starts and is safeguarded
        # alike, and leaves the row update plain, so every row marginal is exact as it stands.
        self.mixer = AndersonMixer(n_batch, self.g.shape[-1], anderson, self.g) \
            if anderson > 1 and rho is None else None
        self.omega = omega if rho is None and self.mixer is None else 1.0
        self.accelerates = self.mixer is not None or self.omega != 1.0
        self.allowed = [True] * n_batch          # acceleration allowed (off for good by the safeguard)
        self.now = [False] * n_batch             # the current step is accelerated
        self.accelerated = [False] * n_batch     # any accelerated step taken
        self.best_error = [float("inf")] * n_batch
        self.error = [float("inf")] * n_batch
        self.running = list(range(n_batch))                        # original index of each batch row
        self.results: list[Optional[SinkhornResult]] = [None] * n_batch

    def _lse(self, x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, rows_first: bool,
             guess: Optional[torch.Tensor]) -> torch.Tensor:
        rows, cols = self.blocks if rows_first else self.blocks[::-1]
        if bias.shape[0] == 1:   # the single-problem path, with the dense extra cost if any
            extra = self.extra if rows_first or self.extra is None else self.extra.T
            return ops.lse_rows(x[0] if x.dim() == 3 else x, y[0] if y.dim() == 3 else y, bias[0], self.eps,
                                extra, rows, cols, self.precision,
                                guess[0] if guess is not None and guess.dim() == 2 else guess)[None]
        return ops.lse_rows(x, y, bias, self.eps, None, rows, cols, self.precision, guess)

    def _row_guess(self) -> Optional[torch.Tensor]:
        """The row log-sum-exp a plain update would have given the current ``p`` (``p = ε log a −
        ε r``): the next one differs little, so the CPU passes exponentiate relative to it (the
        kernels keep running maxima; on the GPU the guess would only add launches)."""
        if not self.guesses:
            return None
        previous_p = self.f - self.row_shift if self.p is None else self.p
        return (self.eps_log_a - previous_p) / self.eps

    def _col_guess(self) -> Optional[torch.Tensor]:
        """The column log-sum-exp at balance, where the column mass ``exp(c + q/ε)`` is ``b``."""
        return (self.eps_log_b - self.q) / self.eps if self.guesses else None

    def _weights(self, factors: list[float]) -> torch.Tensor:
        return torch.tensor(factors, dtype=self.u.dtype).to(self.u.device, non_blocking=True)[:, None]

    def _l1(self, mass: torch.Tensor, reference: torch.Tensor) -> list[float]:
        # The stopping decisions follow from these errors: in a distributed alignment every rank
        # takes rank 0's (agree), so all ranks stop on the same iteration.
        if mass.shape[0] == 1:
            return distributed.agree([float(torch.dist(mass, reference.expand_as(mass), 1))])
        return distributed.agree(torch.linalg.vector_norm(mass - reference, 1, dim=-1).tolist())   # one host sync

    def _row_update(self, plain: bool = False) -> None:
        r = self._lse(self.u, self.v, self.q, True, self._row_guess())
        self._set_rows(r, [1.0 if plain else self._factor(i) for i in self.running])

    def _set_rows(self, r: torch.Tensor, factors: list[float]) -> None:
        """The row potentials ``f`` and ``p`` after a row update whose log-sum-exp is ``r``."""
        if all(factor == 1.0 for factor in factors):
            self.f = torch.add(self.alpha, r, alpha=-self.eps)
            self.p = torch.add(self.eps_log_a, r, alpha=-self.eps)   # f − α + ε log a, no α round trip
        else:
            self.f = torch.lerp(self.f, torch.add(self.alpha, r, alpha=-self.eps), self._weights(factors))
            self.p = self.f - self.row_shift

    def _rows_p(self, s: int, rows: slice, r_rows: torch.Tensor, factor: float) -> torch.Tensor:
        """``p`` of problem ``s``'s ``rows`` after a row update: :meth:`_set_rows` on those rows."""
        if factor == 1.0:
            return torch.add(self.eps_log_a[rows], r_rows, alpha=-self.eps)
        alpha, shift, f = (t if t.dim() == 1 else t[s] for t in (self.alpha, self.row_shift, self.f))
        return torch.lerp(f[rows], torch.add(alpha[rows], r_rows, alpha=-self.eps), factor) - shift[rows]

    def _col_lse(self) -> torch.Tensor:
        """Column log-sum-exp; sets the column marginal of the current plan."""
        c = self._lse(self.v, self.u, self.p, False, self._col_guess())
        self.mass = torch.exp(torch.add(c, self.q, alpha=1.0 / self.eps))
        return c

    def _sweep(self) -> torch.Tensor:
        """The row update, then :meth:`_col_lse`: from one product per tile
        (:func:`gwalign.engine.ops.lse_sweep`) where the operands allow, else as two passes."""
        if not ops.sweep_fusable(self.u, self.v, self.extra, self.blocks[1]):
            self._row_update()
            return self._col_lse()
        factors = [self._factor(i) for i in self.running]
        r, c = ops.lse_sweep(self.u, self.v, self.q, self.eps,
                             lambda s, rows, r_rows: self._rows_p(s, rows, r_rows, factors[s]), self.blocks[0],
                             self._row_guess())
        self._set_rows(r, factors)
        self.mass = torch.exp(torch.add(c, self.q, alpha=1.0 / self.eps))
        return c

    def solve(self, max_iter: int, tol: float) -> list[SinkhornResult]:
        for it in range(1, max_iter + 1):
            follow_load()   # other jobs may have started on these cores since the run began
            c = self._sweep()
            if self.rho is None:
                measured = self._l1(self.mass, self.b)
            elif self.previous_mass is not None:
                measured = self._l1(self.mass, self.previous_mass)
            else:
                measured = [self.error[i] for i in self.running]
            self.previous_mass = self.mass
            finished = []
            for row, i in enumerate(self.running):
                self.error[i] = measured[row]
                if self.error[i] < tol:
                    finished.append(row)
                    continue
                if self.accelerated[i] and self.error[i] > 2.0 * self.best_error[i]:
                    self.allowed[i] = False
                self.best_error[i] = min(self.best_error[i], self.error[i])
                self.now[i] = self.accelerates and self.allowed[i] and self.error[i] < RELAX_BELOW
                self.accelerated[i] = self.accelerated[i] or self.now[i]
            if finished:
                staying = self._finish(finished, it, tol, converged=True)
                if not staying:
                    break
                c = c.index_select(0, torch.tensor(staying, device=c.device))
            g_step = torch.add(self.beta, c, alpha=-self.eps)
            if self.damping != 1.0:
                g_step = g_step.mul_(self.damping)
            if self.mixer is not None:
                self.g = self.mixer.step(self.g, g_step, [self.now[i] for i in self.running])
            else:
                factors = [self._factor(i) for i in self.running]
                self.g = g_step if all(x == 1.0 for x in factors) else torch.lerp(self.g, g_step, self._weights(factors))
            self.q = self.g - self.col_shift
        if self.running:
            self._finish(list(range(len(self.running))), max_iter, tol, converged=False)
        return self.results

    def _factor(self, i: int) -> float:
        """Over-relaxation factor of problem ``i``'s current step (1: plain)."""
        return self.omega if self.now[i] else 1.0

    def _relaxed(self, i: int) -> bool:
        """Whether problem ``i`` took over-relaxed steps (Anderson mixing leaves rows plain)."""
        return self.accelerated[i] and self.mixer is None

    def _batched(self) -> list[str]:
        """Attributes with one row per running problem (``u``, ``α`` may be shared)."""
        names = ["v", "beta", "col_shift", "f", "g", "q", "p", "mass", "previous_mass"]
        if self.u.dim() == 3:
            names.append("u")
        if self.alpha.dim() == 2:
            names += ["alpha", "row_shift"]
        return names

    def _select(self, rows: list[int]) -> None:
        """Keep only these batch rows."""
        if len(rows) == len(self.running):
            return
        index = torch.tensor(rows, device=self.v.device)
        if self.mixer is not None:
            self.mixer = self.mixer.selected(index, rows)
        for name in self._batched():
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, index))
        self.running = [self.running[row] for row in rows]

    def _finish(self, rows: list[int], n_iter: int, tol: float, converged: bool) -> list[int]:
        """Record the results of these batch rows (stopped at ``n_iter``), drop them, and return
        the rows that stay (numbered as before the call).

        A problem that stops without converging, or after relaxed steps, ends on a plain row
        update so that the enforced marginal holds exactly (over-relaxed row potentials do not);
        after relaxation the column error of that plan is measured again.
        """
        ending = copy.copy(self)     # shares the per-problem host lists, indexes its own tensors
        ending._select(rows)
        done = [converged] * len(rows)
        final = [self._relaxed(i) or not converged for i in ending.running]
        if any(final):
            f, p = ending.f, ending.p
            ending._row_update(plain=True)
            if p is not None and not all(final):
                mask = torch.tensor(final, device=self.v.device)[:, None]
                ending.f, ending.p = torch.where(mask, ending.f, f), torch.where(mask, ending.p, p)
            relaxed = [self._relaxed(i) for i in ending.running]
            if any(relaxed):
                mass = ending.mass
                ending._col_lse()
                if mass is not None and not all(relaxed):
                    mask = torch.tensor(relaxed, device=self.v.device)[:, None]
                    ending.mass = torch.where(mask, ending.mass, mass)
                if self.rho is None:
                    measured = ending._l1(ending.mass, self.b)
                    for row, i in enumerate(ending.running):
                        if self._relaxed(i):
                            self.error[i] = measured[row]
                            done[row] = self.error[i] < tol
        for row, i in enumerate(ending.running):
            plan = FactoredPlan(u=ending.u if ending.u.dim() == 2 else ending.u[row], v=ending.v[row],
                                p=ending.p[row], q=ending.q[row], eps=self.eps, extra=self.extra,
                                block_rows=self.blocks[0], block_cols=self.blocks[1],
                                # Passes in tf32 run on features the solvers round to TF32
                                # (GWConfig.step_precision), so the plan's cost dots are exact there.
                                cost_precision="tf32" if self.precision == "tf32" else None)
            self.results[i] = SinkhornResult(plan=plan, f=ending.f[row], g=ending.g[row], n_iter=n_iter,
                                             error=self.error[i], converged=done[row],
                                             col_mass=ending.mass[row] if done[row] else None)
        finishing = set(rows)
        staying = [row for row in range(len(self.running)) if row not in finishing]
        if staying:
            self._select(staying)
        else:
            self.running = []
        return staying
