"""``gwalign batch`` under a real SLURM: a one-node cluster on localhost, array jobs submitted with
``sbatch --array --wait``, a bad pair, a resubmission that skips finished pairs, and a pair
cancelled mid-run (SIGTERM) that completes when resubmitted.

Skipped, loudly, only where SLURM is not installed (.ci/run installs it with apt).
"""

import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from batch_helpers import FAST_COLUMNS, sha, write_manifest
from slurm_cluster import ClusterUnavailable, local_cluster

from gwalign.batch.lock import read_owner


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        with local_cluster(tmp_path_factory.mktemp("slurm")) as env:
            yield env
    except ClusterUnavailable as why:
        message = f"SLURM TEST NOT RUN: {why} (.ci/run installs slurm-wlm and munge with apt)"
        warnings.warn(message)
        pytest.skip(message)


def _job_script(folder: Path, manifest: Path, out: Path) -> Path:
    script = folder / f"{manifest.stem}.sh"
    script.write_text(f"""#!/bin/bash
#SBATCH --job-name=gwalign-{manifest.stem}
#SBATCH --output={folder}/slurm-%A_%a.out
#SBATCH --cpus-per-task=1
export OMP_NUM_THREADS=1
exec {sys.executable} -m gwalign.cli batch {manifest} --out-root {out}
""")
    return script


def _sbatch(env, script: Path, array: str, wait: bool = True) -> subprocess.CompletedProcess:
    command = ["sbatch", f"--array={array}", "--parsable"] + (["--wait"] if wait else []) + [str(script)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _status(out: Path, pair_id: str) -> dict:
    return json.loads((out / pair_id / "status.json").read_text())


def test_array_job_bad_pair_and_resubmission(cluster, three_pairs, tmp_path):
    out = tmp_path / "OUT"
    inputs = {p: sha(p) for p in (tmp_path / "data").iterdir()}
    script = _job_script(tmp_path, three_pairs, out)
    first = _sbatch(cluster, script, "1-3")
    assert first.returncode == 2, (first.stdout, first.stderr)   # --wait: the highest exit code of the tasks
    statuses = {p: _status(out, p) for p in ("good1", "good2", "bad")}
    assert [s["status"] for s in statuses.values()] == ["ok", "ok", "failed"]
    assert statuses["bad"]["exit_code"] == 2
    assert statuses["good1"]["slurm"]["array_task_id"] == "1" and statuses["good1"]["slurm"]["array_job_id"]
    failed = subprocess.run([sys.executable, "-m", "gwalign.cli", "batch", "status", str(out), "--failed-ids"],
                            capture_output=True, text=True)
    assert failed.stdout.strip() == "3"

    second = _sbatch(cluster, script, "1-3")
    assert second.returncode == 2
    job = second.stdout.strip().split(";")[0]
    logs = {task: (tmp_path / f"slurm-{job}_{task}.out").read_text() for task in (1, 2)}
    assert all("skipped: done" in log for log in logs.values()), logs
    assert _status(out, "good1")["finished_at"] == statuses["good1"]["finished_at"]
    assert {p: sha(p) for p in inputs} == inputs


def _wait_for_stage(folder: Path, stage: str, limit: float = 180) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        owner = read_owner(folder)
        if owner and owner.get("stage") == stage:
            return
        time.sleep(0.05)
    raise AssertionError(f"the pair never reached stage {stage!r}")


def _wait_gone(env, job: str, limit: float = 120) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True).stdout
        if not queue.strip():
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job} still queued after {limit} s")


def test_a_cancelled_task_leaves_no_ok_and_completes_on_resubmission(cluster, pair_files, tmp_path):
    manifest = write_manifest(tmp_path / "slow.tsv", [
        {"pair_id": "slow", "source": str(pair_files[0]), "target": str(pair_files[1]), **FAST_COLUMNS}])
    out = tmp_path / "OUT"
    script = _job_script(tmp_path, manifest, out)
    submitted = _sbatch(cluster, script, "1", wait=False)
    job = re.match(r"\d+", submitted.stdout.strip()).group(0)
    _wait_for_stage(out / "slow", "align")
    subprocess.run(["scancel", job], env=cluster, check=True)   # SIGTERM, then SIGKILL after KillWait
    _wait_gone(cluster, job)
    status = _status(out, "slow")
    assert status["status"] == "terminated" and status["exit_code"] == 143
    assert not list((out / "slow").glob("*.h5ad")) and not list(out.rglob(".gwalign-tmp-*"))
    assert read_owner(out / "slow") is None

    again = _sbatch(cluster, script, "1")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert _status(out, "slow")["status"] == "ok" and _status(out, "slow")["attempts"] == 2
