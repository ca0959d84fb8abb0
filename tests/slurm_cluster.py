"""A one-node SLURM cluster on localhost for the batch tests: munged, slurmctld and slurmd started
from a private configuration, stopped afterwards.

Needs Debian's ``slurm-wlm`` and ``munge`` packages (.ci/run installs them with apt) and root, as
a CI container has; :class:`ClusterUnavailable` says which is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PROGRAMS = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol", "munged", "munge")


class ClusterUnavailable(RuntimeError):
    """SLURM or munge is not installed, or the tests do not run as root."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_munge() -> None:
    """munged running (started as the munge user where it is not), so SLURM can authenticate."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return
    socket_dir = Path("/run/munge")
    socket_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(socket_dir, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", shutil.which("munged")], check=True, capture_output=True)
    for _ in range(50):
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("munged started but munge -n still fails")


def _config(folder: Path) -> str:
    host = socket.gethostname().split(".")[0]
    return "\n".join([
        "ClusterName=gwalign-test", f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}", "AuthType=auth/munge",
        "SlurmUser=root", "SlurmdUser=root", f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "ReturnToService=2", "MpiDefault=none", "KillWait=10", "SchedulerParameters=sched_interval=1",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=2000 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


@contextmanager
def local_cluster(folder: Path) -> Iterator[dict[str, str]]:
    """Start a one-node cluster whose files live in ``folder``; yields the environment
    (``SLURM_CONF``) that ``sbatch``, ``squeue`` and ``scancel`` need to reach it.

    Raises
    ------
    ClusterUnavailable
        Before starting anything, when a program is missing or the process is not root.
    """
    missing = [name for name in PROGRAMS if shutil.which(name) is None]
    if missing:
        raise ClusterUnavailable(f"not installed: {', '.join(missing)}")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the local cluster's daemons need root")
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(_config(folder))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    _ensure_munge()
    try:
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon], env=env, check=True, capture_output=True, timeout=30)
        _wait_idle(env, folder)
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True, timeout=30)
        for name in ("slurmd.pid", "slurmctld.pid"):
            _stop(folder / name)


def _wait_idle(env: dict[str, str], folder: Path, limit: float = 60) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
        if state in ("idle", "mix", "alloc"):
            return
        time.sleep(0.5)
    logs = "".join((folder / name).read_text()[-2000:] for name in ("slurmctld.log", "slurmd.log")
                   if (folder / name).exists())
    raise RuntimeError(f"the local SLURM node did not come up (sinfo: {state!r}); logs:\n{logs}")


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
