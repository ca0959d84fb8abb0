"""Implicit transport plans with a factored squared-Euclidean cost.

A plan is never stored as an N×K matrix. It is the Gibbs kernel

    log T_ij = (p_i + q_j + 2⟨u_i, v_j⟩ − E_ij) / ε,

where ``u`` (N×d) and ``v`` (K×d) are cost features, ``p`` and ``q`` are *shifted* potentials
(``p_i = f_i − |u_i|² + ε log a_i``, likewise ``q``) so that a streamed pass needs one bias vector
per tile, and ``E`` is an optional dense extra cost allowed only for small problems.
The cost it transports is ``C_ij = |u_i|² + |v_j|² − 2⟨u_i, v_j⟩ + E_ij = ‖u_i − v_j‖² + E_ij``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch


@dataclass(frozen=True)
class FactoredPlan:
    """An implicit Gibbs plan ``T_ij = exp((p_i + q_j + 2⟨u_i, v_j⟩ − E_ij)/ε)``.

    Attributes
    ----------
    u, v
        Cost features of the rows (N×d) and the columns (K×d), centred jointly.
    p, q
        Shifted log-potentials (length N and K), in cost units.
    eps
        Absolute entropic regularisation.
    extra
        Optional dense N×K additive cost (small problems only).
    block_rows, block_cols
        Tile sizes of streamed passes over this plan.
    cost_precision
        GPU dot precision under which ``⟨u_i, v_j⟩`` is exact: ``"tf32"`` for features rounded to
        TF32 (:mod:`gwalign.engine.precision`), whose cost dots then need no split passes;
        ``None``: each pass's own precision.
    """

    u: torch.Tensor
    v: torch.Tensor
    p: torch.Tensor
    q: torch.Tensor
    eps: float
    extra: Optional[torch.Tensor] = None
    block_rows: int = 256
    block_cols: int = 4096
    cost_precision: Optional[str] = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.u.shape[0], self.v.shape[0])

    @property
    def T(self) -> "FactoredPlan":  # noqa: N802 - mirrors the matrix transpose
        """The transposed plan (rows and columns swapped), still implicit."""
        extra_t = None if self.extra is None else self.extra.T
        return replace(
            self, u=self.v, v=self.u, p=self.q, q=self.p, extra=extra_t,
            block_rows=self.block_cols, block_cols=self.block_rows,
        )


def choose_blocks(n_rows: int, n_cols: int, block_elements: int,
                  block_rows: Optional[int] = None, block_cols: Optional[int] = None) -> tuple[int, int]:
    """Tile sizes for streamed passes: about ``block_elements`` entries per tile.

    Where the columns span several tiles, rows get at most 256 so that the column extent, over
    which reductions stream, stays long (twice as fast on 2 CPU cores). Where every column fits
    in one tile, rows grow until the tile holds ``block_elements`` entries: each tile costs a
    dozen tensor operations whatever its size, and on 2 CPU cores the row log-sum-exp of a
    1,047 × 1,047 pass took 1.1–1.4 ns an entry in one tile against 1.5–1.7 ns in 256-row tiles
    (docs/how-it-works/gpu-kernels.md).
    """
    long_rows = max(1, min(256, block_elements // 256))
    rows = block_rows or max(1, min(n_rows, max(long_rows, block_elements // max(n_cols, 1))))
    cols = block_cols or max(1, min(n_cols, block_elements // rows))
    return rows, cols


def centre_features(u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Subtract one common vector from both feature sets.

    ‖u_i − v_j‖² is translation invariant; centring both clouds on the midpoint of their weighted
    means keeps |u|², |v|² and ⟨u, v⟩ small, which avoids cancellation in the factored cost.
    """
    centre = 0.5 * (a @ u + b @ v)
    return u - centre, v - centre
