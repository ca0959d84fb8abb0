"""Low-rank GW: the exact GW gradient of factored distance matrices, streamed.

With ``D_s ≈ Φ_s Λ_s Φ_sᵀ`` and ``D_t ≈ Φ_t Λ_t Φ_tᵀ`` the GW gradient (square loss) of a plan T is

    C(T)_ij = (D_s² a_T)_i + (D_t² b_T)_j − 2 (D_s T D_t)_ij,
    D_s T D_t = (Φ_s Λ_s) G (Λ_t Φ_tᵀ),   G = Φ_sᵀ T Φ_t  (r×r),

so each GW step is again an OT problem with a factored cost of feature dimension r, and G needs
one streamed pass ``T @ Φ_t``. Unlike sampled GW it has no sampling noise, and the objective
``L(T) = a_Tᵀ D_s² a_T + b_Tᵀ D_t² b_T − 2 tr(Λ_s G Λ_t Gᵀ)`` is exact for the factored
matrices, so starts are compared without noise (Scetbon, Peyré, Cuturi 2022, "Linear-time
Gromov-Wasserstein distances using low rank couplings and costs", use the same factorisation).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Optional
import numpy as np
import torch
from gwalign.config import GWConfig
from gwalign.device import synchronize
from gwalign import distributed
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan, choose_blocks
from gwalign.engine.precision import round_to_tf32
from gwalign.engine.profiles import profile_gram
from gwalign.engine.sinkhorn import sinkhorn_batch
from gwalign.engine.schedule import ProgressCallback, epsilon_at, product_mean_cost, product_plan, should_stop
from gwalign.geometry.factors import LowRankDistances, product_plan_objective
from gwalign.engine.starts import start_grams


@dataclass
class SolverState:
    """One start's iterate: the plan, its potentials, its G and column marginal, its history."""

    plan: FactoredPlan
    f: Optional[torch.Tensor]
    g: Optional[torch.Tensor]
    gram: torch.Tensor
    col_mass: torch.Tensor                  # the plan's column marginal; after restore_best, its linearisation's
    history: list[float]
    sinkhorn_iters: list[int]
    iteration: int = 0
    converged: bool = False
    marginal_error: float = float("nan")
    best_objective: float = math.inf
    best_settled: bool = False          # the best iterate's Sinkhorn met its tolerance
    best: Optional[tuple] = None
    pulled: Optional[torch.Tensor] = None   # T Φ_t of the plan its last step made (None once restored)


class LowRankGW:
    """Low-rank GW between two factored distance matrices (see the module docstring).

    Parameters
    ----------
    fs, ft
        Factored normalised distances of the source (N points) and the target (K points).
    a, b
        Marginals.
    config
        Run parameters (``epsilon``/``rho`` relative to the cost scale).
    joint
        Shared features (N×p, K×p) for fused GW with a squared-Euclidean feature cost.
    """

    def __init__(self, fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor,
                 config: GWConfig, joint: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> None:
        config = config.with_epsilon()   # set by gwalign.align; exact distances when called directly
        self.fs, self.ft, self.a, self.b, self.config = fs, ft, a, b, config
        self.blocks = choose_blocks(a.shape[0], b.shape[0], config.compute.block_elements,
                                    config.compute.block_rows, config.compute.block_cols)
        self.sq_a = fs.squared_apply(a)
        # Cost scale: mean of C(abᵀ) under abᵀ, fixed once, as in the sampled solver.
        self.scale = max(product_plan_objective(fs, ft, a, b), 1e-30)
        alpha = config.solver.fgw_alpha
        self.gw_weight = (1.0 - alpha) / self.scale
        self.joint = None
        self.joint_weight = 0.0
        if joint is not None and alpha > 0:
            x, y = joint
            self.joint_weight = math.sqrt(alpha / max(product_mean_cost(x, y, a, b), 1e-30))
            self.joint = (x * self.joint_weight, y * self.joint_weight)
        self.timings = {"sinkhorn": 0.0, "gradient": 0.0}

    def with_columns(self, ft: LowRankDistances, b: torch.Tensor, joint_columns: Optional[torch.Tensor] = None
                     ) -> "LowRankGW":
        """This problem's rows against other columns of the same side (``ft``, marginal ``b``,
        shared features ``joint_columns``), under this problem's cost scale and feature weight,
        so that its costs and potentials are in the same units as this problem's."""
        other = copy.copy(self)
        other.ft, other.b = ft, b
        other.blocks = choose_blocks(self.a.shape[0], b.shape[0], self.config.compute.block_elements,
                                     self.config.compute.block_rows, self.config.compute.block_cols)
        if self.joint is not None and joint_columns is not None:
            other.joint = (self.joint[0], joint_columns * self.joint_weight)
        return other

    def product_gram(self) -> torch.Tensor:
        """``G`` of the product plan ``a bᵀ``: rank one."""
        return torch.outer(self.fs.phi.T @ self.a, self.ft.phi.T @ self.b)

    def profile_gram(self) -> torch.Tensor:
        """``G`` of the distance-profile plan (:mod:`gwalign.engine.profiles`) at the final ε."""
        config = self.config
        tick = time.perf_counter()
        # One start's solve, on at most screen_points cells a side at scale: its features are not
        # rounded, so its passes stay accurate rather than TF32 (gwalign.engine.precision).
        gram = profile_gram(self.fs.phi, self.fs.lam, self.ft.phi, self.ft.lam, self.a, self.b,
                            config.solver.epsilon, self.blocks, self._unrounded_precision(),
                            config.step_sinkhorn_max_iter("lowrank"), config.solver.sinkhorn_tol,
                            omega=config.solver.sinkhorn_omega, anderson=config.solver.sinkhorn_anderson)
        self.timings["profile"] = time.perf_counter() - tick
        return gram

    def _unrounded_precision(self) -> str:
        """The step precision, or tf32x3 where that is TF32: for passes on features that are
        not rounded to TF32 (:meth:`_rounded`)."""
        precision = self.config.step_precision("lowrank")
        return "tf32x3" if precision == "tf32" else precision

    def start_grams(self, n_starts: int) -> list[torch.Tensor]:
        """Initial ``G`` of each of ``n_starts`` starts (see :func:`start_grams`)."""
        profile = self.profile_gram() if self.config.starts.profile_start and n_starts > 1 else None
        return start_grams(self.product_gram(), n_starts, self.config, profile)

    def objectives(self, states: list[SolverState]) -> list[float]:
        """GW objective of each state's plan (row marginal ``a``, its column marginal and ``G``),
        with one host sync for the batch."""
        grams = torch.stack([state.gram for state in states])
        masses = torch.stack([state.col_mass for state in states])
        cross = ((self.fs.lam[:, None] * grams) * (grams * self.ft.lam)).sum(dim=(1, 2))
        squares = (masses * self.ft.squared_apply(masses)).sum(dim=1)
        # Stopping, the best iterate, the finalists and the winner follow from these values: in a
        # distributed alignment every rank takes rank 0's, so no two ranks can decide differently.
        return distributed.agree((squares + (self.a @ self.sq_a) - 2.0 * cross).tolist())

    def plan_objectives(self, plans: list[FactoredPlan]) -> list[float]:
        """GW objective of each plan under this solver's factors (one streamed pass a plan, for
        ``Tᵀ [Φ_s, 1]``: ``G`` and the column marginal): plans found under other distances are
        scored under these."""
        states = []
        for plan in plans:
            pulled_t = ops.apply_t(plan, torch.cat([self.fs.phi, torch.ones_like(self.a)[:, None]], dim=1))
            states.append(SolverState(plan=plan, f=None, g=None, gram=pulled_t[:, :-1].T @ self.ft.phi,
                                 col_mass=pulled_t[:, -1], history=[], sinkhorn_iters=[]))
        return self.objectives(states)

    def start(self, gram: torch.Tensor, at_final_epsilon: bool = False) -> SolverState:
        """A state at the product plan, whose first linearisation uses ``gram`` as its ``G``.

        ``at_final_epsilon``: the state skips the annealing (its iteration count starts where
        the schedule reaches the final ε), for a ``G`` that has been through it already.
        """
        state = SolverState(plan=product_plan(self.a, self.b, self.blocks), f=None, g=None, gram=gram,
                       col_mass=self.b, history=[], sinkhorn_iters=[])
        if at_final_epsilon:
            state.iteration = self.config.solver.epsilon_decay_iters
        return state

    def column_potential(self, state: SolverState, sample: "LowRankGW", screened: SolverState) -> torch.Tensor:
        """Column potentials ``g`` (cost units) for this problem's step from ``state``, made from
        the row potentials of ``screened``, a state of ``sample`` linearised at the same ``G``.

        ``sample`` holds a subset of this problem's rows (its own marginal, summing to one). The
        columns' balance against those rows is one c-transform, ``g_j = col_j − ε log Σ_i a'_i
        exp((f_i − row'_i + 2⟨u_i, v_j⟩)/ε)``: the subsample's rows stand in for all of them, as
        in the screening itself. It costs one streamed pass over (columns × sampled rows), and
        spares the full-size Sinkhorn the iterations a cold start takes at the final ε.
        """
        eps = epsilon_at(self.config, state.iteration)
        # Rows and columns from two problems: each would centre on its own means, so this one
        # pass (columns × sampled rows) runs unrounded and accurate.
        precision = self._unrounded_precision()
        u_sample, _, row_sample, _ = sample._features([screened], precision)
        _, v, _, col = self._features([state], precision)
        # Each problem's cost is divided by its own scale (its mean under the product plan);
        # near the OT limit potentials scale with the cost.
        ratio = sample.scale / self.scale
        p_sample = (screened.f - row_sample) * ratio + eps * torch.log(sample.a)
        lse = ops.lse_rows(v[0], u_sample, p_sample, eps, None, self.blocks[1], self.blocks[0],
                           precision)
        return col[0] - eps * lse

    def _features(self, states: list[SolverState], precision: str
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cost ``row_i + col_j − 2⟨u_i, v_j⟩`` of each state's linearised (fused) GW step,
        scaled: ``u`` (N×d) and ``row`` are shared, ``v`` (S×K×d) and ``col`` (S×K) per state.
        For passes in ``tf32`` the features are rounded to TF32 (:mod:`gwalign.engine.precision`)."""
        fs, ft, w = self.fs, self.ft, self.gw_weight
        u = fs.phi * fs.lam
        grams = torch.stack([state.gram for state in states])
        v = (ft.phi * ft.lam) @ grams.transpose(1, 2) * w
        row = self.sq_a * w
        col = ft.squared_apply(torch.stack([state.col_mass for state in states])) * w
        if self.joint is not None:
            x, y = self.joint
            u = torch.cat([u, x], dim=1)
            v = torch.cat([v, y.expand(len(states), *y.shape)], dim=2)
            row = row + (x * x).sum(1)
            col = col + (y * y).sum(1)
        if precision == "tf32":
            u, v, row, col = self._rounded(u, v, row, col)
        return u, v, row, col

    def _rounded(self, u: torch.Tensor, v: torch.Tensor, row: torch.Tensor, col: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The same cost with centred features rounded to TF32, for TF32 passes.

        The three terms of the cost cancel: rounded inside the kernel, each pass would see
        another cost (docs/how-it-works/gpu-kernels.md). Rounded here, the TF32 products are
        exact. Centring first (the means' products move into ``row`` and ``col``) keeps the
        rounding's change of the cost small: it scales with |u|·|v|, and the leading component of
        a distance matrix is nearly constant, hence mostly mean.
        """
        mean_u = self.a @ u                              # d
        mean_v = torch.einsum("k,skd->sd", self.b, v)    # S×d
        u, v = u - mean_u, v - mean_v[:, None, :]
        # ⟨u_i, v_j⟩ = ⟨ū_i, v̄_j⟩ + ⟨ū_i, m_v⟩ + ⟨m_u, v̄_j⟩ + ⟨m_u, m_v⟩
        row = row - 2.0 * (u @ mean_v.T).T                # S×N: a row term per state
        col = col - 2.0 * torch.einsum("skd,d->sk", v, mean_u) - 2.0 * (mean_v @ mean_u)[:, None]
        return round_to_tf32(u), round_to_tf32(v), row, col

    def step(self, states: list[SolverState], eps: float, max_sinkhorn: int, tol: float,
             precision: str) -> list[float]:
        """Linearise each state at its plan, solve the entropic OTs side by side
        (:func:`sinkhorn_batch`), update ``G``; return the objectives."""
        config = self.config
        u, v, row, col = self._features(states, precision)
        tick = time.perf_counter()
        warm = any(state.f is not None or state.g is not None for state in states)
        f = torch.stack([state.f if state.f is not None else torch.zeros_like(self.a) for state in states]) \
            if warm else None
        g = torch.stack([state.g if state.g is not None else torch.zeros_like(col[0]) for state in states]) \
            if warm else None
        results = sinkhorn_batch(u, v, self.a, self.b, eps, f, g,
                                 rho=config.solver.rho if config.solver.semi_relaxed else None, max_iter=max_sinkhorn,
                                 tol=tol, block_rows=self.blocks[0], block_cols=self.blocks[1],
                                 row_cost=row, col_cost=col, precision=precision,
                                 omega=config.solver.sinkhorn_omega, anderson=config.solver.sinkhorn_anderson)
        synchronize(self.a.device)
        self.timings["sinkhorn"] += time.perf_counter() - tick
        tick = time.perf_counter()
        # The plan's own column marginal: Sinkhorn may stop early, so it is not exactly b.
        passes = ops.each_problem(self.a, [
            lambda result=result: (ops.apply(result.plan, self.ft.phi, config.product_precision),
                                   result.col_mass if result.col_mass is not None else ops.col_mass(result.plan))
            for result in results])
        for state, result, (pulled, col_mass) in zip(states, results, passes):
            state.plan, state.f, state.g = result.plan, result.f, result.g
            state.pulled, state.col_mass = pulled, col_mass
            state.gram = self.fs.phi.T @ state.pulled
            state.sinkhorn_iters.append(result.n_iter)
            state.marginal_error = result.error
        synchronize(self.a.device)    # the passes are queued on a GPU: time them, not their launch
        self.timings["gradient"] += time.perf_counter() - tick
        return self.objectives(states)

    def run(self, states: list[SolverState], until: int, progress: Optional[ProgressCallback] = None,
            sinkhorn_iters: Optional[int] = None, stop_at_fixed_point: bool = False) -> None:
        """Outer iterations of every state until ``until`` of them or its stopping rule fires;
        ``sinkhorn_iters`` caps each step's Sinkhorn (default: the configured cap).
        ``stop_at_fixed_point``: a state at the final ε also stops at a fixed point of the GW step
        (:func:`at_fixed_point`: a step whose Sinkhorn settles in one iteration, or two settled
        steps whose objectives differ by less than ``tol_rel``).

        States at the same iteration (hence the same ε) step together, one batched Sinkhorn
        per step; each keeps its own history, best iterate and stopping decision.
        """
        config = self.config
        active = [state for state in states if not state.converged and state.iteration < until]
        while active:
            iteration = min(state.iteration for state in active)
            batch = [state for state in active if state.iteration == iteration]
            linearised_at = [(state.gram, state.col_mass) for state in batch]
            values = self.step(batch, epsilon_at(config, iteration),
                               sinkhorn_iters or config.step_sinkhorn_max_iter("lowrank"),
                               config.solver.sinkhorn_tol, config.step_precision("lowrank"))
            for state, value, linearisation in zip(batch, values, linearised_at):
                state.history.append(value)
                state.iteration += 1
                settled = state.marginal_error < config.solver.sinkhorn_tol
                if state.iteration > config.solver.epsilon_decay_iters and \
                        (not settled, value) < (not state.best_settled, state.best_objective):
                    # The objective is exact but the iteration is not a descent method: it can
                    # wander from a good plan into a mirrored basin (as on SNARE-seq), so the
                    # best iterate at the final ε is kept (docs/how-it-works/engine.md). An
                    # iterate whose Sinkhorn met its tolerance beats one that stopped at the cap:
                    # a plan off its marginals has an objective that is not comparable.
                    state.best_objective, state.best_settled = value, settled
                    # Sinkhorn returns new potential tensors (never updates them in place): no copies.
                    state.best = (state.plan, state.f, state.g, linearisation)
                n_settled = state.iteration - max(config.solver.epsilon_decay_iters, 1)
                state.converged = should_stop(state.history, n_settled, config, iterations=state.iteration) or \
                    (stop_at_fixed_point and settled and n_settled > 0 and at_fixed_point(state, config, n_settled))
            if progress is not None:
                progress(iteration + 1, config.solver.max_iter, min(values))
            active = [state for state in active if not state.converged and state.iteration < until]

    def restore_best(self, state: SolverState) -> None:
        """Go back to the best iterate at the final ε seen so far (if any).

        The state is left *at the linearisation that produced it*, so that :meth:`polish`
        re-solves that same OT problem tightly instead of taking another GW step (one more
        step from a good plan can jump to the mirrored basin, as on SNARE-seq).
        """
        if state.best is not None:
            state.plan, state.f, state.g, (state.gram, state.col_mass) = state.best
            state.pulled = None
            state.history[-1] = state.best_objective

    def cell_distortion(self, plan: FactoredPlan, col_mass: Optional[torch.Tensor] = None,
                        pulled: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each cell's share of the GW objective of ``plan``, per unit of its mass.

        With ``C(T)`` the GW gradient of T (square loss), source cell i contributes
        ``Σ_j T_ij C(T)_ij`` and target cell j ``Σ_i T_ij C(T)_ij``; either sums to the objective.
        Divided by the cell's mass, it is the mean squared mismatch between the cell's
        distances and its partners' (normalised units): cells with no counterpart on the other
        side have to be placed somewhere that fits them badly, so theirs stands out.
        ``col_mass`` (the plan's column marginal) and ``pulled`` (``T Φ_t``), when the step that
        made the plan computed them, spare their passes.
        """
        fs, ft = self.fs, self.ft
        precision = self.config.product_precision
        col_mass = ops.col_mass(plan) if col_mass is None else col_mass
        h_t = ft.squared_apply(col_mass)
        t_phi_t = ops.apply(plan, ft.phi, precision) if pulled is None else pulled
        # The narrow columns go in passes of their own: appended to Φ (r = 32) they would widen
        # every product of the pass to the next tile width, 64 (3x the time at 1M cells a side;
        # docs/how-it-works/gpu-kernels.md).
        narrow = ops.apply(plan, torch.stack([h_t, torch.ones_like(h_t)], dim=1), precision)
        t_h_t, row_mass = narrow[:, 0], narrow[:, 1]
        h_s = fs.squared_apply(row_mass)
        t_phi_s = ops.apply_t(plan, fs.phi, precision)
        t_h_s = ops.apply_t(plan, h_s[:, None], precision)[:, 0]
        gram = fs.phi.T @ t_phi_t                     # G = Φ_sᵀ T Φ_t
        cross_s = ((fs.phi * fs.lam) @ (gram * ft.lam) * t_phi_t).sum(1)
        cross_t = ((ft.phi * ft.lam) @ (gram.T * fs.lam) * t_phi_s).sum(1)
        source = (row_mass * h_s + t_h_t - 2.0 * cross_s) / row_mass.clamp_min(1e-300)
        target = (col_mass * h_t + t_h_s - 2.0 * cross_t) / col_mass.clamp_min(1e-300)
        return source, target

    def returned_distortion(self, state: SolverState) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`cell_distortion` of the state's plan, as host arrays, timed as ``distortion``.
        When the step that made the plan left its column marginal and ``T Φ_t`` (``pulled``;
        :meth:`restore_best` clears it), they are reused."""
        tick = time.perf_counter()
        reused = state.pulled is not None
        distortion = self.cell_distortion(state.plan, state.col_mass if reused else None, state.pulled)
        synchronize(self.a.device)
        self.timings["distortion"] = time.perf_counter() - tick
        return distortion[0].cpu().numpy(), distortion[1].cpu().numpy()

    def polish(self, state: SolverState) -> None:
        """Sinkhorn at the final ε and a tight tolerance for the state's current linearisation
        (after :meth:`restore_best`: the best plan's); its objective replaces the last."""
        config = self.config
        state.history[-1] = self.step([state], config.solver.epsilon, config.solver.final_max_iter, config.solver.final_tol,
                                      config.final_precision)[0]


def at_fixed_point(state: SolverState, config: GWConfig, n_settled: int) -> bool:
    """Whether the state's last step (``n_settled`` of its steps at the final ε) ends its run: its
    Sinkhorn met the tolerance in one iteration (the potentials already solved the new
    linearisation, so the plan is a fixed point of the GW step), or it and the step before, both
    at the final ε and under the Sinkhorn cap, differ in objective by less than ``tol_rel``
    (relative): the relative part of the window rule (:func:`~gwalign.engine.schedule.should_stop`)
    over one step. The best iterate is kept either way (:meth:`LowRankGW.restore_best`)."""
    if state.sinkhorn_iters[-1] <= 1:
        return True
    if n_settled < 2 or len(state.history) < 2 or \
            max(state.sinkhorn_iters[-2:]) >= config.step_sinkhorn_max_iter("lowrank"):
        return False
    last, before = state.history[-1], state.history[-2]
    return abs(last - before) <= config.solver.tol_rel * abs(last)
