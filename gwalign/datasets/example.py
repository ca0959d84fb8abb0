"""The bundled example pair: simulated RNA counts and ATAC peaks from shared cell states.

Cells live on an asymmetric branching trajectory in a 2-D latent space (a stem splitting into a
long and a short branch: no mirror symmetry). Each gene and each peak responds to a smooth bump
in that space. Cell i of the RNA file and the cell with the same ``obs["true_cell"]`` in the
ATAC file share one latent state, the hidden ground truth used to score alignments. The ATAC
file lists its cells in another order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional
import numpy as np
import pandas as pd
import scipy.sparse as sp


#: Entries of the dense mean matrix drawn at once by :func:`_counts` (8 bytes each).
COUNT_BLOCK_ENTRIES = 20_000_000


SEGMENTS = {  # name: (start, end, share of cells)
    "progenitor": ((0.0, 0.0), (0.0, 1.0), 0.30),
    "transit": ((0.0, 1.0), (0.0, 1.6), 0.15),
    "branch_A": ((0.0, 1.6), (-0.6, 3.0), 0.33),
    "branch_B": ((0.0, 1.6), (1.0, 2.2), 0.22),
}


def latent_states(n_cells: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Latent 2-D positions and cell-type labels along the trajectory."""
    names = list(SEGMENTS)
    shares = np.array([SEGMENTS[n][2] for n in names])
    counts = np.floor(shares / shares.sum() * n_cells).astype(int)
    counts[0] += n_cells - counts.sum()
    points, labels = [], []
    for name, count in zip(names, counts):
        start, end, _ = SEGMENTS[name]
        t = rng.uniform(0, 1, count)[:, None]
        points.append(np.asarray(start) + t * (np.asarray(end) - np.asarray(start)))
        labels += [name] * count
    z = np.concatenate(points) + 0.04 * rng.normal(size=(n_cells, 2))
    return z, np.array(labels)


def _counts(z: np.ndarray, depth: np.ndarray, n_features: int, rng: np.random.Generator, width: float,
            base: float, height: float, cap: Optional[int] = None, anchor: Optional[np.ndarray] = None
            ) -> sp.csr_matrix:
    """Poisson counts whose mean is ``depth * (base + height * bump)``, each feature's bump a Gaussian
    centred on a random point of the trajectory (or on ``anchor``'s rows). Drawn in row blocks, so
    that atlas-sized examples (``gwalign example --cells``) never hold a dense cells × features
    matrix; the draws are the same as one call over all rows."""
    anchor = z[rng.integers(0, len(z), n_features)] if anchor is None else anchor
    rows = max(1, COUNT_BLOCK_ENTRIES // max(n_features, 1))
    blocks = []
    for lo in range(0, len(z), rows):
        sq = ((z[lo:lo + rows, None, :] - anchor[None, :, :]) ** 2).sum(axis=2)
        counts = rng.poisson(depth[lo:lo + rows] * (base + height * np.exp(-sq / (2 * width ** 2))))
        blocks.append(sp.csr_matrix((counts if cap is None else np.minimum(counts, cap)).astype(np.float32)))
    return sp.vstack(blocks, format="csr")


def make_example_pair(n_cells: int = 600, n_genes: int = 800, n_peaks: int = 2000, seed: int = 0):
    """Build (rna, atac) AnnData objects with counts, names, cell types and the truth key."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    z, labels = latent_states(n_cells, rng)
    depth = rng.lognormal(mean=0.0, sigma=0.3, size=(n_cells, 1))
    rna = _counts(z, depth, n_genes, rng, width=0.45, base=0.2, height=6.0)
    atac = _counts(z, depth, n_peaks, rng, width=0.35, base=0.02, height=0.6, cap=2)
    truth = np.array([f"cell{i:04d}" for i in range(n_cells)])
    genes = [f"Gene{g:04d}" for g in range(n_genes)]
    chrom = rng.integers(1, 20, n_peaks)
    starts = rng.integers(10_000, 90_000_000, n_peaks)
    peaks = [f"chr{c}:{s}-{s + 500}" for c, s in zip(chrom, starts)]
    peaks = list(pd.Index(peaks).where(~pd.Index(peaks).duplicated(), [f"{p}_b" for p in peaks]))
    rna_ad = ad.AnnData(X=rna, obs=pd.DataFrame({"cell_type": pd.Categorical(labels),
                                                 "true_cell": truth}, index=[f"rna_{t}" for t in truth]),
                        var=pd.DataFrame(index=genes))
    order = rng.permutation(n_cells)
    atac_ad = ad.AnnData(X=atac[order], obs=pd.DataFrame({"cell_type": pd.Categorical(labels[order]),
                                                          "true_cell": truth[order]},
                                                         index=[f"atac_{t}" for t in truth[order]]),
                         var=pd.DataFrame(index=peaks))
    return rna_ad, atac_ad


def write_example(out_dir: str | Path, seed: int = 0, n_cells: int = 600, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``rna.h5ad`` and ``atac.h5ad`` (``n_cells`` each) into ``out_dir``, each file complete or
    absent (written under a temporary name, then renamed).

    Raises
    ------
    gwalign.io.h5ad.InputError
        When a file of that name exists and ``overwrite`` is off, or ``out_dir`` cannot be written.
    """
    from gwalign.io.outputs import check_output_dir, staged_outputs

    out = Path(out_dir)
    check_output_dir(out, ["rna.h5ad", "atac.h5ad"], overwrite)
    rna, atac = make_example_pair(n_cells=n_cells, seed=seed)
    with staged_outputs(out) as staging:
        rna.write_h5ad(staging / "rna.h5ad", compression="gzip")
        atac.write_h5ad(staging / "atac.h5ad", compression="gzip")
    return out / "rna.h5ad", out / "atac.h5ad"


def make_linked_pair(n_cells: int = 600, n_genes: int = 800, n_peaks: int = 2000, linked_share: float = 0.5,
                     seed: int = 0):
    """An example pair with genomic coordinates: genes with ``chrom``/``start``/``end``/``strand``,
    peaks named ``chrN:start-end``, and ``linked_share`` of the peaks placed in a gene's body or
    promoter with the gene's own bump (open where the gene is expressed); the other peaks lie at
    random. The same trajectory, cell types and ``true_cell`` key as :func:`make_example_pair`."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    z, labels = latent_states(n_cells, rng)
    depth = rng.lognormal(mean=0.0, sigma=0.3, size=(n_cells, 1))
    gene_anchor = z[rng.integers(0, n_cells, n_genes)]
    linked = rng.choice(n_genes, size=int(round(linked_share * n_peaks)), replace=True)
    peak_anchor = np.vstack([gene_anchor[linked], z[rng.integers(0, n_cells, n_peaks - len(linked))]])
    rna = _counts(z, depth, n_genes, rng, width=0.45, base=0.2, height=6.0, anchor=gene_anchor)
    atac = _counts(z, depth, n_peaks, rng, width=0.35, base=0.02, height=0.6, cap=2, anchor=peak_anchor)
    genes = pd.DataFrame({"chrom": [f"chr{c}" for c in rng.integers(1, 20, n_genes)],
                          "start": rng.integers(100_000, 90_000_000, n_genes)},
                         index=[f"Gene{g:04d}" for g in range(n_genes)])
    genes["end"] = genes["start"] + rng.integers(5_000, 50_000, n_genes)
    genes["strand"] = rng.choice(["+", "-"], n_genes)
    # Linked peaks start inside their gene's body or its 2 kb promoter; the others anywhere.
    offset = rng.integers(-2_000, 5_000, len(linked))
    peak_chrom = np.r_[genes["chrom"].to_numpy()[linked], [f"chr{c}" for c in rng.integers(1, 20, n_peaks - len(linked))]]
    peak_start = np.r_[genes["start"].to_numpy()[linked] + offset, rng.integers(10_000, 90_000_000, n_peaks - len(linked))]
    names = pd.Index([f"{c}:{s}-{s + 500}" for c, s in zip(peak_chrom, peak_start)])
    names = names.where(~names.duplicated(), [f"{c}:{s + 1}-{s + 501}" for c, s in zip(peak_chrom, peak_start)])
    truth = np.array([f"cell{i:04d}" for i in range(n_cells)])
    obs = pd.DataFrame({"cell_type": pd.Categorical(labels), "true_cell": truth})
    rna_ad = ad.AnnData(X=rna, obs=obs.set_index(pd.Index([f"rna_{t}" for t in truth])), var=genes)
    order = rng.permutation(n_cells)
    atac_ad = ad.AnnData(X=atac[order], obs=obs.iloc[order].set_index(pd.Index([f"atac_{t}" for t in truth[order]])),
                         var=pd.DataFrame(index=names))
    return rna_ad, atac_ad
