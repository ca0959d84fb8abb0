"""A cell type missing on one side of the bundled example pair: the one-sided check marks the other
side's cells of that type and gives them low transfer confidence, and the run it suggests
(semi-relaxed, the side holding them as the target) carries the shared types' labels across."""

import numpy as np
import pytest

import gwalign
from gwalign.datasets.example import make_example_pair

LABEL = "cell_type"
REMOVED = "branch_B"   # the short branch: without it one side is a path, the other a branching tree


@pytest.fixture(scope="module")
def pair():
    return make_example_pair()


def without(adata, cell_type):
    return adata[(adata.obs[LABEL] != cell_type).to_numpy()].copy()


def shared_transfer(result) -> float:
    """Label transfer of the written labels, both directions averaged, on the types both sides hold."""
    scores = []
    for own, other in ((result.adata_a, result.adata_b), (result.adata_b, result.adata_a)):
        truth, written = own.obs[LABEL].astype(str), own.obs[f"{LABEL}_gw"].astype(str)
        shared = truth.isin(set(other.obs[LABEL].astype(str))).to_numpy()
        scores.append(float(np.mean(truth.to_numpy()[shared] == written.to_numpy()[shared])))
    return float(np.mean(scores))


@pytest.mark.parametrize("side", ["rna", "atac"])
def test_missing_type_is_flagged_with_low_confidence_and_the_suggested_run_transfers(pair, side):
    rna, atac = pair
    rna, atac = (without(rna, REMOVED), atac) if side == "rna" else (rna, without(atac, REMOVED))
    balanced = gwalign.tl.align(rna, atac, copy=True, transfer_labels=LABEL, device="cpu", names=("rna", "atac"))
    # The side that keeps the type holds the one-sided cells.
    holding = balanced.adata_b if side == "rna" else balanced.adata_a
    one_sided = (holding.obs[LABEL] == REMOVED).to_numpy()
    flagged = holding.obs["gw_one_sided"].to_numpy()
    assert flagged[one_sided].mean() >= 0.15, flagged[one_sided].mean()
    assert not flagged[~one_sided].any()
    confidence = holding.obs[f"{LABEL}_gw_confidence"].to_numpy()
    assert confidence[~one_sided].mean() - confidence[one_sided].mean() >= 0.3
    advice = balanced.report["one_sided"]["suggestion"]
    assert advice is not None and "semi_relaxed=True" in advice
    # The suggested run: semi-relaxed, with the holding side as the target (swapped when it is the source).
    swap = "with atac first" in advice
    assert swap == (side == "atac")
    source, target = (atac, rna) if swap else (rna, atac)
    relaxed = gwalign.tl.align(source, target, copy=True, transfer_labels=LABEL, device="cpu", semi_relaxed=True)
    # The balanced run places the missing branch on the other side's path and swaps its ends (0.05);
    # the suggested run gets 0.936 with RNA as the source and 0.858 with ATAC as the source.
    assert shared_transfer(balanced) < 0.5
    assert shared_transfer(relaxed) >= (0.90 if side == "rna" else 0.80)
