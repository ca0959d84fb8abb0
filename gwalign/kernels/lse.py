"""Fused streamed row log-sum-exp for a factored cost (the Sinkhorn half-step).

    r_i = log Σ_j exp((bias_j + 2⟨x_i, y_j⟩) / ε)

One program owns ``BLOCK_M`` rows, keeps their features in registers, and streams column tiles:
a ``tl.dot`` on the feature tile, then an online max / sum in base 2 (``exp2``), accumulated in
fp32. The factor 2·log2(e)/ε is folded into the row features and log2(e)/ε into the bias once per
tile, so the inner loop is dot + add + exp2 + sum. Offsets are 64-bit, so N·K may exceed 2³¹.
The column half-step is the same kernel with the roles of x and y swapped.
Reference: :func:`gwalign.engine.stream.lse_rows_reference`.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

#: Largest feature dimension the register-resident kernel takes; wider inputs use the reference.
MAX_FEATURES = 256
LOG2E = 1.0 / math.log(2.0)


@triton.jit
def _lse_rows_kernel(x_ptr, y_ptr, bias_ptr, out_ptr, n_rows, n_cols, n_feat,
                     stride_x, stride_y, scale,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                     PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    feats = tl.arange(0, BLOCK_D)
    row_ok = rows < n_rows
    feat_ok = feats < n_feat
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_x + feats[None, :],
                mask=row_ok[:, None] & feat_ok[None, :], other=0.0).to(tl.float32)
    x = x * (2.0 * scale)
    run_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    run_sum = tl.zeros([BLOCK_M], tl.float32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        y = tl.load(y_ptr + cols[:, None].to(tl.int64) * stride_y + feats[None, :],
                    mask=col_ok[:, None] & feat_ok[None, :], other=0.0).to(tl.float32)
        b = tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32) * scale
        b = tl.where(col_ok, b, float("-inf"))
        logits = tl.dot(x, tl.trans(y), input_precision=PRECISION) + b[None, :]
        new_max = tl.maximum(run_max, tl.max(logits, axis=1))
        run_sum = run_sum * tl.exp2(run_max - new_max) + \
            tl.sum(tl.exp2(logits - new_max[:, None]), axis=1)
        run_max = new_max
    out = (run_max + tl.log2(run_sum)) * 0.6931471805599453
    tl.store(out_ptr + rows, out, mask=row_ok)


def _blocks(n_feat: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_D, num_warps) for a feature width."""
    block_d = max(16, triton.next_power_of_2(n_feat))
    if block_d <= 64:
        return 128, 64, block_d, 4
    if block_d <= 128:
        return 64, 64, block_d, 4
    return 32, 64, block_d, 4


def supports(x: torch.Tensor) -> bool:
    """The kernel takes float32 inputs with at most ``MAX_FEATURES`` features."""
    return x.dtype == torch.float32 and x.shape[1] <= MAX_FEATURES


def lse_rows_triton(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float,
                    precision: str = "tf32x3") -> torch.Tensor:
    """Row log-sum-exp of ``(bias_j + 2⟨x_i, y_j⟩)/ε`` with the fused kernel.

    Parameters
    ----------
    x, y
        Row (N×d) and column (K×d) features, float32, same device.
    bias
        Length-K column bias.
    eps
        Regularisation (> 0).
    precision
        ``tf32x3`` (default on the GPU: three TF32 tensor-core products of split operands,
        near-fp32 accuracy), ``tf32`` (fastest, about 5e-4 relative error in the result) or
        ``ieee`` (fp32 FMA; measured 20–100× slower than tf32 on the H100, see docs/benchmarks.md).

    Returns
    -------
    torch.Tensor
        Length N, float32.
    """
    x = x.contiguous()
    y = y.contiguous()
    bias = bias.contiguous().to(torch.float32)
    n_rows, n_feat = x.shape
    out = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    block_m, block_n, block_d, warps = _blocks(n_feat)
    grid = (triton.cdiv(n_rows, block_m),)
    _lse_rows_kernel[grid](x, y, bias, out, n_rows, y.shape[0], n_feat, x.stride(0), y.stride(0),
                           LOG2E / eps, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
                           PRECISION=precision, num_warps=warps)
    return out
