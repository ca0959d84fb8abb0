"""Fused transport cost ``⟨C, T⟩`` of an implicit plan, per row.

``acc_i += Σ_j T_ij (α_i + β_j − 2⟨c_i, e_j⟩)`` for cost features (c, e) that need not be the
plan's own (that is how a GW objective is estimated with fresh anchors).
Reference: :func:`gwalign.engine.stream.transport_cost_reference`.
"""

from __future__ import annotations


import torch
import triton
import triton.language as tl

from gwalign.kernels.tiles import (LOG2E, contiguous_plan, feature_split, load_split, log2_plan_tile, plan_launch, split_dot)


@triton.jit(do_not_specialize=["n_rows", "n_cols"])
def _cost_kernel(x_ptr, y_ptr, p_ptr, q_ptr, c_ptr, e_ptr, alpha_ptr, beta_ptr, out_ptr,
                 n_rows, n_cols, n_feat, n_cost, stride_x, stride_y, stride_c, stride_e, scale,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D0: tl.constexpr, D1: tl.constexpr,
                 C0: tl.constexpr, C1: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x0, x1 = load_split(x_ptr, rows, row_ok, stride_x, n_feat, D0, D1)
    c0, c1 = load_split(c_ptr, rows, row_ok, stride_c, n_cost, C0, C1)
    p2 = tl.load(p_ptr + rows, mask=row_ok, other=0.0).to(tl.float32) * scale
    alpha = tl.load(alpha_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
    acc = tl.zeros([BLOCK_M], tl.float32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        weights = tl.exp2(log2_plan_tile(x0, x1, y_ptr, q_ptr, p2, cols, col_ok, stride_y, n_feat,
                                          scale, D0, D1, PRECISION))
        inner = split_dot(c0, c1, e_ptr, cols, col_ok, stride_e, n_cost, C0, C1, PRECISION)
        beta = tl.load(beta_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        cost = alpha[:, None] + beta[None, :] - 2.0 * inner
        acc += tl.sum(weights * cost, axis=1)
    tl.store(out_ptr + rows, acc, mask=row_ok)


def centred_cost_features(cost_x: torch.Tensor, cost_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both cost feature sets moved by one common vector, as float32: the cost is translation
    invariant, and centring keeps ``α + β − 2⟨c, e⟩`` free of cancellation in float32."""
    centre = 0.5 * (cost_x.mean(0) + cost_y.mean(0))
    return (cost_x - centre).to(torch.float32).contiguous(), (cost_y - centre).to(torch.float32).contiguous()


def transport_cost_triton(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor,
                          eps: float, cost_x: torch.Tensor, cost_y: torch.Tensor,
                          precision: str = "tf32x3") -> float:
    """``Σ_ij T_ij ‖cost_x_i − cost_y_j‖²`` for the plan ``(x, y, p, q, ε)``.

    The cost features are centred on one common point first (:func:`centred_cost_features`).
    Row sums come back from the GPU and are added in float64.
    """
    c, e = centred_cost_features(cost_x, cost_y)
    return float(transport_cost_rows_triton(x, y, p, q, eps, c, e, precision).double().sum())


def transport_cost_rows_triton(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor,
                               eps: float, c: torch.Tensor, e: torch.Tensor, precision: str = "tf32x3"
                               ) -> torch.Tensor:
    """Per-row ``Σ_j T_ij ‖c_i − e_j‖²`` (float32) for centred float32 cost features ``c``, ``e``
    (:func:`centred_cost_features`); a distributed alignment computes a shard of rows and gathers."""
    x, y, p, q = contiguous_plan(x, y, p, q)
    c, e = c.contiguous(), e.contiguous()
    alpha = (c * c).sum(1)
    beta = (e * e).sum(1)
    n_rows, n_feat = x.shape
    out = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    if n_rows == 0:
        return out
    d0, d1 = feature_split(n_feat)
    c0, c1 = feature_split(c.shape[1])
    block_m, block_n, warps = plan_launch(max(d0 + d1, c0 + c1))
    grid = (triton.cdiv(n_rows, block_m),)
    _cost_kernel[grid](x, y, p, q, c, e, alpha, beta, out, n_rows, y.shape[0], n_feat, c.shape[1],
                       x.stride(0), y.stride(0), c.stride(0), e.stride(0), LOG2E / eps,
                       BLOCK_M=block_m, BLOCK_N=block_n, D0=d0, D1=d1, C0=c0, C1=c1,
                       PRECISION=precision, num_warps=warps)
    return out
