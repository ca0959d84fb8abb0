"""Fused ``T @ Z`` over an implicit plan ``T_ij = exp((p_i + q_j + 2⟨x_i, y_j⟩)/ε)``.

One program per row block streams column tiles and accumulates ``exp2(logits) @ Z_tile`` with a
second ``tl.dot`` on a BLOCK_N × BLOCK_Z tile of Z (wider Z is split over a second grid axis).
Plan entries are at most about one (the potentials normalise rows), so no running maximum is
needed. Reference: :func:`gwalign.engine.stream.apply_reference`.
"""

from __future__ import annotations


from typing import Optional

import torch
import triton
import triton.language as tl

from gwalign.kernels.tiles import (LOG2E, contiguous_plan, feature_split, load_split, log2_plan_tile, multiprocessors,
                                   plan_launch)


#: Z columns one program accumulates (wider Z is split over a second grid axis).
MAX_Z_BLOCK = 64


@triton.jit(do_not_specialize=["n_rows", "n_cols"])
def _apply_kernel(x_ptr, y_ptr, p_ptr, q_ptr, z_ptr, out_ptr, n_rows, n_cols, n_feat, n_z,
                  stride_x, stride_y, stride_z, stride_out, scale,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D0: tl.constexpr, D1: tl.constexpr,
                  BLOCK_Z: tl.constexpr, PRECISION: tl.constexpr, COST_PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    zc = tl.program_id(1) * BLOCK_Z + tl.arange(0, BLOCK_Z)
    z_ok = zc < n_z
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x0, x1 = load_split(x_ptr, rows, row_ok, stride_x, n_feat, D0, D1)
    p2 = tl.load(p_ptr + rows, mask=row_ok, other=0.0).to(tl.float32) * scale
    acc = tl.zeros([BLOCK_M, BLOCK_Z], tl.float32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        weights = tl.exp2(log2_plan_tile(x0, x1, y_ptr, q_ptr, p2, cols, col_ok, stride_y, n_feat,
                                          scale, D0, D1, COST_PRECISION))
        z = tl.load(z_ptr + cols[:, None].to(tl.int64) * stride_z + zc[None, :],
                    mask=col_ok[:, None] & z_ok[None, :], other=0.0).to(tl.float32)
        acc = tl.dot(weights, z, acc, input_precision=PRECISION)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * stride_out + zc[None, :], acc,
             mask=row_ok[:, None] & z_ok[None, :])


def apply_triton(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor, eps: float,
                 z: torch.Tensor, precision: str = "tf32x3", total_rows: Optional[int] = None,
                 cost_precision: Optional[str] = None) -> torch.Tensor:
    """``T @ Z`` for ``T_ij = exp((p_i + q_j + 2⟨x_i, y_j⟩)/ε)``.

    Parameters
    ----------
    x, y
        Row (N×d) and column (K×d) plan features, float32.
    p, q
        Shifted log-potentials (length N and K).
    eps
        Regularisation of the plan.
    z
        K×m (or length K) float32.
    precision
        Dot precision of the product with ``Z`` (``tf32x3`` default: the result feeds GW
        gradients), and of the cost dot unless ``cost_precision`` is given.
    total_rows
        Rows of the whole pass when the plan's rows are a shard of it (the tiles follow it).
    cost_precision
        Dot precision of ``⟨x_i, y_j⟩``: ``tf32`` where the features are rounded to TF32, which
        makes that dot exact in one pass.

    Returns
    -------
    torch.Tensor
        N×m (or length N), float32.
    """
    x, y, p, q = contiguous_plan(x, y, p, q)
    squeeze = z.ndim == 1
    z2 = (z.unsqueeze(1) if squeeze else z).to(torch.float32).contiguous()
    n_rows, n_feat = x.shape
    n_z = z2.shape[1]
    out = torch.empty(n_rows, n_z, dtype=torch.float32, device=x.device)
    d0, d1 = feature_split(n_feat)
    block_z = max(16, min(MAX_Z_BLOCK, triton.next_power_of_2(n_z)))
    z_blocks = triton.cdiv(n_z, block_z)
    block_m, block_n, warps = plan_launch(max(d0 + d1, block_z), triton.cdiv(total_rows or n_rows, 64) * z_blocks,
                                      multiprocessors(x.device))
    if n_rows == 0:
        return out.squeeze(1) if squeeze else out
    grid = (triton.cdiv(n_rows, block_m), z_blocks)
    _apply_kernel[grid](x, y, p, q, z2, out, n_rows, y.shape[0], n_feat, n_z, x.stride(0), y.stride(0),
                        z2.stride(0), out.stride(0), LOG2E / eps, BLOCK_M=block_m, BLOCK_N=block_n,
                        D0=d0, D1=d1, BLOCK_Z=block_z, PRECISION=precision,
                        COST_PRECISION=cost_precision or precision, num_warps=warps)
    return out.squeeze(1) if squeeze else out
