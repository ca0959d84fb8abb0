"""Features rounded to TF32, so that TF32 tensor-core passes over a plan are exact and consistent.

A TF32 ``tl.dot`` rounds its fp32 inputs to 10 mantissa bits, multiplies them exactly and adds in
fp32. Rounded inside the kernel, the inputs differ between passes (the row pass rounds ``x``, the
column pass the same numbers in another role, and scaled copies round differently), so each pass
sees a slightly different cost and Sinkhorn stalls at a marginal error floor far above the
polish's 1e-4 (docs/how-it-works/gpu-kernels.md, "Precision modes").

Rounding the cost features once, before any pass, moves the rounding into the *problem*: the
plan's cost becomes ``‖ũ_i − ṽ_j‖²`` with ``ũ = tf32(u)`` (relative change ≤ 2⁻¹¹ per feature,
far below the sampling noise of the anchors), and every TF32 pass then computes that cost to
fp32 accuracy. CPU runs round the same way, so CPU and GPU solve the same problem.
"""

from __future__ import annotations

import torch

#: Mantissa bits fp32 has and TF32 drops.
_DROPPED_BITS = 13


def round_to_tf32(values: torch.Tensor) -> torch.Tensor:
    """Round float32 values to the nearest TF32 number (ties to even); other dtypes unchanged.

    Finite inputs only (features are checked for NaN/Inf on input).
    """
    if values.dtype != torch.float32:
        return values
    bits = values.contiguous().view(torch.int32)
    half = (1 << (_DROPPED_BITS - 1)) - 1
    lowest_kept = (bits >> _DROPPED_BITS) & 1
    rounded = (bits + half + lowest_kept) & ~((1 << _DROPPED_BITS) - 1)
    return rounded.view(torch.float32)
