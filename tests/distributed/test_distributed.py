"""One alignment on several CPU processes (gloo), launched as torchrun and srun launch them.

The split results must be bitwise those of one process (potentials, objective, history, top-k
coupling), with even and uneven shards, for both GW solvers, through the Triton kernels as well
as the PyTorch reference, and through ``gwalign run``; a rank that dies must stop the others with
a one-line error, not leave them waiting.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gwalign.distributed.group import Group
from gwalign.distributed.launch import join, launch_environment
from gwalign.errors import DistributedError

HERE = Path(__file__).parent
REPO = HERE.parents[1]
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                    "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID")


def environment(**extra: str) -> dict[str, str]:
    """This environment without any launcher's variables, one thread per process, every pass split."""
    env = {key: value for key, value in os.environ.items() if key not in LAUNCH_VARIABLES}
    env.update(OMP_NUM_THREADS="1", GWALIGN_DIST_MIN_ENTRIES="0", **extra)
    return env


def torchrun(processes: int, *args, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               *map(str, args)]
    done = subprocess.run(command, env=environment(**extra), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("one") / "result.pt"
    subprocess.run([sys.executable, str(HERE / "align_script.py"), str(out)], env=environment(), check=True,
                   timeout=120, cwd=REPO)
    return torch.load(out)


def assert_same(split: dict, alone: dict) -> None:
    for solver in ("lowrank", "sampled"):
        for key in ("p", "q", "topk_data", "topk_indices"):
            assert torch.equal(split[solver][key], alone[solver][key]), (solver, key)
        assert split[solver]["objective"] == alone[solver]["objective"], solver
        assert split[solver]["history"] == alone[solver]["history"], solver
    for split_side, alone_side in zip(split["lowrank"]["relaxed"], alone["lowrank"]["relaxed"]):
        assert torch.equal(split_side, alone_side)


@pytest.mark.parametrize("processes", [2, 3])
def test_split_alignment_is_bitwise_one_process(processes, one_process, tmp_path):
    """Both solvers; two ranks split 1000 rows as 512 + 488, three as 512 + 256 + 232."""
    torchrun(processes, HERE / "align_script.py", tmp_path / "result.pt")
    split = torch.load(tmp_path / "result.pt")
    for solver in ("lowrank", "sampled"):
        assert (split[solver]["world_size"], split[solver]["backend"]) == (processes, "gloo")
        assert split[solver]["collectives"] > 0
    assert_same(split, one_process)


def test_every_kernel_pass_splits_bitwise():
    """The Triton kernels' passes (interpreted on the CPU); the alignments above cover the
    PyTorch reference's."""
    pytest.importorskip("triton")
    torchrun(2, HERE / "ops_script.py", GWALIGN_TRITON="1", TRITON_INTERPRET="1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_dead_rank_stops_the_others_with_one_line(tmp_path):
    """Three tasks started as srun starts them (no torchrun agent to end the others); rank 1 exits
    abruptly in the middle of the solve."""
    port, processes = str(free_port()), []
    tick = time.perf_counter()
    for rank in range(3):
        env = environment(SLURM_PROCID=str(rank), SLURM_STEP_NUM_TASKS="3", SLURM_LOCALID=str(rank),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=port, GWALIGN_DIST_TIMEOUT="10")
        processes.append(subprocess.Popen([sys.executable, str(HERE / "align_script.py"), str(tmp_path / "r.pt"),
                                           "--exit-rank", "1", "--exit-after", "20"], env=env, cwd=REPO,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        results = [(process.wait(timeout=90), process.stderr.read()) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert time.perf_counter() - tick < 90
    assert results[1][0] == 3
    for rank in (0, 2):
        code, stderr = results[rank]
        assert code == 1, stderr[-2000:]
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and f"rank {rank} of 3" in lines[0] and "another rank stopped" in lines[0], stderr
    assert not (tmp_path / "r.pt").exists()


@pytest.mark.skipif(shutil.which("gwalign") is None, reason="the gwalign command is not installed")
def test_gwalign_run_under_torchrun(tmp_path):
    """The command itself, unchanged: rank 0 writes every output and the report; the alignments
    above check the numbers."""
    data = REPO / "example_data"
    split = torchrun(2, shutil.which("gwalign"), "run", data / "rna.h5ad", data / "atac.h5ad", "-o", tmp_path,
                     "--no-figures", "--device", "cpu", "--max-iter", "6", "--n-starts", "3", "--set", "block_cols=256",
                     "--threads", "1", "--json")
    report = json.loads(split.stdout)
    assert (report["world_size"], report["backend"]) == (2, "gloo")
    assert report["timings_s"]["collectives"] > 0
    assert sorted(path.name for path in tmp_path.iterdir()) == \
        ["atac.gwalign.h5ad", "joint.gwalign.h5ad", "report.json", "rna.gwalign.h5ad"]


def test_shards_are_whole_blocks_in_rank_order():
    group = Group(rank=0, world_size=3, local_rank=0, backend="gloo", device=torch.device("cpu"))
    assert group.bounds(1000, 256) == [(0, 512), (512, 768), (768, 1000)]
    assert group.bounds(300, 256) == [(0, 256), (256, 300), (300, 300)]
    assert not group.splits(200, 256, 10**9)


def test_launch_environment(monkeypatch):
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert launch_environment() is None
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "2")
    with pytest.raises(DistributedError, match="MASTER_ADDR"):
        launch_environment()
    monkeypatch.setenv("MASTER_ADDR", "node1")
    assert launch_environment() == (2, 4, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launch_environment() == (1, 2, 1)


def test_one_gpu_named_for_every_rank_is_refused(monkeypatch):
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DistributedError, match="LOCAL_RANK"):
        join("cuda:1")


def test_gwalign_batch_task_under_torchrun(tmp_path):
    """An array task launched as two processes: rank 0 runs the pair and writes its status; the
    alignment ran on both."""
    data = REPO / "example_data"
    manifest = tmp_path / "pairs.tsv"
    manifest.write_text("pair_id\tsource\ttarget\tdevice\tfigures\tmax_iter\tn_starts\tthreads\n"
                        f"p1\t{data / 'rna.h5ad'}\t{data / 'atac.h5ad'}\tcpu\tfalse\t6\t3\t1\n")
    out = tmp_path / "OUT"
    torchrun(2, shutil.which("gwalign"), "batch", manifest, "--out-root", out, "--task-id", "1")
    status = json.loads((out / "p1" / "status.json").read_text())
    report = json.loads((out / "p1" / "report.json").read_text())
    assert status["status"] == "ok" and (report["world_size"], report["backend"]) == (2, "gloo")
