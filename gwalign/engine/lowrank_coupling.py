"""GW with low-rank couplings: mirror descent on the factors of ``P = Q diag(1/g) Rᵀ``.

A coupling of rank m is kept as ``Q`` (N×m, in Π(a, g)), ``R`` (K×m, in Π(b, g)) and ``g``
(m, in the simplex, ``g ≥ α``). Each iteration takes a mirror-descent (KL) step of size γ on
(Q, R, g) along the gradient of the square-loss GW objective minus ε times the entropy, then projects the three back onto
the constraints with the low-rank Dykstra scheme (Scetbon, Cuturi, Peyré 2021, "Low-Rank Sinkhorn
Factorization", ICML, Algorithm 2, here in the log domain). With the distances factored as
``D ≈ Φ diag(λ) Φᵀ`` (:class:`~gwalign.geometry.factors.LowRankDistances`) the gradient's
cross term ``D_s P D_t R = Φ_s Λ_s (Φ_sᵀ Q) diag(1/g) (Rᵀ Φ_t) Λ_t (Φ_tᵀ R)`` only needs r×m
products, so each iteration costs O((N+K)·r·m) and no N×K matrix is formed (Scetbon, Peyré, Cuturi
2022, "Linear-Time Gromov Wasserstein Distances using Low Rank Couplings and Costs", ICML).

The rest of gwalign works on implicit Gibbs plans (:class:`~gwalign.engine.plan.FactoredPlan`), so
the low-rank solution hands its ``G = Φ_sᵀ P Φ_t`` (r×r) to the entropic low-rank-gradient solver
(:class:`~gwalign.engine.lowrank.LowRankGW`) as a start at the final ε, in place of the screened
starts: the low-rank coupling replaces the start screening, the entropic solver refines its plan.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional
import torch
from gwalign.config import GWConfig
from gwalign.engine.lowrank import LowRankGW
from gwalign.engine.schedule import ProgressCallback, SolveResult
from gwalign.geometry.factors import LowRankDistances

#: Mirror-descent step γ relative to the cost scale, and the most steps: on spiral → Swiss roll
#: (1,000 points, rank 10) γ = 16 and 32 reach the same objective, γ = 64 a worse one.
STEP, MAX_STEPS = 16.0, 200

#: Lower bound α on each entry of ``g``, as a fraction of the uniform weight 1/m: keeps
#: ``diag(1/g)`` bounded without constraining the components' sizes in practice.
G_FLOOR = 1e-3

#: Dykstra iterations of each projection at most, and their tolerance (L1 error of the row
#: marginals): a mirror step needs no exact projection, and 30 reach the objective of 100
#: (spiral to Swiss roll, 1,000 points, rank 10, ε = 0) in a third of the time.
DYKSTRA_MAX_ITER, DYKSTRA_TOL = 30, 1e-5

#: Dykstra bound and tolerance of the final projection of the returned coupling.
FINAL_DYKSTRA_MAX_ITER, FINAL_DYKSTRA_TOL = 300, 1e-6

#: Dykstra iterations between two checks of the row marginals' error (a check costs two of
#: the iteration's six log-sum-exps).
CHECK_EVERY = 5

#: Relative objective change under which the mirror descent stops (after ``MIN_ITER`` steps).
TOL_REL, MIN_ITER = 1e-6, 10

#: Floor of the factors' log entries: the mirror steps can drive unused entries towards zero
#: geometrically (without entropy, always), and subnormal floats slow the CPU many times over.
LOG_FLOOR = -500.0

#: Size of the log-normal perturbation of the initial factors (breaks the symmetry of the
#: product coupling, a stationary point of the mirror descent).
INIT_NOISE = 1.0


@dataclass
class LowRankCoupling:
    """``P = Q diag(1/g) Rᵀ``.

    Attributes
    ----------
    q, r, g
        N×m, K×m and m factors.
    """

    q: torch.Tensor
    r: torch.Tensor
    g: torch.Tensor

    def gram(self, fs: LowRankDistances, ft: LowRankDistances) -> torch.Tensor:
        """``G = Φ_sᵀ P Φ_t`` (r_s×r_t) in O((N+K)·r·m)."""
        return (fs.phi.T.to(self.q) @ self.q / self.g) @ (self.r.T @ ft.phi.to(self.r))


def gw_objective(coupling: LowRankCoupling, fs: LowRankDistances, ft: LowRankDistances) -> float:
    """Square-loss GW objective ``Σ (D_s[i,k] − D_t[j,l])² P_ij P_kl`` of the coupling, exact for
    the factored distances, in O((N+K)·r·m + (N+K)·r²).

    It is ``a_Pᵀ D_s² a_P + b_Pᵀ D_t² b_P − 2 tr(Λ_s G Λ_t Gᵀ)`` with the coupling's own
    marginals ``a_P = P 1``, ``b_P = Pᵀ 1`` and ``G = Φ_sᵀ P Φ_t``.
    """
    q, r, g = coupling.q, coupling.r, coupling.g
    fs, ft = _as(fs, q), _as(ft, q)
    a_p = q @ (r.sum(0) / g)
    b_p = r @ (q.sum(0) / g)
    gram = coupling.gram(fs, ft)
    cross = ((fs.lam[:, None] * gram) * (gram * ft.lam)).sum()
    return float(a_p @ fs.squared_apply(a_p) + b_p @ ft.squared_apply(b_p) - 2.0 * cross)


def gradients(coupling: LowRankCoupling, fs: LowRankDistances, ft: LowRankDistances,
              h_s: torch.Tensor, h_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``⟨C, Q diag(1/g) Rᵀ⟩`` in Q, R and g, with C the GW gradient at P:
    ``C = 2 (h_s 1ᵀ + 1 h_tᵀ − 2 D_s P D_t)``, ``h_s = D_s² a`` and ``h_t = D_t² b``.

    ``C R diag(1/g)`` etc. are never formed as N×K: ``D_s P D_t R = Φ_s Λ_s G Λ_t (Φ_tᵀ R)``.
    Returns N×m, K×m and m tensors.
    """
    q, r, g = coupling.q, coupling.r, coupling.g
    gram = coupling.gram(fs, ft)                              # r_s×r_t
    proj_q, proj_r = fs.phi.T @ q, ft.phi.T @ r                # r_s×m, r_t×m
    left = fs.lam[:, None] * gram * ft.lam                     # Λ_s G Λ_t
    cross_q = fs.phi @ (left @ proj_r)                         # (D_s P D_t R), N×m
    cross_r = ft.phi @ (left.T @ proj_q)                       # (D_t Pᵀ D_s Q), K×m
    col_t, col_s = h_t @ r, h_s @ q                            # Rᵀ h_t, Qᵀ h_s (m)
    grad_q = 2.0 * (h_s[:, None] * (r.sum(0) / g) + col_t / g - 2.0 * cross_q / g)
    grad_r = 2.0 * (h_t[:, None] * (q.sum(0) / g) + col_s / g - 2.0 * cross_r / g)
    # diag(Qᵀ C R) / g², with diag(Qᵀ D_s P D_t R) = Σ_i Q_ik (D_s P D_t R)_ik.
    diag = 2.0 * (col_s * r.sum(0) + q.sum(0) * col_t - 2.0 * (q * cross_q).sum(0))
    return grad_q, grad_r, -diag / (g * g)


def project(log_q: torch.Tensor, log_r: torch.Tensor, log_g: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
            floor: float, max_iter: Optional[int] = None, tol: float = DYKSTRA_TOL
            ) -> tuple[LowRankCoupling, int, float]:
    """KL projection of (ξ_Q, ξ_R, ξ_g), given by their logs, onto ``Q 1 = a``, ``R 1 = b``,
    ``Qᵀ 1 = Rᵀ 1 = g``, ``g ≥ floor``: Dykstra's algorithm between the row constraints and the
    column ones (Scetbon, Cuturi, Peyré 2021, Algorithm 2), in the log domain.

    The column set's projection is closed-form: for each component k the scaled columns and
    ``g_k`` meet at the geometric mean of ``Σ_i Q_ik``, ``Σ_j R_jk`` and ``ξ_g,k``, floored at
    ``floor``. That set is not affine (the floor), so its projections carry Dykstra's
    multiplicative corrections; the row set's, affine, need none.

    Returns the coupling (its column constraints exact), the iterations and the L1 error of its
    row marginals.
    """
    max_iter = DYKSTRA_MAX_ITER if max_iter is None else max_iter
    log_a, log_b, log_floor = torch.log(a), torch.log(b), math.log(floor)
    log_q, log_r = log_q.clamp_min(LOG_FLOOR), log_r.clamp_min(LOG_FLOOR)
    col_q = torch.zeros_like(log_g)
    col_r = torch.zeros_like(log_g)
    corr_q, corr_r, corr_g = torch.zeros_like(log_g), torch.zeros_like(log_g), torch.zeros_like(log_g)
    error, n_iter = math.inf, 0
    for n_iter in range(1, max_iter + 1):
        # Rows: Q ← diag(a / Q1) Q and the same for R.
        row_q = log_a - torch.logsumexp(log_q + col_q, dim=1)
        row_r = log_b - torch.logsumexp(log_r + col_r, dim=1)
        # Columns, from the corrected iterate.
        col_q, col_r, log_g = col_q + corr_q, col_r + corr_r, log_g + corr_g
        sum_q = torch.logsumexp(log_q + row_q[:, None], dim=0) + col_q
        sum_r = torch.logsumexp(log_r + row_r[:, None], dim=0) + col_r
        new_g = torch.clamp((sum_q + sum_r + log_g) / 3.0, min=log_floor)
        corr_q, corr_r, corr_g = sum_q - new_g, sum_r - new_g, log_g - new_g
        col_q, col_r, log_g = col_q - corr_q, col_r - corr_r, new_g
        if n_iter % CHECK_EVERY == 0 or n_iter == max_iter:
            error = float((torch.exp(torch.logsumexp(log_q + row_q[:, None] + col_q, dim=1)) - a).abs().sum()
                          + (torch.exp(torch.logsumexp(log_r + row_r[:, None] + col_r, dim=1)) - b).abs().sum())
            if error < tol:
                break
    coupling = LowRankCoupling(q=torch.exp(log_q + row_q[:, None] + col_q),
                               r=torch.exp(log_r + row_r[:, None] + col_r), g=torch.exp(log_g))
    return coupling, n_iter, error


def initial_coupling(a: torch.Tensor, b: torch.Tensor, rank: int, seed: int) -> tuple[LowRankCoupling, int]:
    """The product coupling's factors ``a gᵀ``, ``b gᵀ`` (g uniform), perturbed log-normally
    (seeded) and projected: the unperturbed product is a stationary point."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    log_g = torch.full((rank,), -math.log(rank), dtype=a.dtype, device=a.device)
    noise_q = torch.randn(a.shape[0], rank, generator=gen, dtype=a.dtype).to(a.device)
    noise_r = torch.randn(b.shape[0], rank, generator=gen, dtype=b.dtype).to(b.device)
    coupling, n_iter, _ = project(torch.log(a)[:, None] + log_g + INIT_NOISE * noise_q,
                                  torch.log(b)[:, None] + log_g + INIT_NOISE * noise_r, log_g, a, b,
                                  G_FLOOR / rank)
    return coupling, n_iter


def mirror_descent(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor, rank: int,
                   step: float, max_iter: int, scale: float, epsilon: float, seed: int = 0
                   ) -> tuple[LowRankCoupling, list[float], list[int]]:
    """Entropic low-rank GW (Scetbon, Peyré, Cuturi 2022, Algorithm 2): ``max_iter`` mirror
    steps at most, each ``log ξ = (log x − γ ∇L(x) / scale) / (1 + γ ε)`` for x in (Q, R, g) (the
    proximal step of ``L / scale − ε H``), then :func:`project`. Dividing by ``scale`` (the
    cost scale) makes γ and ε (relative, as the run's) independent of the distances' units.
    The entropy keeps the factors off hard assignments, whose marginals Dykstra matches slowly.

    Computed in float64 (N×m and r×m tensors only). Returns the coupling, the objective after
    each step (stopping once its relative change is below :data:`TOL_REL`) and the Dykstra
    iterations of each projection.
    """
    flushed = torch.set_flush_denormal(True)   # see LOG_FLOOR; gwalign.align runs flushed already
    try:
        return _mirror_descent(_as(fs, torch.float64), _as(ft, torch.float64), a.double(), b.double(), rank,
                               step / scale, step * epsilon, max_iter, seed)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def _mirror_descent(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor, rank: int,
                    gamma: float, gamma_eps: float, max_iter: int, seed: int
                    ) -> tuple[LowRankCoupling, list[float], list[int]]:
    """:func:`mirror_descent` in float64, with the step ``gamma`` in cost units and γε."""
    h_s, h_t = fs.squared_apply(a), ft.squared_apply(b)
    floor = G_FLOOR / rank
    coupling, first = initial_coupling(a, b, rank, seed)
    history, dykstra = [gw_objective(coupling, fs, ft)], [first]
    for iteration in range(max_iter):
        grad_q, grad_r, grad_g = gradients(coupling, fs, ft, h_s, h_t)
        shrink = 1.0 / (1.0 + gamma_eps)
        coupling, n_iter, _ = project((torch.log(coupling.q) - gamma * grad_q) * shrink,
                                      (torch.log(coupling.r) - gamma * grad_r) * shrink,
                                      (torch.log(coupling.g) - gamma * grad_g) * shrink, a, b, floor)
        dykstra.append(n_iter)
        history.append(gw_objective(coupling, fs, ft))
        if iteration + 1 >= MIN_ITER and abs(history[-2] - history[-1]) <= TOL_REL * abs(history[-1]):
            break
    # The steps' projections stop early; a longer one brings the returned coupling closer to its
    # marginals (without an entropic term the factors approach hard assignments, on which
    # Dykstra converges slowly: an L1 error of 1e-3 can remain).
    coupling, n_iter, _ = project(torch.log(coupling.q), torch.log(coupling.r), torch.log(coupling.g), a, b, floor,
                                  max_iter=FINAL_DYKSTRA_MAX_ITER, tol=FINAL_DYKSTRA_TOL)
    dykstra.append(n_iter)
    history.append(gw_objective(coupling, fs, ft))
    return coupling, history, dykstra


def solve_coupling_rank(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor,
                        config: GWConfig, *, joint: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                        progress: Optional[ProgressCallback] = None) -> SolveResult:
    """GW through a coupling of rank ``config.solver.coupling_rank``, refined by entropic GW.

    The low-rank coupling (:func:`mirror_descent`, balanced pure GW) gives ``G = Φ_sᵀ P Φ_t``;
    :class:`~gwalign.engine.lowrank.LowRankGW` continues from it at the final ε (the run's own
    fused and semi-relaxed terms apply from there), keeps its best iterate and polishes it.

    Parameters
    ----------
    fs, ft
        Factored normalised distances of the source (N points) and target (K points).
    a, b
        Marginals.
    config
        Run parameters: ``coupling_rank`` and ε for the low-rank stage (steps :data:`STEP`,
        at most :data:`MAX_STEPS`), all of them for the entropic one.
    joint
        Shared features (N×p, K×p) for fused GW (entropic stage only).
    progress
        Called as ``progress(iteration, max_iter, objective)`` by the entropic stage.

    Returns
    -------
    SolveResult
        The polished entropic plan; ``start_objectives`` holds the low-rank coupling's GW
        objective (same units as ``objective``), ``timings`` the low-rank stage's seconds
        (``coupling_rank``) and its mirror steps and Dykstra iterations (``coupling_rank_steps``,
        ``coupling_rank_dykstra``).
    """
    solver_config = config.solver
    solver = LowRankGW(fs, ft, a, b, config, joint)
    tick = time.perf_counter()
    coupling, history, dykstra = mirror_descent(fs, ft, a, b, solver_config.coupling_rank, STEP, MAX_STEPS,
                                                solver.scale, solver.config.solver.epsilon, config.compute.seed)
    gram = coupling.gram(_as(fs, torch.float64), _as(ft, torch.float64)).to(fs.phi.dtype)
    lr_seconds = time.perf_counter() - tick
    state = solver.start(gram, at_final_epsilon=True)
    # max_iter counts the skipped annealing, as for a continued screened start.
    solver.run([state], max(solver_config.max_iter, state.iteration + 1), progress)
    solver.restore_best(state)
    solver.polish(state)
    distortion = solver.returned_distortion(state)
    timings = dict(solver.timings, coupling_rank=lr_seconds, coupling_rank_steps=float(len(history) - 1),
                   coupling_rank_dykstra=float(sum(dykstra)))
    return SolveResult(plan=state.plan, history=state.history, objective=state.history[-1],
                       n_iter=len(state.history), converged=state.converged, epsilon=solver.config.solver.epsilon,
                       cost_scale=solver.scale, sinkhorn_iters=state.sinkhorn_iters, timings=timings,
                       start_objectives=[history[-1]], marginal_error=state.marginal_error,
                       cell_distortion=distortion)


def _as(factors: LowRankDistances, like) -> LowRankDistances:
    """The factors in ``like``'s dtype (a dtype or a tensor), on their device."""
    dtype = like if isinstance(like, torch.dtype) else like.dtype
    if factors.phi.dtype == dtype:
        return factors
    return LowRankDistances(phi=factors.phi.to(dtype), lam=factors.lam.to(dtype),
                            relative_error=factors.relative_error)
