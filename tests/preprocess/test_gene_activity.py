"""Gene activity from genomic coordinates: intervals, overlaps, the shared features and the run option."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import gwalign
from gwalign.cli import app
from gwalign.datasets.example import make_example_pair, make_linked_pair
from gwalign.io.h5ad import InputError
from gwalign.preprocess.gene_activity import (Regions, activity_features, gene_activity, gene_windows, overlaps,
                                              regions)


def test_intervals_from_columns_interval_column_and_names():
    columns = pd.DataFrame({"chrom": ["chr1", "chr2"], "start": [100, 500], "end": [200, 900]})
    found = regions(columns, Path("a.h5ad"), use_names=False)
    assert list(found.chrom) == ["chr1", "chr2"] and list(found.start) == [100, 500] and list(found.end) == [200, 900]
    interval = pd.DataFrame({"interval": ["chr1:100-200", "chrX:5-10"]}, index=["g1", "g2"])
    assert list(regions(interval, Path("a.h5ad"), use_names=False).chrom) == ["chr1", "chrX"]
    named = pd.DataFrame(index=["chr1:100-600", "chr3-7-90"])
    found = regions(named, Path("a.h5ad"), use_names=True)
    assert list(found.chrom) == ["chr1", "chr3"] and list(found.end) == [600, 90]
    assert regions(pd.DataFrame(index=["CD3E", "MS4A1"]), Path("a.h5ad"), use_names=False) is None
    assert regions(pd.DataFrame(index=["CD3E", "MS4A1"]), Path("a.h5ad"), use_names=True) is None


def test_promoter_lies_upstream_on_the_gene_strand():
    genes = Regions(np.array(["chr1"] * 3), np.array([10_000] * 3), np.array([20_000] * 3), np.array([1, -1, 0]))
    windows = gene_windows(genes, promoter=2000)
    assert list(windows.start) == [8_000, 10_000, 8_000]
    assert list(windows.end) == [20_000, 22_000, 22_000]


def test_overlaps_by_chromosome_and_position():
    peaks = Regions(np.array(["chr1", "chr1", "chr1", "chr2", ""]), np.array([50, 990, 3000, 100, 0]),
                    np.array([150, 1100, 3500, 200, 10]))
    windows = Regions(np.array(["chr1", "chr2"]), np.array([100, 0]), np.array([1000, 99]))
    matrix = overlaps(peaks, windows).toarray()
    np.testing.assert_array_equal(matrix, [[1, 0], [1, 0], [0, 0], [0, 0], [0, 0]])


def test_gene_activity_sums_the_counts_of_overlapping_peaks():
    counts = sp.csr_matrix(np.array([[1, 2, 0], [0, 1, 3]], dtype=np.float32))
    peak_by_gene = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1]], dtype=np.float64))
    np.testing.assert_array_equal(gene_activity(counts, peak_by_gene).toarray(), [[3, 2], [1, 4]])


def test_partners_share_their_features():
    rna, atac = make_linked_pair(n_cells=300, seed=1)
    rna_features, atac_features, n_genes = activity_features(rna, atac, Path("rna.h5ad"), Path("atac.h5ad"))
    assert rna_features.shape == (300, 30) and atac_features.shape == (300, 30) and n_genes > 100
    partner = pd.Index(rna.obs["true_cell"]).get_indexer(atac.obs["true_cell"])
    for column in range(2):
        assert np.corrcoef(rna_features[partner, column], atac_features[:, column])[0, 1] > 0.9


def test_missing_coordinates_name_the_file():
    rna, atac = make_example_pair(n_cells=60)
    with pytest.raises(InputError, match="rna.h5ad: --gene-activity needs gene coordinates"):
        activity_features(rna, atac, Path("rna.h5ad"), Path("atac.h5ad"))
    linked_rna, _ = make_linked_pair(n_cells=60)
    with pytest.raises(InputError, match="atac.h5ad: --gene-activity needs peak coordinates"):
        activity_features(linked_rna, rna, Path("rna.h5ad"), Path("atac.h5ad"))


def test_alignment_with_gene_activity_uses_fused_gw(tmp_path):
    rna, atac = make_linked_pair(n_cells=300, seed=2)
    result = gwalign.tl.align(rna, atac, copy=True, device="cpu", gene_activity=True, n_starts=2, max_iter=20)
    assert result.alignment.config.solver.fgw_alpha == pytest.approx(0.5)
    assert "X_gw" in result.adata_a.obsm
    files = [tmp_path / "rna.h5ad", tmp_path / "atac.h5ad"]
    plain_rna, _ = make_example_pair(n_cells=60)
    plain_rna.write_h5ad(files[0])
    atac[:60].copy().write_h5ad(files[1])
    failed = CliRunner().invoke(app, ["run", *map(str, files), "-o", str(tmp_path / "out"), "--device", "cpu",
                                      "--gene-activity", "--no-figures"])
    assert failed.exit_code != 0
    assert "rna.h5ad: --gene-activity needs gene coordinates" in failed.output


def test_gene_activity_takes_its_own_weight_unless_given_one():
    from gwalign.config import RunConfig

    assert RunConfig.from_flat({"gene_activity": True}).engine.solver.fgw_alpha == 0.5
    assert RunConfig.from_flat({"gene_activity": True, "fgw_alpha": 0.2}).engine.solver.fgw_alpha == 0.2
    assert RunConfig().engine.solver.fgw_alpha == 0.0
    with pytest.raises(ValueError, match="either gene_activity or joint_rep"):
        RunConfig.from_flat({"gene_activity": True, "joint_rep_source": "a", "joint_rep_target": "b"})


def test_a_plain_run_on_files_with_coordinates_suggests_gene_activity():
    from gwalign.errors import GWAlignWarning

    rna, atac = make_linked_pair(n_cells=120, seed=3)
    for pair in ((rna, atac), (atac, rna)):      # the ATAC file may come first
        with pytest.warns(GWAlignWarning, match="carry genomic coordinates: --gene-activity"):
            gwalign.tl.align(*pair, copy=True, device="cpu", n_starts=1, max_iter=5, one_sided_check=False)


def test_no_suggestion_without_usable_coordinates_or_with_features_given():
    from gwalign.preprocess.gene_activity import has_coordinates

    rna, atac = make_linked_pair(n_cells=120, seed=3)
    plain_rna, plain_atac = make_example_pair(n_cells=120)
    assert has_coordinates(rna.var, atac.var)
    assert not has_coordinates(plain_rna.var, atac.var)
    ensembl = rna.copy()
    ensembl.var["chrom"] = ensembl.var["chrom"].astype(str).str.replace("chr", "", regex=False)
    assert not has_coordinates(ensembl.var, atac.var)      # "1" against "chr1": no gene would match
    rna.obsm["features"], atac.obsm["features"] = np.ones((120, 3)), np.ones((120, 3))
    runs = [((plain_rna, plain_atac), {}), ((ensembl, atac), {}),
            ((rna, atac), {"joint_rep_source": "features", "joint_rep_target": "features"})]
    for pair, settings in runs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gwalign.tl.align(*pair, copy=True, device="cpu", n_starts=1, max_iter=5, one_sided_check=False, **settings)
        assert not any("genomic coordinates" in str(w.message) for w in caught)
