"""The command line end to end on the bundled example, and every bad input it must refuse."""

import hashlib
import json
import re
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from typer.testing import CliRunner

from gwalign.cli import app
from gwalign.evaluate import score_files
from gwalign.datasets.example import make_example_pair

runner = CliRunner()
FAST = ["--device", "cpu", "--no-figures", "--quiet"]


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("example")
    result = runner.invoke(app, ["example", "--out-dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder / "rna.h5ad", folder / "atac.h5ad"


@pytest.fixture(scope="module")
def default_run(example, tmp_path_factory):
    rna, atac = example
    before = (sha(rna), sha(atac))
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["run", str(rna), str(atac), "--out-dir", str(out), "--device", "cpu",
                                 "--transfer-labels", "cell_type", "--quiet"])
    assert result.exit_code == 0, result.output
    return out, before


def test_outputs_follow_the_contract(example, default_run):
    rna_path, atac_path = example
    out, _ = default_run
    for name in ("rna.gwalign.h5ad", "atac.gwalign.h5ad", "joint.gwalign.h5ad", "report.json",
                 "convergence.png", "joint_umap.png"):
        assert (out / name).is_file(), name
    rna, atac = ad.read_h5ad(out / "rna.gwalign.h5ad"), ad.read_h5ad(out / "atac.gwalign.h5ad")
    for own, partner in ((rna, atac), (atac, rna)):
        assert own.obsm["X_gw"].shape == (own.n_obs, rna.obsm["X_gw"].shape[1])
        coupling = own.obsm["gw_coupling"]
        assert coupling.shape == (own.n_obs, partner.n_obs) and coupling.nnz == own.n_obs * 10
        assert set(own.obs["gw_match"]) <= set(partner.obs_names)
        assert ((own.obs["gw_match_weight"] > 0) & (own.obs["gw_match_weight"] <= 1 + 1e-6)).all()
        assert {"cell_type_gw", "cell_type_gw_confidence"} <= set(own.obs.columns)
        assert np.isfinite(own.obs["gw_distortion"]).all() and own.obs["gw_distortion"].median() > 0
        assert (own.obs["gw_relaxed_mass"] > 0).all() and own.obs["gw_one_sided"].dtype == bool
        info = own.uns["gwalign"]
        for key in ("parameters", "version", "partner_file", "partner_obs_names_sha256", "gw_objective",
                    "iterations", "converged", "timings_s", "device", "start_objectives",
                    "high_distortion_fraction", "knn_k", "epsilon", "one_sided", "finalists", "runner_up"):
            assert key in info, key
    assert rna.uns["gwalign"]["partner_file"] == atac_path.name
    joint = ad.read_h5ad(out / "joint.gwalign.h5ad")
    assert joint.n_obs == rna.n_obs + atac.n_obs
    assert set(joint.obs["gw_dataset"]) == {"rna", "atac"}
    sc.pp.neighbors(joint, use_rep="X_gw")
    sc.tl.umap(joint)
    assert joint.obsm["X_umap"].shape == (joint.n_obs, 2)
    report = json.loads((out / "report.json").read_text())
    assert report["iterations"] >= 1 and len(report["history"]) == report["iterations"]
    # One count per GW step, then the polish's.
    assert len(report["sinkhorn_iterations"]) == report["iterations"] + 1 and min(report["sinkhorn_iterations"]) >= 1
    assert report["figures"] == {"convergence.png": "written", "joint_umap.png": "written"}
    # The run's own process (CliRunner) holds torch and scanpy: over 100 MB, under the machine's memory.
    assert 0.1 < report["peak_memory_gb"]["host_rss"] < 64


def test_example_quality_with_defaults(default_run):
    out, _ = default_run
    scores = score_files(out / "rna.gwalign.h5ad", out / "atac.gwalign.h5ad", "true_cell", "cell_type")
    assert scores["foscttm"] <= 0.15, scores
    assert scores["label_transfer"] >= 0.85, scores
    assert scores["label_transfer"] == pytest.approx(
        (scores["label_transfer_into_source"] + scores["label_transfer_into_target"]) / 2)
    assert min(scores["label_separability_source"], scores["label_separability_target"]) >= 0.85, scores
    atac = ad.read_h5ad(out / "atac.gwalign.h5ad")
    carried = (atac.obs["cell_type"].astype(str) == atac.obs["cell_type_gw"].astype(str)).mean()
    assert carried >= 0.85
    rna = ad.read_h5ad(out / "rna.gwalign.h5ad")
    carried_rna = (rna.obs["cell_type"].astype(str) == rna.obs["cell_type_gw"].astype(str)).mean()
    assert scores["labels_written"] == pytest.approx((carried + carried_rna) / 2)


def test_evaluate_ignores_cells_without_a_label(default_run, tmp_path):
    """Missing labels neither train nor count (they do not form a class named "nan")."""
    out, _ = default_run
    rna = ad.read_h5ad(out / "rna.gwalign.h5ad")
    hidden = np.random.default_rng(0).random(rna.n_obs) < 0.3
    rna.obs["cell_type"] = rna.obs["cell_type"].astype(object).where(~hidden, None)
    rna.write_h5ad(tmp_path / "rna.gwalign.h5ad")
    full = score_files(out / "rna.gwalign.h5ad", out / "atac.gwalign.h5ad", None, "cell_type")
    partial = score_files(tmp_path / "rna.gwalign.h5ad", out / "atac.gwalign.h5ad", None, "cell_type")
    assert partial["label_transfer"] >= 0.85, partial
    # Fewer training cells cost a little (0.052 on this pair); a "nan" class would cost 0.25.
    assert abs(partial["label_transfer_into_target"] - full["label_transfer_into_target"]) <= 0.08


def test_evaluate_scores_labels_found_on_both_sides(default_run, tmp_path):
    """Cells of a type the other side lacks have no right answer: label transfer is scored on the
    shared types (as the published figures score it), the rest reported apart."""
    out, _ = default_run
    atac = ad.read_h5ad(out / "atac.gwalign.h5ad")
    renamed = atac.obs["cell_type"].astype(str).to_numpy()
    kind = pd.Series(renamed).value_counts().index[0]
    renamed[renamed == kind] = "only_in_atac"
    atac.obs["cell_type"] = renamed
    atac.write_h5ad(tmp_path / "atac.gwalign.h5ad")
    full = score_files(out / "rna.gwalign.h5ad", out / "atac.gwalign.h5ad", None, "cell_type")
    scores = score_files(out / "rna.gwalign.h5ad", tmp_path / "atac.gwalign.h5ad", None, "cell_type")
    rna_types = ad.read_h5ad(out / "rna.gwalign.h5ad").obs["cell_type"].astype(str).to_numpy()
    assert scores["cells_one_sided_target"] == (renamed == "only_in_atac").sum()
    assert scores["cells_one_sided_source"] == (rna_types == kind).sum()
    assert scores["label_transfer"] >= 0.85 and scores["label_transfer_all"] < scores["label_transfer"] - 0.1, scores
    assert "label_transfer_all" not in full
    confidence = atac.obs["cell_type_gw_confidence"].to_numpy()
    one_sided = renamed == "only_in_atac"
    assert scores["confidence_one_sided_target"] == pytest.approx(confidence[one_sided].mean())
    assert scores["confidence_shared_target"] == pytest.approx(confidence[~one_sided].mean())
    printed = runner.invoke(app, ["evaluate", str(out / "rna.gwalign.h5ad"), str(tmp_path / "atac.gwalign.h5ad"),
                                  "--label-key", "cell_type"])
    assert printed.exit_code == 0, printed.output
    assert re.search(rf"cells_one_sided_target\s+{one_sided.sum()}\n", printed.output), printed.output


def test_inputs_unchanged(example, default_run):
    _, before = default_run
    assert (sha(example[0]), sha(example[1])) == before


def test_same_seed_same_embedding(example, tmp_path):
    rna, atac = example
    embeddings = []
    for name in ("a", "b"):
        result = runner.invoke(app, ["run", str(rna), str(atac), "-o", str(tmp_path / name), *FAST,
                                     "--max-iter", "8", "--seed", "5", "--threads", "2"])
        assert result.exit_code == 0, result.output
        embeddings.append(ad.read_h5ad(tmp_path / name / "atac.gwalign.h5ad").obsm["X_gw"])
    assert np.array_equal(embeddings[0], embeddings[1])


def test_json_output_is_only_the_report(example, tmp_path):
    """A run that converges prints report.json's content and nothing else on stdout (its flag is a
    plain bool: a NumPy bool would break --json after the outputs are written)."""
    rna, atac = example
    result = runner.invoke(app, ["run", str(rna), str(atac), "-o", str(tmp_path), "--device", "cpu",
                                 "--no-figures", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["converged"] is True
    assert report == json.loads((tmp_path / "report.json").read_text())


def _default_run_on_shipped_pair(folder: str, sides: tuple[str, str], tmp_path: Path) -> dict:
    """A paired data set of tests/data through `gwalign run` with default settings, scored by
    `gwalign evaluate`'s function (FOSCTTM through the shared cell names, labels written). The
    target file's rows are shuffled, so the result cannot ride on row i being row i's partner."""
    data = Path(__file__).parent / "data" / folder
    labels = np.load(data / "rna_labels.npy").astype(str)   # paired: one label file for both sides
    files = []
    for name, shuffle in zip(sides, (False, True)):
        x = np.load(data / f"{name}.npy")
        order = np.random.default_rng(7).permutation(x.shape[0]) if shuffle else np.arange(x.shape[0])
        adata = ad.AnnData(X=np.zeros((x.shape[0], 1), dtype=np.float32))
        adata.obs_names = [f"{name}_{i}" for i in order]
        adata.obs["cell"] = [f"c{i}" for i in order]
        adata.obs["cell_type"] = labels[order]
        adata.obsm["X_rep"] = x[order]
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
        files.append(tmp_path / f"{name}.h5ad")
    result = runner.invoke(app, ["run", str(files[0]), str(files[1]), "-o", str(tmp_path / "out"), *FAST,
                                 "--rep-source", "X_rep", "--rep-target", "X_rep", "--transfer-labels", "cell_type"])
    assert result.exit_code == 0, result.output
    return score_files(tmp_path / "out" / f"{sides[0]}.gwalign.h5ad", tmp_path / "out" / f"{sides[1]}.gwalign.h5ad",
                       "cell", "cell_type")


@pytest.mark.real_data
def test_snareseq_default_run(tmp_path):
    scores = _default_run_on_shipped_pair("snareseq", ("rna", "atac"), tmp_path)
    assert scores["foscttm"] <= 0.20, scores
    # The cell-line labels the run wrote (0.966, docs/accuracy.md): a regression guard.
    assert scores["labels_written"] >= 0.90, scores


@pytest.mark.real_data
def test_scgem_default_run(tmp_path):
    # scGEM (binary methylation): with both sides L2-scaled the run mirrors (FOSCTTM 0.68); the
    # row-scaling rule keeps them, since their norms are not a size factor.
    scores = _default_run_on_shipped_pair("scgem", ("rna", "met"), tmp_path)
    assert scores["foscttm"] <= 0.25, scores   # 0.187 (docs/accuracy.md); SCOT's tuned recipe 0.216
    assert scores["labels_written"] >= 0.55, scores   # 0.703; five stages, chance 0.2
    # The report says why the rows were kept as they are.
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for side in ("source", "target"):
        assert any("not a size factor" in note for note in report["representation"][side]["notes"]), report


def test_one_sided_group_is_marked_and_suggested(tmp_path):
    from gwalign.datasets.synthetic import blobs_with_extra

    xs, ls, xt, lt = blobs_with_extra(seed=1)
    files = []
    for name, x, labels in (("rna", xt, lt), ("atac", xs, ls)):   # the unmatched blob in the source file
        adata = ad.AnnData(X=np.zeros((x.shape[0], 1), dtype=np.float32))
        adata.obs_names = [f"{name}_{i}" for i in range(x.shape[0])]
        adata.obs["blob"] = labels.astype(str)
        adata.obsm["X_rep"] = x - x.mean(axis=0)   # centred, so rows are not L2-scaled (row scaling "auto")
        files.append(write(adata, tmp_path / f"{name}.h5ad"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", *map(str, files), "-o", str(out), *FAST,
                                 "--rep-source", "X_rep", "--rep-target", "X_rep"])
    assert result.exit_code == 0, result.output
    message = " ".join(result.stderr.split())   # rich wraps long lines
    assert "warning:" in message and "gwalign run atac.h5ad rna.h5ad --semi-relaxed" in message, message
    rna = ad.read_h5ad(out / "rna.gwalign.h5ad")
    flagged = rna.obs["gw_one_sided"].to_numpy()
    assert flagged.sum() >= 40 and (rna.obs["blob"][flagged] == "3").all()
    report = json.loads((out / "report.json").read_text())
    assert report["one_sided"]["source"]["flagged_cells"] == flagged.sum()
    assert report["one_sided"]["target"]["flagged_cells"] == 0
    assert "rna.h5ad" in report["one_sided"]["suggestion"]
    # Switched off: no probe, no suggestion, no per-cell columns.
    result = runner.invoke(app, ["run", *map(str, files), "-o", str(tmp_path / "off"), *FAST,
                                 "--rep-source", "X_rep", "--rep-target", "X_rep", "--no-one-sided-check"])
    assert result.exit_code == 0 and "warning:" not in result.stderr, result.stderr
    assert json.loads((tmp_path / "off" / "report.json").read_text())["one_sided"] is None
    assert "gw_one_sided" not in ad.read_h5ad(tmp_path / "off" / "rna.gwalign.h5ad").obs


# ---------------------------------------------------------------- bad input


def invoke_bad(args, out_dir, allowed=()):
    result = runner.invoke(app, ["run", *map(str, args), "-o", str(out_dir), *FAST])
    assert result.exit_code == 2, result.output
    message = result.stderr if hasattr(result, "stderr") else result.output
    assert "Traceback" not in result.output
    lines = [line for line in message.strip().splitlines() if line.strip()]
    assert len(lines) <= 2 and lines[0].startswith("error:"), message  # rich may wrap once
    leftovers = [p.name for p in Path(out_dir).glob("*")] if Path(out_dir).exists() else []
    assert not [n for n in leftovers if (n.endswith((".h5ad", ".json", ".png")) or n.startswith(".gwalign"))
                and n not in allowed]
    return " ".join(lines)


def write(adata, path):
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    rna, atac = make_example_pair(n_cells=80, n_genes=60, n_peaks=120, seed=3)
    return rna, atac, write(rna, folder / "rna.h5ad"), write(atac, folder / "atac.h5ad")


def test_missing_file(small_pair, tmp_path):
    msg = invoke_bad([tmp_path / "nope.h5ad", small_pair[3]], tmp_path / "out")
    assert "nope.h5ad" in msg and "no such file" in msg


def test_directory_instead_of_file(small_pair, tmp_path):
    msg = invoke_bad([tmp_path, small_pair[3]], tmp_path / "out")
    assert "is a directory" in msg


def test_not_hdf5(small_pair, tmp_path):
    bad = tmp_path / "text.h5ad"
    bad.write_text("hello")
    assert "not an HDF5 file" in invoke_bad([bad, small_pair[3]], tmp_path / "out")


def test_hdf5_but_not_anndata(small_pair, tmp_path):
    bad = tmp_path / "plain.h5ad"
    with h5py.File(bad, "w") as handle:
        handle["numbers"] = np.arange(5)
    assert "not AnnData" in invoke_bad([bad, small_pair[3]], tmp_path / "out")


def test_truncated_file(small_pair, tmp_path):
    data = Path(small_pair[2]).read_bytes()
    bad = tmp_path / "cut.h5ad"
    bad.write_bytes(data[: len(data) // 2])
    msg = invoke_bad([bad, small_pair[3]], tmp_path / "out")
    assert "cut.h5ad" in msg


def test_zero_cells_and_zero_features(small_pair, tmp_path):
    rna = small_pair[0]
    empty_cells = write(rna[:0].copy(), tmp_path / "nocells.h5ad")
    assert "zero cells" in invoke_bad([empty_cells, small_pair[3]], tmp_path / "out")
    empty_genes = write(rna[:, :0].copy(), tmp_path / "nofeatures.h5ad")
    assert "zero features" in invoke_bad([empty_genes, small_pair[3]], tmp_path / "out")


def test_nan_in_matrix_and_in_representation(small_pair, tmp_path):
    rna = small_pair[0].copy()
    rna.X = rna.X.toarray()
    rna.X[2, 3] = np.nan
    assert "NaN" in invoke_bad([write(rna, tmp_path / "nan.h5ad"), small_pair[3]], tmp_path / "out")
    rna = small_pair[0].copy()
    rna.obsm["X_rep"] = np.random.default_rng(0).normal(size=(rna.n_obs, 4))
    rna.obsm["X_rep"][0, 0] = np.inf
    path = write(rna, tmp_path / "inf.h5ad")
    result = runner.invoke(app, ["run", str(path), str(small_pair[3]), "-o", str(tmp_path / "o2"), *FAST,
                                 "--rep-source", "X_rep"])
    assert result.exit_code == 2 and "Inf" in result.output


def test_all_zero_cell_is_kept_unaligned(small_pair, tmp_path):
    rna = small_pair[0].copy()
    rna.X = rna.X.toarray()
    rna.X[4] = 0
    path = write(rna, tmp_path / "zero.h5ad")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), str(small_pair[3]), "-o", str(out), *FAST, "--max-iter", "5"])
    assert result.exit_code == 0, result.output
    assert "1 of 80 cells have all-zero counts" in " ".join(result.stderr.split())
    report = json.loads((out / "report.json").read_text())
    assert report["representation"]["source"]["unaligned_cells"] == [rna.obs_names[4]]
    written = ad.read_h5ad(out / "zero.gwalign.h5ad")
    assert written.n_obs == rna.n_obs and not written.obs["gw_aligned"].iloc[4]
    assert np.isnan(written.obsm["X_gw"][4]).all() and written.obsm["gw_coupling"][4].nnz == 0


def test_duplicate_obs_names(small_pair, tmp_path):
    rna = small_pair[0].copy()
    names = list(rna.obs_names)
    names[1] = names[0]
    rna.obs_names = names
    assert "duplicate obs_names" in invoke_bad([write(rna, tmp_path / "dup.h5ad"), small_pair[3]], tmp_path / "out")


def test_missing_rep_key_lists_existing(small_pair, tmp_path):
    rna = small_pair[0].copy()
    rna.obsm["X_pca"] = np.zeros((rna.n_obs, 3))
    path = write(rna, tmp_path / "rep.h5ad")
    result = runner.invoke(app, ["run", str(path), str(small_pair[3]), "-o", str(tmp_path / "o"), *FAST,
                                 "--rep-source", "X_nothere"])
    assert result.exit_code == 2 and "X_nothere" in result.output and "X_pca" in result.output


def test_label_missing_on_both_sides(small_pair, tmp_path):
    result = runner.invoke(app, ["run", str(small_pair[2]), str(small_pair[3]), "-o", str(tmp_path / "o"),
                                 *FAST, "--transfer-labels", "no_such_column"])
    assert result.exit_code == 2 and "no_such_column" in result.output


def test_unknown_transfer_method(small_pair, tmp_path):
    msg = invoke_bad([small_pair[2], small_pair[3], "--transfer-labels", "cell_type", "--transfer", "vote"],
                     tmp_path / "out")
    assert "transfer" in msg and "vote" in msg


def test_label_column_without_labels(small_pair, tmp_path):
    rna = small_pair[0].copy()
    rna.obs["cell_type"] = np.nan
    source = write(rna, tmp_path / "unlabelled.h5ad")
    msg = invoke_bad([source, small_pair[3], "--transfer-labels", "cell_type"], tmp_path / "out")
    assert "unlabelled.h5ad" in msg and "no labelled cells" in msg


def test_plan_transfer_labels_on_request(small_pair, tmp_path):
    """--transfer plan writes the label with most plan mass, whose share is its confidence."""
    out = tmp_path / "o"
    result = runner.invoke(app, ["run", str(small_pair[2]), str(small_pair[3]), "-o", str(out), *FAST,
                                 "--transfer-labels", "cell_type", "--transfer", "plan", "--quiet"])
    assert result.exit_code == 0, result.output
    target = ad.read_h5ad(out / f"{small_pair[3].stem}.gwalign.h5ad")
    assert target.uns["gwalign"]["parameters"]["transfer"] == "plan"
    confidence = target.obs["cell_type_gw_confidence"].to_numpy()
    # The winning label holds at least an equal share among the labels present.
    n_labels = ad.read_h5ad(small_pair[2]).obs["cell_type"].nunique()
    assert (confidence >= 1.0 / n_labels - 1e-9).all() and (confidence <= 1.0 + 1e-9).all()


def test_fewer_cells_than_k(small_pair, tmp_path):
    # The automatic k is at least K_MIN = 5, so 5 cells are too few; an explicit --k 10 needs 11.
    rna = small_pair[0][:5].copy()
    msg = invoke_bad([write(rna, tmp_path / "tiny.h5ad"), small_pair[3]], tmp_path / "out")
    assert "fewer than k+1 = 6" in msg
    rna = small_pair[0][:8].copy()
    msg = invoke_bad([write(rna, tmp_path / "small.h5ad"), small_pair[3], "--k", "10"], tmp_path / "out2")
    assert "fewer than k+1 = 11" in msg


def test_output_exists_without_overwrite(small_pair, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "rna.gwalign.h5ad").write_text("keep me")
    assert "--overwrite" in invoke_bad([small_pair[2], small_pair[3]], out, allowed=("rna.gwalign.h5ad",))
    assert (out / "rna.gwalign.h5ad").read_text() == "keep me"


def test_output_dir_not_writable(small_pair, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "not a directory" in invoke_bad([small_pair[2], small_pair[3]], blocker)


def test_unknown_config_key(small_pair, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("epsilon = 0.02\nbogus_key = 1\n")
    result = runner.invoke(app, ["run", str(small_pair[2]), str(small_pair[3]), "-o", str(tmp_path / "o"),
                                 *FAST, "--config", str(config)])
    assert result.exit_code == 2 and "bogus_key" in result.output


@pytest.mark.parametrize("device, text", [("tpu", "device must be"), ("cuda:0", "CUDA")])
def test_bad_device(small_pair, tmp_path, device, text):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = runner.invoke(app, ["run", str(small_pair[2]), str(small_pair[3]), "-o", str(tmp_path / "o"),
                                 "--no-figures", "--quiet", "--device", device])
    assert result.exit_code == 2 and text in result.output


def test_interrupt_leaves_nothing(small_pair, tmp_path, monkeypatch):
    import gwalign.pipeline as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "add_outputs", interrupted)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(small_pair[2]), str(small_pair[3]), "-o", str(out), *FAST,
                                 "--max-iter", "3"])
    assert result.exit_code == 130
    assert not out.exists()


def test_failed_figure_spares_the_outputs(small_pair, tmp_path, monkeypatch):
    """A figure that cannot be drawn is warned about and reported; the data outputs are written, and
    an earlier run's figure of that name (--overwrite) does not stay beside the new outputs."""
    import gwalign.results.figures as figures

    def broken(*args, **kwargs):
        raise RuntimeError("no display for you")

    out = tmp_path / "out"
    out.mkdir()
    (out / "joint_umap.png").write_bytes(b"an earlier run's figure")
    monkeypatch.setattr(figures, "umap_figure", broken)
    result = runner.invoke(app, ["run", str(small_pair[2]), str(small_pair[3]), "-o", str(out), "--device", "cpu",
                                 "--max-iter", "3", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "joint_umap.png not written: RuntimeError: no display for you" in result.output
    for name in ("rna.gwalign.h5ad", "atac.gwalign.h5ad", "joint.gwalign.h5ad", "report.json", "convergence.png"):
        assert (out / name).is_file(), name
    assert not (out / "joint_umap.png").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["figures"]["convergence.png"] == "written"
    assert report["figures"]["joint_umap.png"].startswith("not written: RuntimeError")


def test_a_run_imports_only_what_it_uses(small_pair, tmp_path):
    """With given representations and no figures, a run imports neither scanpy nor scikit-learn,
    numba or matplotlib (each costs a second or more of start-up); with figures, no umap-learn."""
    import subprocess
    import sys

    rna, atac = small_pair[0].copy(), small_pair[1].copy()
    rng = np.random.default_rng(0)
    for adata, name in ((rna, "rna"), (atac, "atac")):
        adata.obsm["X_rep"] = rng.normal(size=(adata.n_obs, 8)) + 3.0 * pd.factorize(adata.obs["cell_type"])[0][:, None]
        write(adata, tmp_path / f"{name}.h5ad")
    probe = ("import sys; from gwalign.cli import app\n"
             "app(sys.argv[1:], standalone_mode=False)\n"
             "print(sorted(m for m in ('scanpy', 'sklearn', 'numba', 'matplotlib', 'umap', 'pynndescent') "
             "if m in sys.modules))")
    base = [str(tmp_path / "rna.h5ad"), str(tmp_path / "atac.h5ad"), "--rep-source", "X_rep", "--rep-target", "X_rep",
            "--device", "cpu", "--quiet", "--overwrite", "--transfer-labels", "cell_type", "--n-starts", "1",
            "--max-iter", "5"]
    imported = {}
    for figures in ("--no-figures", "--figures"):
        done = subprocess.run([sys.executable, "-c", probe, "run", *base, "--out-dir", str(tmp_path / figures),
                               figures], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        imported[figures] = done.stdout.strip().splitlines()[-1]
    assert imported["--no-figures"] == "[]"
    assert "umap" not in imported["--figures"] and "pynndescent" not in imported["--figures"]
    assert "matplotlib" in imported["--figures"]
    # The figures are drawn with matplotlib alone: given representations never need scanpy.
    assert "scanpy" not in imported["--figures"]


def test_umap_figure_draws_a_subsample_of_large_runs(tmp_path):
    """Above the cap a seeded random subsample is drawn; 12,000 cells draw too (UMAP's 200-epoch
    schedule above 10,000 cells, scikit-learn's neighbour search above 2,000)."""
    from gwalign.results.figures import figure_cells, umap_figure

    rng = np.random.default_rng(0)
    n = 12_000
    joint = ad.AnnData(np.zeros((n, 1), np.float32),
                       obs=pd.DataFrame({"gw_dataset": pd.Categorical(rng.choice(["a", "b"], n))},
                                        index=[f"c{i}" for i in range(n)]))
    joint.obsm["X_gw"] = rng.normal(size=(n, 6)).astype(np.float32)
    drawn = umap_figure(joint, [], tmp_path / "all.png", seed=0, max_cells=n)
    assert drawn == n and (tmp_path / "all.png").stat().st_size > 1000
    assert umap_figure(joint, [], tmp_path / "some.png", seed=0, max_cells=500) == 500
    cells = figure_cells(n, seed=1, max_cells=500)
    assert len(np.unique(cells)) == 500 and np.all(np.diff(cells) > 0) and cells.max() < n
    assert np.array_equal(cells, figure_cells(n, seed=1, max_cells=500))
    assert not np.array_equal(cells, figure_cells(n, seed=2, max_cells=500))


def test_example_counts_drawn_in_blocks_are_the_same_draws(monkeypatch):
    """Atlas-sized examples draw their counts in row blocks; the result must not depend on the block."""
    import gwalign.datasets.example as example_module

    whole = make_example_pair(n_cells=90, n_genes=40, n_peaks=70, seed=4)
    monkeypatch.setattr(example_module, "COUNT_BLOCK_ENTRIES", 7 * 70)   # 1 row (genes) or 7 rows (peaks)
    blocks = make_example_pair(n_cells=90, n_genes=40, n_peaks=70, seed=4)
    for a, b in zip(whole, blocks):
        assert a.X.shape == b.X.shape and (a.X != b.X).nnz == 0 and a.X.nnz > 0
        assert a.obs.equals(b.obs)


def test_example_size_option(tmp_path):
    result = runner.invoke(app, ["example", "--out-dir", str(tmp_path), "--cells", "150", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atac.h5ad", "rna.h5ad"]
    rna, atac = ad.read_h5ad(tmp_path / "rna.h5ad"), ad.read_h5ad(tmp_path / "atac.h5ad")
    assert rna.n_obs == atac.n_obs == 150
    assert set(rna.obs["true_cell"]) == set(atac.obs["true_cell"])


def test_check_and_version(small_pair):
    result = runner.invoke(app, ["check", str(small_pair[3])])
    assert result.exit_code == 0 and "atac" in result.output
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "gwalign" in result.output
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0 and "--epsilon" in result.output and "default" in result.output


@pytest.mark.parametrize("method", ["target", "source", "spectral"])
def test_other_joint_embeddings_are_written_and_keep_quality(example, tmp_path, method):
    """X_gw from the other embeddings: right shapes, same space for both files, ground truth kept."""
    rna, atac = example
    result = runner.invoke(app, ["run", str(rna), str(atac), "-o", str(tmp_path), *FAST,
                                 "--joint-embedding", method])
    assert result.exit_code == 0, result.output
    source = ad.read_h5ad(tmp_path / "rna.gwalign.h5ad")
    target = ad.read_h5ad(tmp_path / "atac.gwalign.h5ad")
    assert source.obsm["X_gw"].shape[1] == target.obsm["X_gw"].shape[1]
    assert np.isfinite(source.obsm["X_gw"]).all() and np.isfinite(target.obsm["X_gw"]).all()
    if method == "spectral":
        from gwalign.results.embedding import SPECTRAL_DIM

        assert source.obsm["X_gw"].shape[1] == SPECTRAL_DIM
    scores = score_files(tmp_path / "rna.gwalign.h5ad", tmp_path / "atac.gwalign.h5ad", "true_cell", "cell_type")
    assert scores["foscttm"] <= 0.15 and scores["label_transfer"] >= 0.85, scores


def test_run_help_shows_every_default():
    """Each option of `gwalign run --help` names its default (rich must not swallow the brackets)."""
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "250"}, terminal_width=250)
    assert result.exit_code == 0
    option_lines = [line for line in result.output.splitlines() if line.lstrip("│ ").startswith("--")]
    assert len(option_lines) > 20
    missing = [line.split()[1] for line in option_lines if "default" not in line and "--help" not in line]
    assert not missing, missing
    assert "[default: 10]" in result.output and "[default: cca]" in result.output


def test_cca_diffusion_option(small_pair, tmp_path):
    """--cca-diffusion 0 reads the plan as is: same coupling, a different X_gw; a negative count is refused."""
    embeddings, couplings = [], []
    for steps in ("0", "4"):
        result = runner.invoke(app, ["run", str(small_pair[2]), str(small_pair[3]), "-o", str(tmp_path / steps), *FAST,
                                     "--max-iter", "8", "--cca-diffusion", steps, "--threads", "2"])
        assert result.exit_code == 0, result.output
        out = ad.read_h5ad(tmp_path / steps / "atac.gwalign.h5ad")
        embeddings.append(out.obsm["X_gw"])
        couplings.append(out.obsm["gw_coupling"].toarray())
        assert out.uns["gwalign"]["parameters"]["cca_diffusion"] == int(steps)
    assert np.array_equal(couplings[0], couplings[1])
    assert not np.allclose(np.abs(embeddings[0]), np.abs(embeddings[1]))
    msg = invoke_bad([small_pair[2], small_pair[3], "--cca-diffusion", "-1"], tmp_path / "bad")
    assert "cca_diffusion" in msg
