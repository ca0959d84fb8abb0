"""Low-rank couplings (``coupling_rank``) against the default solver and OTT-JAX, on the CPU.

On a spiral (2-D) → Swiss roll (3-D) pair of N points a side, the same normalised geodesic
distances (gwalign's kNN graphs and distances for the size: exact geodesics up to 2,500 points,
landmark distances above) are factored once as ``D ≈ Φ diag(λ) Φᵀ`` (rank 32). Rows:

* gwalign with every default (screened starts, entropic low-rank-gradient GW);
* gwalign with ``coupling_rank = m`` (a rank-m coupling by mirror descent, then the entropic
  solver from its ``G``);
* OTT-JAX's ``LRGromovWasserstein(rank=m)`` on the same factors, given as low-rank cost
  geometries (``LRCGeometry(Φ Λ, Φ)``), float32: with its defaults and, "capped", with
  ``max_iterations`` equal to gwalign's mirror-step bound (200; ``min_iterations`` 0).

Every plan is scored under one objective, exact for the factored distances: the square-loss GW
objective (gwalign's plans through :meth:`gwalign.engine.lowrank.LowRankGW.plan_objectives`, OTT's
``Q diag(1/g) Rᵀ`` through :func:`gwalign.engine.lowrank_coupling.gw_objective`), and by
|Spearman| of the barycentric match of the curve parameter. Times are of the solve only: the
graphs, distances and factors are built once and shared (so is the coarser graph that gwalign's
default builds for its finalists' ranking, which ``coupling_rank`` does not need: a run with
defaults spends that time too). OTT's include JIT compilation on the first call, so it runs twice
and the second call is reported (the first in brackets).
gwalign's rows run first, back to back, then OTT's; ``--repeats`` gives min–max ranges. torch uses ``--threads`` threads; JAX
runs with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` unless
XLA_FLAGS is set.

    pip install -e ".[bench]"
    python benchmarks/coupling_rank.py --sizes 1000 4000 10000 --ranks 10 20
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np
import torch
from scipy.stats import spearmanr

import gwalign
from gwalign.align_arrays import _checked_problem, _geometry, _solve
from gwalign.datasets.synthetic import spiral_and_roll
from gwalign.engine import ops
from gwalign.engine.lowrank import LowRankGW
from gwalign.engine.lowrank_coupling import LowRankCoupling, gw_objective
from gwalign.geometry.build import factor_distances
from gwalign.threads import limited_threads

SEED = 4


def shared_problem(n: int, config: gwalign.GWConfig):
    """The pair, gwalign's geometry for it and the factors every row is scored under."""
    xs, ts, xt, tt = spiral_and_roll(n, n, seed=SEED)
    problem = _checked_problem(config, xs, xt, None, None, None, None, None, None, None)
    mode = config.resolved_distance(n, n)
    config = config.with_epsilon(mode)
    geometry = _geometry(problem, config, mode, torch.device("cpu"), torch.float32, {})
    factors = tuple(factor_distances(d, config.distances.rank) for d in geometry.distances)
    return (xs, ts, xt, tt), problem, mode, config, geometry, factors


def gwalign_row(problem, mode, config, geometry, factors, t_target):
    """Solve time, objective under ``factors``, |Spearman| and the low-rank stage's objective."""
    tick = time.perf_counter()
    solve = _solve(geometry, problem, config, mode, {}, None)
    seconds = time.perf_counter() - tick
    a = torch.full((problem.sizes[0],), 1.0 / problem.sizes[0])
    b = torch.full((problem.sizes[1],), 1.0 / problem.sizes[1])
    objective = LowRankGW(*factors, a, b, config).plan_objectives([solve.plan])[0]
    z = torch.as_tensor(t_target, dtype=torch.float32)[:, None]
    projected = ops.apply(solve.plan, z)[:, 0] / ops.row_mass(solve.plan)
    lr_objective = solve.start_objectives[0] if config.solver.coupling_rank else None
    return seconds, objective, projected.numpy(), lr_objective


def ott_row(factors, rank: int, capped: bool):
    """OTT-JAX's low-rank GW on the factors: (first call s, second call s, coupling)."""
    import jax
    import jax.numpy as jnp
    from ott.geometry import low_rank
    from ott.problems.quadratic import quadratic_problem
    from ott.solvers.quadratic import gromov_wasserstein_lr

    geoms = [low_rank.LRCGeometry(jnp.asarray((f.phi * f.lam).numpy()), jnp.asarray(f.phi.numpy())) for f in factors]
    prob = quadratic_problem.QuadraticProblem(geoms[0], geoms[1])
    options = dict(min_iterations=0, max_iterations=200) if capped else {}
    solver = jax.jit(gromov_wasserstein_lr.LRGromovWasserstein(rank=rank, **options))
    times, out = [], None
    for _ in range(2):
        tick = time.perf_counter()
        out = solver(prob)
        out.q.block_until_ready()
        times.append(time.perf_counter() - tick)
    coupling = LowRankCoupling(q=torch.tensor(np.array(out.q), dtype=torch.float64),
                               r=torch.tensor(np.array(out.r), dtype=torch.float64),
                               g=torch.tensor(np.array(out.g), dtype=torch.float64))
    return times[0], times[1], coupling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 10000])
    parser.add_argument("--ranks", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-ott", action="store_true", help="skip OTT-JAX")
    parser.add_argument("--ott-defaults-max", type=int, default=1000,
                        help="largest size OTT-JAX also runs with its default iteration counts")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"CPU ({platform.processor() or platform.machine()}), {os.cpu_count()} cores, torch threads "
          f"{args.threads}, XLA_FLAGS={os.environ['XLA_FLAGS']!r}; load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| N = K | solver | solve s | GW objective (factored) | low-rank stage objective | \\|Spearman\\| |")
    print("|---|---|---|---|---|---|")
    shared = {}
    for n in args.sizes:
        with limited_threads(args.threads):
            base = gwalign.GWConfig(device="cpu", threads=args.threads, one_sided_check=False)
            (xs, ts, xt, tt), problem, mode, config, geometry, factors = shared_problem(n, base)
            shared[n] = (ts, tt, factors)
            runs = [("gwalign, defaults", config)] + \
                   [(f"gwalign, coupling_rank={m}", config.replace(coupling_rank=m)) for m in args.ranks]
            for name, run_config in runs:
                results = [gwalign_row(problem, mode, run_config, geometry, factors, tt) for _ in range(args.repeats)]
                seconds = [r[0] for r in results]
                seconds_text = f"{min(seconds):.2f}" + (f"–{max(seconds):.2f}" if len(seconds) > 1 else "")
                _, objective, projected, lr_objective = results[-1]
                lr_text = "–" if lr_objective is None else f"{lr_objective:.5f}"
                print(f"| {n:,} | {name} ({mode}) | {seconds_text} | {objective:.5f} | {lr_text} | "
                      f"{abs(spearmanr(ts, projected)[0]):.3f} |", flush=True)
    # JAX after every gwalign row: the landmark distances' process pool forks, and JAX's threads
    # make a fork unsafe once it is loaded.
    for n, (ts, tt, factors) in ({} if args.no_ott else shared).items():
        for m in args.ranks:
            for capped in ([True] if n > args.ott_defaults_max else [False, True]):
                first, second, coupling = ott_row(factors, m, capped)
                objective = gw_objective(coupling, *factors)
                plan_t = coupling.q / coupling.g @ (coupling.r.T @ torch.as_tensor(tt)[:, None])
                projected = (plan_t[:, 0] / coupling.q.sum(1)).numpy()
                label = "max_iterations=200" if capped else "defaults"
                print(f"| {n:,} | OTT-JAX LRGromovWasserstein rank={m}, {label} | {second:.2f} ({first:.2f}) | "
                      f"{objective:.5f} | {objective:.5f} | {abs(spearmanr(ts, projected)[0]):.3f} |", flush=True)
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
