"""Representations for GW: an obsm key, PCA of RNA, or TF-IDF + LSI of ATAC.

GW compares distances within each data set, so the representation only needs to capture the
biological variation of its own modality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np
import scipy.sparse as sp
from gwalign.preprocess.svd import truncated_svd_scores
from gwalign.io.h5ad import InputError


#: Peak names such as chr1:100-200, chr1-100-200 or chrX_5_900.
PEAK_PATTERN = re.compile(r"^(chr)?[0-9A-Za-z]+[:_-]\d+[-_]\d+$")


@dataclass
class Representation:
    """What the engine gets for one file, and what happened on the way."""

    matrix: np.ndarray
    modality: str
    source: str
    dropped_cells: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kept: np.ndarray | None = None


def detect_modality(var_names) -> str:
    """``atac`` when most feature names look like genomic intervals, else ``rna``."""
    names = list(map(str, var_names[:2000]))
    hits = sum(bool(PEAK_PATTERN.match(n)) for n in names)
    return "atac" if names and hits >= 0.5 * len(names) else "rna"


def is_counts(x) -> bool:
    values = x.data if sp.issparse(x) else np.asarray(x)
    sample = np.asarray(values).ravel()[:200_000]
    return bool(sample.size and (sample >= 0).all() and np.allclose(sample, np.round(sample)))


def _check_finite(path: Path, name: str, x) -> None:
    values = x.data if sp.issparse(x) else np.asarray(x)
    if not np.isfinite(values).all():
        kind = "NaN" if np.isnan(values).any() else "Inf"
        raise InputError(f"{path}: {name} contains {kind} values")


def representation(adata, path: Path, rep_key: str | None, modality: str, n_components: int,
                   n_top_genes: int, seed: int, device=None) -> Representation:
    """Compute (or fetch) the representation of one file.

    Cells whose counts are all zero are dropped (with a note), since they carry no signal and
    would break normalisation. The input AnnData is never modified. The PCA / LSI products run on
    ``device`` (a torch device; default CPU): :func:`gwalign.preprocess.svd.truncated_svd_scores`.
    """
    detected = detect_modality(adata.var_names) if modality == "auto" else modality
    if rep_key is not None:
        if rep_key not in adata.obsm:
            keys = ", ".join(sorted(adata.obsm.keys())) or "none"
            raise InputError(f"{path}: obsm key {rep_key!r} not found (obsm keys: {keys})")
        x = adata.obsm[rep_key]
        x = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] == 0:
            raise InputError(f"{path}: obsm[{rep_key!r}] must be a 2-D array with at least one column")
        _check_finite(path, f"obsm[{rep_key!r}]", x)
        return Representation(np.array(x, dtype=np.float64), detected, f"obsm[{rep_key}]",
                              kept=np.ones(adata.n_obs, dtype=bool))
    x = adata.X
    if x is None:
        raise InputError(f"{path}: has no X matrix; give a representation with --rep-source/--rep-target")
    _check_finite(path, "X", x)
    totals = np.asarray(x.sum(axis=1)).ravel()
    kept = totals != 0
    dropped = list(map(str, adata.obs_names[~kept]))
    notes = [f"dropped {len(dropped)} cell(s) with all-zero counts"] if dropped else []
    if kept.sum() < 3:
        raise InputError(f"{path}: fewer than 3 cells with non-zero counts")
    sub = adata[kept]
    if detected == "atac":
        matrix = _lsi(sub.X, n_components, seed, device)
        source = "TF-IDF + LSI (first component dropped)"
    else:
        matrix, more = _rna_pca(sub, n_components, n_top_genes, seed, device)
        notes += more
        source = "normalise + log1p + HVG + PCA"
    return Representation(matrix, detected, source, dropped, notes, kept)


def _rna_pca(adata, n_components: int, n_top_genes: int, seed: int, device=None) -> tuple[np.ndarray, list[str]]:
    import scanpy as sc

    work = adata.copy()
    notes: list[str] = []
    if is_counts(work.X):
        sc.pp.normalize_total(work, target_sum=1e4)
        sc.pp.log1p(work)
    else:
        notes.append("X is not integer counts: assumed already log-normalised, not normalised again")
    if work.n_vars > n_top_genes:
        sc.pp.highly_variable_genes(work, n_top_genes=n_top_genes)
        work = work[:, work.var["highly_variable"]].copy()
    n_comp = int(min(n_components, work.n_obs - 1, work.n_vars - 1))
    return truncated_svd_scores(work.X, n_comp, center=True, seed=seed, device=device), notes


def _lsi(x, n_components: int, seed: int, device=None) -> np.ndarray:
    """TF-IDF (term frequency × log inverse document frequency) then truncated SVD.

    The first LSI component tracks sequencing depth in scATAC data and is dropped (Signac,
    ArchR practice).
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    tf = sp.diags(1.0 / np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1e-12)) @ x
    idf = np.log1p(x.shape[0] / (1.0 + np.asarray((x > 0).sum(axis=0)).ravel()))
    tfidf = (tf @ sp.diags(idf)).tocsr()
    tfidf.data = np.log1p(tfidf.data * 1e4)
    n_comp = int(min(n_components + 1, min(x.shape) - 1))
    lsi = truncated_svd_scores(tfidf, n_comp, center=False, seed=seed, device=device)
    return lsi[:, 1:] if lsi.shape[1] > 1 else lsi
