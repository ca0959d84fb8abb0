"""Build the validation pairs of tests/data/pbmc68k/ from scanpy's bundled PBMC 68k subset.

scanpy ships ``10x_pbmc68k_reduced.h5ad`` (700 cells of 10x Genomics' Fresh 68k PBMCs, Zheng et al.
2017, 765 genes, log-normalised counts in ``.raw``, cell types in ``obs["bulk_labels"]``). Its
genes are split at random into two disjoint halves, and:

- ``genes_a`` / ``genes_b``: every cell on both sides, side A measured by one half of the genes and
  side B by the other (paired: row i is the same cell; FOSCTTM applies);
- ``cells_a`` / ``cells_b``: the cells split at random into two disjoint halves too, A's cells by
  one half of the genes, B's by the other (unpaired: label transfer only).

Each side is z-scored per gene and reduced to its first 30 principal components. Both pairs are
RNA against RNA on different genes: a check of the geometry on data no default was chosen on,
not of a second modality. Writes the arrays and the labels as .npy files.

    python benchmarks/make_pbmc68k_pairs.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "pbmc68k"
COMPONENTS = 30


def principal_components(x: np.ndarray, n: int = COMPONENTS) -> np.ndarray:
    """The first ``n`` principal components of ``x``'s z-scored columns (signs fixed: the largest
    loading of each component positive)."""
    z = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    signs = np.sign(vt[np.arange(n), np.abs(vt[:n]).argmax(axis=1)])
    return (u[:, :n] * s[:n] * signs).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    x = adata.raw.X.toarray() if hasattr(adata.raw.X, "toarray") else np.asarray(adata.raw.X)
    labels = adata.obs["bulk_labels"].to_numpy().astype(str)   # a unicode array: no pickle needed to load it
    rng = np.random.default_rng(args.seed)
    genes = rng.permutation(x.shape[1])
    half_a, half_b = genes[: len(genes) // 2], genes[len(genes) // 2:]
    cells = rng.permutation(x.shape[0])
    cells_a, cells_b = np.sort(cells[: len(cells) // 2]), np.sort(cells[len(cells) // 2:])
    args.out.mkdir(parents=True, exist_ok=True)
    arrays = {
        "genes_a": principal_components(x[:, half_a]), "genes_b": principal_components(x[:, half_b]),
        "labels": labels,
        "cells_a": principal_components(x[np.ix_(cells_a, half_a)]),
        "cells_b": principal_components(x[np.ix_(cells_b, half_b)]),
        "cells_a_labels": labels[cells_a], "cells_b_labels": labels[cells_b],
    }
    for name, value in arrays.items():
        np.save(args.out / f"{name}.npy", value)
        print(f"{name}.npy {value.shape}")


if __name__ == "__main__":
    main()
