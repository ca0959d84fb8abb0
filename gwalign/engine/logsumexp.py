"""Streamed log-sum-exps of Sinkhorn: the row pass and the fused sweep of an iteration, the
PyTorch reference of the kernels in :mod:`gwalign.kernels.lse` and the CPU path.

Tiles are ``block_rows × block_cols`` (:mod:`gwalign.engine.stream`); reductions over columns use
an online log-sum-exp (running max and rescaled sum, the FlashAttention pattern) or, given a guess
of the result, a plain sum relative to it (docs/how-it-works/gpu-kernels.md).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from gwalign.engine.stream import EXP2_FLOOR, LN_2, LOG2_E, exp2_floored, scratch_tile, tile_logits


def _online_lse(running_max: torch.Tensor, running_sum: torch.Tensor, logits: torch.Tensor, dim: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One tile's step of a streamed base-2 log-sum-exp along ``dim`` of ``logits`` (consumed in
    place): the running maximum and the sum rescaled to it (the FlashAttention pattern)."""
    new_max = torch.maximum(running_max, logits.amax(dim=dim))
    # 2^(-inf - finite) = 0 keeps empty history harmless.
    running_sum = running_sum * torch.exp2(running_max - new_max) + \
        exp2_floored(logits.sub_(new_max.unsqueeze(dim))).sum(dim=dim)
    return new_max, running_sum


#: Passes given a guess of their rows' log-sum-exps exponentiate each tile relative to it
#: instead of the rows' running maxima (no pass for the maxima, none to subtract them). The row
#: block of a row whose sum then lies outside 2^±GUESS_RANGE (a stale guess: a new cost, a cold
#: start) is redone relative to its rows' maxima, so no entry overflows and entries lost below the
#: floor weigh under K · 2^-65 of a sum.
GUESS_RANGE = 50.0


def _within_guess(log_sums: torch.Tensor) -> bool:
    """Whether every row's log2 sum relative to its guess lies within ±:data:`GUESS_RANGE` (a NaN
    does not)."""
    return bool(((log_sums > -GUESS_RANGE) & (log_sums < GUESS_RANGE)).all())


def lse_rows_reference(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float,
                       extra: Optional[torch.Tensor] = None, block_rows: int = 512,
                       block_cols: int = 2048, guess: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Row log-sum-exp ``r_i = log Σ_j exp((bias_j + 2⟨x_i, y_j⟩ − extra_ij)/ε)``, streamed.

    Parameters
    ----------
    x, y
        Row features (N×d) and column features (K×d).
    bias
        Column bias (length K), in cost units.
    eps
        Absolute regularisation.
    extra
        Optional dense N×K extra cost.
    block_rows, block_cols
        Tile sizes.
    guess
        Optional estimate of ``r`` (length N): tiles are exponentiated relative to it
        (:data:`GUESS_RANGE`) instead of a running maximum; the result is the same to rounding.

    Returns
    -------
    torch.Tensor
        Length-N vector (no ε factor: natural-log units).
    """
    if guess is not None:
        return _lse_rows_guessed(x, y, bias, eps, extra, block_rows, block_cols, guess)
    n_rows, n_cols = x.shape[0], y.shape[0]
    out = torch.empty(n_rows, dtype=x.dtype, device=x.device)
    for i0 in range(0, n_rows, block_rows):
        i1 = min(i0 + block_rows, n_rows)
        running_max = torch.full((i1 - i0,), -torch.inf, dtype=x.dtype, device=x.device)
        running_sum = torch.zeros(i1 - i0, dtype=x.dtype, device=x.device)
        for j0 in range(0, n_cols, block_cols):
            j1 = min(j0 + block_cols, n_cols)
            tile = tile_logits(x[i0:i1], y[j0:j1], bias[j0:j1], eps,
                                None if extra is None else extra[i0:i1, j0:j1], LOG2_E,
                                scratch_tile(0, i1 - i0, j1 - j0, x))
            running_max, running_sum = _online_lse(running_max, running_sum, tile, 1)
        out[i0:i1] = (running_max + torch.log2(running_sum)) * LN_2
    return out


def _shifted_factors(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float, shift: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Factors and column term whose ``addmm`` is the base-2 logits less each row's shift,
    ``bias_j/ε' + ⟨[2x_i/ε', −shift_i], [y_j, 1]⟩`` with ``ε' = ε ln 2``: no pass adds either.
    (``addmm`` with a broadcast row was up to a quarter faster than ``mm`` on 2 CPU cores.)"""
    factor = LOG2_E / eps
    return (torch.cat([x * (2.0 * factor), -shift[:, None]], dim=1),
            torch.cat([y, torch.ones(y.shape[0], 1, dtype=y.dtype, device=y.device)], dim=1),
            (bias * factor).unsqueeze(0))


def _lse_rows_guessed(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, eps: float,
                      extra: Optional[torch.Tensor], block_rows: int, block_cols: int, guess: torch.Tensor
                      ) -> torch.Tensor:
    """:func:`lse_rows_reference` relative to ``guess``. A row block holding a row outside
    :data:`GUESS_RANGE` is done again, whole and in the same tiles, relative to running maxima:
    redone rows then round as in one process whichever ranks hold them."""
    n_rows, n_cols = x.shape[0], y.shape[0]
    shift = guess * LOG2_E
    x_aug, y_aug, col_term = _shifted_factors(x, y, bias, eps, shift)
    out = torch.empty(n_rows, dtype=x.dtype, device=x.device)
    for i0 in range(0, n_rows, block_rows):
        i1 = min(i0 + block_rows, n_rows)
        sums = torch.zeros(i1 - i0, dtype=x.dtype, device=x.device)
        for j0 in range(0, n_cols, block_cols):
            j1 = min(j0 + block_cols, n_cols)
            tile = torch.addmm(col_term[:, j0:j1], x_aug[i0:i1], y_aug[j0:j1].T,
                               out=scratch_tile(0, i1 - i0, j1 - j0, x))
            if extra is not None:
                tile.sub_(extra[i0:i1, j0:j1] * (LOG2_E / eps))
            sums += exp2_floored(tile).sum(dim=1)
        log_sums = torch.log2(sums)
        if _within_guess(log_sums):
            out[i0:i1] = (shift[i0:i1] + log_sums) * LN_2
        else:
            out[i0:i1] = lse_rows_reference(x[i0:i1], y, bias, eps, None if extra is None else extra[i0:i1],
                                            i1 - i0, block_cols)
    return out


def lse_sweep_reference(x: torch.Tensor, y: torch.Tensor, row_bias: torch.Tensor, eps: float,
                        col_bias_of: Callable[[slice, torch.Tensor], torch.Tensor], block_rows: int,
                        guess: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both log-sum-exps of a Sinkhorn iteration from one product ``x yᵀ`` per tile.

    The row log-sum-exp ``r_i = log Σ_j exp((row_bias_j + 2⟨x_i, y_j⟩)/ε)`` comes first; then
    ``col_bias_of(rows, r[rows])`` gives those rows' column-pass bias (the updated row
    potential), and the column log-sum-exp ``c_j = log Σ_i exp((col_bias_i + 2⟨x_i, y_j⟩)/ε)``
    follows from the same exponentiated tile: its entries differ from the row pass's by a factor
    per row and one per column, so the column sums are one matrix-vector product per tile. Tiles
    hold whole rows, so each row's ``r_i`` is final before its column terms are added. The result
    is that of :func:`lse_rows_reference` on ``(x, y)`` followed by it on ``(y, x)``, to rounding,
    at half the products and a third of the passes over each tile (docs/how-it-works/gpu-kernels.md).

    ``guess`` (length N, optional) estimates ``r`` (the previous iteration's): tiles are
    exponentiated relative to it (:data:`GUESS_RANGE`); without it, relative to each row's maximum.
    A column whose sum is too small for the exponent floor's error to be negligible is summed
    again on its own.

    Returns
    -------
    tuple of torch.Tensor
        ``r`` (length N) and ``c`` (length K), natural-log units without the ε factor.
    """
    n_rows, n_cols = x.shape[0], y.shape[0]
    factor = LOG2_E / eps
    shift = torch.zeros(n_rows, dtype=x.dtype, device=x.device) if guess is None else guess * LOG2_E
    x_aug, y_aug, col_term = _shifted_factors(x, y, row_bias, eps, shift)
    r = torch.empty(n_rows, dtype=x.dtype, device=x.device)
    col_bias = torch.empty(n_rows, dtype=x.dtype, device=x.device)
    col_sums = _WeightedSums(n_cols, x)
    for i0 in range(0, n_rows, block_rows):
        rows = slice(i0, min(i0 + block_rows, n_rows))
        tile, row_shift, log_sums = _shifted_exp2(x_aug[rows], y_aug, col_term, shift[rows],
                                                  trusted=guess is not None)
        r[rows] = (row_shift + log_sums) * LN_2
        col_bias[rows] = col_bias_of(rows, r[rows])
        # The column pass's entry is the tile's times 2^(row_shift_i + col_bias_i/ε') 2^(−row_bias_j/ε').
        col_sums.add(tile, row_shift + col_bias[rows] * factor)
    c = col_sums.log2() * LN_2 - row_bias / eps
    unsure = col_sums.unsure()
    if unsure.numel():
        c[unsure] = lse_rows_reference(y[unsure], x, col_bias, eps, block_rows=max(1, len(unsure)),
                                       block_cols=block_rows)
    return r, c


def _shifted_exp2(x_aug: torch.Tensor, y_aug: torch.Tensor, col_term: torch.Tensor, shift: torch.Tensor,
                  trusted: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One row block's tile ``2^(logit − shift_i)`` (floored), its rows' shift and log2 row sums:
    relative to ``shift`` when ``trusted`` and every row sum lands within :data:`GUESS_RANGE`,
    else relative to the rows' maxima."""
    out = scratch_tile(0, x_aug.shape[0], y_aug.shape[0], x_aug)
    if trusted:
        tile = exp2_floored(torch.addmm(col_term, x_aug, y_aug.T, out=out))
        log_sums = torch.log2(tile.sum(dim=1))
        if _within_guess(log_sums):
            return tile, shift, log_sums
    # Without the shift's column: a stale guess (even infinite) must not enter the logits.
    logits = torch.addmm(col_term, x_aug[:, :-1], y_aug[:, :-1].T, out=out)
    top = logits.amax(dim=1)
    tile = exp2_floored(logits.sub_(top.unsqueeze(1)))
    return tile, top, torch.log2(tile.sum(dim=1))


class _WeightedSums:
    """Column sums ``Σ_i w_i tile_ij`` over row blocks, with ``log2 w`` given per block and the
    sums kept relative to the largest ``w`` so far (no overflow, however far the weights range)."""

    def __init__(self, n_cols: int, like: torch.Tensor) -> None:
        self.sums = torch.zeros(n_cols, dtype=like.dtype, device=like.device)
        self.total = torch.zeros((), dtype=like.dtype, device=like.device)     # Σ_i w_i, same scale
        self.offset = -torch.inf

    def add(self, tile: torch.Tensor, log_w: torch.Tensor) -> None:
        top = float(log_w.max())
        if top > self.offset:
            rescale = 2.0 ** (self.offset - top)
            self.sums.mul_(rescale)
            self.total.mul_(rescale)
            self.offset = top
        w = torch.exp2(log_w - self.offset)
        self.sums.addmv_(tile.T, w)
        self.total += w.sum()

    def log2(self) -> torch.Tensor:
        return torch.log2(self.sums) + self.offset

    def unsure(self) -> torch.Tensor:
        """Columns whose sum is below ``2^(EXP2_FLOOR + GUESS_RANGE)`` of the weights' total (or
        not finite): there the entries floored at ``2^EXP2_FLOOR`` could weigh in the sum."""
        floor = self.total * 2.0 ** (EXP2_FLOOR + GUESS_RANGE)
        return torch.nonzero(~(self.sums >= floor)).flatten()
