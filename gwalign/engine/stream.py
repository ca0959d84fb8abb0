"""Streamed operations on implicit plans: the PyTorch reference, and the CPU path.

Every function walks row blocks × column blocks and never allocates more than one tile
(``block_rows × block_cols``) plus O((N+K)·d) vectors; Sinkhorn's log-sum-exps over such tiles are
in :mod:`gwalign.engine.logsumexp`. Column operations are row operations on the transposed plan
(``plan.T``).
"""

from __future__ import annotations

import threading
from typing import Optional

import torch

from gwalign.engine.plan import FactoredPlan


#: exp() of arguments below this would produce denormal floats, which are ~10× slower on CPUs and
#: contribute less than 1e-34 relative mass; they are clamped here (docs/how-it-works/gpu-kernels.md).
EXP_FLOOR = -80.0


def exp_floored(t: torch.Tensor) -> torch.Tensor:
    """exp with the argument floored at ``EXP_FLOOR`` (no denormals), in place: callers pass
    tiles nothing else reads. On 2 CPU cores a streamed log-sum-exp is bound by passes over the
    tile, and every copy is one more (docs/how-it-works/gpu-kernels.md)."""
    return t.clamp_min_(EXP_FLOOR).exp_()


#: log2(e) and ln(2): the hot passes (the row log-sum-exp and ``T @ Z``) exponentiate in base 2.
#: On the CPU (AVX2) ``exp2`` takes about two thirds of the time of ``exp``, and the change of
#: base costs nothing: it scales the GEMM's factors (docs/how-it-works/gpu-kernels.md).
LOG2_E = 1.4426950408889634
LN_2 = 0.6931471805599453

#: ``EXP_FLOOR`` for base-2 exponents.
EXP2_FLOOR = EXP_FLOOR * LOG2_E


def exp2_floored(t: torch.Tensor) -> torch.Tensor:
    """:func:`exp_floored` in base 2: ``2^t`` with ``t`` floored at ``EXP2_FLOOR``, in place."""
    return t.clamp_min_(EXP2_FLOOR).exp2_()


_workspace = threading.local()


def scratch_tile(slot: int, rows: int, cols: int, like: torch.Tensor) -> Optional[torch.Tensor]:
    """A ``rows × cols`` CPU tile kept between calls (one per thread and ``slot``; ``None`` off
    the CPU, where the caching allocator keeps memory). A tile of megabytes allocated and freed
    at every pass lets glibc hand the memory back to the system and fault it in again: in some
    processes that doubled a Sinkhorn iteration's time on 2 CPU cores (docs/how-it-works/gpu-kernels.md)."""
    if like.device.type != "cpu":
        return None
    tiles = getattr(_workspace, "tiles", None)
    if tiles is None:
        tiles = _workspace.tiles = {}
    key = (slot, like.dtype)
    tile = tiles.get(key)
    if tile is None or tile.numel() < rows * cols:
        tile = tiles[key] = torch.empty(rows * cols, dtype=like.dtype)
    return tile[:rows * cols].view(rows, cols)


def tile_logits(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float,
                 extra: Optional[torch.Tensor], scale: float = 1.0, out: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
    """``scale`` · (bias_j + 2⟨x_i, y_j⟩ − extra_ij) / ε for one tile, in one fused multiply-add
    (``scale`` ``LOG2_E``: the same logits in base 2), into ``out`` when given."""
    factor = scale / eps
    logits = torch.addmm(bias.unsqueeze(0) * factor, x, y.T, alpha=2.0 * factor, out=out)
    if extra is not None:
        logits.sub_(extra * factor)
    return logits


def _plan_tiles(plan: FactoredPlan, scale: float = 1.0):
    """Yield (i0, i1, j0, j1, log T tile) over the whole plan (times ``scale``: ``LOG2_E`` gives
    log2 T)."""
    n_rows, n_cols = plan.shape
    for i0 in range(0, n_rows, plan.block_rows):
        i1 = min(i0 + plan.block_rows, n_rows)
        for j0 in range(0, n_cols, plan.block_cols):
            j1 = min(j0 + plan.block_cols, n_cols)
            extra = None if plan.extra is None else plan.extra[i0:i1, j0:j1]
            tile = tile_logits(plan.u[i0:i1], plan.v[j0:j1], plan.q[j0:j1], plan.eps, extra, scale)
            yield i0, i1, j0, j1, tile.add_((plan.p[i0:i1] * (scale / plan.eps)).unsqueeze(1))


def apply_reference(plan: FactoredPlan, z: torch.Tensor) -> torch.Tensor:
    """``T @ Z`` for Z of shape K×m (or length K), streamed."""
    squeeze = z.ndim == 1
    z2 = z.unsqueeze(1) if squeeze else z
    out = torch.zeros(plan.shape[0], z2.shape[1], dtype=plan.u.dtype, device=plan.u.device)
    for i0, i1, j0, j1, tile in _plan_tiles(plan, LOG2_E):
        out[i0:i1] += exp2_floored(tile) @ z2[j0:j1].to(out.dtype)
    return out.squeeze(1) if squeeze else out


def transport_cost_reference(plan: FactoredPlan, cost_u: Optional[torch.Tensor] = None,
                             cost_v: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``⟨C, T⟩`` where ``C_ij = ‖cost_u_i − cost_v_j‖²`` (default: the plan's own cost).

    Giving other cost features evaluates a different squared-Euclidean cost under this plan:
    that is how the GW objective is estimated with fresh anchors.
    """
    total = torch.zeros((), dtype=torch.float64, device=plan.u.device)
    for part in _cost_tiles(plan, cost_u, cost_v):
        total += part
    return total


def _cost_tiles(plan: FactoredPlan, cost_u: Optional[torch.Tensor], cost_v: Optional[torch.Tensor]):
    """Yield ``Σ T_ij C_ij`` over each tile (float64), row blocks first, as
    :func:`transport_cost_reference` adds them."""
    own = cost_u is None
    cu = plan.u if own else cost_u
    cv = plan.v if own else cost_v
    alpha = (cu * cu).sum(dim=1)
    beta = (cv * cv).sum(dim=1)
    for i0, i1, j0, j1, tile in _plan_tiles(plan):
        cost = alpha[i0:i1, None] + beta[None, j0:j1] - 2.0 * (cu[i0:i1] @ cv[j0:j1].T)
        if own and plan.extra is not None:
            cost = cost + plan.extra[i0:i1, j0:j1]
        yield (exp_floored(tile) * cost).sum(dtype=torch.float64)


def transport_cost_tiles(plan: FactoredPlan, cost_u: Optional[torch.Tensor] = None,
                         cost_v: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The per-tile terms of :func:`transport_cost_reference` in its order (float64 vector):
    a distributed alignment gathers them from the ranks and adds them with :func:`ordered_sum`."""
    parts = list(_cost_tiles(plan, cost_u, cost_v))
    if not parts:
        return torch.zeros(0, dtype=torch.float64, device=plan.u.device)
    return torch.stack(parts)


def ordered_sum(terms: torch.Tensor) -> torch.Tensor:
    """``terms`` added one by one from zero, in order: the float64 sum
    :func:`transport_cost_reference` forms, to the last bit."""
    total = torch.zeros((), dtype=torch.float64, device=terms.device)
    for term in terms:
        total += term
    return total


def shared_mass_reference(first: FactoredPlan, second: FactoredPlan, rows: torch.Tensor) -> torch.Tensor:
    """``Σ_j min(T_ij, T'_ij)`` for each index ``i`` in ``rows``: the mass two plans of the same
    shape put on the same pairs, row by row, streamed over column blocks of those rows."""
    n_cols = first.shape[1]
    out = torch.zeros(rows.shape[0], dtype=torch.float64, device=first.u.device)
    parts = []
    for plan in (first, second):
        extra = None if plan.extra is None else plan.extra[rows]
        parts.append((plan.u[rows], (plan.p[rows] / plan.eps).unsqueeze(1), extra))
    for j0 in range(0, n_cols, first.block_cols):
        j1 = min(j0 + first.block_cols, n_cols)
        tiles = []
        for plan, (u_rows, p_rows, extra_rows) in zip((first, second), parts):
            extra = None if extra_rows is None else extra_rows[:, j0:j1]
            tiles.append(exp_floored(tile_logits(u_rows, plan.v[j0:j1], plan.q[j0:j1], plan.eps, extra).add_(p_rows)))
        out += torch.minimum(*tiles).sum(dim=1, dtype=torch.float64)
    return out


def sample_columns_reference(plan: FactoredPlan, rows: torch.Tensor,
                             generator: torch.Generator) -> torch.Tensor:
    """For each index in ``rows``, draw one column from the plan's row ``T[i, :]``.

    Streamed Gumbel-max: ``argmax_j (log T_ij + G_ij)`` with i.i.d. Gumbel noise is an exact
    sample from the row, and the running argmax needs only one tile of the selected rows.
    """
    n_cols = plan.shape[1]
    m = rows.shape[0]
    best = torch.full((m,), -torch.inf, dtype=plan.u.dtype, device=plan.u.device)
    best_idx = torch.zeros(m, dtype=torch.long, device=plan.u.device)
    u_rows = plan.u[rows]
    extra_rows = None if plan.extra is None else plan.extra[rows]
    for j0 in range(0, n_cols, plan.block_cols):
        j1 = min(j0 + plan.block_cols, n_cols)
        extra = None if extra_rows is None else extra_rows[:, j0:j1]
        tile = tile_logits(u_rows, plan.v[j0:j1], plan.q[j0:j1], plan.eps, extra)
        uniform = torch.rand(tile.shape, dtype=tile.dtype, device=tile.device, generator=generator)
        tiny = torch.finfo(tile.dtype).tiny
        exponential = (-torch.log(uniform.clamp_min(tiny))).clamp_min(tiny)
        gumbel = -torch.log(exponential)
        tile_best, tile_idx = (tile + gumbel).max(dim=1)
        better = tile_best > best
        best = torch.where(better, tile_best, best)
        best_idx = torch.where(better, tile_idx + j0, best_idx)
    return best_idx


def topk_rows_reference(plan: FactoredPlan, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of every row: (values N×k, column indices N×k), descending."""
    n_rows, n_cols = plan.shape
    k = min(k, n_cols)
    values = torch.empty(n_rows, k, dtype=plan.u.dtype, device=plan.u.device)
    indices = torch.empty(n_rows, k, dtype=torch.long, device=plan.u.device)
    for i0 in range(0, n_rows, plan.block_rows):
        i1 = min(i0 + plan.block_rows, n_rows)
        best_val = torch.full((i1 - i0, 0), -torch.inf, dtype=plan.u.dtype, device=plan.u.device)
        best_idx = torch.zeros((i1 - i0, 0), dtype=torch.long, device=plan.u.device)
        for j0 in range(0, n_cols, plan.block_cols):
            j1 = min(j0 + plan.block_cols, n_cols)
            extra = None if plan.extra is None else plan.extra[i0:i1, j0:j1]
            tile = tile_logits(plan.u[i0:i1], plan.v[j0:j1], plan.q[j0:j1], plan.eps, extra)
            kk = min(k, j1 - j0)
            tv, ti = tile.topk(kk, dim=1)
            merged_val = torch.cat([best_val, tv], dim=1)
            merged_idx = torch.cat([best_idx, ti + j0], dim=1)
            keep = min(k, merged_val.shape[1])
            best_val, order = merged_val.topk(keep, dim=1)
            best_idx = merged_idx.gather(1, order)
        values[i0:i1] = torch.exp(best_val + (plan.p[i0:i1] / plan.eps).unsqueeze(1))
        indices[i0:i1] = best_idx
    return values, indices
