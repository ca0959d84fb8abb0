"""Bad input and misuse of the command line, as a new user meets them.

Each refusal is checked the same way (:func:`refused`): its exit code, one line on stderr that
names the file and the problem, inputs left byte-identical, and no output directory or file left
behind. What runs with a doubt runs, and says so on the console.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gwalign.cli import app
from gwalign.datasets.example import make_example_pair
from gwalign.datasets.synthetic import spiral_and_roll

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
FAST = ["--device", "cpu", "--no-figures", "--quiet"]
#: A short run: one start, few iterations, no one-sided probe.
SHORT = ["--max-iter", "3", "--n-starts", "1", "--no-one-sided-check"]


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write(adata, path):
    adata.write_h5ad(path)
    return path


def refused(args, inputs, tmp_path, command="run", code=2, names=()):
    """Invoke ``gwalign <command> args``; check the refusal and return its one stderr line."""
    before = {path: sha(path) for path in inputs}
    out = tmp_path / "refused_out"
    extra = ["-o", str(out), *FAST] if command == "run" else []
    result = runner.invoke(app, [command, *map(str, args), *extra])
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert not out.exists(), f"left behind: {sorted(p.name for p in out.iterdir())}"
    for path, digest in before.items():
        assert sha(path) == digest, f"{path} was modified"
    return lines[0]


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    """A small RNA/ATAC pair of counts: AnnData objects and their files."""
    folder = tmp_path_factory.mktemp("counts")
    rna, atac = make_example_pair(n_cells=60, n_genes=50, n_peaks=100, seed=3)
    rna.X = rna.X.toarray()
    return rna, atac, write(rna, folder / "rna.h5ad"), write(atac, folder / "atac.h5ad")


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    """A small pair of ready representations (obsm["X_rep"]) over one-feature X."""
    folder = tmp_path_factory.mktemp("points")
    xs, _, xt, _ = spiral_and_roll(40, 45, seed=0)
    files = []
    for name, x in (("spiral", xs), ("roll", xt)):
        adata = ad.AnnData(X=np.ones((x.shape[0], 1), dtype=np.float32))
        adata.obs_names = [f"{name}_{i}" for i in range(x.shape[0])]
        adata.obsm["X_rep"] = x - x.mean(axis=0)
        files.append(write(adata, folder / f"{name}.h5ad"))
    return files


def with_rep(path, rep, tmp_path, name):
    """A copy of ``path`` whose obsm["X_rep"] is ``rep``."""
    adata = ad.read_h5ad(path)
    adata.obsm["X_rep"] = rep
    return write(adata, tmp_path / name)


REP = ["--rep-source", "X_rep", "--rep-target", "X_rep"]


# ---------------------------------------------------------------- inputs that used to crash


def test_obsm_table_with_text_column(points, tmp_path):
    adata = ad.read_h5ad(points[0])
    adata.obsm["X_rep"] = pd.DataFrame({"a": np.arange(adata.n_obs, dtype=float),
                                        "kind": ["x"] * adata.n_obs}, index=adata.obs_names)
    bad = write(adata, tmp_path / "table.h5ad")
    msg = refused([bad, points[1], *REP], [bad, points[1]], tmp_path, names=("table.h5ad", "non-numeric", "kind"))
    assert "obsm['X_rep']" in msg


def test_file_name_too_long_for_its_output_name(points, tmp_path):
    long = tmp_path / ("c" * 243 + ".h5ad")   # 248 characters; its output name would be 256
    long.write_bytes(points[0].read_bytes())
    refused([long, points[1], *REP], [long, points[1]], tmp_path, names=("ccc", "file name too long"))


# ---------------------------------------------------------------- inputs that cannot be aligned


def test_identical_cells_refused(points, tmp_path):
    same = with_rep(points[0], np.tile([[1.0, 2.0, 3.0]], (40, 1)), tmp_path, "same.h5ad")
    refused([same, points[1], *REP], [same, points[1]], tmp_path, names=("same.h5ad", "every cell has the same"))


def test_identical_points_refused_by_the_api():
    import gwalign

    _, _, xt, _ = spiral_and_roll(30, 30, seed=0)
    with pytest.raises(ValueError, match="x_source: every point is the same"):
        gwalign.align(np.ones((30, 3)), xt, gwalign.GWConfig(device="cpu", max_iter=2))


def test_constant_x_refused(counts, tmp_path):
    rna = counts[0].copy()
    rna.X = np.full(rna.X.shape, 3.0, dtype=np.float32)
    bad = write(rna, tmp_path / "constant.h5ad")
    refused([bad, counts[3]], [bad, counts[3]], tmp_path, names=("constant.h5ad", "same X"))


def test_one_positive_column_is_not_scaled_to_a_constant(points, tmp_path):
    """A pseudotime-like column: the automatic row scaling keeps it (unit length would make every
    cell 1); asked for explicitly, the scaling is refused."""
    from gwalign.config import RunConfig
    from gwalign.pipeline import prepare_pair

    time = with_rep(points[0], np.linspace(0.5, 3.0, 40)[:, None], tmp_path, "time.h5ad")
    config = RunConfig.from_flat({"rep_source": "X_rep", "rep_target": "X_rep", "device": "cpu"})
    prepared = prepare_pair((ad.read_h5ad(time), ad.read_h5ad(points[1])), (time, points[1]), config)
    kept = prepared.reps[0]
    assert np.ptp(kept.matrix) > 2 and any("one column" in note for note in kept.notes), kept.notes
    refused([time, points[1], *REP, "--normalise-rows", "l2"], [time, points[1]], tmp_path,
            names=("time.h5ad", "--normalise-rows none"))


def test_same_file_twice_refused(points, tmp_path):
    refused([points[0], points[0], *REP], [points[0]], tmp_path, names=("spiral.h5ad", "same file"))
    copy = tmp_path / "copy.h5ad"
    copy.write_bytes(points[0].read_bytes())
    refused([points[0], copy, *REP], [points[0], copy], tmp_path, names=("copy.h5ad", "identical"))


def test_negative_counts_refused(counts, tmp_path):
    rna = counts[0].copy()
    rna.X[2, 3] = -4
    bad = write(rna, tmp_path / "negative.h5ad")
    refused([bad, counts[3]], [bad, counts[3]], tmp_path, names=("negative.h5ad", "non-negative", "-4"))
    atac = counts[1].copy()
    atac.X = atac.X.toarray() - 0.5
    bad = write(atac, tmp_path / "centred_atac.h5ad")
    refused([counts[2], bad], [counts[2], bad], tmp_path, names=("centred_atac.h5ad", "ATAC needs non-negative"))


def test_scaled_rna_warns(counts, tmp_path):
    """Negative non-integer RNA values are taken as scaled data, with a warning (not a note only)."""
    import gwalign
    from gwalign.config import RunConfig
    from gwalign.pipeline import prepare_pair

    rna = counts[0].copy()
    rna.X = (np.log1p(rna.X) - np.log1p(rna.X).mean(axis=0)).astype(np.float32)
    path = write(rna, tmp_path / "scaled.h5ad")
    with pytest.warns(gwalign.GWAlignWarning, match="scaled.h5ad: X has negative values"):
        prepared = prepare_pair((ad.read_h5ad(path), counts[1]), (path, counts[3]), RunConfig.from_flat({"device": "cpu"}))
    assert prepared.reps[0].source == "HVG + PCA (X used as is)"


@pytest.mark.parametrize("cells", [1, 2, 3, 5])
def test_too_few_cells_one_message(points, tmp_path, cells):
    adata = ad.read_h5ad(points[0])[:cells].copy()
    tiny = write(adata, tmp_path / "tiny.h5ad")
    refused([tiny, points[1], *REP], [tiny, points[1]], tmp_path,
            names=("tiny.h5ad", f"{cells} cells, fewer than k+1 = 6"))


# ---------------------------------------------------------------- a run with doubtful parts


@pytest.fixture(scope="module")
def doubtful_run(counts, tmp_path_factory):
    """Cells with all-zero counts, a label column stored as floats with NaN on one side and as
    integers on the other, options that once were TOML-only, the automatic device."""
    folder = tmp_path_factory.mktemp("doubtful")
    rna, atac = counts[0].copy(), counts[1].copy()
    rna.X[:6] = 0
    codes = np.arange(rna.n_obs) % 2
    rna.obs["group"] = np.where(np.arange(rna.n_obs) % 5 == 0, np.nan, codes.astype(float))
    atac.obs["group"] = np.arange(atac.n_obs) % 2
    paths = write(rna, folder / "rna.h5ad"), write(atac, folder / "atac.h5ad")
    before = [sha(p) for p in paths]
    out = folder / "out"
    result = runner.invoke(app, ["run", *map(str, paths), "-o", str(out), "--no-figures", "--quiet",
                                 "--transfer-labels", "group", *SHORT, "--n-components", "6", "--n-top-genes", "30",
                                 "--normalise-rows", "none", "--n-landmarks", "20", "--set", "rank=8"])
    assert result.exit_code == 0, result.output + result.stderr
    assert [sha(p) for p in paths] == before
    return rna, out, result


def test_unaligned_cells_kept_and_announced(doubtful_run):
    rna, out, result = doubtful_run
    written = ad.read_h5ad(out / "rna.gwalign.h5ad")
    assert written.n_obs == rna.n_obs and list(written.obs_names) == list(rna.obs_names)
    aligned = written.obs["gw_aligned"].to_numpy()
    assert aligned.dtype == bool and (~aligned).sum() == 6 and not aligned[:6].any()
    assert np.isnan(written.obsm["X_gw"][:6]).all() and np.isfinite(written.obsm["X_gw"][6:]).all()
    assert written.obsm["gw_coupling"][:6].nnz == 0 and written.obs["gw_match"][:6].isna().all()
    assert written.obs["group_gw"][:6].isna().all() and np.isnan(written.obs["group_gw_confidence"][:6]).all()
    partner = ad.read_h5ad(out / "atac.gwalign.h5ad")
    assert partner.obsm["gw_coupling"].shape == (partner.n_obs, rna.n_obs)
    assert partner.obsm["gw_coupling"][:, :6].nnz == 0
    joint = ad.read_h5ad(out / "joint.gwalign.h5ad")
    assert joint.n_obs == rna.n_obs - 6 + partner.n_obs
    message = " ".join(result.stderr.split())
    assert "warning: rna.h5ad: 6 of 60 cells have all-zero counts" in message, message
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["source"]["aligned_cells"] == 54 and report["inputs"]["source"]["cells"] == 60


def test_labels_read_alike_and_marked_by_origin(doubtful_run):
    """Floats with NaN (0.0, 1.0) on one side and integers (0, 1) on the other make two labels, not
    four; the joint file says which labels are a cell's own and which were carried to it."""
    rna, out, _ = doubtful_run
    joint = ad.read_h5ad(out / "joint.gwalign.h5ad")
    assert sorted(joint.obs["group"].cat.categories) == ["0", "1"]
    assert list(joint.obs["group_origin"].cat.categories) == ["own", "transferred"]
    unlabelled = [f"rna:{name}" for name in rna.obs_names[6:][rna.obs["group"].iloc[6:].isna()]]
    assert unlabelled and (joint.obs.loc[unlabelled, "group_origin"] == "transferred").all()
    assert joint.obs.loc[unlabelled, "group"].notna().all()
    assert (joint.obs["group_origin"] == "own").sum() == joint.n_obs - len(unlabelled)
    for name in ("rna", "atac"):
        assert set(ad.read_h5ad(out / f"{name}.gwalign.h5ad").obs["group_gw"].dropna()) <= {"0", "1"}


def test_options_quiet_and_uns(doubtful_run):
    """Options once reachable only through TOML; --quiet without the CPU notice; None kept as None."""
    _, out, result = doubtful_run
    info = ad.read_h5ad(out / "rna.gwalign.h5ad").uns["gwalign"]
    parameters = info["parameters"]
    assert (parameters["n_components"], parameters["n_top_genes"], parameters["normalise_rows"],
            parameters["n_landmarks"], parameters["n_starts"], parameters["rank"]) == (6, 30, "none", 20, 1, 8)
    assert parameters["rep_source"] is None and info["one_sided"] is None
    assert "no CUDA" not in result.stderr


def test_evaluate_refuses_files_of_different_runs(doubtful_run, tmp_path):
    _, out, _ = doubtful_run
    source, target = out / "rna.gwalign.h5ad", out / "atac.gwalign.h5ad"
    scores = runner.invoke(app, ["evaluate", str(source), str(target), "--label-key", "group", "--json"])
    assert scores.exit_code == 0 and json.loads(scores.stdout)["cells_not_aligned_source"] == 6
    refused([source, target], [source, target], tmp_path, command="evaluate", names=("nothing to score",))
    refused([source, source, "--label-key", "group"], [source], tmp_path, command="evaluate",
            names=("rna.gwalign.h5ad", "same file"))
    copy = tmp_path / "copy.gwalign.h5ad"
    copy.write_bytes(source.read_bytes())
    refused([source, copy, "--label-key", "group"], [source, copy], tmp_path, command="evaluate",
            names=("source output",))
    other = ad.read_h5ad(target)
    other.obs_names = [f"x{i}" for i in range(other.n_obs)]
    renamed = write(other, tmp_path / "renamed.gwalign.h5ad")
    refused([source, renamed, "--label-key", "group"], [source, renamed], tmp_path, command="evaluate",
            names=("renamed.gwalign.h5ad", "not the outputs of one run"))
    other = ad.read_h5ad(target)
    other.uns["gwalign"]["gw_objective"] = 74.0
    rerun = write(other, tmp_path / "rerun.gwalign.h5ad")
    refused([source, rerun, "--label-key", "group"], [source, rerun], tmp_path, command="evaluate",
            names=("rerun.gwalign.h5ad", "not the outputs of one run"))


# ---------------------------------------------------------------- gwalign check


def test_check_lists_problems_and_exits_1(counts, tmp_path):
    rna = counts[0].copy()
    rna.X[0, 0] = -2
    negative = write(rna, tmp_path / "negative.h5ad")
    result = runner.invoke(app, ["check", str(negative)], terminal_width=200)
    assert result.exit_code == 1 and "integers with negative values" in result.output, result.output
    rna = counts[0].copy()
    rna.X = np.tile(rna.X[:1], (rna.n_obs, 1))
    same = write(rna, tmp_path / "same.h5ad")
    result = runner.invoke(app, ["check", str(same)], terminal_width=200)
    assert result.exit_code == 1 and "every cell has the same X" in result.output, result.output
    assert runner.invoke(app, ["check", str(counts[2])], terminal_width=200).exit_code == 0


def test_check_reads_files_without_x(doubtful_run, points, tmp_path):
    """A file without X (gwalign's own joint file, say) is described, not refused."""
    _, out, _ = doubtful_run
    result = runner.invoke(app, ["check", str(out / "joint.gwalign.h5ad")], terminal_width=200)
    assert result.exit_code == 0 and "X_gw" in result.output, result.output
    adata = ad.read_h5ad(points[0])
    del adata.X
    bare = write(adata, tmp_path / "bare.h5ad")
    result = runner.invoke(app, ["check", str(bare)], terminal_width=200)
    assert result.exit_code == 0 and re.search(r"│ X\s+│ none\s", result.output), result.output


# ---------------------------------------------------------------- leftovers


def test_sigterm_while_writing_leaves_nothing(points, tmp_path):
    """SIGTERM in the write stage: exit code 143, no staging folder, no output directory."""
    out = tmp_path / "out"
    script = ("import os, signal, sys\n"
              "import gwalign.pipeline as pipeline\n"
              "original = pipeline.write_json\n"
              "def stopped(*args, **kwargs):\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    original(*args, **kwargs)\n"
              "pipeline.write_json = stopped\n"
              "from gwalign.cli import app\n"
              "sys.argv = ['gwalign'] + sys.argv[1:]\n"
              "app()\n")
    result = subprocess.run([sys.executable, "-c", script, "run", *map(str, points), "-o", str(out), *FAST, *REP,
                             *SHORT], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200"))
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert "terminated: no output was written" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists(), sorted(p.name for p in out.iterdir())


def test_input_error_leaves_no_output_directory(points, tmp_path):
    refused([tmp_path / "missing.h5ad", points[1], *REP], [points[1]], tmp_path, names=("missing.h5ad",))
    nested = tmp_path / "a" / "b"
    result = runner.invoke(app, ["run", str(points[0]), str(tmp_path / "missing.h5ad"), "-o", str(nested), *FAST])
    assert result.exit_code == 2 and not (tmp_path / "a").exists()


# ---------------------------------------------------------------- smaller misuse


def test_binary_config_names_the_file(points, tmp_path):
    config = tmp_path / "preset.toml"
    config.write_bytes(b"\x89HDF\r\n\x1a\n\x00\xff binary")
    refused([*points, "--config", config], list(points), tmp_path, names=("preset.toml", "not a TOML file"))


def test_bad_set_option(points, tmp_path):
    refused([*points, "--set", "rank"], list(points), tmp_path, names=("--set", "NAME=VALUE"))
    refused([*points, "--set", "bogus=1"], list(points), tmp_path, names=("bogus",))


def test_example_does_not_overwrite(tmp_path):
    result = runner.invoke(app, ["example", "-o", str(tmp_path), "--cells", "50"])
    assert result.exit_code == 0, result.output
    rna = tmp_path / "rna.h5ad"
    refused(["-o", tmp_path, "--cells", "50", "--seed", "1"], [rna, tmp_path / "atac.h5ad"], tmp_path,
            command="example", names=("rna.h5ad", "--overwrite"))
    result = runner.invoke(app, ["example", "-o", str(tmp_path), "--cells", "50", "--seed", "1", "--overwrite"])
    assert result.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["atac.h5ad", "rna.h5ad"]


def test_short_help_option():
    for args in (["-h"], ["run", "-h"], ["check", "-h"], ["evaluate", "-h"], ["example", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output, args


def test_run_help_lists_the_former_toml_only_options():
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "250"}, terminal_width=250)
    for option in ("--n-components", "--n-top-genes", "--normalise-rows", "--n-landmarks", "--n-starts", "--set"):
        assert option in result.output, option


# ---------------------------------------------------------------- install


def test_triton_is_an_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("triton") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(dep.startswith("triton") for dep in extras["triton"])
    assert any(dep.startswith("triton") for dep in extras["test"])


def test_cpu_path_runs_without_triton():
    """With triton made unimportable, an alignment on the CPU runs and never asks for it."""
    script = ("import sys\n"
              "sys.modules['triton'] = None\n"
              "import gwalign\n"
              "from gwalign.datasets.synthetic import spiral_and_roll\n"
              "xs, _, xt, _ = spiral_and_roll(40, 45, seed=0)\n"
              "result = gwalign.align(xs, xt, gwalign.GWConfig(device='cpu', max_iter=2, n_starts=1))\n"
              "print(result.gw_objective)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1", GWALIGN_TRITON="auto"))
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1]) >= 0
