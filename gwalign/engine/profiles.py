"""Distance-profile start for low-rank GW: match cells by the distribution of their distances.

Each cell's distances to all other cells form a distribution that an isometry (a reflection
included) leaves unchanged. Transporting cells onto cells with the cost "Wasserstein distance
between their distance distributions" is Mémoli's third lower bound of the GW distance (Mémoli
2011, "Gromov-Wasserstein distances and the metric approach to object matching", Found. Comput.
Math. 11:417-487); its plan is a start that needs no luck with signs. Here the 1-D W2² between
two distributions is the mean squared difference of their quantile functions, so the cost is
squared-Euclidean between quantile vectors and streams like every other OT step.
"""

from __future__ import annotations

import torch

from gwalign.engine import ops
from gwalign.engine.sinkhorn import sinkhorn
from gwalign.engine.schedule import product_mean_cost

#: Columns (cells, evenly spaced in the input order) whose distances form each cell's profile.
PROFILE_COLUMNS = 512

#: Quantiles kept per profile (0, 1/31, ..., 1).
PROFILE_QUANTILES = 32

#: Rows of the distance block sorted at once (bounds the N × PROFILE_COLUMNS temporary).
PROFILE_ROW_BLOCK = 65_536


def distance_quantiles(phi: torch.Tensor, lam: torch.Tensor, n_columns: int = PROFILE_COLUMNS,
                       n_quantiles: int = PROFILE_QUANTILES) -> torch.Tensor:
    """Quantiles of each point's distances to ``n_columns`` evenly spaced points.

    Parameters
    ----------
    phi, lam
        A factorised distance matrix ``D ≈ Φ diag(λ) Φᵀ`` (N×r, r).
    n_columns, n_quantiles
        Points sampled per profile, quantiles kept.

    Returns
    -------
    torch.Tensor
        N × n_quantiles, row i = quantiles of ``D[i, columns]``. Evenly spaced columns, not
        random ones: the profile must not depend on the seed (the default starts do not).
    """
    n = phi.shape[0]
    columns = torch.linspace(0, n - 1, min(n, n_columns), device=phi.device).round().long()
    picks = torch.linspace(0, len(columns) - 1, n_quantiles, device=phi.device).round().long()
    right = (phi[columns] * lam).T
    out = torch.empty(n, n_quantiles, dtype=phi.dtype, device=phi.device)
    for start in range(0, n, PROFILE_ROW_BLOCK):
        block = phi[start:start + PROFILE_ROW_BLOCK] @ right
        out[start:start + PROFILE_ROW_BLOCK] = block.sort(dim=1).values[:, picks]
    return out


def profile_plan(phi_s: torch.Tensor, lam_s: torch.Tensor, phi_t: torch.Tensor, lam_t: torch.Tensor,
                 a: torch.Tensor, b: torch.Tensor, epsilon: float, blocks: tuple[int, int], precision: str,
                 max_iter: int, tol: float, omega: float = 1.0, anderson: int = 0):
    """Entropic OT plan between the two sides' distance profiles.

    ``epsilon`` is relative to the mean profile cost under the product plan, as GW's ε is. The
    plan is only a start, so :class:`~gwalign.engine.lowrank.LowRankGW` solves it like one of
    its GW steps (``max_iter``, ``tol`` of a step): capped at 50 iterations it reaches the same
    basins as a solve to 1e-4, at a small part of its cost. A larger ε is *not* a shortcut: at 10ε
    the plan is too blurred, and SNARE-seq at k = 15–30 falls back into the wrong basin
    (docs/how-it-works/engine.md, "Ten starts that cover mirror images").
    """
    qs = distance_quantiles(phi_s, lam_s)
    qt = distance_quantiles(phi_t, lam_t)
    scale = max(product_mean_cost(qs, qt, a, b), 1e-30)
    result = sinkhorn(qs, qt, a, b, epsilon * scale, max_iter=max_iter, tol=tol,
                      block_rows=blocks[0], block_cols=blocks[1], precision=precision, omega=omega,
                      anderson=anderson)
    return result.plan


def profile_gram(phi_s: torch.Tensor, lam_s: torch.Tensor, phi_t: torch.Tensor, lam_t: torch.Tensor,
                 a: torch.Tensor, b: torch.Tensor, epsilon: float, blocks: tuple[int, int],
                 precision: str, max_iter: int, tol: float, omega: float = 1.0, anderson: int = 0) -> torch.Tensor:
    """``G = Φ_sᵀ T Φ_t`` of :func:`profile_plan`'s plan: the low-rank GW start it gives."""
    plan = profile_plan(phi_s, lam_s, phi_t, lam_t, a, b, epsilon, blocks, precision, max_iter, tol,
                        omega=omega, anderson=anderson)
    return phi_s.T @ ops.apply(plan, phi_t)
