"""``gwalign batch`` end to end without SLURM: array task ids from the environment, skipping done
pairs, a bad pair failing alone, SIGTERM mid-run, and ``gwalign batch status``."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from batch_helpers import sha, write_manifest
from typer.testing import CliRunner

from gwalign.batch.lock import LOCK_NAME, read_owner
from gwalign.cli import app

runner = CliRunner()


def _task(manifest: Path, out: Path, task: int, *extra: str):
    return runner.invoke(app, ["batch", str(manifest), "--out-root", str(out), *extra],
                         env={"SLURM_ARRAY_TASK_ID": str(task)})


def _status(out: Path, pair_id: str) -> dict:
    return json.loads((out / pair_id / "status.json").read_text())


def test_array_tasks_run_their_rows_skip_done_ones_and_record_status(three_pairs, tmp_path):
    out = tmp_path / "OUT"
    inputs = {p: sha(p) for p in (tmp_path / "data").iterdir()}
    codes = [_task(three_pairs, out, task).exit_code for task in (1, 2, 3)]
    assert codes == [0, 0, 2]
    good, bad = _status(out, "good1"), _status(out, "bad")
    assert good["status"] == "ok" and good["exit_code"] == 0 and good["task_id"] == 1
    assert good["inputs"]["source"]["sha256"] == inputs[tmp_path / "data" / "rna.h5ad"]
    assert {"read", "preprocess", "solve", "total"} <= set(good["timings_s"]) and good["peak_memory_gb"]["host_rss"] > 0
    assert good["result"]["converged"] is not None and 0 < good["result"]["mean_transfer_confidence"] <= 1
    assert all((out / "good1" / name).is_file() for name in good["outputs"])
    assert bad["status"] == "failed" and bad["exit_code"] == 2 and "broken.h5ad: not an HDF5 file" in bad["error"]
    assert not list(out.rglob(".gwalign-tmp-*")) and not list(out.rglob(LOCK_NAME))
    assert {p: sha(p) for p in inputs} == inputs

    again = _task(three_pairs, out, 1)
    assert again.exit_code == 0 and "skipped: done" in again.output
    assert _status(out, "good1")["finished_at"] == good["finished_at"]
    assert _task(three_pairs, out, 3).exit_code == 2 and _status(out, "bad")["attempts"] == 2

    table = runner.invoke(app, ["batch", "status", str(out), "--tsv"])
    lines = [line.split("\t") for line in table.stdout.strip().splitlines()]
    assert lines[0][:3] == ["pair_id", "task_id", "status"]
    assert [line[:3] for line in lines[1:]] == [["good1", "1", "ok"], ["good2", "2", "ok"], ["bad", "3", "failed"]]
    failed = runner.invoke(app, ["batch", "status", str(out), "--failed-ids"])
    assert failed.exit_code == 0 and failed.stdout.strip() == "3"


def test_changed_settings_or_force_redo_a_done_pair(three_pairs, tmp_path):
    out = tmp_path / "OUT"
    assert _task(three_pairs, out, 1).exit_code == 0
    first = _status(out, "good1")
    assert "skipped" in _task(three_pairs, out, 1).output
    forced = _task(three_pairs, out, 1, "--force")
    assert forced.exit_code == 0 and _status(out, "good1")["finished_at"] >= first["finished_at"]
    changed = _task(three_pairs, out, 1, "--set", "k=9")
    assert changed.exit_code == 0 and "skipped" not in changed.output
    assert _status(out, "good1")["parameters_sha256"] != first["parameters_sha256"]


def test_dry_run_checks_every_row_and_runs_nothing(three_pairs, tmp_path):
    (tmp_path / "data" / "rna.h5ad").rename(tmp_path / "data" / "gone.h5ad")
    result = runner.invoke(app, ["batch", str(three_pairs), "--out-root", str(tmp_path / "OUT"), "--dry-run"])
    assert result.exit_code == 2
    assert "no such file" in result.stdout and not (tmp_path / "OUT").exists()


def test_a_broken_manifest_is_one_line_and_exit_2(tmp_path):
    manifest = tmp_path / "pairs.tsv"
    manifest.write_text("pair_id,source,target\n")
    result = runner.invoke(app, ["batch", str(manifest), "--out-root", str(tmp_path / "OUT")])
    assert result.exit_code == 2 and "header lacks column(s)" in result.output


def _wait_for_stage(folder: Path, stage: str, process: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.time() + limit
    while time.time() < deadline and process.poll() is None:
        owner = read_owner(folder)
        if owner and owner.get("stage") == stage:
            return
        time.sleep(0.02)
    raise AssertionError(f"the pair never reached stage {stage!r} (exit code {process.poll()})")


def test_sigterm_mid_run_leaves_no_ok_and_the_resubmission_completes(pair_files, tmp_path):
    from batch_helpers import FAST_COLUMNS

    manifest = write_manifest(tmp_path / "pairs.tsv", [
        {"pair_id": "slow", "source": str(pair_files[0]), "target": str(pair_files[1]), **FAST_COLUMNS}])
    out = tmp_path / "OUT"
    before = [sha(p) for p in pair_files]
    command = [sys.executable, "-m", "gwalign.cli", "batch", str(manifest), "--out-root", str(out), "--task-id", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for_stage(out / "slow", "align", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    status = _status(out, "slow")
    assert status["status"] == "terminated" and status["exit_code"] == 143
    assert {"read", "preprocess", "align"} <= set(status["timings_s"]) and status["peak_memory_gb"]["host_rss"] > 0
    assert not list((out / "slow").glob("*.h5ad")) and not list(out.rglob(".gwalign-tmp-*"))
    assert read_owner(out / "slow") is None

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _status(out, "slow")["status"] == "ok" and _status(out, "slow")["attempts"] == 2
    assert [sha(p) for p in pair_files] == before


def test_without_a_task_id_every_pair_runs_in_workers(three_pairs, tmp_path):
    out = tmp_path / "OUT"
    assert _task(three_pairs, out, 2).exit_code == 0
    result = runner.invoke(app, ["batch", str(three_pairs), "--out-root", str(out), "--gpus", "0,1"])
    assert result.exit_code == 2
    assert "[good2] skipped: done" in result.output
    assert [_status(out, p)["status"] for p in ("good1", "good2", "bad")] == ["ok", "ok", "failed"]
