"""Shared fixtures of the batch tests: a small example pair on disk and manifests that name it."""

from pathlib import Path

import pytest
from batch_helpers import FAST_COLUMNS, write_manifest

from gwalign.datasets.example import write_example


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> tuple[Path, Path]:
    """The example pair at 200 cells a side (RNA counts and ATAC peaks with cell_type labels)."""
    folder = tmp_path_factory.mktemp("batch_inputs")
    return tuple(write_example(folder, seed=3, n_cells=200))


@pytest.fixture
def three_pairs(tmp_path, pair_files):
    """A manifest of two good pairs and one whose target is not an .h5ad file; paths relative to
    the manifest."""
    data = tmp_path / "data"
    data.mkdir()
    for file in pair_files:
        (data / file.name).write_bytes(file.read_bytes())
    (data / "broken.h5ad").write_text("not an HDF5 file\n")
    rows = [{"pair_id": "good1", "source": "data/rna.h5ad", "target": "data/atac.h5ad", **FAST_COLUMNS},
            {"pair_id": "good2", "source": "data/atac.h5ad", "target": "data/rna.h5ad", **FAST_COLUMNS},
            {"pair_id": "bad", "source": "data/rna.h5ad", "target": "data/broken.h5ad", **FAST_COLUMNS}]
    return write_manifest(tmp_path / "pairs.tsv", rows)
