"""The per-pair lock: one holder at a time, stale holders taken over, the stage recorded."""

import json
import os
import subprocess
import sys
import time

import pytest

from gwalign.batch.lock import LOCK_NAME, OWNER_FILE, LockHeld, PairLock, is_stale, read_owner


def test_a_held_lock_refuses_a_second_holder_and_is_released(tmp_path):
    with PairLock(tmp_path / "p") as lock:
        lock.set_stage("align")
        owner = read_owner(tmp_path / "p")
        assert owner["pid"] == os.getpid() and owner["stage"] == "align"
        with pytest.raises(LockHeld, match="running elsewhere .*stage align"):
            PairLock(tmp_path / "p").__enter__()
    assert read_owner(tmp_path / "p") is None
    with PairLock(tmp_path / "p"):   # free again
        pass


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "p"
    with PairLock(folder):
        owner_file = folder / LOCK_NAME / OWNER_FILE
        owner = json.loads(owner_file.read_text())
    (folder / LOCK_NAME).mkdir()
    owner_file.write_text(json.dumps({**owner, "pid": int(dead.stdout)}))
    assert is_stale(read_owner(folder))
    with PairLock(folder) as lock:
        assert read_owner(folder)["pid"] == os.getpid()
        assert lock.path.is_dir()
    assert not any(p.name.startswith(LOCK_NAME) for p in folder.iterdir())


def test_a_lock_of_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path):
    folder = tmp_path / "p"
    (folder / LOCK_NAME).mkdir(parents=True)
    owner_file = folder / LOCK_NAME / OWNER_FILE
    owner_file.write_text(json.dumps({"host": "some-other-node", "pid": 1, "stage": "align"}))
    with pytest.raises(LockHeld, match="some-other-node"):
        PairLock(folder, stale_after=60).__enter__()
    old = time.time() - 120
    os.utime(owner_file, (old, old))
    with PairLock(folder, stale_after=60):
        assert read_owner(folder)["host"] != "some-other-node"


def test_the_heartbeat_keeps_the_owner_file_fresh(tmp_path):
    with PairLock(tmp_path / "p", heartbeat=0.05):
        owner_file = tmp_path / "p" / LOCK_NAME / OWNER_FILE
        old = time.time() - 100
        os.utime(owner_file, (old, old))
        deadline = time.time() + 5
        while read_owner(tmp_path / "p")["age_s"] > 50 and time.time() < deadline:
            time.sleep(0.02)
        assert read_owner(tmp_path / "p")["age_s"] < 50
