"""What the Triton kernels share: feature chunking, tile loads and the plan's log2 logits on a tile.

Every kernel walks an implicit plan or cost ``exp((bias_j + 2⟨x_i, y_j⟩)/ε)`` the same way: one
program owns a block of rows whose features stay in registers, column tiles stream past, and the
feature dot product runs as ``tl.dot`` on a main and a tail chunk of power-of-two widths.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import torch
import triton
import triton.language as tl

#: Largest feature dimension the register-resident kernel takes; wider inputs use the reference.
MAX_FEATURES = 256
LOG2E = 1.0 / math.log(2.0)
LN2 = math.log(2.0)


def feature_split(n_feat: int) -> tuple[int, int]:
    """(main, tail) chunk widths covering ``n_feat`` features, both powers of two ≥ 16 (tail may be 0).

    The pair is used when it is narrower than the single padded power of two: 80 → (64, 16),
    34 → (32, 16), 96 → (64, 32), 100 → (128, 0), 7 → (16, 0).
    """
    padded = max(16, triton.next_power_of_2(n_feat))
    main = max(16, 1 << (max(n_feat, 1).bit_length() - 1))
    rest = n_feat - main
    if rest <= 0:
        return main, 0
    tail = max(16, triton.next_power_of_2(rest))
    return (main, tail) if main + tail < padded else (padded, 0)


@triton.jit
def load_features(ptr, rows, row_ok, stride, n_feat, OFFSET: tl.constexpr, WIDTH: tl.constexpr):
    """Rows × WIDTH feature tile starting at feature OFFSET, zero beyond ``n_feat``, as fp32."""
    feats = OFFSET + tl.arange(0, WIDTH)
    return tl.load(ptr + rows[:, None].to(tl.int64) * stride + feats[None, :],
                   mask=row_ok[:, None] & (feats < n_feat)[None, :], other=0.0).to(tl.float32)


@triton.jit
def load_split(ptr, rows, row_ok, stride, n_feat, D0: tl.constexpr, D1: tl.constexpr):
    """Main and tail feature tiles of some rows (:func:`feature_split`); the tail repeats the
    main tile when ``D1 == 0`` and is then never used."""
    main = load_features(ptr, rows, row_ok, stride, n_feat, 0, D0)
    tail = main
    if D1 > 0:
        tail = load_features(ptr, rows, row_ok, stride, n_feat, D0, D1)
    return main, tail


@triton.jit
def split_dot(x0, x1, y_ptr, cols, col_ok, stride_y, n_feat, D0: tl.constexpr, D1: tl.constexpr,
               PRECISION: tl.constexpr):
    """``⟨x_i, y_j⟩`` for a tile of columns, over the main and tail feature chunks."""
    y0 = load_features(y_ptr, cols, col_ok, stride_y, n_feat, 0, D0)
    out = tl.dot(x0, tl.trans(y0), input_precision=PRECISION)
    if D1 > 0:
        y1 = load_features(y_ptr, cols, col_ok, stride_y, n_feat, D0, D1)
        out = tl.dot(x1, tl.trans(y1), out, input_precision=PRECISION)
    return out


@triton.jit
def log2_plan_tile(x0, x1, y_ptr, q_ptr, p2, cols, col_ok, stride_y, n_feat, scale,
                    D0: tl.constexpr, D1: tl.constexpr, PRECISION: tl.constexpr):
    """log2 T on one tile (x0/x1 unscaled row features, p2 = p_i · scale)."""
    logits = split_dot(x0, x1, y_ptr, cols, col_ok, stride_y, n_feat, D0, D1, PRECISION)
    q = tl.load(q_ptr + cols, mask=col_ok, other=0.0).to(tl.float32) * scale
    q = tl.where(col_ok, q, float("-inf"))
    return logits * (2.0 * scale) + q[None, :] + p2[:, None]


def plan_launch(width: int, programs: int = 0, programs_wanted: int = 0) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps): two register tiles live here, so rows shrink with width.

    ``programs``: the grid size with 64-row tiles; below ``programs_wanted`` (the SM count)
    32-row tiles are used, as in :func:`gwalign.kernels.lse.launch_config`.
    """
    if width <= 64 and programs >= programs_wanted:
        return 64, 64, 4
    return 32, 64, 4


def contiguous_plan(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor):
    return (x.contiguous(), y.contiguous(), p.contiguous().to(torch.float32),
            q.contiguous().to(torch.float32))


def plan_supports(x: torch.Tensor, *others: Optional[torch.Tensor]) -> bool:
    """float32 features no wider than the log-sum-exp kernel takes."""
    tensors = [x, *[t for t in others if t is not None]]
    return all(t.dtype == torch.float32 and (t.ndim == 1 or t.shape[1] <= MAX_FEATURES) for t in tensors)


@functools.lru_cache(maxsize=None)
def multiprocessors(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (0 elsewhere: the interpreter has none)."""
    if device.type != "cuda":
        return 0
    return torch.cuda.get_device_properties(device).multi_processor_count
