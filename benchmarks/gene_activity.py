"""What gene activity adds: the example pair with genomic coordinates, whole and with a cell type removed.

The pair is :func:`gwalign.datasets.example.make_linked_pair` (600 cells a side; half of the 2,000
peaks lie in a gene's body or promoter and open where the gene is expressed, the other half at
random). Each row aligns it with every default through :func:`gwalign.tl.align`, carrying
``cell_type`` across, once as is and once with ``gene_activity=True`` (fused GW on RNA expression
against ATAC gene activity, α = 0.5). Rows: the whole pair, then each cell type removed from one
side (as ``benchmarks/missing_type.py`` does on the example without coordinates). Scores: label
transfer of the written labels on the types both sides hold (both directions averaged), and
FOSCTTM in ``X_gw`` for the whole pair.

    python benchmarks/gene_activity.py
    python benchmarks/gene_activity.py --alpha 0.1 0.3 0.6 0.9 1.0 --types progenitor branch_B --sides rna
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import gwalign
from gwalign.config.run import GENE_ACTIVITY_ALPHA
from gwalign.datasets.example import SEGMENTS, make_linked_pair
from missing_type import LABEL, shared_transfer


def foscttm_of(result) -> float:
    """FOSCTTM of the partners (``obs["true_cell"]``) in ``X_gw``."""
    rna, atac = result.adata_a, result.adata_b
    partner = pd.Index(atac.obs["true_cell"]).get_indexer(rna.obs["true_cell"])
    return gwalign.foscttm(rna.obsm["X_gw"], atac.obsm["X_gw"][partner])


def row(rna, atac, removed: str, side: str, threads: int, alphas: list[float]) -> str:
    """One table row: the pair with ``removed`` taken from ``side`` (``-``: whole), every default,
    then gene activity at each fused weight of ``alphas``."""
    keep = {"rna": rna, "atac": atac}
    if removed != "-":
        keep[side] = keep[side][(keep[side].obs[LABEL] != removed).to_numpy()].copy()
    cells = []
    for alpha in [None, *alphas]:
        tick = time.perf_counter()
        weight = {} if alpha is None else {"gene_activity": True, "fgw_alpha": alpha}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = gwalign.tl.align(keep["rna"], keep["atac"], copy=True, transfer_labels=LABEL, device="cpu",
                                      threads=threads, **weight)
        score = f"{shared_transfer(result):.3f}"
        if removed == "-":
            score += f" / {foscttm_of(result):.3f}"
        cells.append(f"{score} ({time.perf_counter() - tick:.1f} s)")
    return f"| {removed} | {side} | {' | '.join(cells)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="+", default=list(SEGMENTS), choices=list(SEGMENTS))
    parser.add_argument("--sides", nargs="+", default=["rna", "atac"], choices=["rna", "atac"])
    parser.add_argument("--alpha", type=float, nargs="+", default=[GENE_ACTIVITY_ALPHA],
                        help="fused weights of the gene-activity runs (one column each)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rna, atac = make_linked_pair()
    columns = " | ".join(f"--gene-activity, α = {alpha:g}: transfer (/ FOSCTTM)" for alpha in args.alpha)
    print(f"| removed | from | every default: transfer (/ FOSCTTM) | {columns} |")
    print("|---|---|" + "---|" * (1 + len(args.alpha)))
    print(row(rna, atac, "-", "-", args.threads, args.alpha), flush=True)
    for cell_type in args.types:
        for side in args.sides:
            print(row(rna, atac, cell_type, side, args.threads, args.alpha), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
