"""Gene activity: shared features of an RNA file and an ATAC file from their genomic coordinates.

A gene's activity in an ATAC cell is the cell's count over the peaks that overlap the gene's body
or its promoter (2 kb upstream of the transcription start; both ends when the strand is not
known), the construction of Signac's ``GeneActivity`` and ArchR's simplest gene score. RNA
expression and ATAC activity of the same genes are two measurements of one thing, so they can
serve as fused GW's shared features (``gwalign run --gene-activity``), the remedy for what
geometry alone cannot decide (docs/how-it-works/limits.md).

Coordinates are read from ``var``: ``chrom``/``start``/``end`` columns (``strand`` optional), an
``interval`` column (``chr1:100-600``, the 10x multiome convention), or, for peaks, the var names
themselves (``chr1:100-600`` or ``chr1-100-600``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gwalign.io.h5ad import InputError
from gwalign.preprocess.representation import log_normalised

#: Promoter length upstream of a gene's start, in base pairs.
PROMOTER = 2000

#: Width of the shared features: principal components of both sides' activities.
N_COMPONENTS = 30

#: Genes (the most variable in RNA among those some peak reaches) the features are built from.
MAX_GENES = 2000

INTERVAL = re.compile(r"^(?P<chrom>[^:]+?)[:_-](?P<start>\d+)[-_](?P<end>\d+)$")


@dataclass(frozen=True)
class Regions:
    """Genomic intervals (``end`` inclusive), one per feature, with an optional strand (+1 / -1 / 0)."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    strand: Optional[np.ndarray] = None


def regions(var: pd.DataFrame, path: Path, use_names: bool) -> Optional[Regions]:
    """The features' intervals from ``var`` (columns, an ``interval`` column, or with ``use_names``
    the var names), or ``None`` where ``var`` holds none; an error names the file when some
    intervals cannot be read."""
    if {"chrom", "start", "end"} <= set(var.columns):
        table = pd.DataFrame({"chrom": var["chrom"].astype(str), "start": var["start"], "end": var["end"]})
    elif "interval" in var.columns or use_names:
        texts = var["interval"].astype(str) if "interval" in var.columns else pd.Series(var.index.astype(str))
        table = texts.str.extract(INTERVAL)
        if table.isna().any(axis=None) and table.notna().all(axis=1).mean() < 0.5:
            return None
    else:
        return None
    readable = table.notna().all(axis=1).to_numpy()
    start = pd.to_numeric(table["start"], errors="coerce").to_numpy()
    end = pd.to_numeric(table["end"], errors="coerce").to_numpy()
    readable &= np.isfinite(start) & np.isfinite(end)
    if not readable.any():
        raise InputError(f"{path}: no feature has a readable genomic interval")
    strand = None
    if "strand" in var.columns:
        strand = var["strand"].astype(str).map({"+": 1, "-": -1}).fillna(0).to_numpy(dtype=np.int8)
    chrom = np.where(readable, table["chrom"].astype(str).to_numpy(), "")
    return Regions(chrom, np.where(readable, start, -1).astype(np.int64), np.where(readable, end, -2).astype(np.int64),
                   strand)


def gene_windows(genes: Regions, promoter: int = PROMOTER) -> Regions:
    """Each gene's body plus its promoter: upstream of the start on its strand, both ends unknown."""
    strand = genes.strand if genes.strand is not None else np.zeros(len(genes.start), dtype=np.int8)
    start = genes.start - np.where(strand >= 0, promoter, 0)
    end = genes.end + np.where(strand <= 0, promoter, 0)
    return Regions(genes.chrom, np.maximum(start, 0), end)


def overlaps(peaks: Regions, windows: Regions) -> sp.csr_matrix:
    """Peaks × genes 0/1 matrix: 1 where the peak overlaps the gene's window."""
    rows, cols = [], []
    for chrom in np.intersect1d(np.unique(peaks.chrom[peaks.chrom != ""]), np.unique(windows.chrom)):
        on_peaks = np.flatnonzero(peaks.chrom == chrom)
        order = on_peaks[np.argsort(peaks.start[on_peaks], kind="stable")]
        starts, longest = peaks.start[order], int((peaks.end[order] - peaks.start[order]).max())
        for gene in np.flatnonzero(windows.chrom == chrom):
            lo, hi = windows.start[gene], windows.end[gene]
            # Peaks that start within [lo - longest, hi] are the only ones that can reach the window.
            found = order[np.searchsorted(starts, lo - longest):np.searchsorted(starts, hi, side="right")]
            found = found[peaks.end[found] >= lo]
            rows.append(found)
            cols.append(np.full(len(found), gene))
    rows_all = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    cols_all = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    return sp.csr_matrix((np.ones(len(rows_all)), (rows_all, cols_all)), shape=(len(peaks.start), len(windows.start)))


def gene_activity(atac_counts, peak_by_gene: sp.csr_matrix) -> sp.csr_matrix:
    """Cells × genes: each cell's counts summed over the peaks overlapping each gene's window."""
    counts = atac_counts if sp.issparse(atac_counts) else sp.csr_matrix(np.asarray(atac_counts))
    return sp.csr_matrix(counts @ peak_by_gene)


def most_variable(x: sp.csr_matrix, n: int) -> np.ndarray:
    """Columns of the ``n`` largest variances, in column order."""
    mean = np.asarray(x.mean(axis=0)).ravel()
    variance = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean ** 2
    return np.sort(np.argsort(-variance, kind="stable")[:n])


def shared_projection(rna: np.ndarray, activity: np.ndarray, n_components: int = N_COMPONENTS
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Both sides in one basis: each side's genes standardised on that side (the two measurements
    differ in scale and offset), then the leading eigenvectors of the summed gene covariances (the
    principal axes of the stacked sides)."""
    sides = [(m - m.mean(axis=0)) / np.maximum(m.std(axis=0), 1e-12) for m in (rna, activity)]
    gram = sides[0].T.astype(np.float64) @ sides[0] + sides[1].T.astype(np.float64) @ sides[1]
    _, vectors = np.linalg.eigh(gram)
    basis = vectors[:, ::-1][:, :min(n_components, gram.shape[0])]
    return (sides[0] @ basis).astype(np.float64), (sides[1] @ basis).astype(np.float64)


#: Peak names :func:`has_coordinates` reads, evenly spaced: enough to find the chromosomes'
#: naming, without parsing every name of a large file on each plain run.
PEAKS_SAMPLED = 2000


def has_coordinates(rna_var: pd.DataFrame, atac_var: pd.DataFrame) -> bool:
    """Whether an RNA ``var`` and an ATAC ``var`` carry coordinates that :func:`activity_features`
    can match: both readable, on chromosomes named alike (``chr1`` on both sides, not ``1``
    against ``chr1``). The RNA columns are looked at first: they are rarer, and cheap to check;
    the peaks are read from an evenly spaced sample (:data:`PEAKS_SAMPLED`)."""
    if not ({"chrom", "start", "end"} <= set(rna_var.columns) or "interval" in rna_var.columns):
        return False
    step = max(1, len(atac_var) // PEAKS_SAMPLED)
    try:
        genes = regions(rna_var, Path("rna"), use_names=False)
        peaks = regions(atac_var.iloc[::step], Path("atac"), use_names=True)
    except InputError:
        return False
    if genes is None or peaks is None:
        return False
    return bool(np.intersect1d(genes.chrom[genes.chrom != ""], peaks.chrom[peaks.chrom != ""]).size)


def activity_features(rna, atac, rna_path: Path, atac_path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Shared features of an RNA and an ATAC AnnData from their coordinates: the RNA expression and
    the ATAC gene activity of the genes that some peak reaches (at most :data:`MAX_GENES`, the
    most variable in RNA), log-normalised and projected on :func:`shared_projection`'s basis.
    Returns (RNA features, ATAC features, genes used)."""
    genes = regions(rna.var, rna_path, use_names=False)
    if genes is None:
        raise InputError(f"{rna_path}: --gene-activity needs gene coordinates in var "
                         "(chrom/start/end columns or an 'interval' column)")
    peaks = regions(atac.var, atac_path, use_names=True)
    if peaks is None:
        raise InputError(f"{atac_path}: --gene-activity needs peak coordinates (peak names such as "
                         "chr1:100-600, an 'interval' column or chrom/start/end columns)")
    peak_by_gene = overlaps(peaks, gene_windows(genes))
    reached = np.flatnonzero(np.asarray(peak_by_gene.sum(axis=0)).ravel() > 0)
    if len(reached) < 2:
        raise InputError(f"{rna_path}, {atac_path}: fewer than 2 genes overlap a peak "
                         f"({len(reached)}); do the two files use the same genome and chromosome names?")
    expression = sp.csr_matrix(log_normalised(sp.csr_matrix(rna.X[:, reached])))
    activity = sp.csr_matrix(log_normalised(gene_activity(atac.X, peak_by_gene[:, reached])))
    # The genes that vary most in RNA carry the cell types; dense from here on, so keep it bounded.
    keep = most_variable(expression, MAX_GENES)
    features = shared_projection(expression[:, keep].toarray(), activity[:, keep].toarray())
    return features[0], features[1], len(keep)
