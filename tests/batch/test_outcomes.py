"""How a pair's ending becomes a status and an exit code a scheduler can act on."""

import pytest

from gwalign.batch.runner import classify
from gwalign.errors import GPUMemoryError
from gwalign.io.h5ad import InputError
from gwalign.io.outputs import Terminated


@pytest.mark.parametrize("error, status, code", [
    (InputError("a.h5ad: not an HDF5 file"), "failed", 2),
    (GPUMemoryError("CUDA out of memory in stage 'solve'"), "retryable", 75),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "retryable", 75),
    (RuntimeError("CUDA error: unspecified launch failure"), "retryable", 75),
    (RuntimeError("shape mismatch"), "error", 1),
    (ValueError("bad value"), "error", 1),
    (Terminated(), "terminated", 143),
    (KeyboardInterrupt(), "terminated", 130),
])
def test_endings_map_to_statuses_and_exit_codes(error, status, code):
    outcome = classify(error)
    assert (outcome["status"], outcome["exit_code"]) == (status, code)
    assert "\n" not in outcome["error"]
    assert ("advice" in outcome) == (code == 75)


def test_system_exit_is_not_swallowed():
    assert classify(SystemExit(3)) is None
