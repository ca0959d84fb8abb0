"""Fused streamed passes over an implicit plan: ``T @ Z`` and the transport cost ``⟨C, T⟩``.

Both walk the plan ``T_ij = exp((p_i + q_j + 2⟨x_i, y_j⟩)/ε)`` like the log-sum-exp kernel (one
program per row block, column tiles streamed, features split into a main and a tail chunk), but
accumulate instead of reducing to a log-sum-exp:

* apply: ``acc += exp2(logits) @ Z_tile``, a second ``tl.dot`` on a BLOCK_N × BLOCK_Z tile of Z;
* cost: ``acc_i += Σ_j T_ij (α_i + β_j − 2⟨c_i, e_j⟩)`` for cost features (c, e) that need not
  be the plan's own (that is how a GW objective is estimated with fresh anchors).

Plan entries are at most about one (the potentials normalise rows), so no running maximum is
needed; ``exp2`` of masked columns is zero. References: :func:`gwalign.engine.stream.apply_reference`
and :func:`gwalign.engine.stream.transport_cost_reference`.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from gwalign.kernels.lse import LOG2E, _load_split, _split_dot, feature_split, multiprocessors

#: Z columns one program accumulates (wider Z is split over a second grid axis).
MAX_Z_BLOCK = 64


@triton.jit
def _log2_plan_tile(x0, x1, y_ptr, q_ptr, p2, cols, col_ok, stride_y, n_feat, scale,
                    D0: tl.constexpr, D1: tl.constexpr, PRECISION: tl.constexpr):
    """log2 T on one tile (x0/x1 unscaled row features, p2 = p_i · scale)."""
    logits = _split_dot(x0, x1, y_ptr, cols, col_ok, stride_y, n_feat, D0, D1, PRECISION)
    q = tl.load(q_ptr + cols, mask=col_ok, other=0.0).to(tl.float32) * scale
    q = tl.where(col_ok, q, float("-inf"))
    return logits * (2.0 * scale) + q[None, :] + p2[:, None]


@triton.jit(do_not_specialize=["n_rows", "n_cols"])
def _apply_kernel(x_ptr, y_ptr, p_ptr, q_ptr, z_ptr, out_ptr, n_rows, n_cols, n_feat, n_z,
                  stride_x, stride_y, stride_z, stride_out, scale,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D0: tl.constexpr, D1: tl.constexpr,
                  BLOCK_Z: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    zc = tl.program_id(1) * BLOCK_Z + tl.arange(0, BLOCK_Z)
    z_ok = zc < n_z
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x0, x1 = _load_split(x_ptr, rows, row_ok, stride_x, n_feat, D0, D1)
    p2 = tl.load(p_ptr + rows, mask=row_ok, other=0.0).to(tl.float32) * scale
    acc = tl.zeros([BLOCK_M, BLOCK_Z], tl.float32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        weights = tl.exp2(_log2_plan_tile(x0, x1, y_ptr, q_ptr, p2, cols, col_ok, stride_y, n_feat,
                                          scale, D0, D1, PRECISION))
        z = tl.load(z_ptr + cols[:, None].to(tl.int64) * stride_z + zc[None, :],
                    mask=col_ok[:, None] & z_ok[None, :], other=0.0).to(tl.float32)
        acc = tl.dot(weights, z, acc, input_precision=PRECISION)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * stride_out + zc[None, :], acc,
             mask=row_ok[:, None] & z_ok[None, :])


@triton.jit(do_not_specialize=["n_rows", "n_cols"])
def _cost_kernel(x_ptr, y_ptr, p_ptr, q_ptr, c_ptr, e_ptr, alpha_ptr, beta_ptr, out_ptr,
                 n_rows, n_cols, n_feat, n_cost, stride_x, stride_y, stride_c, stride_e, scale,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D0: tl.constexpr, D1: tl.constexpr,
                 C0: tl.constexpr, C1: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x0, x1 = _load_split(x_ptr, rows, row_ok, stride_x, n_feat, D0, D1)
    c0, c1 = _load_split(c_ptr, rows, row_ok, stride_c, n_cost, C0, C1)
    p2 = tl.load(p_ptr + rows, mask=row_ok, other=0.0).to(tl.float32) * scale
    alpha = tl.load(alpha_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
    acc = tl.zeros([BLOCK_M], tl.float32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        weights = tl.exp2(_log2_plan_tile(x0, x1, y_ptr, q_ptr, p2, cols, col_ok, stride_y, n_feat,
                                          scale, D0, D1, PRECISION))
        inner = _split_dot(c0, c1, e_ptr, cols, col_ok, stride_e, n_cost, C0, C1, PRECISION)
        beta = tl.load(beta_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        cost = alpha[:, None] + beta[None, :] - 2.0 * inner
        acc += tl.sum(weights * cost, axis=1)
    tl.store(out_ptr + rows, acc, mask=row_ok)


def _launch(width: int, programs: int = 0, programs_wanted: int = 0) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps): two register tiles live here, so rows shrink with width.

    ``programs``: the grid size with 64-row tiles; below ``programs_wanted`` (the SM count)
    32-row tiles are used, as in :func:`gwalign.kernels.lse.launch_config`.
    """
    if width <= 64 and programs >= programs_wanted:
        return 64, 64, 4
    return 32, 64, 4


def _prepare(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor):
    return (x.contiguous(), y.contiguous(), p.contiguous().to(torch.float32),
            q.contiguous().to(torch.float32))


def supports(x: torch.Tensor, *others: Optional[torch.Tensor]) -> bool:
    """float32 features no wider than the log-sum-exp kernel takes."""
    from gwalign.kernels.lse import MAX_FEATURES

    tensors = [x, *[t for t in others if t is not None]]
    return all(t.dtype == torch.float32 and (t.ndim == 1 or t.shape[1] <= MAX_FEATURES) for t in tensors)


def apply_triton(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor, eps: float,
                 z: torch.Tensor, precision: str = "tf32x3") -> torch.Tensor:
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
        Dot precision of both products (``tf32x3`` default: the result feeds GW gradients).

    Returns
    -------
    torch.Tensor
        N×m (or length N), float32.
    """
    x, y, p, q = _prepare(x, y, p, q)
    squeeze = z.ndim == 1
    z2 = (z.unsqueeze(1) if squeeze else z).to(torch.float32).contiguous()
    n_rows, n_feat = x.shape
    n_z = z2.shape[1]
    out = torch.empty(n_rows, n_z, dtype=torch.float32, device=x.device)
    d0, d1 = feature_split(n_feat)
    block_z = max(16, min(MAX_Z_BLOCK, triton.next_power_of_2(n_z)))
    z_blocks = triton.cdiv(n_z, block_z)
    block_m, block_n, warps = _launch(max(d0 + d1, block_z), triton.cdiv(n_rows, 64) * z_blocks,
                                      multiprocessors(x.device))
    grid = (triton.cdiv(n_rows, block_m), z_blocks)
    _apply_kernel[grid](x, y, p, q, z2, out, n_rows, y.shape[0], n_feat, n_z, x.stride(0), y.stride(0),
                        z2.stride(0), out.stride(0), LOG2E / eps, BLOCK_M=block_m, BLOCK_N=block_n,
                        D0=d0, D1=d1, BLOCK_Z=block_z, PRECISION=precision, num_warps=warps)
    return out.squeeze(1) if squeeze else out


def transport_cost_triton(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor,
                          eps: float, cost_x: torch.Tensor, cost_y: torch.Tensor,
                          precision: str = "tf32x3") -> float:
    """``Σ_ij T_ij ‖cost_x_i − cost_y_j‖²`` for the plan ``(x, y, p, q, ε)``.

    The cost features are centred on one common point first (the cost is translation
    invariant), which keeps ``α + β − 2⟨c, e⟩`` free of cancellation in float32.
    Row sums come back from the GPU and are added in float64.
    """
    x, y, p, q = _prepare(x, y, p, q)
    centre = 0.5 * (cost_x.mean(0) + cost_y.mean(0))
    c = (cost_x - centre).to(torch.float32).contiguous()
    e = (cost_y - centre).to(torch.float32).contiguous()
    alpha = (c * c).sum(1)
    beta = (e * e).sum(1)
    n_rows, n_feat = x.shape
    out = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    d0, d1 = feature_split(n_feat)
    c0, c1 = feature_split(c.shape[1])
    block_m, block_n, warps = _launch(max(d0 + d1, c0 + c1))
    grid = (triton.cdiv(n_rows, block_m),)
    _cost_kernel[grid](x, y, p, q, c, e, alpha, beta, out, n_rows, y.shape[0], n_feat, c.shape[1],
                       x.stride(0), y.stride(0), c.stride(0), e.stride(0), LOG2E / eps,
                       BLOCK_M=block_m, BLOCK_N=block_n, D0=d0, D1=d1, C0=c0, C1=c1,
                       PRECISION=precision, num_warps=warps)
    return float(out.double().sum())


#: Largest k the top-k kernel keeps per row (a BLOCK_M × K buffer lives in registers).
MAX_TOPK = 64


@triton.jit(do_not_specialize=["n_rows", "n_cols"])
def _topk_kernel(x_ptr, y_ptr, p_ptr, q_ptr, val_ptr, idx_ptr, n_rows, n_cols, n_feat,
                 stride_x, stride_y, scale,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D0: tl.constexpr, D1: tl.constexpr,
                 K: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x0, x1 = _load_split(x_ptr, rows, row_ok, stride_x, n_feat, D0, D1)
    zero = tl.zeros([BLOCK_M], tl.float32)
    slots = tl.arange(0, K)
    local = tl.arange(0, BLOCK_N)
    best = tl.full([BLOCK_M, K], float("-inf"), tl.float32)
    best_idx = tl.zeros([BLOCK_M, K], tl.int32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + local
        col_ok = cols < n_cols
        # Row potentials do not change the order within a row: they are added at the end.
        logits = _log2_plan_tile(x0, x1, y_ptr, q_ptr, zero, cols, col_ok, stride_y, n_feat, scale,
                                 D0, D1, PRECISION)
        floor = tl.min(best, axis=1)
        # Skip the tile unless some row has an entry above its current k-th best.
        if tl.max(tl.max(logits, axis=1) - floor, axis=0) > 0:
            for _ in range(K):
                top = tl.max(logits, axis=1)
                where_top = tl.argmax(logits, axis=1)
                floor = tl.min(best, axis=1)
                slot = tl.argmin(best, axis=1)
                replace = (slots[None, :] == slot[:, None]) & (top > floor)[:, None]
                best = tl.where(replace, top[:, None], best)
                best_idx = tl.where(replace, (start + where_top)[:, None], best_idx)
                logits = tl.where(local[None, :] == where_top[:, None], float("-inf"), logits)
    p2 = tl.load(p_ptr + rows, mask=row_ok, other=0.0).to(tl.float32) * scale
    out = rows[:, None].to(tl.int64) * K + slots[None, :]
    tl.store(val_ptr + out, tl.exp2(best + p2[:, None]), mask=row_ok[:, None])
    tl.store(idx_ptr + out, best_idx, mask=row_ok[:, None])


def topk_triton(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, q: torch.Tensor, eps: float,
                k: int, precision: str = "tf32x3") -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of every row of ``T_ij = exp((p_i + q_j + 2⟨x_i, y_j⟩)/ε)``.

    One streamed pass: each program keeps a running top-K buffer per row (K = next power of
    two ≥ k, at most :data:`MAX_TOPK`) and skips a column tile unless one of its rows has an
    entry above that row's current K-th best, so after the first tiles most are one max pass.

    Returns
    -------
    tuple of torch.Tensor
        Values (N×k, float32, descending) and column indices (N×k, int64).
    """
    x, y, p, q = _prepare(x, y, p, q)
    n_rows, n_feat = x.shape
    k = min(k, y.shape[0])
    width = max(1, triton.next_power_of_2(k))
    if width > MAX_TOPK:
        raise ValueError(f"topk_triton keeps at most {MAX_TOPK} entries per row, asked {k}")
    values = torch.empty(n_rows, width, dtype=torch.float32, device=x.device)
    indices = torch.empty(n_rows, width, dtype=torch.int32, device=x.device)
    d0, d1 = feature_split(n_feat)
    block_m = 32 if width > 16 else 64
    grid = (triton.cdiv(n_rows, block_m),)
    _topk_kernel[grid](x, y, p, q, values, indices, n_rows, y.shape[0], n_feat, x.stride(0), y.stride(0),
                       LOG2E / eps, BLOCK_M=block_m, BLOCK_N=64, D0=d0, D1=d1, K=width,
                       PRECISION=precision, num_warps=4)
    order = torch.argsort(values, dim=1, descending=True)[:, :k]
    return values.gather(1, order), indices.gather(1, order).long()
