"""Fused streamed row log-sum-exp for a factored cost (the Sinkhorn half-step).

    r_i = log Σ_j exp((bias_j + 2⟨x_i, y_j⟩) / ε)

One program owns ``BLOCK_M`` rows, keeps their features in registers, and streams column tiles:
a ``tl.dot`` on the feature tile, then an online max / sum in base 2 (``exp2``), accumulated in
fp32. The factor 2·log2(e)/ε multiplies the dot product and log2(e)/ε the bias once per
tile, so the inner loop is dot + fma + exp2 + sum. Offsets are 64-bit, so N·K may exceed 2³¹.
The column half-step is the same kernel with the roles of x and y swapped. A second grid axis
runs a batch of problems that share one operand (the screened starts of low-rank GW) in one launch.

Feature widths: ``tl.dot`` needs power-of-two tiles of at least 16, so a width d is split into a
main chunk and a tail chunk (:func:`feature_split`): d = 80 (the sampled-GW default at scale)
runs as 64 + 16 instead of being padded to 128, 37.5% fewer multiply-adds.
Reference: :func:`gwalign.engine.logsumexp.lse_rows_reference`.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from gwalign.kernels.tiles import LOG2E, MAX_FEATURES, feature_split, load_split, multiprocessors, split_dot


# One compilation for every problem size: sizes and the batch strides of the vectors (N or K,
# divisible by 16 or not) are not specialised. The feature batch strides are: unspecialised, the
# feature tiles lose their vectorised loads (a batch of ten 4000-row problems runs at half speed).
@triton.jit(do_not_specialize=["n_rows", "n_cols", "batch_bias", "batch_out"])
def _lse_rows_kernel(x_ptr, y_ptr, bias_ptr, out_ptr, n_rows, n_cols, n_feat,
                     stride_x, stride_y, batch_x, batch_y, batch_bias, batch_out, scale,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D0: tl.constexpr, D1: tl.constexpr,
                     PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    # Axis 1 walks a batch of problems (screened GW starts); a batch stride of 0 shares an
    # operand between them.
    problem = tl.program_id(1).to(tl.int64)
    x_ptr += problem * batch_x
    y_ptr += problem * batch_y
    bias_ptr += problem * batch_bias
    out_ptr += problem * batch_out
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    # Features enter the dot unscaled, so features already rounded to tf32 stay exact in a tf32
    # dot and every pass over a plan sees the same logits (see gwalign.engine.precision).
    x0, x1 = load_split(x_ptr, rows, row_ok, stride_x, n_feat, D0, D1)
    run_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    run_sum = tl.zeros([BLOCK_M], tl.float32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        b = tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32) * scale
        b = tl.where(col_ok, b, float("-inf"))
        logits = split_dot(x0, x1, y_ptr, cols, col_ok, stride_y, n_feat, D0, D1, PRECISION)
        logits = logits * (2.0 * scale) + b[None, :]
        new_max = tl.maximum(run_max, tl.max(logits, axis=1))
        run_sum = run_sum * tl.exp2(run_max - new_max) + \
            tl.sum(tl.exp2(logits - new_max[:, None]), axis=1)
        run_max = new_max
    out = (run_max + tl.log2(run_sum)) * 0.6931471805599453
    tl.store(out_ptr + rows, out, mask=row_ok)


#: Rows from which tf32 tiles of width ≤ 64 take 256 rows × 64 columns with 8 warps: faster than
#: 64 × 128 at 200,000 rows, slower at 100,000 (one H100; docs/how-it-works/gpu-kernels.md).
LARGE_ROWS = 150_000


def launch_config(width: int, precision: str = "tf32", rows: Optional[int] = None,
                  programs_wanted: int = 0) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps) for a padded feature width, a dot precision and a problem.

    Chosen by ``benchmarks/kernels.py --sweep`` on one H100 (docs/how-it-works/gpu-kernels.md,
    "Tiles"). tf32, widths up to 64: 64 × 128 tiles, 256 × 64 with 8 warps from
    :data:`LARGE_ROWS` rows; widths 65–128 (d = 80 as 64 + 16): 128 × 64 with 8 warps. tf32x3,
    three products per tile: 64 × 128 (width 32), 128 × 128 with 8 warps (width 64), 64 × 64
    (widths 65–128; 128 × 128 needs 256–384 KB of shared memory there, above the 227 KB of an
    H100 or H200 block). ieee: as tf32x3 up to width 32, 128 × 128 above. Wider inputs: 32 × 64.

    With ``rows`` (rows of all problems of the launch together) and ``programs_wanted`` (the
    GPU's SM count), row tiles halve, down to 32, until the grid fills the SMs (a 4,000-row
    low-rank step would otherwise leave most of the SMs idle).
    """
    if width > 128:
        block_m, block_n, warps = 32, 64, 4
    elif precision == "tf32":
        if width <= 64:
            large = rows is not None and rows >= LARGE_ROWS
            block_m, block_n, warps = (256, 64, 8) if large else (64, 128, 4)
        else:
            block_m, block_n, warps = 128, 64, 8
    elif width <= 32:
        block_m, block_n, warps = 64, 128, 4
    elif width <= 64 or precision == "ieee":
        block_m, block_n, warps = 128, 128, 8
    else:
        # tf32x3's three products per tile stage more operands: 128 × 128 tiles at width 128 need 384 KB of
        # shared memory, above the 227 KB an H100 or H200 block may use.
        block_m, block_n, warps = 64, 64, 4
    if rows is not None:
        while block_m > 32 and -(-rows // block_m) < programs_wanted:
            block_m //= 2
    return block_m, block_n, warps


def supports(x: torch.Tensor) -> bool:
    """The kernel takes float32 inputs with at most ``MAX_FEATURES`` features."""
    return x.dtype == torch.float32 and x.shape[-1] <= MAX_FEATURES


def lse_rows_triton(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float,
                    precision: str = "tf32x3", blocks: Optional[tuple[int, int, int]] = None,
                    tiles: Optional[tuple[int, int]] = None, total_rows: Optional[int] = None) -> torch.Tensor:
    """Row log-sum-exp of ``(bias_j + 2⟨x_i, y_j⟩)/ε`` with the fused kernel.

    Parameters
    ----------
    x, y
        Row (N×d) and column (K×d) features, float32, same device. Either may carry a leading
        batch dimension S (S×N×d, S×K×d): S problems in one launch, an unbatched operand shared.
    bias
        Length-K column bias, or S×K.
    eps
        Regularisation (> 0).
    precision
        ``tf32x3`` (three TF32 tensor-core products of split operands, near-fp32 accuracy),
        ``tf32`` (fastest, about 5e-4 relative error in the result) or ``ieee`` (fp32 FMA;
        20–100× slower than tf32 on one H100; docs/how-it-works/gpu-kernels.md).
    blocks
        ``(BLOCK_M, BLOCK_N, num_warps)`` instead of :func:`launch_config` (benchmarks).
    tiles
        ``(main, tail)`` feature chunk widths instead of :func:`feature_split` (benchmarks).
    total_rows
        Rows of the whole pass when ``x`` holds a shard of it (a distributed alignment): the
        tiles are chosen for the whole pass, so every row is reduced as in one process.

    Returns
    -------
    torch.Tensor
        Length N, or S×N when any operand is batched; float32.
    """
    batched = x.dim() == 3 or y.dim() == 3 or bias.dim() == 2
    n_batch = max(x.shape[0] if x.dim() == 3 else 1, y.shape[0] if y.dim() == 3 else 1,
                  bias.shape[0] if bias.dim() == 2 else 1)
    x = x.contiguous()
    y = y.contiguous()
    bias = bias.contiguous().to(torch.float32)
    n_rows, n_feat = x.shape[-2:]
    out = torch.empty(n_batch, n_rows, dtype=torch.float32, device=x.device)
    d0, d1 = tiles or feature_split(n_feat)
    if d0 + d1 < n_feat:
        raise ValueError(f"feature tiles {d0}+{d1} do not cover {n_feat} features")
    block_m, block_n, warps = blocks or launch_config(d0 + d1, precision, (total_rows or n_rows) * n_batch,
                                                      multiprocessors(x.device))
    if n_rows == 0:
        return out if batched else out[0]
    grid = (triton.cdiv(n_rows, block_m), n_batch)
    _lse_rows_kernel[grid](x, y, bias, out, n_rows, y.shape[-2], n_feat, x.stride(-2), y.stride(-2),
                           x.stride(0) if x.dim() == 3 else 0, y.stride(0) if y.dim() == 3 else 0,
                           bias.stride(0) if bias.dim() == 2 else 0, out.stride(0),
                           LOG2E / eps, BLOCK_M=block_m, BLOCK_N=block_n, D0=d0, D1=d1,
                           PRECISION=precision, num_warps=warps)
    return out if batched else out[0]
