"""Streamed plan operations with backend dispatch.

This is the one place where the engine chooses between the PyTorch reference (CPU tensors, and
anything the kernels do not cover) and the fused Triton kernels (CUDA tensors). Callers never
import a backend directly.

It is also where a distributed alignment splits the work (:mod:`gwalign.distributed`): while a
group is active, each rank computes whole rows of a pass (column passes are row passes of the
transposed plan) in blocks aligned with the single-process tiles, and the shares are gathered in
row order, so every entry is computed exactly as in one process. Without an active group every
function takes its single-process path unchanged.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Optional

import torch

from gwalign import distributed, threads
from gwalign.engine import logsumexp, stream
from gwalign.engine.plan import FactoredPlan

#: Rows of a shard are whole multiples of this on the GPU: every kernel's row tile divides it, so
#: a shard's tiles are the single-process tiles.
KERNEL_ROW_UNIT = 256


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
             precision: Optional[str] = None, guess: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Row log-sum-exp of ``(bias_j + 2⟨x_i, y_j⟩ − extra_ij)/ε`` on the best backend.

    ``x`` (N×d), ``y`` (K×d) and ``bias`` (K) may carry a leading batch dimension S (then the
    result is S×N and an unbatched operand is shared by every problem; ``extra`` must then be
    ``None``). ``precision`` (tf32, tf32x3, ieee) is the GPU kernel's dot precision; ``None`` →
    ``$GWALIGN_PRECISION`` or tf32x3. The CPU reference always computes in the tensors' dtype and
    exponentiates relative to ``guess`` (N or S×N: an estimate of the result) when given.
    """
    group = distributed.active()
    if group is None:
        return _lse_rows_local(x, y, bias, eps, extra, block_rows, block_cols, precision, guess=guess)
    n_rows = x.shape[-2]
    n_batch = max(x.shape[0] if x.dim() == 3 else 1, y.shape[0] if y.dim() == 3 else 1,
                  bias.shape[0] if bias.dim() == 2 else 1)

    def shard(lo: int, hi: int) -> torch.Tensor:
        part = _lse_rows_local(x[..., lo:hi, :], y, bias, eps, None if extra is None else extra[lo:hi],
                               block_rows, block_cols, precision, total_rows=n_rows,
                               guess=None if guess is None else guess[..., lo:hi])
        return part.movedim(-1, 0)     # rows first, for the gather

    unit = _row_unit(x, block_rows)
    # Back to the single-process layout (contiguous), so later reductions run in the same order.
    return group.rows(n_rows, unit, n_rows * y.shape[-2] * n_batch, shard).movedim(0, -1).contiguous()


def _row_unit(x: torch.Tensor, block_rows: int) -> int:
    """Rows a shard is a multiple of: the CPU reference's row tile, or every kernel's."""
    return KERNEL_ROW_UNIT if triton_enabled(x) else block_rows


def _lse_rows_local(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float,
                    extra: Optional[torch.Tensor], block_rows: int, block_cols: int,
                    precision: Optional[str] = None, total_rows: Optional[int] = None,
                    guess: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`lse_rows` on this process; ``total_rows``: rows of the whole pass when these are a
    shard of it (the kernel's tiles follow the whole pass)."""
    if extra is None and triton_enabled(x):
        from gwalign.kernels.lse import lse_rows_triton, supports

        if supports(x):
            chosen = precision or os.environ.get("GWALIGN_PRECISION", "tf32x3")
            return lse_rows_triton(x, y, bias, eps, precision=chosen, total_rows=total_rows)
    if x.dim() == 2 and y.dim() == 2 and bias.dim() == 1 and (guess is None or guess.dim() == 1):
        return logsumexp.lse_rows_reference(x, y, bias, eps, extra, block_rows, block_cols, guess)
    if extra is not None:
        raise ValueError("a dense extra cost is not supported for a batch of problems")
    operands = ((x, 2), (y, 2), (bias, 1)) + (() if guess is None else ((guess, 1),))
    n_batch = max(t.shape[0] for t, dim in operands if t.dim() > dim)
    return torch.stack(each_problem(x, [lambda s=s: logsumexp.lse_rows_reference(
        _problem(x, s, 2), _problem(y, s, 2), _problem(bias, s, 1), eps, None, block_rows, block_cols,
        None if guess is None else _problem(guess, s, 1)) for s in range(n_batch)]))


def sweep_fusable(x: torch.Tensor, y: torch.Tensor, extra: Optional[torch.Tensor], block_cols: int) -> bool:
    """Whether :func:`lse_sweep` takes these operands: the reference path on one process, no
    dense extra cost, and row tiles that hold every column (``block_cols`` ≥ K)."""
    return extra is None and block_cols >= y.shape[-2] and distributed.active() is None and not triton_enabled(x)


def lse_sweep(x: torch.Tensor, y: torch.Tensor, row_bias: torch.Tensor, eps: float,
              col_bias_of: Callable[[int, slice, torch.Tensor], torch.Tensor], block_rows: int,
              guess: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A Sinkhorn iteration's row and column log-sum-exps from one product per tile
    (:func:`gwalign.engine.logsumexp.lse_sweep_reference`), for operands :func:`sweep_fusable` takes.

    ``x`` (N×d, or S×N×d), ``y`` (S×K×d) and ``row_bias`` (S×K) hold S problems;
    ``col_bias_of(s, rows, r_rows)`` gives problem ``s``'s column-pass bias of ``rows`` from their
    row log-sum-exp; ``guess`` (N or S×N, optional) estimates the row log-sum-exps.
    Returns ``r`` (S×N) and ``c`` (S×K).
    """
    parts = each_problem(x, [lambda s=s: logsumexp.lse_sweep_reference(
        _problem(x, s, 2), y[s], row_bias[s], eps, lambda rows, r_rows: col_bias_of(s, rows, r_rows), block_rows,
        None if guess is None else _problem(guess, s, 1)) for s in range(y.shape[0])])
    return torch.stack([r for r, _ in parts]), torch.stack([c for _, c in parts])


def each_problem(like: torch.Tensor, tasks: list[Callable[[], Any]]) -> list[Any]:
    """The tasks' results, one problem of a batch each, on the device of ``like``: side by side
    on the CPU's cores (:func:`gwalign.threads.side_by_side`), one after another on a device that
    queues them, and one after another in a distributed alignment, whose passes are collectives
    every rank must enter in the same order."""
    if like.device.type == "cpu" and distributed.active() is None:
        return threads.side_by_side(tasks)
    return [task() for task in tasks]


def _problem(operand: torch.Tensor, index: int, unbatched_dim: int) -> torch.Tensor:
    """Problem ``index`` of an operand that is either shared (``unbatched_dim`` dims) or batched."""
    return operand if operand.dim() == unbatched_dim else operand[index]


def row_lse(plan: FactoredPlan) -> torch.Tensor:
    """``log Σ_j exp((q_j + 2⟨u_i, v_j⟩ − E_ij)/ε)`` for every row."""
    return lse_rows(plan.u, plan.v, plan.q, plan.eps, plan.extra, plan.block_rows, plan.block_cols,
                    plan.cost_precision)


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


def rows_of(plan: FactoredPlan, lo: int, hi: int) -> FactoredPlan:
    """Rows ``lo:hi`` of the plan (same columns, same tiles)."""
    return replace(plan, u=plan.u[lo:hi], p=plan.p[lo:hi], extra=None if plan.extra is None else plan.extra[lo:hi])


def _split_rows(plan: FactoredPlan, compute: Callable[[FactoredPlan, slice], Any]) -> Any:
    """``compute(rows_of(plan, lo, hi), slice(lo, hi))`` over this rank's rows ``lo:hi``, gathered
    in row order on every rank (active group only)."""
    group = distributed.active()
    n_rows, n_cols = plan.shape
    return group.rows(n_rows, _row_unit(plan.u, plan.block_rows), n_rows * n_cols,
                      lambda lo, hi: compute(rows_of(plan, lo, hi), slice(lo, hi)))


def apply(plan: FactoredPlan, z: torch.Tensor, precision: str = "tf32x3") -> torch.Tensor:
    """``T @ Z`` (Z: K×m or length K); ``precision`` as in :func:`lse_rows` (GPU only), of the
    product with ``Z`` and of the plan's cost dots unless the plan names its own
    (:attr:`FactoredPlan.cost_precision`)."""
    z = z.to(plan.u.dtype)
    if distributed.active() is None:
        return _apply_local(plan, z, precision)
    n_rows = plan.shape[0]
    return _split_rows(plan, lambda part, _: _apply_local(part, z, precision, total_rows=n_rows))


def _apply_local(plan: FactoredPlan, z: torch.Tensor, precision: str, total_rows: Optional[int] = None
                 ) -> torch.Tensor:
    """:func:`apply` on this process (``total_rows`` as in :func:`_lse_rows_local`)."""
    if _kernel_ready(plan, z):
        from gwalign.kernels.apply import apply_triton

        return apply_triton(plan.u, plan.v, plan.p, plan.q, plan.eps, z, precision, total_rows=total_rows,
                            cost_precision=plan.cost_precision)
    return stream.apply_reference(plan, z)


def apply_t(plan: FactoredPlan, z: torch.Tensor, precision: str = "tf32x3") -> torch.Tensor:
    """``Tᵀ @ Z`` (Z: N×m or length N)."""
    return apply(plan.T, z, precision)


def transport_cost(plan: FactoredPlan, cost_u: Optional[torch.Tensor] = None,
                   cost_v: Optional[torch.Tensor] = None) -> float:
    """``⟨C, T⟩`` for the plan's own cost, or for ``‖cost_u_i − cost_v_j‖²``."""
    cu = plan.u if cost_u is None else cost_u
    cv = plan.v if cost_v is None else cost_v
    if distributed.active() is not None:
        return _split_transport_cost(plan, cost_u, cost_v)
    if _kernel_ready(plan, cu, cv):
        from gwalign.kernels.transport_cost import transport_cost_triton

        return transport_cost_triton(plan.u, plan.v, plan.p, plan.q, plan.eps, cu, cv)
    return float(stream.transport_cost_reference(plan, cost_u, cost_v))


def _split_transport_cost(plan: FactoredPlan, cost_u: Optional[torch.Tensor], cost_v: Optional[torch.Tensor]
                          ) -> float:
    """:func:`transport_cost` with the rows split over the ranks: the partial sums of one process
    (per row on the GPU, per tile on the CPU) are gathered and added in its order."""
    cu = plan.u if cost_u is None else cost_u
    cv = plan.v if cost_v is None else cost_v
    if _kernel_ready(plan, cu, cv):
        from gwalign.kernels.transport_cost import centred_cost_features, transport_cost_rows_triton

        c, e = centred_cost_features(cu, cv)
        row_sums = _split_rows(plan, lambda part, rows: transport_cost_rows_triton(
            part.u, part.v, part.p, part.q, part.eps, c[rows], e))
        return float(row_sums.double().sum())
    group = distributed.active()
    n_rows, n_cols = plan.shape
    col_tiles = -(-n_cols // plan.block_cols)
    unit = plan.block_rows
    if not group.splits(n_rows, unit, n_rows * n_cols):
        return float(stream.transport_cost_reference(plan, cost_u, cost_v))
    bounds = group.bounds(n_rows, unit)
    lo, hi = bounds[group.rank]
    tiles = stream.transport_cost_tiles(rows_of(plan, lo, hi), None if cost_u is None else cost_u[lo:hi], cost_v)
    lengths = [-(-(b - a) // unit) * col_tiles for a, b in bounds]
    return float(stream.ordered_sum(group.gather(tiles, lengths)))


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
    if distributed.active() is not None:
        return _split_rows(plan, lambda part, _: _topk_local(part, k))
    return _topk_local(plan, k)


def _topk_local(plan: FactoredPlan, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`topk_rows` on this process."""
    if _kernel_ready(plan):
        from gwalign.kernels.topk import MAX_TOPK, topk_triton

        if k <= MAX_TOPK:
            values, indices = topk_triton(plan.u, plan.v, plan.p, plan.q, plan.eps, k)
            return values.to(plan.u.dtype), indices
    return stream.topk_rows_reference(plan, k)
