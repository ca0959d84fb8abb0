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

``--pair bmmc-multiome`` runs the same rows on real multiome counts with coordinates: the 2,000
cells of ``tests/data/bmmc/`` (``benchmarks/make_validation_pairs.py``: the NeurIPS 2021 bone
marrow, networkvi 0.1.0's 5,000-cell subset), RNA counts against ATAC peak counts (peaks named
``chr1-9776-10668``). The file gives no gene coordinates, so each gene takes the transcription
start window (about 1.1 kb, with its strand) of the hg38 reference that CellOracle 0.20.0 ships
(``celloracle/motif_analysis/tss_ref_data/hg38_tss_info.bed``, Apache-2.0; the first window listed
for a gene with several); gene activity then counts the peaks within that window and 2 kb
upstream of it, promoters only, no gene bodies. ``--types`` names the BMMC types removed in turn
(default: the whole pair only)::

    pip download --no-deps --no-binary :all: networkvi==0.1.0
    pip download --no-deps celloracle==0.20.0
    python benchmarks/gene_activity.py --pair bmmc-multiome --networkvi-sdist networkvi-0.1.0.tar.gz \\
        --celloracle-wheel celloracle-0.20.0-py3-none-any.whl --types "CD14+ Mono" --sides rna atac
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

#: The transcription start windows inside CellOracle's wheel.
TSS_BED = "celloracle/motif_analysis/tss_ref_data/hg38_tss_info.bed"


def tss_windows(wheel: str) -> pd.DataFrame:
    """Gene symbol → chrom, start, end, strand: the first transcription start window listed per gene."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive, archive.open(TSS_BED) as bed:
        table = pd.read_csv(bed, sep="\t", header=None, names=["chrom", "start", "end", "gene", "score", "strand"])
    return table.drop_duplicates("gene").set_index("gene")[["chrom", "start", "end", "strand"]]


def bmmc_multiome_pair(sdist: str, wheel: str):
    """The ``bmmc-multiome`` cells as two AnnData of counts with coordinates: RNA genes with their
    TSS windows (:func:`tss_windows`; genes without one are dropped), ATAC peaks by name;
    ``obs["cell_type"]`` and ``obs["true_cell"]`` (the barcode) on both."""
    import tempfile
    from pathlib import Path

    import anndata as ad
    from make_validation_pairs import MULTIOME, bmmc_multiome, extract

    with tempfile.TemporaryDirectory() as folder:
        arrays = bmmc_multiome(extract(Path(sdist), MULTIOME, Path(folder)))
    rna, atac = arrays["multiome_rna"], arrays["multiome_atac"]
    windows = tss_windows(wheel)
    located = rna.var_names.isin(windows.index)
    rna = ad.AnnData(X=rna.X[:, located], obs=rna.obs.copy(), var=windows.loc[rna.var_names[located]].copy())
    for side in (rna, atac):
        side.obs[LABEL] = arrays["multiome_labels"]
        side.obs["true_cell"] = side.obs_names.to_numpy()
    print(f"# RNA {rna.n_obs} cells x {rna.n_vars} genes with a TSS window (of {len(located)}); "
          f"ATAC {atac.n_obs} cells x {atac.n_vars} peaks")
    return rna, atac


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
    parser.add_argument("--pair", choices=["example", "bmmc-multiome"], default="example")
    parser.add_argument("--networkvi-sdist", help="networkvi-0.1.0.tar.gz (--pair bmmc-multiome)")
    parser.add_argument("--celloracle-wheel", help="celloracle-0.20.0-py3-none-any.whl (--pair bmmc-multiome)")
    parser.add_argument("--types", nargs="*", default=None,
                        help="cell types removed in turn (default: every example type; none for bmmc-multiome)")
    parser.add_argument("--sides", nargs="+", default=["rna", "atac"], choices=["rna", "atac"])
    parser.add_argument("--alpha", type=float, nargs="+", default=[GENE_ACTIVITY_ALPHA],
                        help="fused weights of the gene-activity runs (one column each)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.pair == "example":
        rna, atac = make_linked_pair()
        types = list(SEGMENTS) if args.types is None else args.types
    else:
        if not (args.networkvi_sdist and args.celloracle_wheel):
            parser.error("--pair bmmc-multiome needs --networkvi-sdist and --celloracle-wheel")
        rna, atac = bmmc_multiome_pair(args.networkvi_sdist, args.celloracle_wheel)
        types = args.types or []
    unknown = sorted(set(types) - set(rna.obs[LABEL].astype(str)) - set(atac.obs[LABEL].astype(str)))
    if unknown:
        parser.error(f"--types: no cell of type {', '.join(map(repr, unknown))} in this pair")
    columns = " | ".join(f"--gene-activity, α = {alpha:g}: transfer (/ FOSCTTM)" for alpha in args.alpha)
    print(f"| removed | from | every default: transfer (/ FOSCTTM) | {columns} |")
    print("|---|---|" + "---|" * (1 + len(args.alpha)))
    print(row(rna, atac, "-", "-", args.threads, args.alpha), flush=True)
    for cell_type in types:
        for side in args.sides:
            print(row(rna, atac, cell_type, side, args.threads, args.alpha), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
