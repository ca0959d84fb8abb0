import os

import numpy as np
import pytest
import torch

# Tests run on CPU tensors; one thread pool size keeps timings of CI predictable.
os.environ.setdefault("GWALIGN_TRITON", "auto")


@pytest.fixture
def rng():
    """Fresh randomness per test run (seeded by pytest's test id would hide bugs): time-based."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"random seed {seed}")
    return np.random.default_rng(seed)


@pytest.fixture
def torch_gen():
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"torch seed {seed}")
    return torch.Generator().manual_seed(seed)
