"""Representations for GW: an obsm key, PCA of RNA, or TF-IDF + LSI of ATAC.

GW compares distances within each data set, so the representation only needs to capture the
biological variation of its own modality.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np
import scipy.sparse as sp
from gwalign.errors import GWAlignWarning
from gwalign.io.content import check_finite, numeric_matrix, same_rows, stored_values, x_kind
from gwalign.io.h5ad import InputError
from gwalign.preprocess.svd import truncated_svd_scores


#: Peak names such as chr1:100-200, chr1-100-200 or chrX_5_900.
PEAK_PATTERN = re.compile(r"^(chr)?[0-9A-Za-z]+[:_-]\d+[-_]\d+$")


@dataclass
class Representation:
    """What the engine gets for one file, and what happened on the way."""

    matrix: np.ndarray
    modality: str
    source: str
    unaligned_cells: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kept: np.ndarray | None = None


def detect_modality(var_names) -> str:
    """``atac`` when most feature names look like genomic intervals, else ``rna``."""
    names = list(map(str, var_names[:2000]))
    hits = sum(bool(PEAK_PATTERN.match(n)) for n in names)
    return "atac" if names and hits >= 0.5 * len(names) else "rna"


def is_counts(x) -> bool:
    """True when ``x`` holds non-negative integers (:func:`gwalign.io.content.x_kind`)."""
    return x_kind(x) == "counts"


#: Spread (absolute) of a computed PCA or LSI below which its cells count as identical: the scores
#: of identical inputs are rounding noise around zero, those of real cells differ by far more.
COMPUTED_SPREAD_FLOOR = 1e-9


def representation(adata, path: Path, rep_key: str | None, modality: str, n_components: int,
                   n_top_genes: int, seed: int, device=None, min_cells: int = 3) -> Representation:
    """Compute (or fetch) the representation of one file.

    Cells whose counts are all zero have no representation: they are left out of it (``kept``
    marks the others, ``unaligned_cells`` names them) and stay in the outputs, unaligned. The
    input AnnData is never modified. The PCA / LSI products run on ``device`` (a torch device;
    default CPU): :func:`gwalign.preprocess.svd.truncated_svd_scores`.

    Raises
    ------
    InputError
        For a matrix that cannot be aligned: NaN/Inf, text, negative integer counts, negative ATAC
        values, every cell the same, or fewer than ``min_cells`` cells with counts.
    """
    detected = detect_modality(adata.var_names) if modality == "auto" else modality
    if rep_key is not None:
        return _obsm_representation(adata, path, rep_key, detected)
    x = adata.X
    if x is None or adata.n_vars == 0:
        raise InputError(f"{path}: has no X matrix; give a representation with --rep-source/--rep-target")
    check_finite(path, "X", x)
    kind = _check_kind(path, x, detected)
    if same_rows(x):
        raise InputError(f"{path}: every cell has the same X (a constant matrix): there is nothing to align")
    totals = np.asarray(x.sum(axis=1)).ravel()
    kept = totals != 0
    unaligned = list(map(str, adata.obs_names[~kept]))
    notes = [f"{len(unaligned)} cell(s) with all-zero counts not aligned (kept in the outputs)"] if unaligned else []
    if kept.sum() < min_cells:
        raise InputError(f"{path}: {int(kept.sum())} cells with non-zero counts, fewer than k+1 = {min_cells}")
    sub = adata[kept]
    if detected == "atac":
        matrix = _lsi(sub.X, n_components, seed, device)
        source = "TF-IDF + LSI (first component dropped)"
    else:
        matrix, more = _rna_pca(sub, kind, n_components, n_top_genes, seed, device)
        notes += more
        source = "normalise + log1p + HVG + PCA" if kind == "counts" else "HVG + PCA (X used as is)"
    if same_rows(matrix, floor=COMPUTED_SPREAD_FLOOR):
        raise InputError(f"{path}: every cell with counts has the same profile after normalisation: "
                         "there is nothing to align")
    return Representation(matrix, detected, source, unaligned, notes, kept)


def _obsm_representation(adata, path: Path, rep_key: str, detected: str) -> Representation:
    if rep_key not in adata.obsm:
        keys = ", ".join(sorted(adata.obsm.keys())) or "none"
        raise InputError(f"{path}: obsm key {rep_key!r} not found (obsm keys: {keys})")
    name = f"obsm[{rep_key!r}]"
    x = numeric_matrix(path, name, adata.obsm[rep_key])
    check_finite(path, name, x)
    if same_rows(x):
        raise InputError(f"{path}: every cell has the same {name}: there is nothing to align")
    return Representation(x, detected, f"obsm[{rep_key}]", kept=np.ones(adata.n_obs, dtype=bool))


def _check_kind(path: Path, x, modality: str) -> str:
    """What X holds (:func:`gwalign.io.content.x_kind`), refusing what no path can use and warning
    where X is read in a way the user may not expect."""
    kind = x_kind(x)
    if kind == "negative integers":
        raise InputError(f"{path}: X holds integers with negative values (minimum {stored_values(x).min():g}): "
                         "counts must be non-negative")
    if kind == "scaled" and modality == "atac":
        raise InputError(f"{path}: X has negative values (minimum {stored_values(x).min():g}): ATAC needs "
                         "non-negative counts (or give an obsm representation with --rep-source/--rep-target)")
    if kind == "scaled":
        warnings.warn(f"{path.name}: X has negative values: taken as scaled data (no normalisation, "
                      "PCA as is); give counts or log-normalised values otherwise", GWAlignWarning, stacklevel=3)
    return kind


#: Counts per cell after normalisation (scanpy's ``normalize_total(target_sum=1e4)`` convention).
COUNTS_PER_CELL = 1e4


def log_normalised(x):
    """``log1p`` of each cell's counts scaled to :data:`COUNTS_PER_CELL`, what
    ``sc.pp.normalize_total(adata, target_sum=1e4)`` then ``sc.pp.log1p`` compute; cells without
    counts stay zero. Plain scipy: scanpy's version compiles a numba kernel on its first call
    after installation (3–4 s on 2 CPU cores). Returns float32 (sparse if ``x`` is)."""
    totals = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    scale = np.divide(COUNTS_PER_CELL, totals, out=np.zeros_like(totals), where=totals > 0)
    if sp.issparse(x):
        scaled = sp.csr_matrix(sp.diags(scale) @ x.astype(np.float64))
        scaled.data = np.log1p(scaled.data)
        return scaled.astype(np.float32)
    return np.log1p(np.asarray(x, dtype=np.float64) * scale[:, None]).astype(np.float32)


def _rna_pca(adata, kind: str, n_components: int, n_top_genes: int, seed: int, device=None
             ) -> tuple[np.ndarray, list[str]]:
    import scanpy as sc

    work = adata.copy()
    notes: list[str] = []
    if kind == "counts":
        work.X = log_normalised(work.X)
    elif kind == "normalised":
        notes.append("X is not integer counts: assumed already log-normalised, not normalised again")
    else:
        notes.append("X has negative values: taken as scaled data, not normalised again")
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
