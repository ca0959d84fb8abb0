import os
import zlib

import numpy as np
import pytest
import torch

# Tests run on CPU tensors; one thread pool size keeps timings of CI predictable.
os.environ.setdefault("GWALIGN_TRITON", "auto")


def _test_seed(request: pytest.FixtureRequest) -> int:
    """A fixed seed per test (from its id), so a failure repeats; ``GWALIGN_TEST_SEED`` overrides it
    to try other draws."""
    override = os.environ.get("GWALIGN_TEST_SEED")
    return int(override) if override else zlib.crc32(request.node.nodeid.encode())


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """NumPy randomness with the test's fixed seed (printed, for a failing test's report)."""
    seed = _test_seed(request)
    print(f"random seed {seed}")
    return np.random.default_rng(seed)


@pytest.fixture
def torch_gen(request: pytest.FixtureRequest) -> torch.Generator:
    """Torch randomness with the test's fixed seed."""
    seed = _test_seed(request)
    print(f"torch seed {seed}")
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def snare():
    """SNARE-seq (tests/data, MIT, see its README): RNA and ATAC rows scaled as the CLI's default,
    and the cell-line labels (row i of both files is the same cell)."""
    from pathlib import Path

    from gwalign.preprocess.row_scaling import scale_pair

    data = Path(__file__).parent / "data" / "snareseq"
    xs, xt, _ = scale_pair(np.load(data / "rna.npy"), np.load(data / "atac.npy"), "auto")
    return xs, xt, np.load(data / "rna_labels.npy")


@pytest.fixture
def few_features(rng):
    """A CITE-seq-like pair with 25 features a side on different scales, both uncentred: counts-like
    genes whose norms vary with a per-cell size factor, and protein levels an order of magnitude
    larger whose norms barely vary (300 cells a side)."""
    n = 300
    types = rng.integers(0, 3, size=n)
    genes = rng.gamma(2.0, 1.0, size=(3, 25))[types] * rng.lognormal(sigma=0.6, size=n)[:, None]
    proteins = 50.0 * (1.0 + rng.gamma(2.0, 0.2, size=(3, 25))[types]) + rng.normal(size=(n, 25))
    return genes + 0.1 * rng.random((n, 25)), proteins


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the real pairs (through the ``snare`` fixture) carry the ``real_data`` mark."""
    for item in items:
        if "snare" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)
