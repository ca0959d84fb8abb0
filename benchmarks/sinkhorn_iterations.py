"""Sinkhorn iterations of one default alignment of a real pair: the screening's share and the rest.

Counts every Sinkhorn iteration of every problem (a batched screening step counts each start's)
by wrapping the solver's batched Sinkhorn, and prints them by phase: screening (batches of more
than the finalists), finalists and polish, and the one-sided probe.

    python benchmarks/sinkhorn_iterations.py --datasets snareseq
    python benchmarks/sinkhorn_iterations.py --datasets snareseq --set screen_sinkhorn_iters=50 --keep-coincident
"""

from __future__ import annotations

import argparse
import time

import gwalign
from gwalign import align_arrays
from gwalign.engine import lowrank, starts
from real_data import DATASETS, load_pair, parse_overrides


def count_iterations(name: str, overrides: dict) -> dict[str, int]:
    """Sinkhorn iterations of one default run of ``name``, by phase, and its wall time."""
    counts = {"screening": 0, "finalists and polish": 0, "one-sided probe": 0}
    solve = lowrank.sinkhorn_batch
    in_probe = [False]

    def counted(*args, **kwargs):
        results = solve(*args, **kwargs)
        n_problems = args[1].shape[0]
        phase = "one-sided probe" if in_probe[0] else \
            "screening" if n_problems > starts.FINALISTS else "finalists and polish"
        counts[phase] += sum(result.n_iter for result in results)
        return results

    probe = align_arrays.relaxed_mass

    def probing(*args, **kwargs):
        in_probe[0] = True
        try:
            return probe(*args, **kwargs)
        finally:
            in_probe[0] = False

    lowrank.sinkhorn_batch, align_arrays.relaxed_mass = counted, probing
    try:
        xs, xt, _, _ = load_pair(name)
        tick = time.perf_counter()
        gwalign.align(xs, xt, gwalign.GWConfig(device="cpu").replace(**overrides))
        counts["wall s"] = round(time.perf_counter() - tick, 1)
    finally:
        lowrank.sinkhorn_batch, align_arrays.relaxed_mass = solve, probe
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["snareseq"], choices=sorted(DATASETS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="GWConfig fields")
    parser.add_argument("--keep-coincident", action="store_true",
                        help="screen every start to the end, even once it repeats another")
    args = parser.parse_args()
    if args.keep_coincident:
        starts.SAME_PLAN = -1.0
    print("| pair | screening | finalists and polish | one-sided probe | total | wall s |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        c = count_iterations(name, parse_overrides(args.set))
        total = c["screening"] + c["finalists and polish"] + c["one-sided probe"]
        print(f"| {name} | {c['screening']} | {c['finalists and polish']} | {c['one-sided probe']} | {total} "
              f"| {c['wall s']} |")


if __name__ == "__main__":
    main()
