"""Time of ``gwalign run``'s representation step per side (RNA: normalise, log1p, HVG, PCA; ATAC:
TF-IDF, LSI) on the example pair, with gwalign's randomised SVD (``gwalign.decompose``) against the
solvers it replaced (scanpy's ARPACK PCA, scikit-learn's TruncatedSVD), and how far apart the results
are for GW, which sees only distances: the variance the scores capture (gwalign's over the replaced
solver's; the exact leading subspace captures the most) and the relative difference of the pairwise
distances between 1000 cells (Frobenius norm).

    python benchmarks/representation.py --sizes 50000 --device cpu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import gwalign.preprocess as preprocess
from gwalign.example import make_example_pair

SVD = preprocess.truncated_svd_scores


def replaced_solvers(matrix, n_components: int, *, center: bool, seed: int, device=None) -> np.ndarray:
    """What ran before session 12: scanpy's PCA (ARPACK on sparse input), scikit-learn's TruncatedSVD."""
    if center:
        import anndata as ad
        import scanpy as sc

        work = ad.AnnData(matrix)
        sc.pp.pca(work, n_comps=n_components, random_state=seed)
        return np.asarray(work.obsm["X_pca"], dtype=np.float64)
    from sklearn.decomposition import TruncatedSVD

    return TruncatedSVD(n_components=n_components, random_state=seed).fit_transform(matrix)


def distance_difference(a: np.ndarray, b: np.ndarray, cells: int = 1000) -> float:
    """‖D_a − D_b‖ / ‖D_b‖ over the pairwise distances of a seeded sample of cells."""
    from scipy.spatial.distance import pdist

    rows = np.random.default_rng(0).choice(len(a), size=min(cells, len(a)), replace=False)
    da, db = pdist(a[rows]), pdist(b[rows])
    return float(np.linalg.norm(da - db) / np.linalg.norm(db))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print("| cells | side | gwalign.decompose (s) | scanpy / sklearn (s) | variance captured, ratio | distances, relative difference |")
    print("|---|---|---|---|---|---|")
    for adata in make_example_pair(n_cells=300):   # imports and first calls out of the timings
        for solver in (SVD, replaced_solvers):
            preprocess.truncated_svd_scores = solver
            preprocess.representation(adata, Path("warm-up"), None, "auto", 30, 2000, 0, device)
    for cells in args.sizes:
        for adata, side in zip(make_example_pair(n_cells=cells), ("RNA", "ATAC")):
            runs = {}
            for name, solver in (("decompose", SVD), ("replaced", replaced_solvers)):
                preprocess.truncated_svd_scores = solver
                tick = time.perf_counter()
                runs[name] = (preprocess.representation(adata, Path(side), None, "auto", 30, 2000, 0, device).matrix,
                              time.perf_counter() - tick)
            preprocess.truncated_svd_scores = SVD
            ours, theirs = runs["decompose"][0], runs["replaced"][0]
            captured = float(((ours - ours.mean(0)) ** 2).sum() / ((theirs - theirs.mean(0)) ** 2).sum())
            print(f"| {cells} | {side} | {runs['decompose'][1]:.1f} | {runs['replaced'][1]:.1f} | {captured:.4f} | "
                  f"{distance_difference(ours, theirs):.4f} |", flush=True)


if __name__ == "__main__":
    main()
