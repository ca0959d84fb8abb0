"""Build the paired multi-omic validation pairs of tests/data/bmmc/ and tests/data/pbmc-cite/.

Three pairs of real cells measured twice, each with cell-type labels:

- ``bmmc-multiome``: RNA against ATAC (10x Multiome), 2,000 cells;
- ``bmmc-cite``: RNA against ADT proteins (CITE-seq), 2,000 cells;
- ``pbmc-cite``: RNA against ADT proteins (CITE-seq), 800 cells.

The two BMMC pairs come from the 5,000-cell subsets of the NeurIPS 2021 bone-marrow data (Luecken
et al. 2021, GEO GSE194122) that networkvi 0.1.0 ships in its source distribution
(``docs/source/notebooks/neurips2021_{multiome,cite}_bmmc_luecken2021.h5ad``); each pair is a
seeded random subsample (seed 0) of 2,000 of its file's cells. The multiome file stores its RNA
scaled per cell: each cell's counts are recovered by dividing its row by its smallest non-zero
value (the value of one count). The PBMC pair comes from the 1,200-cell PBMC CITE-seq mosaic
(Hao et al. 2021, GEO GSE164378, as subset by MIDAS) that scmidas 0.3.0 ships in its wheel
(``scmidas/data/quickstart_pbmc_mosaic.h5mu``): the 800 cells measured in both modalities.

Each side's counts go through gwalign's own preprocessing (``representation`` of
:mod:`gwalign.preprocess.representation`) with the defaults of ``gwalign run`` (``RunConfig()``:
modality detected from the feature names, 30 components, 2,000 highly variable genes, seed 0) on
the CPU, as ``gwalign run`` computes them for a user who gives these counts as .h5ad files. Rows
are not scaled here: ``benchmarks/real_data.py`` scales them as ``gwalign run --normalise`` does.
Cells without counts on either side are left out before subsampling, so that every cell of a
pair has a representation on both sides. Writes float32 representations and unicode label arrays
as .npy files.

The inputs (PyPI is the only source needed)::

    pip download --no-deps --no-binary :all: networkvi==0.1.0   # networkvi-0.1.0.tar.gz, 86 MB
    pip download --no-deps scmidas==0.3.0                       # scmidas-0.3.0-py3-none-any.whl

    python benchmarks/make_validation_pairs.py --networkvi-sdist networkvi-0.1.0.tar.gz \\
        --scmidas-wheel scmidas-0.3.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    import anndata
    import pandas

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data"
NOTEBOOKS = "networkvi-0.1.0/docs/source/notebooks"
MULTIOME = f"{NOTEBOOKS}/neurips2021_multiome_bmmc_luecken2021.h5ad"
CITE = f"{NOTEBOOKS}/neurips2021_cite_bmmc_luecken2021.h5ad"
MOSAIC = "scmidas/data/quickstart_pbmc_mosaic.h5mu"
#: Cells kept of each BMMC file, and the seed of the subsample.
BMMC_CELLS, SUBSAMPLE_SEED = 2000, 0
#: Largest distance of a recovered multiome RNA count from an integer (float32 rounding of the
#: scaled values is about 1e-4 at thousands of counts).
INTEGER_TOLERANCE = 1e-2


def extract(archive: Path, member: str, folder: Path) -> Path:
    """Copy ``member`` of a .tar.gz sdist or a .whl (zip) archive into ``folder``."""
    target = folder / Path(member).name
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as wheel, wheel.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return target
    with tarfile.open(archive, "r:gz") as sdist:
        src = sdist.extractfile(member)
        if src is None:
            raise SystemExit(f"{archive}: {member} is not a regular file")
        with src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def counts_anndata(x: Any, features: "pandas.Index", cells: "pandas.Index") -> "anndata.AnnData":
    """An AnnData holding ``x`` (cells × features counts, stored as float32 CSR) as ``X``."""
    import anndata as ad
    import pandas as pd

    adata = ad.AnnData(X=sp.csr_matrix(x, dtype=np.float32), obs=pd.DataFrame(index=list(map(str, cells))),
                       var=pd.DataFrame(index=list(map(str, features))))
    if not adata.var_names.is_unique:
        raise SystemExit(f"duplicate feature names among {adata.n_vars}")
    return adata


def gwalign_representation(adata: "anndata.AnnData", name: str) -> tuple[np.ndarray, str]:
    """``adata``'s representation as ``gwalign run`` computes it with its defaults (CPU), and the
    route it took (detected modality and method)."""
    import torch

    from gwalign.config.run import RunConfig
    from gwalign.preprocess.representation import representation

    config = RunConfig()
    inputs = config.inputs
    rep = representation(adata, Path(f"{name}.h5ad"), inputs.rep_source, inputs.modality_source,
                         inputs.n_components, inputs.n_top_genes, config.engine.compute.seed,
                         torch.device("cpu"), min_cells=config.engine.min_points)
    if not rep.kept.all():
        raise SystemExit(f"{name}: {int((~rep.kept).sum())} cells without counts reached the representation")
    return rep.matrix.astype(np.float32), f"{rep.modality}: {rep.source}"


def with_counts(*matrices: Any) -> np.ndarray:
    """Rows with at least one count in every matrix."""
    return np.logical_and.reduce([np.asarray(m.sum(axis=1)).ravel() > 0 for m in matrices])


def subsample(keep: np.ndarray, size: int, seed: int = SUBSAMPLE_SEED) -> np.ndarray:
    """``size`` of the rows marked by ``keep``, drawn at random (``seed``), in file order."""
    rows = np.flatnonzero(keep)
    return np.sort(np.random.default_rng(seed).choice(rows, size=min(size, len(rows)), replace=False))


def unscaled_counts(x: Any) -> sp.csr_matrix:
    """Integer counts from values scaled per cell: each row over its smallest non-zero value,
    taken as one count (refused unless every quotient is an integer to float32 rounding)."""
    x = sp.csr_matrix(x, dtype=np.float64)
    unit = np.ones(x.shape[0])
    for row in range(x.shape[0]):
        values = x.data[x.indptr[row]:x.indptr[row + 1]]
        if len(values):
            unit[row] = values.min()
    counts = sp.csr_matrix(sp.diags(1.0 / unit) @ x)
    error = np.abs(counts.data - np.rint(counts.data)).max(initial=0.0)
    if error > INTEGER_TOLERANCE:
        raise SystemExit(f"multiome RNA: rows over their smallest value are not integers (off by {error:g})")
    counts.data = np.rint(counts.data)
    return counts


def bmmc_multiome(path: Path) -> dict[str, Any]:
    """The ``bmmc-multiome`` pair: RNA and ATAC counts (AnnData) of 2,000 cells, and their labels."""
    import anndata as ad

    data = ad.read_h5ad(path)
    genes = (data.var["modality"] == "Gene Expression").to_numpy()
    peaks = (data.var["modality"] == "Peaks").to_numpy()
    rna, atac = unscaled_counts(data.X[:, genes]), sp.csr_matrix(data.X[:, peaks])
    rows = subsample(with_counts(rna, atac), BMMC_CELLS)
    cells = data.obs_names[rows]
    return {"multiome_rna": counts_anndata(rna[rows], data.var_names[genes], cells),
            "multiome_atac": counts_anndata(atac[rows], data.var_names[peaks], cells),
            "multiome_labels": data.obs["cell_type"].to_numpy().astype(str)[rows]}


def bmmc_cite(path: Path) -> dict[str, Any]:
    """The ``bmmc-cite`` pair: RNA and ADT counts (AnnData) of 2,000 cells, and their labels."""
    import anndata as ad

    data = ad.read_h5ad(path)
    rna, adt = sp.csr_matrix(data.X), sp.csr_matrix(np.asarray(data.obsm["protein_expression"]))
    proteins = data.uns["protein_expression"]["var"].index
    rows = subsample(with_counts(rna, adt), BMMC_CELLS)
    cells = data.obs_names[rows]
    return {"cite_rna": counts_anndata(rna[rows], data.var_names, cells),
            "cite_adt": counts_anndata(adt[rows], proteins, cells),
            "cite_labels": data.obs["cell_type"].to_numpy().astype(str)[rows]}


def pbmc_cite(path: Path) -> dict[str, Any]:
    """The ``pbmc-cite`` pair: RNA and ADT counts (AnnData) of the cells measured by both, and
    their labels (in the RNA modality's cell order)."""
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as handle:
        rna, adt = read_elem(handle["mod/rna"]), read_elem(handle["mod/adt"])
    both = rna.obs_names[rna.obs_names.isin(adt.obs_names)]
    rna, adt = rna[both], adt[both]
    if not (rna.obs["celltype"].astype(str) == adt.obs["celltype"].astype(str)).all():
        raise SystemExit(f"{path}: a cell's type differs between the RNA and ADT modalities")
    keep = with_counts(rna.X, adt.X)
    cells = both[keep]
    return {"rna": counts_anndata(rna.X[keep], rna.var_names, cells),
            "adt": counts_anndata(adt.X[keep], adt.var_names, cells),
            "labels": rna.obs["celltype"].to_numpy().astype(str)[keep]}


def write_pair(arrays: dict[str, Any], folder: Path) -> None:
    """Save each side's representation (from its AnnData of counts) and each label array as
    ``<name>.npy`` in ``folder``, printing shapes, preprocessing routes and label counts."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        if isinstance(value, np.ndarray):
            types, counts = np.unique(value, return_counts=True)
            order = np.argsort(-counts, kind="stable")
            print(f"{folder.name}/{name}.npy {value.shape}: {len(types)} types: "
                  + ", ".join(f"{types[i]} {counts[i]}" for i in order))
        else:
            counts_shape = "{} × {}".format(*value.shape)
            value, route = gwalign_representation(value, name)
            print(f"{folder.name}/{name}.npy {value.shape} from {counts_shape} counts; {route}")
        np.save(folder / f"{name}.npy", value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networkvi-sdist", type=Path, required=True, help="networkvi-0.1.0.tar.gz")
    parser.add_argument("--scmidas-wheel", type=Path, required=True, help="scmidas-0.3.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT, help="folder receiving bmmc/ and pbmc-cite/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gwalign-validation-") as tmp:
        folder = Path(tmp)
        write_pair(bmmc_multiome(extract(args.networkvi_sdist, MULTIOME, folder)), args.out / "bmmc")
        write_pair(bmmc_cite(extract(args.networkvi_sdist, CITE, folder)), args.out / "bmmc")
        write_pair(pbmc_cite(extract(args.scmidas_wheel, MOSAIC, folder)), args.out / "pbmc-cite")


if __name__ == "__main__":
    main()
