"""The CPU path's streamed passes, per entry: exponentials in base e and base 2, and the row
log-sum-exp of :mod:`gwalign.engine.logsumexp` (one Sinkhorn half-step) with its parts.

For each size N (= K) and feature width d: the seconds of ``exp_`` and ``exp2_`` on an N × N float32
tile of logits in the range the log-sum-exp sees (its row maximum subtracted), of the tile's GEMM
(``addmm``), and of the whole ``lse_rows_reference``, in one tile (as ``choose_blocks`` tiles
these sizes) and in 256-row tiles; and a whole Sinkhorn iteration in the tiles ``choose_blocks``
gives, as a row pass then a column pass (two products per tile) and as one sweep
(``lse_sweep_reference``, one product per tile; where tiles hold whole rows), each with its tiles
exponentiated relative to their rows' running maxima or to the previous iteration's log-sum-exps,
as Sinkhorn guesses them (the iterations start near balance, after 30 plain ones); median of
``--repeats`` rounds of 20 calls, in ns per entry. Runs on the cores and threads torch has (``--threads`` to set them).

    python benchmarks/cpu_passes.py
    python benchmarks/cpu_passes.py --sizes 1047 2000 --dims 32 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gwalign.engine import logsumexp, stream
from gwalign.engine.plan import choose_blocks


def per_entry(run, entries: int, repeats: int, calls: int = 20) -> float:
    """Median over ``repeats`` rounds of ``calls`` calls of ``run()``, in ns per entry."""
    run()
    rounds = []
    for _ in range(repeats):
        tick = time.perf_counter()
        for _ in range(calls):
            run()
        rounds.append((time.perf_counter() - tick) / calls)
    return float(np.median(rounds)) / entries * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1047, 2000])
    parser.add_argument("--dims", type=int, nargs="+", default=[32])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print("| N = K | d | exp_ (ns/entry) | exp2_ (ns/entry) | addmm (ns/entry) | row log-sum-exp, one tile "
          "(ns/entry) | in 256-row tiles (ns/entry) | iteration, two passes (ns/entry) | two passes, guessed shifts "
          "(ns/entry) | one sweep, row maxima (ns/entry) | one sweep, guessed shifts (ns/entry) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for n in args.sizes:
        for d in args.dims:
            x = torch.randn(n, d, generator=gen) * 0.3
            y = torch.randn(n, d, generator=gen) * 0.3
            bias = torch.randn(n, generator=gen) * 0.01
            eps = 0.01
            logits = torch.addmm(bias[None] / eps, x, y.T, alpha=2.0 / eps)
            logits -= logits.amax(dim=1, keepdim=True)
            logits.clamp_min_(stream.EXP_FLOOR)
            tile = torch.empty_like(logits)
            exp_e = per_entry(lambda: tile.copy_(logits).exp_(), n * n, args.repeats)
            exp_2 = per_entry(lambda: tile.copy_(logits).exp2_(), n * n, args.repeats)
            copy = per_entry(lambda: tile.copy_(logits), n * n, args.repeats)
            gemm = per_entry(lambda: torch.addmm(bias[None], x, y.T, alpha=2.0 / eps, out=tile), n * n, args.repeats)
            lse = per_entry(lambda: logsumexp.lse_rows_reference(x, y, bias, eps, None, n, n), n * n, args.repeats)
            rows = per_entry(lambda: logsumexp.lse_rows_reference(x, y, bias, eps, None, 256, n), n * n, args.repeats)
            block_rows, block_cols = choose_blocks(n, n, 2 ** 20)
            # Sinkhorn runs near balance and guesses each iteration's row log-sum-exps from the
            # previous iteration's: the iterations below start from a column bias balanced by 30.
            balanced = bias.clone()
            for _ in range(30):
                guess = logsumexp.lse_rows_reference(x, y, balanced, eps, None, block_rows, block_cols)
                balanced = eps * logsumexp.lse_rows_reference(y, x, -eps * guess, eps, None, block_cols, block_rows)
                balanced = -balanced

            def two_passes(guesses=None):
                row_guess, col_guess = (None, None) if guesses is None else guesses
                r = logsumexp.lse_rows_reference(x, y, balanced, eps, None, block_rows, block_cols, row_guess)
                return logsumexp.lse_rows_reference(y, x, -eps * r, eps, None, block_cols, block_rows, col_guess)

            def sweep(guess=None):
                return logsumexp.lse_sweep_reference(x, y, balanced, eps, lambda rows, r: -eps * r, block_rows, guess)

            passes = per_entry(two_passes, n * n, args.repeats)
            guessed_passes = per_entry(lambda: two_passes((guess, -balanced / eps)), n * n, args.repeats)
            whole_rows = block_cols >= n      # the engine sweeps only where tiles hold whole rows
            maxima = f"{per_entry(sweep, n * n, args.repeats):.2f}" if whole_rows else "–"
            guessed = f"{per_entry(lambda: sweep(guess), n * n, args.repeats):.2f}" if whole_rows else "–"
            print(f"| {n:,} | {d} | {exp_e - copy:.2f} | {exp_2 - copy:.2f} | {gemm:.2f} | {lse:.2f} | {rows:.2f} "
                  f"| {passes:.2f} | {guessed_passes:.2f} | {maxima} | {guessed} |", flush=True)


if __name__ == "__main__":
    main()
