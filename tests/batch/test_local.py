"""Local workers: one process per GPU slot at a time, exit codes combined, signals passed on."""

import os
import signal
import sys
import threading
import time

from gwalign.batch.local import run_locally
from gwalign.batch.runner import combine


def test_each_pair_runs_once_with_its_own_gpu_and_codes_combine(tmp_path):
    codes = {1: 0, 2: 2, 3: 0, 4: 0}

    def command(number):
        script = (f"import os, time; time.sleep(0.3); "
                  f"open(r'{tmp_path}/' + str({number}), 'w').write(os.environ.get('CUDA_VISIBLE_DEVICES', '')); "
                  f"raise SystemExit({codes[number]})")
        return [sys.executable, "-c", script]

    assert run_locally(list(codes), command, gpus=["0", "1"], log=lambda _line: None) == 2
    seen = {n: (tmp_path / str(n)).read_text() for n in codes}
    assert set(seen.values()) == {"0", "1"}


def test_sigterm_is_passed_on_and_no_new_pair_starts(tmp_path):
    started = tmp_path / "started"
    started.mkdir()

    def command(number):
        return [sys.executable, "-c", f"import time; open(r'{started}/{number}', 'w'); time.sleep(30)"]

    def terminate():
        while not any(started.iterdir()):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()
    tick = time.time()
    assert run_locally([1, 2, 3], command, log=lambda _line: None) == 143
    assert time.time() - tick < 20
    assert [p.name for p in started.iterdir()] == ["1"]


def test_combine_prefers_what_a_scheduler_can_act_on():
    assert combine([0, 0]) == 0
    assert combine([0, 2]) == 2
    assert combine([2, 75, 1]) == 75
    assert combine([2, 1]) == 1
    assert combine([75, 143]) == 143
