"""Can the solved GW objective flag a side that covers only part of the other?

For each pair, the objective of gwalign's plan is divided by the objective of the product plan
(every cell coupled to every cell in proportion to their weights) under the same normalised,
factored distances: a scale-free "how much better than no alignment" figure. Pairs: the example
pair whole, 20 RNA cells of one type against 150 ATAC cells of every type (as
``benchmarks/missing_type.py --small-side 20 150``), and the real pairs that chose the defaults.
Every default, on the CPU. The factors are read by wrapping the solver's entry point
(``gwalign.align_arrays.solve_lowrank_gw``), which the public API does not return.

    python benchmarks/objective_ratio.py
"""

from __future__ import annotations

import warnings

import numpy as np

import gwalign
import gwalign.align_arrays as align_arrays
from gwalign.datasets.example import make_example_pair
from gwalign.geometry.factors import product_plan_objective
from real_data import load_pair

LABEL = "cell_type"
REAL_PAIRS = ["snareseq", "scnmt-met", "scnmt-acc", "scgem", "pbmc"]
_seen: dict = {}
_solve = align_arrays.solve_lowrank_gw


def _keeping_factors(fs, ft, a, b, config, *args, **kwargs):
    """The solver's entry point, remembering its first call's factors and marginals."""
    _seen.setdefault("problem", (fs, ft, a, b))
    return _solve(fs, ft, a, b, config, *args, **kwargs)


def ratio(solved: float) -> tuple[float, float]:
    """(the plan's objective, its ratio to the product plan's) for the run just made."""
    fs, ft, a, b = _seen.pop("problem")
    return solved, solved / product_plan_objective(fs, ft, a, b)


def example_rows() -> list[tuple[str, int, int, float, float]]:
    """The example pair whole, then each small-side case."""
    rna, atac = make_example_pair()
    rows = []
    cases = [("example pair", rna, atac)]
    rng = np.random.default_rng(0)
    for cell_type in ("progenitor", "branch_A", "transit", "branch_B"):
        of_type = np.flatnonzero((rna.obs[LABEL] == cell_type).to_numpy())
        small = rna[np.sort(rng.choice(of_type, size=20, replace=False))].copy()
        other = atac[np.sort(rng.choice(atac.n_obs, size=150, replace=False))].copy()
        cases.append((f"{cell_type} (20) against every type (150)", small, other))
    for name, source, target in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = gwalign.tl.align(source, target, names=("rna", "atac"), copy=True, device="cpu")
        rows.append((name, source.n_obs, target.n_obs, *ratio(result.alignment.gw_objective)))
    return rows


def real_rows() -> list[tuple[str, int, int, float, float]]:
    """The real pairs that chose the defaults, on their arrays."""
    rows = []
    for name in REAL_PAIRS:
        xs, xt = load_pair(name)[:2]
        alignment = gwalign.align(xs, xt, gwalign.GWConfig(device="cpu"))
        rows.append((name, len(xs), len(xt), *ratio(alignment.gw_objective)))
    return rows


def main() -> None:
    align_arrays.solve_lowrank_gw = _keeping_factors
    print("| pair | cells (source / target) | objective | over the product plan's |")
    print("|---|---|---|---|")
    for name, n, k, solved, relative in example_rows() + real_rows():
        print(f"| {name} | {n} / {k} | {solved:.4f} | {relative:.3f} |", flush=True)


if __name__ == "__main__":
    main()
