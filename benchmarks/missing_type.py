"""A cell type missing on one side of the bundled example pair: what the defaults and the suggested run do.

For each cell type and each side, the type's cells are removed from that side of the example pair
(:func:`gwalign.datasets.example.make_example_pair`, 600 cells a side) and the two are aligned with
every default through :func:`gwalign.tl.align`, carrying ``cell_type`` across. Prints a Markdown
table, one row per removal:

- **transfer**: label transfer of the written labels on the types both sides hold, both directions
  averaged;
- **flagged**: the share of the other side's cells of the removed type that the one-sided check
  marks (``obs["gw_one_sided"]``), and the share of that side's shared-type cells it marks;
- **confidence**: mean transfer confidence of the other side's cells of the removed type, and of
  its shared-type cells;
- **suggested run**: when the check suggests a semi-relaxed run, its transfer (run as suggested:
  inputs swapped when the flagged cells are the source's).

    python benchmarks/missing_type.py
    python benchmarks/missing_type.py --types branch_B --sides rna atac
    python benchmarks/missing_type.py --cells 10000 --types branch_B --sides rna --threads 2 --set probe_points=20000

``--cells`` sets the example's size (600 by default), ``--set key=value`` any other setting of
:func:`gwalign.tl.align`. The last column is the run's one-sided check time.

``--small-side N M`` instead aligns N RNA cells of one type (``--types``, drawn at random) with M
ATAC cells of every type, and prints, for each ATAC type, the share flagged, the mean transfer
confidence and the mean mass the one-sided check's probe leaves it when the ATAC marginal is freed
(``obs["gw_relaxed_mass"]``, per unit of its own):

    python benchmarks/missing_type.py --small-side 20 150 --types progenitor
"""

from __future__ import annotations

import argparse
import ast
import time
import warnings

import numpy as np

import gwalign
from gwalign.datasets.example import SEGMENTS, make_example_pair

LABEL = "cell_type"


def shared_transfer(result) -> float:
    """Label transfer of the written labels, both directions averaged, on the types both sides hold."""
    scores = []
    for own, other in ((result.adata_a, result.adata_b), (result.adata_b, result.adata_a)):
        truth, written = own.obs[LABEL].astype(str).to_numpy(), own.obs[f"{LABEL}_gw"].astype(str).to_numpy()
        shared = np.isin(truth, other.obs[LABEL].astype(str).unique())
        scores.append(float(np.mean(truth[shared] == written[shared])))
    return float(np.mean(scores))


def removal_row(rna, atac, cell_type: str, side: str, threads: int, overrides: dict) -> str:
    """One table row: ``cell_type`` removed from ``side`` (``rna`` or ``atac``)."""
    keep = {"rna": rna, "atac": atac}
    keep[side] = keep[side][(keep[side].obs[LABEL] != cell_type).to_numpy()].copy()
    settings = dict(copy=True, transfer_labels=LABEL, device="cpu", threads=threads, **overrides)
    tick = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gwalign.tl.align(keep["rna"], keep["atac"], names=("rna", "atac"), **settings)
        holding = result.adata_b if side == "rna" else result.adata_a
        missing = (holding.obs[LABEL] == cell_type).to_numpy()
        flagged = holding.obs["gw_one_sided"].to_numpy()
        confidence = holding.obs[f"{LABEL}_gw_confidence"].to_numpy()
        advice = result.report["one_sided"]["suggestion"]
        suggested = "–"
        if advice is not None:
            swap = "with atac first" in advice
            source, target = (keep["atac"], keep["rna"]) if swap else (keep["rna"], keep["atac"])
            relaxed = gwalign.tl.align(source, target, semi_relaxed=True, **settings)
            suggested = f"{shared_transfer(relaxed):.3f} ({'atac' if swap else 'rna'} as the source)"
    return (f"| {cell_type} | {side} | {shared_transfer(result):.3f} | {flagged[missing].mean():.2f} / "
            f"{flagged[~missing].mean():.2f} | {confidence[missing].mean():.2f} / {confidence[~missing].mean():.2f} "
            f"| {suggested} | {time.perf_counter() - tick:.1f} | {check_seconds(result):.1f} |")


def small_side_rows(rna, atac, cell_type: str, n_small: int, n_other: int, threads: int,
                    overrides: dict) -> list[str]:
    """One table row per ATAC type: ``n_small`` RNA cells of ``cell_type`` against ``n_other``
    ATAC cells of every type (seeded draws)."""
    rng = np.random.default_rng(0)
    of_type = np.flatnonzero((rna.obs[LABEL] == cell_type).to_numpy())
    small = rna[np.sort(rng.choice(of_type, size=n_small, replace=False))].copy()
    other = atac[np.sort(rng.choice(atac.n_obs, size=n_other, replace=False))].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gwalign.tl.align(small, other, names=("rna", "atac"), copy=True, transfer_labels=LABEL,
                                  device="cpu", threads=threads, **overrides)
    obs = result.adata_b.obs
    rows = []
    for name, group in obs.groupby(LABEL, observed=True):
        rows.append(f"| {cell_type} ({n_small}) | {name} | {len(group)} | {group['gw_one_sided'].mean():.2f} | "
                    f"{group[f'{LABEL}_gw_confidence'].mean():.2f} | {group['gw_relaxed_mass'].mean():.2f} |")
    return rows


def check_seconds(result) -> float:
    """Seconds the run's one-sided check took (0 when it made none)."""
    return float(result.report.get("timings_s", {}).get("one_sided_check", 0.0))


def setting(text: str) -> tuple[str, object]:
    """``key=value`` with a Python literal value."""
    key, _, value = text.partition("=")
    return key.strip(), ast.literal_eval(value.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="+", default=list(SEGMENTS), choices=list(SEGMENTS))
    parser.add_argument("--sides", nargs="+", default=["rna", "atac"], choices=["rna", "atac"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--set", dest="overrides", nargs="*", type=setting, default=[])
    parser.add_argument("--small-side", nargs=2, type=int, metavar=("N", "M"),
                        help="N RNA cells of one type against M ATAC cells of every type")
    args = parser.parse_args()
    rna, atac = make_example_pair(n_cells=args.cells)
    if args.small_side:
        print("| RNA type (cells) | ATAC type | cells | flagged | confidence | mass kept, ATAC freed |")
        print("|---|---|---|---|---|---|")
        for cell_type in args.types:
            print("\n".join(small_side_rows(rna, atac, cell_type, *args.small_side, args.threads,
                                           dict(args.overrides))))
        return
    print("| removed | from | transfer | flagged: removed type / shared types | confidence: removed type / shared "
          "types | suggested run | time (s) | check (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for cell_type in args.types:
        for side in args.sides:
            print(removal_row(rna, atac, cell_type, side, args.threads, dict(args.overrides)), flush=True)


if __name__ == "__main__":
    main()
