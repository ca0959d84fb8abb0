"""Sinkhorn iterations with over-relaxation against Anderson acceleration, on problems of a real run.

Runs one default alignment of a real pair, keeps the balanced Sinkhorn problems of some of its GW
steps (the ``--calls``-th calls of the batched solver, counted from 1: the profile start is call
1, the twelve screening steps follow, then the finalists' steps), and solves the first
``--problems`` of each again from the same warm potentials to the step's tolerance, once with
over-relaxation (ω = 1.5, ``anderson=0``) and once with Anderson acceleration (memory 5). The
last captured call is also solved to the polish's tolerance (1e-4), from its warm potentials and
from zero. Prints a Markdown table of iterations.

    python benchmarks/sinkhorn_acceleration.py
    python benchmarks/sinkhorn_acceleration.py --datasets pbmc --calls 4 8 12
"""

from __future__ import annotations

import argparse

import gwalign
from gwalign.engine import lowrank
from gwalign.engine.sinkhorn import sinkhorn
from real_data import DATASETS, load_pair


def capture(name: str, calls: list[int]) -> dict[int, dict]:
    """The arguments of the chosen calls of the batched Sinkhorn in one default run of ``name``."""
    solve, seen, kept = lowrank.sinkhorn_batch, [0], {}

    def keeping(u, v, a, b, eps, f, g, **options):
        seen[0] += 1
        if seen[0] in calls and options.get("rho") is None:
            kept[seen[0]] = dict(u=u, v=v, a=a, b=b, eps=eps, g=g, row_cost=options["row_cost"],
                                 col_cost=options["col_cost"], blocks=(options["block_rows"], options["block_cols"]))
        return solve(u, v, a, b, eps, f, g, **options)

    lowrank.sinkhorn_batch = keeping
    try:
        xs, xt, _, _ = load_pair(name)
        gwalign.align(xs, xt, config=gwalign.GWConfig(device="cpu", one_sided_check=False))
    finally:
        lowrank.sinkhorn_batch = solve
    return kept


def iterations(problem: dict, s: int, tol: float, warm: bool, anderson: int, max_iter: int) -> int:
    """Iterations of problem ``s`` of a captured call to ``tol``, from its potentials or from zero."""
    row = problem["row_cost"] if problem["row_cost"].dim() == 1 else problem["row_cost"][s]
    g = problem["g"][s] if warm and problem["g"] is not None else None
    result = sinkhorn(problem["u"], problem["v"][s], problem["a"], problem["b"], problem["eps"], None, g,
                      row_cost=row, col_cost=problem["col_cost"][s], max_iter=max_iter, tol=tol, omega=1.5,
                      anderson=anderson, block_rows=problem["blocks"][0], block_cols=problem["blocks"][1])
    return result.n_iter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["snareseq"], choices=list(DATASETS))
    parser.add_argument("--calls", type=int, nargs="+", default=[3, 6, 10, 14])
    parser.add_argument("--problems", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-3, help="the step's tolerance (GWConfig.sinkhorn_tol)")
    args = parser.parse_args()
    print("| pair | call | problem | ε | start, tolerance | ω = 1.5 | Anderson, memory 5 |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets:
        kept = capture(name, args.calls)
        for call, problem in sorted(kept.items()):
            cases = [(s, True, args.tol) for s in range(min(args.problems, problem["v"].shape[0]))]
            if call == max(kept):
                cases += [(0, True, 1e-4), (0, False, 1e-4)]
            for s, warm, tol in cases:
                counts = [iterations(problem, s, tol, warm, memory, 3000) for memory in (0, 5)]
                start = "warm" if warm else "zero"
                print(f"| {name} | {call} | {s} | {problem['eps']:.3g} | {start}, {tol:g} | {counts[0]} | {counts[1]} |",
                      flush=True)


if __name__ == "__main__":
    main()
