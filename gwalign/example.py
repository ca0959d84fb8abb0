"""The bundled example pair: simulated RNA counts and ATAC peaks from shared cell states.

Cells live on an asymmetric branching trajectory in a 2-D latent space (a stem splitting into a
long and a short branch: no mirror symmetry). Each gene and each peak responds to a smooth bump
in that space. Cell i of the RNA file and the cell with the same ``obs["true_cell"]`` in the
ATAC file share one latent state, the hidden ground truth used to score alignments. The ATAC
file lists its cells in another order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

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


def _responses(z: np.ndarray, n_features: int, rng: np.random.Generator, width: float) -> np.ndarray:
    """Each feature's mean is a Gaussian bump centred on a random point of the trajectory."""
    anchor = z[rng.integers(0, len(z), n_features)]
    sq = ((z[:, None, :] - anchor[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-sq / (2 * width ** 2))


def make_example_pair(n_cells: int = 600, n_genes: int = 800, n_peaks: int = 2000, seed: int = 0):
    """Build (rna, atac) AnnData objects with counts, names, cell types and the truth key."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    z, labels = latent_states(n_cells, rng)
    depth = rng.lognormal(mean=0.0, sigma=0.3, size=(n_cells, 1))
    rna_rate = depth * (0.2 + 6.0 * _responses(z, n_genes, rng, width=0.45))
    rna = sp.csr_matrix(rng.poisson(rna_rate).astype(np.float32))
    atac_rate = depth * (0.02 + 0.6 * _responses(z, n_peaks, rng, width=0.35))
    atac = sp.csr_matrix(np.minimum(rng.poisson(atac_rate), 2).astype(np.float32))
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


def write_example(out_dir: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``rna.h5ad`` and ``atac.h5ad`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rna, atac = make_example_pair(seed=seed)
    paths = (out / "rna.h5ad", out / "atac.h5ad")
    rna.write_h5ad(paths[0], compression="gzip")
    atac.write_h5ad(paths[1], compression="gzip")
    return paths
