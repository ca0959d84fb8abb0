"""Do the defaults hold on new draws of the real pairs? Random subsets, shuffled rows, every default.

One figure per pair is thin evidence that the defaults hold. This script draws, for each pair
(``tests/data``, as ``benchmarks/real_data.py`` reads them) and each fraction f, several random
subsets of its cells (paired data: one subset of cells, both sides; unpaired: a subset of each
side), shuffles each side's row order independently (so nothing can ride on the pairing being
row i ↔ row i), aligns with every default (the draw's number is also the seed) and scores as
``benchmarks/real_data.py`` does (FOSCTTM on paired data, label transfer on the cell types found
on both sides, in the coupled-CCA embedding ``obsm["X_gw"]``).

A draw *fails* when its label transfer falls more than ``--fail-drop`` below the same pair's full
data, unshuffled, seed 0 (printed as the reference row): a mirrored plan or a wrong basin, not
draw noise.

Fractions above 1 make that many times the rows, for real geometry at sizes where the defaults
switch to landmark distances (above 2,500 cells a side) and screen their starts on a subsample
(above 2,000), which no real pair here reaches as drawn: ``--upsample interpolate`` (default) keeps
every cell and adds rows between neighbouring cells (:func:`interpolated`); ``jitter`` draws cells
with replacement and jitters every row (:data:`JITTER`), which makes clumps of near-copies that a
kNN graph of fixed k spends its edges on.

Prints the settings, then a Markdown table: per pair, the reference row, then one row per
fraction with min / median / max of FOSCTTM, label transfer and the runner-up matching's GW
objective gap over the draws, the failed draws, and the mean time per run; last, the number of
failed draws.

    python benchmarks/robustness.py --datasets all --fractions 0.5 0.8 1.0 --draws 5
    python benchmarks/robustness.py --datasets all --fractions 0.5 0.8 1.0 --draws 5 --device cuda
    python benchmarks/robustness.py --datasets snareseq pbmc --fractions 4 10 --draws 3 --device cuda
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np

import gwalign
from gwalign.results.report import runner_up
from real_data import DATASETS, load_pair, parse_overrides, score


def draw(n_source: int, n_target: int, fraction: float, paired: bool, rng: np.random.Generator
         ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Row indices of one draw, and (paired data) the target row of each source row's partner.

    ``fraction`` ≤ 1: a random subset of each side in random order; paired data keep the same
    cells on both sides (in independent orders), so the truth survives the draw. ``fraction`` > 1:
    ``fraction`` × as many rows drawn with replacement (a cell can appear several times; see
    :func:`jittered`), for the large-data path on real geometry; paired data draw the rows once
    and shuffle them for the target side, so row copies keep their own partners.
    """
    replace = fraction > 1
    keep_s = rng.choice(n_source, size=max(2, round(fraction * n_source)), replace=replace)
    if paired:
        order = rng.permutation(len(keep_s))
        return keep_s, keep_s[order], np.argsort(order)
    return keep_s, rng.choice(n_target, size=max(2, round(fraction * n_target)), replace=replace), None


#: Jitter of upsampled rows (``fraction`` > 1), per coordinate, in units of the side's median
#: nearest-neighbour distance / √d: copies of a cell stay closer to each other than to its neighbours.
JITTER = 0.25


#: Neighbours among which an interpolated row's second cell is drawn (``--upsample interpolate``).
INTERPOLATE_NEIGHBOURS = 10


def interpolated(x: np.ndarray, factor: float, rng: np.random.Generator,
                 recipe: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None
                 ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every cell once, then ``(factor − 1)·n`` new rows on segments between a random cell ``i`` and
    one of its :data:`INTERPOLATE_NEIGHBOURS` nearest cells ``j``, at ``x_i + u (x_j − x_i)``,
    ``u ~ U(0, ½)`` (nearer ``i``, whose label the row takes): the same manifold sampled more densely,
    without the clumps of near-copies that jittered duplicates make.

    Returns the rows, the cell each row takes its label from, and the recipe ``(i, j, u)``; a
    paired side passes its partner side's recipe so that row r is the same mixture on both sides.
    """
    n = len(x)
    if recipe is None:
        from sklearn.neighbors import NearestNeighbors

        extra = round((factor - 1.0) * n)
        neighbours = NearestNeighbors(n_neighbors=INTERPOLATE_NEIGHBOURS + 1).fit(x).kneighbors(x)[1][:, 1:]
        base = rng.integers(n, size=extra)
        recipe = (base, neighbours[base, rng.integers(INTERPOLATE_NEIGHBOURS, size=extra)],
                  rng.uniform(0.0, 0.5, size=extra))
    base, other, u = recipe
    rows = np.vstack([x, x[base] + u[:, None] * (x[other] - x[base])])
    return rows, np.concatenate([np.arange(n), base]), recipe


def upsampled(xs: np.ndarray, xt: np.ndarray, factor: float, paired: bool, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """One interpolated draw (:func:`interpolated`) of each side, rows shuffled: the two sides'
    rows, the cells they take their labels from, and (paired data) each source row's partner row."""
    side_s, cells_s, recipe = interpolated(xs, factor, rng)
    side_t, cells_t, _ = interpolated(xt, factor, rng, recipe if paired else None)
    order_s, order_t = rng.permutation(len(side_s)), rng.permutation(len(side_t))
    if paired:   # target row j holds source row order_t[j] (before the source's own shuffle)
        partner = np.argsort(order_t)[order_s]
    else:
        partner = None
    return side_s[order_s], side_t[order_t], cells_s[order_s], cells_t[order_t], partner


def jittered(x: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x[rows]`` plus Gaussian noise of :data:`JITTER` (every row, so copies of a cell differ)."""
    from sklearn.neighbors import NearestNeighbors

    nearest = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)[0][:, 1]
    scale = JITTER * float(np.median(nearest)) / np.sqrt(x.shape[1])
    return x[rows] + rng.normal(scale=scale, size=(len(rows), x.shape[1]))


def run_one(name: str, xs: np.ndarray, xt: np.ndarray, ls: np.ndarray, lt: np.ndarray, seed: int,
            device: str, partner: Optional[np.ndarray] = None, overrides: Optional[dict] = None,
            euclidean: bool = False) -> dict[str, float]:
    """Align one draw (every default unless ``overrides``, GWConfig fields); its scores and time.
    ``partner``: the target row of each source cell's partner (paired data). ``euclidean``: the
    representations' Euclidean distances instead of kNN-graph geodesics (a model check)."""
    from scipy.spatial.distance import cdist

    start = time.perf_counter()
    dists = {"d_source": cdist(xs, xs), "d_target": cdist(xt, xt)} if euclidean else {}
    result = gwalign.align(xs, xt, gwalign.GWConfig(device=device, seed=seed, **(overrides or {})), **dists)
    scores = score(DATASETS[name], result, xs, xt, ls, lt, partner=partner)
    scores["time"] = time.perf_counter() - start
    scores["objective"] = result.gw_objective
    rival = runner_up(result.solve.finalists)   # what uns["gwalign"]["runner_up"] reports
    scores["runner_up_gap"] = math.inf if rival is None else rival["objective_gap"]
    return scores


def gap(value: float) -> str:
    """A runner-up's relative objective gap as a percentage (``–``: no different matching)."""
    return "–" if not math.isfinite(value) else f"{100 * value:.1f}%"


def spread(values: list[float]) -> str:
    """``min / median / max`` of a column."""
    return f"{min(values):.3f} / {float(np.median(values)):.3f} / {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["snareseq"], choices=[*DATASETS, "all"])
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding the pairs' folders, laid out as tests/data (default: tests/data)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.8, 1.0],
                        help="share of each side's cells in a draw (1.0: every cell, rows shuffled; above 1: "
                             "that many times the rows, made as --upsample says)")
    parser.add_argument("--upsample", default="interpolate", choices=["interpolate", "jitter"],
                        help="how fractions above 1 make rows: interpolated between neighbouring cells (every cell "
                             "kept once), or cells drawn with replacement and jittered")
    parser.add_argument("--draws", type=int, default=5, help="draws per pair and fraction")
    parser.add_argument("--first-draw", type=int, default=0)
    parser.add_argument("--fail-drop", type=float, default=0.1,
                        help="label-transfer drop below the full-data reference that counts as a failure")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="GWConfig fields changed from the defaults (values parsed as Python literals)")
    parser.add_argument("--euclidean", action="store_true",
                        help="Euclidean distances of the representations instead of kNN-graph geodesics")
    args = parser.parse_args()
    names = list(DATASETS) if "all" in args.datasets else args.datasets
    overrides = parse_overrides(args.set)
    print(f"# settings: {overrides or 'every default'}{', Euclidean distances' if args.euclidean else ''}")
    failures, total = 0, 0

    print("| data | cells (source / target) | draws | FOSCTTM min / median / max | label transfer min / median / max "
          "| runner-up gap min / median / max | failed draws (runner-up gap) | time per run (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        paired = DATASETS[name].paired
        xs, xt, ls, lt = load_pair(name, args.data_root)
        reference = run_one(name, xs, xt, ls, lt, 0, args.device, None, overrides, args.euclidean)
        fos = f"{reference['foscttm']:.3f}" if paired else "–"
        print(f"| {name} (reference: every cell, input order, seed 0) | {len(xs)} / {len(xt)} | 1 | {fos} "
              f"| {reference['label_transfer']:.3f} | {gap(reference['runner_up_gap'])} | – "
              f"| {reference['time']:.1f} |", flush=True)
        for fraction in args.fractions:
            rows: list[dict[str, float]] = []
            failed: list[str] = []
            for d in range(args.first_draw, args.first_draw + args.draws):
                rng = np.random.default_rng(1000 * d + round(100 * fraction))
                if fraction > 1 and args.upsample == "interpolate":
                    side_s, side_t, rows_s, rows_t, partner = upsampled(xs, xt, fraction, paired, rng)
                else:
                    rows_s, rows_t, partner = draw(len(xs), len(xt), fraction, paired, rng)
                    if fraction > 1:
                        side_s, side_t = jittered(xs, rows_s, rng), jittered(xt, rows_t, rng)
                    else:
                        side_s, side_t = xs[rows_s], xt[rows_t]
                scores = run_one(name, side_s, side_t, ls[rows_s], lt[rows_t], d, args.device, partner,
                                 overrides, args.euclidean)
                rows.append(scores)
                if scores["label_transfer"] < reference["label_transfer"] - args.fail_drop:
                    fos_d: Optional[str] = f", FOSCTTM {scores['foscttm']:.3f}" if paired else ""
                    failed.append(f"draw {d}: {scores['label_transfer']:.3f}{fos_d} "
                                  f"({gap(scores['runner_up_gap'])})")
            fos = spread([r["foscttm"] for r in rows]) if paired else "–"
            gaps = " / ".join(gap(v) for v in np.quantile([r["runner_up_gap"] for r in rows], [0, 0.5, 1],
                                                          method="nearest"))
            print(f"| {name} | {len(rows_s)} / {len(rows_t)} | {len(rows)} | {fos} "
                  f"| {spread([r['label_transfer'] for r in rows])} "
                  f"| {gaps} "
                  f"| {len(failed)}"
                  f"{' (' + '; '.join(failed) + ')' if failed else ''} "
                  f"| {np.mean([r['time'] for r in rows]):.1f} |", flush=True)
            failures, total = failures + len(failed), total + len(rows)
    print(f"# failed draws: {failures} of {total}")


if __name__ == "__main__":
    main()
