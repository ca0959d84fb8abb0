"""Features rounded to TF32, so that TF32 tensor-core passes over a plan are exact and consistent.

A TF32 ``tl.dot`` rounds its fp32 inputs to 10 mantissa bits, multiplies them exactly and adds in
fp32. Rounding inside the kernel makes every pass see a slightly different cost (the row pass
rounds ``x``, the column pass the same numbers in another role, and scaled copies round
differently), so Sinkhorn stalls at a marginal error floor set by the rounding, and the final
solve (L1 marginal error 1e-4) needed the three-product ``tf32x3`` mode, 2.6× the cost of
``tf32`` (H100, 45k × 45k, d = 80: 7.4 against 2.8 ms per pass). Running a tf32 polish first,
until it stopped gaining, saved only 0.14 s of the 3.2 s tf32x3 polish (``benchmarks/scale.py
--sizes 45000 --set coarse_polish=False`` against the default at commit 69da5e5, an option since
removed): the floor is far above 1e-4.

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
