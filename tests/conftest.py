import os

import numpy as np
import pytest
import torch

# Tests run on CPU tensors; one thread pool size keeps timings of CI predictable.
os.environ.setdefault("GWALIGN_TRITON", "auto")


class DensePlan:
    """What the output code uses of an alignment, on a dense float64 plan (an independent reference
    for coupled CCA and label transfer)."""

    device = torch.device("cpu")

    def __init__(self, plan: np.ndarray, graphs=None, evidence=None) -> None:
        self.plan = plan
        self.graphs = graphs   # the two sides' KNNGraphs, for coupled CCA's plan diffusion
        # (source, target) counterpart evidence (Alignment.counterpart_evidence); ones by default
        self.evidence = evidence or (np.ones(plan.shape[0]), np.ones(plan.shape[1]))

    def counterpart_evidence(self) -> tuple[np.ndarray, np.ndarray]:
        return self.evidence

    def row_marginal(self) -> np.ndarray:
        return self.plan.sum(axis=1)

    def col_marginal(self) -> np.ndarray:
        return self.plan.sum(axis=0)

    def apply(self, z: np.ndarray) -> np.ndarray:
        return self.plan @ z

    def apply_t(self, z: np.ndarray) -> np.ndarray:
        return self.plan.T @ z


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


@pytest.fixture(scope="session")
def snare():
    """SNARE-seq (tests/data, MIT, see its README): RNA and ATAC rows scaled as the CLI's default,
    and the cell-line labels (row i of both files is the same cell)."""
    from pathlib import Path

    from gwalign.preprocess import scale_rows

    data = Path(__file__).parent / "data" / "snareseq"
    xs = scale_rows(np.load(data / "rna.npy"), "auto")[0]
    xt = scale_rows(np.load(data / "atac.npy"), "auto")[0]
    return xs, xt, np.load(data / "rna_labels.npy")
