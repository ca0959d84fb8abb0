"""Streamed plan operations with backend dispatch.

This is the one place where the engine chooses between the PyTorch reference (CPU tensors, and
anything the kernels do not cover) and the fused Triton kernels (CUDA tensors). Callers never
import a backend directly.
"""

from __future__ import annotations

import os
from typing import Optional

import torch

from gwalign.engine import stream
from gwalign.engine.plan import FactoredPlan


def triton_enabled(tensor: torch.Tensor) -> bool:
    """True when ``tensor`` lives on a CUDA device and the Triton kernels can run there.

    ``GWALIGN_TRITON=0`` forces the reference path (for comparisons and debugging);
    ``GWALIGN_TRITON=1`` with ``TRITON_INTERPRET=1`` runs the kernels on CPU tensors (tests).
    """
    flag = os.environ.get("GWALIGN_TRITON", "auto")
    if flag == "0":
        return False
    if not tensor.is_cuda and not (flag == "1" and os.environ.get("TRITON_INTERPRET") == "1"):
        return False
    from gwalign.kernels import available

    return available()


def lse_rows(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float,
             extra: Optional[torch.Tensor], block_rows: int, block_cols: int,
             precision: Optional[str] = None) -> torch.Tensor:
    """Row log-sum-exp of ``(bias_j + 2⟨x_i, y_j⟩ − extra_ij)/ε`` on the best backend.

    ``x`` (N×d), ``y`` (K×d) and ``bias`` (K) may carry a leading batch dimension S (then the
    result is S×N and an unbatched operand is shared by every problem; ``extra`` must then be
    ``None``). ``precision`` (tf32, tf32x3, ieee) is the GPU kernel's dot precision; ``None`` →
    ``$GWALIGN_PRECISION`` or tf32x3. The CPU reference always computes in the tensors' dtype.
    """
    if extra is None and triton_enabled(x):
        from gwalign.kernels.lse import lse_rows_triton, supports

        if supports(x):
            chosen = precision or os.environ.get("GWALIGN_PRECISION", "tf32x3")
            return lse_rows_triton(x, y, bias, eps, precision=chosen)
    if x.dim() == 2 and y.dim() == 2 and bias.dim() == 1:
        return stream.lse_rows_reference(x, y, bias, eps, extra, block_rows, block_cols)
    if extra is not None:
        raise ValueError("a dense extra cost is not supported for a batch of problems")
    operands = ((x, 2), (y, 2), (bias, 1))
    n_batch = max(t.shape[0] for t, dim in operands if t.dim() > dim)
    return torch.stack([stream.lse_rows_reference(*(_problem(t, s, dim) for t, dim in operands), eps,
                                                  None, block_rows, block_cols)
                        for s in range(n_batch)])


def _problem(operand: torch.Tensor, index: int, unbatched_dim: int) -> torch.Tensor:
    """Problem ``index`` of an operand that is either shared (``unbatched_dim`` dims) or batched."""
    return operand if operand.dim() == unbatched_dim else operand[index]


def row_lse(plan: FactoredPlan) -> torch.Tensor:
    """``log Σ_j exp((q_j + 2⟨u_i, v_j⟩ − E_ij)/ε)`` for every row."""
    return lse_rows(plan.u, plan.v, plan.q, plan.eps, plan.extra, plan.block_rows, plan.block_cols)


def row_mass(plan: FactoredPlan) -> torch.Tensor:
    """Row sums ``T 1`` of the plan."""
    return torch.exp(plan.p / plan.eps + row_lse(plan))


def col_mass(plan: FactoredPlan) -> torch.Tensor:
    """Column sums ``Tᵀ 1`` of the plan."""
    return row_mass(plan.T)


def _kernel_ready(plan: FactoredPlan, *others: Optional[torch.Tensor]) -> bool:
    """The plan-pass kernels take this plan (CUDA or interpreter, no dense extra, float32)."""
    if plan.extra is not None or not triton_enabled(plan.u):
        return False
    from gwalign.kernels.tiles import plan_supports as supports

    return supports(plan.u, plan.v, *others)


def apply(plan: FactoredPlan, z: torch.Tensor, precision: str = "tf32x3") -> torch.Tensor:
    """``T @ Z`` (Z: K×m or length K); ``precision`` as in :func:`lse_rows` (GPU only)."""
    z = z.to(plan.u.dtype)
    if _kernel_ready(plan, z):
        from gwalign.kernels.apply import apply_triton

        return apply_triton(plan.u, plan.v, plan.p, plan.q, plan.eps, z, precision)
    return stream.apply_reference(plan, z)


def apply_t(plan: FactoredPlan, z: torch.Tensor, precision: str = "tf32x3") -> torch.Tensor:
    """``Tᵀ @ Z`` (Z: N×m or length N)."""
    return apply(plan.T, z, precision)


def transport_cost(plan: FactoredPlan, cost_u: Optional[torch.Tensor] = None,
                   cost_v: Optional[torch.Tensor] = None) -> float:
    """``⟨C, T⟩`` for the plan's own cost, or for ``‖cost_u_i − cost_v_j‖²``."""
    cu = plan.u if cost_u is None else cost_u
    cv = plan.v if cost_v is None else cost_v
    if _kernel_ready(plan, cu, cv):
        from gwalign.kernels.transport_cost import transport_cost_triton

        return transport_cost_triton(plan.u, plan.v, plan.p, plan.q, plan.eps, cu, cv)
    return float(stream.transport_cost_reference(plan, cost_u, cost_v))


def sample_columns(plan: FactoredPlan, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One column index drawn from ``T[i, :]`` for each ``i`` in ``rows``."""
    return stream.sample_columns_reference(plan, rows, generator)


def shared_mass(first: FactoredPlan, second: FactoredPlan, rows: torch.Tensor) -> torch.Tensor:
    """``Σ_j min(T_ij, T'_ij)`` for each row index in ``rows`` (float64).

    A diagnostic on a few thousand rows (how much two plans agree), so the PyTorch tiles serve
    both devices, as for :func:`sample_columns`.
    """
    return stream.shared_mass_reference(first, second, rows)


def topk_rows(plan: FactoredPlan, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` plan entries of every row (values, column indices)."""
    if _kernel_ready(plan):
        from gwalign.kernels.topk import MAX_TOPK, topk_triton

        if k <= MAX_TOPK:
            values, indices = topk_triton(plan.u, plan.v, plan.p, plan.q, plan.eps, k)
            return values.to(plan.u.dtype), indices
    return stream.topk_rows_reference(plan, k)
