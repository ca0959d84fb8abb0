"""Fused top-k plan entries per row of an implicit plan (the sparse ``gw_coupling`` output).

Reference: :func:`gwalign.engine.stream.topk_rows_reference`.
"""

from __future__ import annotations


import torch
import triton
import triton.language as tl

from gwalign.kernels.tiles import (LOG2E, contiguous_plan, feature_split, load_split, log2_plan_tile)


#: Largest k the top-k kernel keeps per row (a BLOCK_M × K buffer lives in registers).
MAX_TOPK = 64


@triton.jit
def _insert_best(logits, best, best_idx, slots, local, start):
    """Each row's largest tile entry replaces the smallest of its top-K buffer where it is
    larger; it then leaves the tile (set to -inf)."""
    top = tl.max(logits, axis=1)
    where_top = tl.argmax(logits, axis=1)
    floor = tl.min(best, axis=1)
    slot = tl.argmin(best, axis=1)
    replace = (slots[None, :] == slot[:, None]) & (top > floor)[:, None]
    best = tl.where(replace, top[:, None], best)
    best_idx = tl.where(replace, (start + where_top)[:, None], best_idx)
    logits = tl.where(local[None, :] == where_top[:, None], float("-inf"), logits)
    return logits, best, best_idx


@triton.jit(do_not_specialize=["n_rows", "n_cols"])
def _topk_kernel(x_ptr, y_ptr, p_ptr, q_ptr, val_ptr, idx_ptr, n_rows, n_cols, n_feat,
                 stride_x, stride_y, scale,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D0: tl.constexpr, D1: tl.constexpr,
                 K: tl.constexpr, PRECISION: tl.constexpr, EARLY_EXIT: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x0, x1 = load_split(x_ptr, rows, row_ok, stride_x, n_feat, D0, D1)
    zero = tl.zeros([BLOCK_M], tl.float32)
    slots = tl.arange(0, K)
    local = tl.arange(0, BLOCK_N)
    best = tl.full([BLOCK_M, K], float("-inf"), tl.float32)
    best_idx = tl.zeros([BLOCK_M, K], tl.int32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + local
        col_ok = cols < n_cols
        # Row potentials do not change the order within a row: they are added at the end.
        logits = log2_plan_tile(x0, x1, y_ptr, q_ptr, zero, cols, col_ok, stride_y, n_feat, scale,
                                 D0, D1, PRECISION)
        if EARLY_EXIT:
            # Insert while some row has an entry above its current k-th best: a tile costs as
            # many rounds as its rows need, not K. (A comparison, not top - floor: that is NaN
            # where both are -inf.)
            while tl.max((tl.max(logits, axis=1) > tl.min(best, axis=1)).to(tl.int32), axis=0) > 0:
                logits, best, best_idx = _insert_best(logits, best, best_idx, slots, local, start)
        else:
            # Skip the tile unless some row has an entry above its current k-th best.
            if tl.max(tl.max(logits, axis=1) - tl.min(best, axis=1), axis=0) > 0:
                for _ in range(K):
                    logits, best, best_idx = _insert_best(logits, best, best_idx, slots, local, start)
    p2 = tl.load(p_ptr + rows, mask=row_ok, other=0.0).to(tl.float32) * scale
    out = rows[:, None].to(tl.int64) * K + slots[None, :]
    # Stored as log2 values: the caller orders the rows on them before exponentiating, since the
    # GPU's exp2 flushes tiny entries to 0, where they would tie with the empty slots of a buffer
    # wider than the row (exp2(-inf)).
    tl.store(val_ptr + out, best + p2[:, None], mask=row_ok[:, None])
    tl.store(idx_ptr + out, best_idx, mask=row_ok[:, None])


def topk_triton(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor, eps: float,
                k: int, precision: str = "tf32x3", early_exit: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of every row of ``T_ij = exp((p_i + q_j + 2⟨x_i, y_j⟩)/ε)``.

    One streamed pass: each program keeps a running top-K buffer per row (K = next power of
    two ≥ k, at most :data:`MAX_TOPK`) and skips a column tile unless one of its rows has an
    entry above that row's current K-th best, so after the first tiles most are one max pass.
    A tile with such an entry is searched K times; with ``early_exit``, only until no row has
    one left (a data-dependent loop, used by the fused kNN search
    :func:`gwalign.geometry.knn.fused_topk`).

    Returns
    -------
    tuple of torch.Tensor
        Values (N×k, float32, descending) and column indices (N×k, int64).
    """
    x, y, p, q = contiguous_plan(x, y, p, q)
    n_rows, n_feat = x.shape
    k = min(k, y.shape[0])
    width = max(1, triton.next_power_of_2(k))
    if width > MAX_TOPK:
        raise ValueError(f"topk_triton keeps at most {MAX_TOPK} entries per row, asked {k}")
    values = torch.empty(n_rows, width, dtype=torch.float32, device=x.device)
    indices = torch.empty(n_rows, width, dtype=torch.int32, device=x.device)
    if n_rows == 0:
        return values[:, :k], indices[:, :k].long()
    d0, d1 = feature_split(n_feat)
    block_m = 32 if width > 16 else 64
    grid = (triton.cdiv(n_rows, block_m),)
    _topk_kernel[grid](x, y, p, q, values, indices, n_rows, y.shape[0], n_feat, x.stride(0), y.stride(0),
                       LOG2E / eps, BLOCK_M=block_m, BLOCK_N=64, D0=d0, D1=d1, K=width,
                       PRECISION=precision, EARLY_EXIT=early_exit, num_warps=4)
    order = torch.argsort(values, dim=1, descending=True)[:, :k]
    return torch.exp2(values.gather(1, order)), indices.gather(1, order).long()
