"""Low-rank GW: the exact GW gradient of factored distance matrices, streamed.

A graph-geodesic distance matrix is close to low rank (SNARE-seq, kNN k=10: rank 32 keeps all
but 2% of its Frobenius norm). With ``D_s ≈ Φ_s Λ_s Φ_sᵀ`` and ``D_t ≈ Φ_t Λ_t Φ_tᵀ`` the GW
gradient (square loss) of a plan T is

    C(T)_ij = (D_s² a_T)_i + (D_t² b_T)_j − 2 (D_s T D_t)_ij,
    D_s T D_t = (Φ_s Λ_s) G (Λ_t Φ_tᵀ),   G = Φ_sᵀ T Φ_t  (r×r),

so each GW step is again an OT problem with a factored cost of feature dimension r, and G needs
one streamed pass ``T @ Φ_t``. Unlike sampled GW it has no sampling noise, and the objective
``L(T) = a_Tᵀ D_s² a_T + b_Tᵀ D_t² b_T − 2 tr(Λ_s G Λ_t Gᵀ)`` is exact (for the factored
matrices), so starts are compared without noise (Scetbon, Peyré, Cuturi 2022, "Linear-time
Gromov-Wasserstein distances using low rank couplings and costs", use the same factorisation).

Mirror-safe starts: the product plan is symmetric under reflections of either shape, so GW from
it lands in whichever basin rounding favours. Further starts flip the signs of the leading
eigen-components in the initial ``G`` (a reflection flips eigenvector signs); every start runs
through the ε annealing, the lowest few then run to convergence (see :func:`solve_lowrank_gw`).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from gwalign.config import GWConfig
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan, choose_blocks
from gwalign.engine.profiles import profile_gram
from gwalign.engine.sinkhorn import sinkhorn_batch
from gwalign.engine.solver import (ProgressCallback, SolveResult, epsilon_at, product_mean_cost,
                                  product_plan, should_stop)


@dataclass(frozen=True)
class LowRankDistances:
    """A symmetric distance matrix kept as ``D ≈ Φ diag(λ) Φᵀ``.

    Attributes
    ----------
    phi
        N×r factor.
    lam
        The r weights (eigenvalues; distance matrices are indefinite, so signs vary).
    relative_error
        ``‖D − Φ Λ Φᵀ‖_F / ‖D‖_F`` of the truncation.
    """

    phi: torch.Tensor
    lam: torch.Tensor
    relative_error: float

    def quad(self, w: torch.Tensor) -> float:
        """``wᵀ D w``."""
        x = self.phi.T @ w
        return float((self.lam * x * x).sum())

    def squared_apply(self, w: torch.Tensor) -> torch.Tensor:
        """``(D ∘ D) w`` in O(N r²): row i is ``φ_i Λ (Φᵀ diag(w) Φ) Λ φ_iᵀ``. ``w`` is a
        length-N vector or an S×N batch of them."""
        weighted = self.phi * self.lam
        gram = (self.phi * w[..., None]).transpose(-1, -2) @ self.phi
        return ((weighted @ gram) * weighted).sum(dim=-1)


def factor_dense(matrix: torch.Tensor, rank: int) -> LowRankDistances:
    """Truncated eigendecomposition of a symmetric N×N matrix, keeping the ``rank`` largest |λ|.

    Computed in float64 (the factors are then cast back to the matrix's dtype).
    """
    sym = matrix.double()
    sym = 0.5 * (sym + sym.T)
    values, vectors = torch.linalg.eigh(sym)
    order = torch.argsort(values.abs(), descending=True)[:rank]
    kept = values[order]
    total = float((values * values).sum())
    error = math.sqrt(max(total - float((kept * kept).sum()), 0.0) / total) if total > 0 else 0.0
    return LowRankDistances(phi=vectors[:, order].to(matrix.dtype).contiguous(),
                            lam=kept.to(matrix.dtype), relative_error=error)


def factor_randomized(matrix: torch.Tensor, rank: int, oversample: int = 32, power: int = 3,
                      seed: int = 0) -> LowRankDistances:
    """The ``rank`` largest-|λ| eigenpairs of a symmetric N×N matrix by a randomized range finder
    (Halko, Martinsson, Tropp 2011, Algorithms 4.4 and 5.3): ``power`` subspace iterations on
    ``rank + oversample`` Gaussian vectors, then the eigendecomposition of the projected matrix.
    A few products with the matrix instead of :func:`factor_dense`'s full eigendecomposition
    (N = 4000 on 2 CPU cores: 12 s); distance matrices' spectra decay fast, so the kept
    components match the exact ones closely (``tests/test_lowrank.py``)."""
    sym = matrix.double()
    sym = 0.5 * (sym + sym.T)
    n = sym.shape[0]
    width = min(n, rank + oversample)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    basis = torch.linalg.qr(sym @ torch.randn(n, width, generator=gen, dtype=torch.float64).to(sym.device))[0]
    for _ in range(power):
        basis = torch.linalg.qr(sym @ basis)[0]
    values, small = torch.linalg.eigh(basis.T @ sym @ basis)
    order = torch.argsort(values.abs(), descending=True)[:rank]
    kept = values[order]
    total = float((sym * sym).sum())
    error = math.sqrt(max(total - float((kept * kept).sum()), 0.0) / total) if total > 0 else 0.0
    return LowRankDistances(phi=(basis @ small[:, order]).to(matrix.dtype).contiguous(),
                            lam=kept.to(matrix.dtype), relative_error=error)


def factor_nystrom(table: np.ndarray, landmarks: np.ndarray, scale: float, rank: int,
                   device: torch.device, dtype: torch.dtype) -> LowRankDistances:
    """Nyström factorisation of a distance matrix from its landmark rows, in O(N·L²).

    With ``C = D[:, L]`` (from the L×N ``table``) and ``W = D[L, L] = Q Λ Qᵀ`` truncated to the
    ``rank`` largest |λ|, ``D ≈ C Q Λ⁻¹ Qᵀ Cᵀ`` (Williams & Seeger 2001; for indefinite
    matrices the truncation drops the near-zero eigenvalues that make ``W⁻¹`` unstable). A QR
    of ``C Q Λ⁻¹`` and an r×r eigendecomposition turn it into ``Φ diag(λ) Φᵀ`` with orthonormal
    ``Φ``, the form :class:`LowRankGW` expects. Distances are divided by ``scale`` (the
    provider's normalisation). ``relative_error`` is measured on the landmark rows. Computed
    in float64 on ``device`` (on the host it took 0.27 s of a 3.8 s 45k × 45k H100 run).
    """
    # float32 table to the device first (half the transfer), then float64 there.
    c = torch.as_tensor(np.asarray(table, dtype=np.float32).T).to(device).double() / scale   # N×L
    landmarks = torch.as_tensor(np.asarray(landmarks), device=device)
    w = c[landmarks]                                                           # L×L
    w = 0.5 * (w + w.T)
    values, vectors = torch.linalg.eigh(w)
    order = torch.argsort(values.abs(), descending=True)[:min(rank, len(values))]
    values, vectors = values[order], vectors[:, order]
    basis, upper = torch.linalg.qr(c @ (vectors / values))                     # N×r, r×r
    middle = upper @ torch.diag(values) @ upper.T
    lam, rotation = torch.linalg.eigh(0.5 * (middle + middle.T))
    phi = basis @ rotation
    keep = torch.argsort(lam.abs(), descending=True)
    phi, lam = phi[:, keep], lam[keep]
    approx = (phi[landmarks] * lam) @ phi.T                                    # L×N
    error = float(torch.linalg.norm(approx - c.T) / torch.linalg.norm(c.T))
    return LowRankDistances(phi=phi.to(device=device, dtype=dtype).contiguous(),
                            lam=lam.to(device=device, dtype=dtype), relative_error=error)


@dataclass
class _State:
    """One start's iterate: the plan, its potentials, its G and column marginal, its history."""

    plan: FactoredPlan
    f: Optional[torch.Tensor]
    g: Optional[torch.Tensor]
    gram: torch.Tensor
    col_mass: torch.Tensor
    history: list[float]
    sinkhorn_iters: list[int]
    iteration: int = 0
    converged: bool = False
    marginal_error: float = float("nan")
    best_objective: float = math.inf
    best: Optional[tuple] = None


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
        self.blocks = choose_blocks(a.shape[0], b.shape[0], config.block_elements,
                                    config.block_rows, config.block_cols)
        self.sq_a = fs.squared_apply(a)
        # Cost scale: mean of C(abᵀ) under abᵀ, fixed once, as in the sampled solver.
        mean_cost = float(a @ self.sq_a + b @ ft.squared_apply(b)) - 2.0 * fs.quad(a) * ft.quad(b)
        self.scale = max(mean_cost, 1e-30)
        alpha = config.fgw_alpha
        self.gw_weight = (1.0 - alpha) / self.scale
        self.joint = None
        if joint is not None and alpha > 0:
            x, y = joint
            w = alpha / max(product_mean_cost(x, y, a, b), 1e-30)
            self.joint = (x * math.sqrt(w), y * math.sqrt(w))
        self.timings = {"sinkhorn": 0.0, "gradient": 0.0}

    def product_gram(self) -> torch.Tensor:
        """``G`` of the product plan ``a bᵀ``: rank one."""
        return torch.outer(self.fs.phi.T @ self.a, self.ft.phi.T @ self.b)

    def profile_gram(self) -> torch.Tensor:
        """``G`` of the distance-profile plan (:mod:`gwalign.engine.profiles`) at the final ε."""
        config = self.config
        tick = time.perf_counter()
        gram = profile_gram(self.fs.phi, self.fs.lam, self.ft.phi, self.ft.lam, self.a, self.b,
                            config.epsilon, self.blocks, config.step_precision("lowrank"),
                            config.step_sinkhorn_max_iter("lowrank"), config.sinkhorn_tol,
                            omega=config.sinkhorn_omega)
        self.timings["profile"] = time.perf_counter() - tick
        return gram

    def start_grams(self, n_starts: int) -> list[torch.Tensor]:
        """Initial ``G`` of each of ``n_starts`` starts (see :func:`start_grams`)."""
        profile = self.profile_gram() if self.config.profile_start and n_starts > 1 else None
        return start_grams(self.product_gram(), n_starts, self.config, profile)

    def objectives(self, states: list[_State]) -> list[float]:
        """GW objective of each state's plan (row marginal ``a``, its column marginal and ``G``),
        with one host sync for the batch."""
        grams = torch.stack([state.gram for state in states])
        masses = torch.stack([state.col_mass for state in states])
        cross = ((self.fs.lam[:, None] * grams) * (grams * self.ft.lam)).sum(dim=(1, 2))
        squares = (masses * self.ft.squared_apply(masses)).sum(dim=1)
        return (squares + (self.a @ self.sq_a) - 2.0 * cross).tolist()

    def plan_objectives(self, plans: list[FactoredPlan]) -> list[float]:
        """GW objective of each plan under this solver's factors (one streamed pass a plan, for
        ``Tᵀ [Φ_s, 1]``: ``G`` and the column marginal): plans found under other distances are
        scored under these."""
        states = []
        for plan in plans:
            pulled_t = ops.apply_t(plan, torch.cat([self.fs.phi, torch.ones_like(self.a)[:, None]], dim=1))
            states.append(_State(plan=plan, f=None, g=None, gram=pulled_t[:, :-1].T @ self.ft.phi,
                                 col_mass=pulled_t[:, -1], history=[], sinkhorn_iters=[]))
        return self.objectives(states)

    def start(self, gram: torch.Tensor, at_final_epsilon: bool = False) -> _State:
        """A state at the product plan, whose first linearisation uses ``gram`` as its ``G``.

        ``at_final_epsilon``: the state skips the annealing (its iteration count starts where
        the schedule reaches the final ε), for a ``G`` that has been through it already.
        """
        state = _State(plan=product_plan(self.a, self.b, self.blocks), f=None, g=None, gram=gram,
                       col_mass=self.b, history=[], sinkhorn_iters=[])
        if at_final_epsilon:
            state.iteration = self.config.epsilon_decay_iters
        return state

    def _features(self, states: list[_State]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cost ``row_i + col_j − 2⟨u_i, v_j⟩`` of each state's linearised (fused) GW step,
        scaled: ``u`` (N×d) and ``row`` are shared, ``v`` (S×K×d) and ``col`` (S×K) per state."""
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
        return u, v, row, col

    def step(self, states: list[_State], eps: float, max_sinkhorn: int, tol: float,
             precision: str) -> list[float]:
        """Linearise each state at its plan, solve the entropic OTs side by side
        (:func:`sinkhorn_batch`), update ``G``; return the objectives."""
        config = self.config
        u, v, row, col = self._features(states)
        tick = time.perf_counter()
        warm = any(state.f is not None for state in states)
        f = torch.stack([state.f if state.f is not None else torch.zeros_like(row) for state in states]) \
            if warm else None
        g = torch.stack([state.g if state.g is not None else torch.zeros_like(col[0]) for state in states]) \
            if warm else None
        results = sinkhorn_batch(u, v, self.a, self.b, eps, f, g,
                                 rho=config.rho if config.semi_relaxed else None, max_iter=max_sinkhorn,
                                 tol=tol, block_rows=self.blocks[0], block_cols=self.blocks[1],
                                 row_cost=row, col_cost=col, precision=precision,
                                 omega=config.sinkhorn_omega)
        self.timings["sinkhorn"] += time.perf_counter() - tick
        tick = time.perf_counter()
        for state, result in zip(states, results):
            state.plan, state.f, state.g = result.plan, result.f, result.g
            state.gram = self.fs.phi.T @ ops.apply(result.plan, self.ft.phi)
            # The plan's own column marginal: Sinkhorn may stop early, so it is not exactly b.
            state.col_mass = result.col_mass if result.col_mass is not None else ops.col_mass(result.plan)
            state.sinkhorn_iters.append(result.n_iter)
            state.marginal_error = result.error
        self.timings["gradient"] += time.perf_counter() - tick
        return self.objectives(states)

    def run(self, states: list[_State], until: int, progress: Optional[ProgressCallback] = None) -> None:
        """Outer iterations of every state until ``until`` of them or its stopping rule fires.

        States at the same iteration (hence the same ε) step together, one batched Sinkhorn
        per step; each keeps its own history, best iterate and stopping decision.
        """
        config = self.config
        active = [state for state in states if not state.converged and state.iteration < until]
        while active:
            iteration = min(state.iteration for state in active)
            batch = [state for state in active if state.iteration == iteration]
            linearised_at = [(state.gram, state.col_mass) for state in batch]
            values = self.step(batch, epsilon_at(config, iteration), config.step_sinkhorn_max_iter("lowrank"),
                               config.sinkhorn_tol, config.step_precision("lowrank"))
            for state, value, linearisation in zip(batch, values, linearised_at):
                state.history.append(value)
                state.iteration += 1
                if state.iteration > config.epsilon_decay_iters and value < state.best_objective:
                    # The objective is exact but the iteration is not a descent method: it can
                    # wander from a good plan into a mirrored basin (measured on SNARE-seq), so
                    # the best iterate at the final ε is kept.
                    state.best_objective = value
                    # Sinkhorn returns new potential tensors (never updates them in place): no copies.
                    state.best = (state.plan, state.f, state.g, linearisation)
                n_settled = state.iteration - max(config.epsilon_decay_iters, 1)
                state.converged = should_stop(state.history, n_settled, config, iterations=state.iteration)
            if progress is not None:
                progress(iteration + 1, config.max_iter, min(values))
            active = [state for state in active if not state.converged and state.iteration < until]

    def restore_best(self, state: _State) -> None:
        """Go back to the best iterate at the final ε seen so far (if any).

        The state is left *at the linearisation that produced it*, so that :meth:`polish`
        re-solves that same OT problem tightly instead of taking another GW step (one more
        step from a good plan was measured to jump to the mirrored basin on SNARE-seq).
        """
        if state.best is not None:
            state.plan, state.f, state.g, (state.gram, state.col_mass) = state.best
            state.history[-1] = state.best_objective

    def cell_distortion(self, plan: FactoredPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """Each cell's share of the GW objective of ``plan``, per unit of its mass.

        With ``C(T)`` the GW gradient of T (square loss), source cell i contributes
        ``Σ_j T_ij C(T)_ij`` and target cell j ``Σ_i T_ij C(T)_ij``; either sums to the objective.
        Divided by the cell's mass, it is the mean squared mismatch between the cell's
        distances and its partners' (normalised units): cells with no counterpart on the other
        side have to be placed somewhere that fits them badly, so theirs stands out.
        """
        fs, ft = self.fs, self.ft
        # Three streamed passes: the column marginal, then T [Φ_t, h_t, 1] (which also gives the
        # row marginal that h_s needs), then Tᵀ [Φ_s, h_s].
        col_mass = ops.col_mass(plan)
        h_t = ft.squared_apply(col_mass)
        pulled = ops.apply(plan, torch.cat([ft.phi, h_t[:, None], torch.ones_like(h_t)[:, None]], dim=1))
        t_phi_t, t_h_t, row_mass = pulled[:, :-2], pulled[:, -2], pulled[:, -1]
        h_s = fs.squared_apply(row_mass)
        pushed = ops.apply_t(plan, torch.cat([fs.phi, h_s[:, None]], dim=1))
        gram = fs.phi.T @ t_phi_t                     # G = Φ_sᵀ T Φ_t
        cross_s = ((fs.phi * fs.lam) @ (gram * ft.lam) * t_phi_t).sum(1)
        cross_t = ((ft.phi * ft.lam) @ (gram.T * fs.lam) * pushed[:, :-1]).sum(1)
        source = (row_mass * h_s + t_h_t - 2.0 * cross_s) / row_mass.clamp_min(1e-300)
        target = (col_mass * h_t + pushed[:, -1] - 2.0 * cross_t) / col_mass.clamp_min(1e-300)
        return source, target

    def polish(self, state: _State) -> None:
        """Sinkhorn at the final ε and a tight tolerance for the state's current linearisation
        (after :meth:`restore_best`: the best plan's); its objective replaces the last."""
        config = self.config
        state.history[-1] = self.step([state], config.epsilon, config.final_max_iter, config.final_tol,
                                      config.final_precision)[0]


def _rows(factors: LowRankDistances, rows: np.ndarray) -> LowRankDistances:
    """The factorisation restricted to some points: ``D[rows][:, rows] ≈ Φ_rows Λ Φ_rowsᵀ``."""
    index = torch.as_tensor(rows, device=factors.phi.device)
    return LowRankDistances(phi=factors.phi[index].contiguous(), lam=factors.lam,
                            relative_error=factors.relative_error)


def _select_start(solver: "LowRankGW", n_starts: int, config: GWConfig,
                  progress: Optional[ProgressCallback],
                  coarse: Optional[Callable[[], "LowRankGW"]] = None
                  ) -> tuple[list[_State], list[float], Optional[dict]]:
    """Screen the starts, run the finalists to convergence, return them best first (each at
    its best iterate, not yet polished; ranked by :func:`rank_plans`, with the objectives under
    the solver ``coarse()`` makes, on the same cells, when there are two finalists or more),
    every start's screened objective and the finalists' comparison (:func:`compare_finalists`;
    ``None`` with one start)."""
    screen = min(config.max_iter, config.epsilon_decay_iters + 2)
    # All starts step side by side (one batched Sinkhorn per iteration), then the finalists.
    states = [solver.start(gram) for gram in solver.start_grams(n_starts)]
    solver.run(states, screen if n_starts > 1 else config.max_iter, progress if n_starts == 1 else None)
    screened = [state.history[-1] for state in states]
    finalists = [states[i] for i in distinct_lowest(screened, FINALISTS)]
    solver.run(finalists, config.max_iter, progress)
    for state in finalists:
        solver.restore_best(state)
    objectives = [state.history[-1] for state in finalists]
    coarse_objectives = None if coarse is None or len(finalists) < 2 else \
        coarse().plan_objectives([state.plan for state in finalists])
    order, scores = rank_plans(objectives, coarse_objectives)
    finalists = [finalists[i] for i in order]
    if n_starts == 1:
        return finalists, screened, None
    compared = compare_finalists(finalists, solver.a, config.seed)
    compared["scores"] = [scores[i] for i in order]
    if coarse_objectives is not None:
        compared["coarse_objectives"] = [coarse_objectives[i] for i in order]
    return finalists, screened, compared


def rank_plans(objectives: list[float], coarse_objectives: Optional[list[float]] = None
               ) -> tuple[list[int], list[float]]:
    """Order of the plans, best first, and each plan's score: the mean, over the run's graph and
    (when given) the coarser one, of its objective over the best plan's under that graph
    (``GWConfig.finalist_k_factor``). Non-finite objectives sort last.

    Relative objectives make the two graphs' scales comparable, and a plan best under both
    scores 1. PBMC's half-size draws (docs/design-notes.md, session 16): plans that swap its T
    cells and monocytes won by 0.1-0.9% under k = 15 and lost by 0.4-3% under k = 30.
    """
    columns = [objectives] + ([] if coarse_objectives is None else [coarse_objectives])
    relative = []
    for column in columns:
        best = min((value for value in column if math.isfinite(value)), default=math.nan)
        relative.append([value / best if math.isfinite(value) and best > 0 else math.inf for value in column])
    scores = [sum(parts) / len(parts) for parts in zip(*relative)]
    return sorted(range(len(objectives)), key=lambda i: (scores[i], objectives[i])), scores


#: Rows on which the finalists' plans are compared (every row when there are fewer): the shared
#: mass is a mean over rows, which a uniform sample of this size estimates to about ±0.01.
COMPARE_ROWS = 2048


def compare_finalists(states: list[_State], a: torch.Tensor, seed: int) -> dict:
    """The finalists' converged objectives (``states`` best first) and the mass each plan shares
    with the chosen one's.

    ``shared_mass`` is ``Σ_ij min(T_ij, T*_ij)`` with ``T*`` the chosen finalist's plan (1 for
    itself; entropic plans of one basin share most of their mass, plans that send cells to other
    partners little), estimated on :data:`COMPARE_ROWS` seeded rows. A close objective with
    little shared mass marks data on which the geometry barely decides between two matchings
    (docs/design-notes.md, session 16).
    """
    n = a.shape[0]
    if n <= COMPARE_ROWS:
        rows = torch.arange(n, device=a.device)
    else:
        rows = torch.as_tensor(np.sort(np.random.default_rng(seed).choice(n, COMPARE_ROWS, replace=False)),
                               device=a.device)
    row_mass = float(a[rows].sum())
    best = states[0].plan
    shared = [1.0] + [float(ops.shared_mass(best, state.plan, rows).sum()) / row_mass for state in states[1:]]
    return {"cells": [n, int(best.shape[1])], "objectives": [float(state.history[-1]) for state in states],
            "shared_mass": shared}


#: Builds the coarser graph's factors (source, target) on the given rows of each side (``None``:
#: every row), for the finalists' ranking (``GWConfig.finalist_k_factor``).
CoarseFactors = Callable[[Optional[np.ndarray], Optional[np.ndarray]], tuple[LowRankDistances, LowRankDistances]]


#: Screened starts that run to convergence (the lowest final objective is kept): the best
#: screened start can still end in a worse basin than the runner-up.
FINALISTS = 3

#: Full-size steps the finalists of a subsample screening take side by side before only the
#: lowest goes on. SNARE-seq screened on 500 / 750 cells, seeds 0-4: with 1 step one run of ten
#: kept the mirror, with 2 and 5 none (and none when every finalist ran to the end); each step
#: costs a Sinkhorn solve per finalist, the first ones from cold potentials (docs/design-notes.md).
RACE_STEPS = 2

#: Screened objectives closer than this (relative) count as one basin: starts that reached the
#: same plan (SNARE-seq: the profile start and four sign starts end the screening within 1e-5 of
#: each other) would otherwise fill every finalist's place with one basin.
SAME_BASIN = 1e-3


def distinct_lowest(objectives: list[float], count: int) -> list[int]:
    """Indices of up to ``count`` lowest objectives, skipping any within :data:`SAME_BASIN`
    (relative) of one already taken; lowest first. A non-finite objective sorts last and is
    taken only when it is the only one."""
    def key(i: int) -> float:
        return objectives[i] if math.isfinite(objectives[i]) else math.inf

    taken: list[int] = []
    for i in sorted(range(len(objectives)), key=key):
        value = objectives[i]
        if not taken or all(abs(value - objectives[j]) > SAME_BASIN * abs(objectives[j]) for j in taken):
            taken.append(i)
        if len(taken) == count:
            break
    return taken


def start_grams(base: torch.Tensor, n_starts: int, config: GWConfig,
                profile: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
    """Initial ``G`` of each start: product plan, the distance-profile plan's ``G`` (when
    given), sign patterns, then seeded Gaussian noise."""
    size = config.start_noise * base.abs().max()
    m = min(config.start_signs, min(base.shape) - 1)
    grams = [base] if profile is None else [base, profile]
    for pattern in itertools.product((1.0, -1.0), repeat=m):
        diagonal = torch.zeros(min(base.shape), dtype=base.dtype, device=base.device)
        diagonal[1:1 + m] = torch.tensor(pattern, dtype=base.dtype)
        gram = base.clone()
        gram[range(len(diagonal)), range(len(diagonal))] += size * diagonal
        grams.append(gram)
    s = len(grams)
    while len(grams) < n_starts:
        gen = torch.Generator(device="cpu").manual_seed(config.seed + s)
        noise = torch.randn(base.shape, generator=gen, dtype=torch.float64).to(base)
        grams.append(base + size * noise)
        s += 1
    return grams[:n_starts]


def solve_lowrank_gw(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor,
                     config: GWConfig, n_starts: int, *,
                     joint: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                     progress: Optional[ProgressCallback] = None,
                     coarse: Optional[CoarseFactors] = None) -> SolveResult:
    """Low-rank (fused, semi-relaxed) entropic GW with screened starts.

    Start 0 begins at the product plan, start 1 (``config.profile_start``) at the plan that
    matches cells by their distance profiles (:mod:`gwalign.engine.profiles`). The next
    ``2**config.start_signs`` add
    ``±start_noise·max|G|`` on the diagonal of ``G`` for the leading non-constant components
    (factor indices 1…m; index 0 is the Perron component of a distance matrix), one start per
    sign pattern: reflections flip eigenvector signs, so the mirror images are all tried.
    Further starts add Gaussian noise of the same relative size (seeded ``config.seed + s``).
    Every start runs through the annealing (``epsilon_decay_iters + 2`` iterations); the
    :data:`FINALISTS` lowest in distinct basins (:func:`distinct_lowest`) then run to
    convergence, each returns to its best iterate at the final ε, and the lowest of those is
    polished.

    Returns
    -------
    SolveResult
        ``start_objectives`` holds every start's objective at the end of screening, and
        ``finalists`` the finalists' converged objectives and shared mass
        (:func:`compare_finalists`), both of the subsample when one was used (of the balanced
        selection in a semi-relaxed run).

    With more than ``config.screen_points`` points on a side, the starts are screened (and
    the finalists run) on ``screen_points`` cells drawn uniformly per side (seeded), using the
    same factors' rows; the finalists then continue at full size, side by side, each from
    the ``G`` of its best linearisation, for :data:`RACE_STEPS` steps, and the lowest full-size
    objective goes on alone (a subsample can rank the basins otherwise: SNARE-seq screened on
    500 or 750 cells kept a mirror in 4 of 10 runs when only its winner continued).
    ``G = Φ_sᵀ T Φ_t`` is a sum over cell pairs, so a uniform subsample estimates it for the
    same plan.

    ``coarse`` (:data:`CoarseFactors`) builds a coarser graph's factors on the cells the
    finalists ran on; their ranking then averages both graphs' relative objectives
    (:func:`rank_plans`, ``GWConfig.finalist_k_factor``). The full-size race ranks by this
    run's objective alone.

    Semi-relaxed runs (``config.semi_relaxed``) select their start as *balanced* GW, then run
    semi-relaxed from the winner's ``G``: the starts are compared where the objective cannot be
    lowered by moving mass onto the wrong cluster.

    A run from a screened winner starts at the final ε (``config.continue_winner``): the
    winner's ``G`` has been through the annealing already.
    """
    solver = LowRankGW(fs, ft, a, b, config, joint)
    n, k = a.shape[0], b.shape[0]

    def coarse_solver(rows_s: Optional[np.ndarray], rows_t: Optional[np.ndarray], a_: torch.Tensor,
                      b_: torch.Tensor, config_: GWConfig) -> Optional[Callable[[], LowRankGW]]:
        # Scores plans under the coarser graph's distances of these cells (GWConfig.finalist_k_factor);
        # only its objectives are used, never its steps.
        if coarse is None:
            return None
        return lambda: LowRankGW(*coarse(rows_s, rows_t), a_, b_, config_)

    # Semi-relaxed runs choose their start as balanced GW and relax from the winner: with a free
    # target marginal the penalised objective favoured plans that pour a source cluster onto a
    # wrong target cluster (PBMC: label transfer 0.055 at rho = 0.3 against 0.917 by continuation,
    # benchmarks/semi_relaxed.py has the synthetic case).
    select_config = config.replace(semi_relaxed=False) if config.semi_relaxed else config
    chosen: list[_State] = []
    if n_starts > 1 and max(n, k) > config.screen_points:
        # Starts are screened on a uniform subsample of cells (the same factors' rows); only the
        # finalists run at full size, each from the G of its best linearisation.
        gen = np.random.default_rng(config.seed)
        rows_s = np.sort(gen.choice(n, size=min(n, config.screen_points), replace=False))
        rows_t = np.sort(gen.choice(k, size=min(k, config.screen_points), replace=False))
        sub_joint = None if joint is None else (joint[0][rows_s], joint[1][rows_t])
        sub_a, sub_b = a[rows_s] / a[rows_s].sum(), b[rows_t] / b[rows_t].sum()
        sub = LowRankGW(_rows(fs, rows_s), _rows(ft, rows_t), sub_a, sub_b, select_config, sub_joint)
        chosen, screened, compared = _select_start(sub, n_starts, select_config, None,
                                                   coarse_solver(rows_s, rows_t, sub_a, sub_b, select_config))
        solver.timings["screen"] = sum(sub.timings.values())
    elif config.semi_relaxed:
        balanced = LowRankGW(fs, ft, a, b, select_config, joint)
        chosen, screened, compared = _select_start(balanced, n_starts, select_config, None,
                                                   coarse_solver(None, None, a, b, select_config))
        chosen = chosen[:1]
        solver.timings["screen"] = sum(balanced.timings.values())
    else:
        best, screened, compared = _select_start(solver, n_starts, config, progress,
                                                 coarse_solver(None, None, a, b, config))
        best = best[0]
    if chosen:
        # The finalists have been through the annealing (on the subsample, or as balanced GW):
        # the run continues them at the final ε (config.continue_winner; same plans in half the
        # GW iterations, docs/design-notes.md), side by side, and keeps the lowest full-size
        # objective: a subsample can rank the basins differently from the full problem.
        states = [solver.start(state.gram, at_final_epsilon=config.continue_winner) for state in chosen]
        # max_iter counts the skipped annealing: a budget spent by it still gets one full-size step.
        until = max(config.max_iter, states[0].iteration + 1)
        if len(states) > 1:
            # The finalists race for RACE_STEPS full-size steps, side by side; only the lowest
            # goes on.
            solver.run(states, min(until, states[0].iteration + RACE_STEPS), None)
            states = [min(states, key=lambda state: min(state.best_objective, state.history[-1]))]
        best = states[0]
        solver.run([best], until, progress)
        solver.restore_best(best)
    solver.polish(best)
    distortion = solver.cell_distortion(best.plan)
    return SolveResult(plan=best.plan, history=best.history, objective=best.history[-1],
                       n_iter=len(best.history), converged=best.converged, epsilon=solver.config.epsilon,
                       cost_scale=solver.scale, sinkhorn_iters=best.sinkhorn_iters,
                       timings=dict(solver.timings), start_objectives=screened, finalists=compared,
                       marginal_error=best.marginal_error,
                       cell_distortion=(distortion[0].cpu().numpy(), distortion[1].cpu().numpy()))


#: Semi-relaxed steps of the one-sided probe (:func:`relaxed_mass`), at the final ε from the
#: balanced plan's G, then the polish (without it the masses had not converged: 0.9 / 1.05 by
#: blob at rho = 1e4, where they must all be 1): the flagged groups were those of a full
#: continuation (annealing, stopping rule) on the four real pairs and the extra-blob draws, at
#: about half its cost on the GPU (docs/design-notes.md, "One-sided cell groups").
PROBE_STEPS = 5

#: Smallest relative ε of the one-sided probe: the steps and thresholds above were measured at 0.03
#: (session 8); runs at a sharper ε (exact geodesics: 0.01) probe at 0.03.
PROBE_EPSILON = 0.03


def relaxed_mass(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor,
                 plan: FactoredPlan, config: GWConfig,
                 joint: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each cell's mass when its own side's marginal is freed, relative to its balanced mass.

    Two short semi-relaxed runs (``config.rho``; :data:`PROBE_STEPS` steps at the final ε) start
    from the balanced ``plan``'s ``G``, as a semi-relaxed alignment continues from its balanced
    start: one frees the target marginal, one (on the transposed problem) the source's. A cell
    that no cell of the other side fits loses mass: under the KL penalty its mass falls by
    ``exp(-Δ/ρ)`` when its cost exceeds the side's typical one by ``Δ``. A probe, not a converged
    semi-relaxed solution. :mod:`gwalign.one_sided` groups the cells that lose most.

    Returns
    -------
    (source, target)
        Mass ratios (1 = the balanced mass), one per cell.
    """
    # The probe keeps ε >= PROBE_EPSILON, where its steps and thresholds were set: at 0.01 its five
    # steps left a whole blob at 0.89 of its mass with rho = 1e4, where every mass must be 1.
    epsilon = max(config.with_epsilon().epsilon, PROBE_EPSILON)
    relaxed = config.replace(semi_relaxed=True, epsilon=epsilon, epsilon_decay_iters=0, min_iter=0,
                             max_iter=PROBE_STEPS)
    gram = fs.phi.T @ ops.apply(plan, ft.phi)       # G = Φ_sᵀ T Φ_t of the balanced plan
    swapped = None if joint is None else (joint[1], joint[0])
    ratios = []
    for f_kept, f_freed, kept, freed, start, features in ((ft, fs, b, a, gram.T, swapped),
                                                         (fs, ft, a, b, gram, joint)):
        solver = LowRankGW(f_kept, f_freed, kept, freed, relaxed, features)
        state = solver.start(start)
        solver.run([state], relaxed.max_iter)
        solver.polish(state)
        mass = ops.col_mass(state.plan)
        # The kept side fixes the total at 1 (to the polish's tolerance); ratios of the total stay
        # exact relative masses either way.
        ratios.append(mass / mass.sum() / freed)
    return ratios[0], ratios[1]
