"""The AnnData API (``gwalign.tl.align``) writes what ``gwalign run`` writes, and the plots of
``gwalign.pl`` draw from what it returns."""

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import gwalign
from gwalign.cli import app
from gwalign.datasets.example import write_example
from gwalign import InputError

matplotlib.use("Agg")

CELLS = 200   # per side, as tests/test_output_contract.py
LABEL = "cell_type"
#: uns["gwalign"] entries that depend on the run rather than the data: seconds, and the partner's
#: name (a file name from gwalign run, the name given to gwalign.tl.align).
RUN_SPECIFIC = {"timings_s", "partner_file"}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("example")
    write_example(folder, n_cells=CELLS)
    return folder / "rna.h5ad", folder / "atac.h5ad"


@pytest.fixture(scope="module")
def cli_run(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(app, ["run", *map(str, example), "--out-dir", str(out), "--transfer-labels", LABEL,
                                      "--device", "cpu", "--no-figures", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def tl_run(example):
    rna, atac = (ad.read_h5ad(path) for path in example)
    result = gwalign.tl.align(rna, atac, transfer_labels=LABEL, names=("rna", "atac"), device="cpu", figures=False)
    return rna, atac, result


def dense(value):
    return value.toarray() if sp.issparse(value) else np.asarray(value)


def assert_same(expected, actual, where: str) -> None:
    """Equal values, recursively through dicts (arrays and lists of numbers compared as arrays)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(expected) == set(actual), f"{where}: keys differ"
        for key in expected:
            assert_same(expected[key], actual[key], f"{where}[{key!r}]")
    elif isinstance(expected, (np.ndarray, list, tuple)) and not isinstance(expected, str):
        np.testing.assert_array_equal(np.asarray(expected), np.asarray(actual), err_msg=where)
    else:
        assert expected == actual or (expected != expected and actual != actual), f"{where}: {expected!r} != {actual!r}"


def test_the_same_keys_and_values_as_gwalign_run(cli_run, tl_run, tmp_path):
    """Every obs, obsm and uns entry of each side, and the joint AnnData; uns["gwalign"] through a
    write and read back (as the files store it), apart from its run-specific entries."""
    rna, atac, result = tl_run
    for name, mine in (("rna", result.adata_a), ("atac", result.adata_b)):
        written = ad.read_h5ad(cli_run / f"{name}.gwalign.h5ad")
        assert list(mine.obs.columns) == list(written.obs.columns), name
        assert set(mine.obsm) == set(written.obsm) and set(mine.uns) == set(written.uns), name
        for key in written.obsm:
            assert type(mine.obsm[key]) is type(written.obsm[key]), key
            np.testing.assert_array_equal(dense(mine.obsm[key]), dense(written.obsm[key]), err_msg=key)
        pd.testing.assert_frame_equal(mine.obs, written.obs)
        mine.write_h5ad(tmp_path / f"{name}.h5ad")
        stored = ad.read_h5ad(tmp_path / f"{name}.h5ad").uns["gwalign"]
        expected = written.uns["gwalign"]
        assert set(stored) == set(expected), name
        assert_same({k: v for k, v in expected.items() if k not in RUN_SPECIFIC},
                    {k: v for k, v in stored.items() if k not in RUN_SPECIFIC}, f"{name} uns['gwalign']")
        assert stored["partner_file"] == {"rna": "atac", "atac": "rna"}[name]
    joint = ad.read_h5ad(cli_run / "joint.gwalign.h5ad")
    pd.testing.assert_frame_equal(result.joint.obs, joint.obs)
    np.testing.assert_array_equal(result.joint.obsm["X_gw"], joint.obsm["X_gw"])
    assert set(result.joint.obsm) == set(joint.obsm)


def test_annotates_the_objects_given_in_place(tl_run):
    rna, atac, result = tl_run
    assert result.adata_a is rna and result.adata_b is atac
    assert result.alignment.history and result.report["inputs"]["source"] == {"cells": CELLS, "aligned_cells": CELLS}
    assert set(result.report["label_transfer"]) == {f"{LABEL}->source", f"{LABEL}->target"}


def zeroed(adata, cells):
    """A copy of ``adata`` whose first ``cells`` cells have all-zero counts."""
    out = adata.copy()
    x = out.X.tolil()
    x[:cells] = 0
    out.X = x.tocsr()
    return out


def test_copy_leaves_the_inputs_untouched(example):
    """copy=True: the objects given keep exactly what they had; the copies have the outputs, with
    the cells that cannot be aligned (all-zero counts) marked as gwalign run marks them."""
    rna, atac = zeroed(ad.read_h5ad(example[0]), 3), ad.read_h5ad(example[1])
    before = [(adata.copy(), set(adata.obsm), set(adata.uns)) for adata in (rna, atac)]
    with pytest.warns(gwalign.GWAlignWarning, match="adata_a: 3 of 200 cells have all-zero counts"):
        result = gwalign.tl.align(rna, atac, copy=True, device="cpu", max_iter=5)
    for adata, (copy, obsm, uns) in zip((rna, atac), before):
        pd.testing.assert_frame_equal(adata.obs, copy.obs)
        assert set(adata.obsm) == obsm and set(adata.uns) == uns
        np.testing.assert_array_equal(dense(adata.X), dense(copy.X))
    side = result.adata_a
    assert side is not rna and "X_gw" in side.obsm and side.n_obs == CELLS
    aligned = side.obs["gw_aligned"].to_numpy()
    assert not aligned[:3].any() and aligned[3:].all()
    assert np.isnan(side.obsm["X_gw"][:3]).all() and side.obsm["gw_coupling"][:3].nnz == 0
    assert side.obs["gw_match"][:3].isna().all() and side.obs["gw_match"][3:].notna().all()
    assert result.joint.n_obs == 2 * CELLS - 3
    assert result.report["inputs"]["source"] == {"cells": CELLS, "aligned_cells": CELLS - 3}


def test_errors_name_the_objects(example):
    rna, atac = (ad.read_h5ad(path) for path in example)
    with pytest.raises(InputError, match=r"^adata_a: obsm key 'X_missing' not found"):
        gwalign.tl.align(rna, atac, rep_a="X_missing", device="cpu")
    with pytest.raises(InputError, match=r"^adata_a, adata_b: the same AnnData object given twice"):
        gwalign.tl.align(rna, rna, device="cpu")
    with pytest.raises(InputError, match=r"^adata_a, adata_b: label column 'nope' is in neither object's obs"):
        gwalign.tl.align(rna, atac, transfer_labels=["nope"], device="cpu")
    with pytest.raises(ValueError, match="no_such_setting"):
        gwalign.tl.align(rna, atac, no_such_setting=1)
    assert "gw_aligned" not in rna.obs and "X_gw" not in atac.obsm


@pytest.fixture
def figdir(tmp_path):
    """scanpy's figure folder, in the test's folder."""
    import scanpy as sc

    before = sc.settings.figdir
    sc.settings.figdir = tmp_path / "figures"
    yield sc.settings.figdir
    sc.settings.figdir = before


def test_plots_draw_and_save(tl_run, tmp_path, figdir):
    import matplotlib.pyplot as plt
    import scanpy as sc

    _, _, result = tl_run
    axes = gwalign.pl.joint_embedding(result, show=False, save=tmp_path / "joint.png")
    assert [ax.get_title() for ax in axes] == ["gw_dataset", LABEL]
    ax = gwalign.pl.label_agreement(result.adata_b, LABEL, show=False, save=tmp_path / "agreement.pdf")
    assert ax.get_title().startswith(f"{LABEL}: ") and "cells agree" in ax.get_title()
    for data in (result, result.alignment, result.adata_a):
        assert gwalign.pl.convergence(data, show=False, save="_run.png").get_xlabel() == "GW iteration"
    assert gwalign.pl.convergence(result.alignment, show=False, save=True) is not None
    for name in ("joint.png", "agreement.pdf", "figures/convergence_run.png",
                 f"figures/convergence.{sc.settings.file_format_figs}"):
        assert (tmp_path / name).stat().st_size > 1000, name
    with pytest.raises(TypeError, match="no GW objective history"):
        gwalign.pl.convergence(result.joint, show=False)
    plt.close("all")


def test_row_scaling_is_one_decision_for_the_pair(few_features):
    """A 25-gene / 25-protein pair where only the genes' norms are a size factor: both sides are
    L2-scaled, and the proteins' note says why."""
    genes, proteins = few_features
    a, b = (ad.AnnData(obs=pd.DataFrame(index=[f"{name}{i}" for i in range(len(x))]), obsm={"X_rep": x})
            for name, x in (("g", genes), ("p", proteins)))
    result = gwalign.tl.align(a, b, rep_a="X_rep", rep_b="X_rep", copy=True, device="cpu", one_sided_check=False)
    notes = {side: " ".join(result.report["representation"][side]["notes"]) for side in ("source", "target")}
    assert "a size factor" in notes["source"] and "unit L2 norm" in notes["source"], notes
    assert "other side's norm is a size factor" in notes["target"] and "unit L2 norm" in notes["target"], notes
