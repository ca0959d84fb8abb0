"""A dense float64 stand-in for an alignment: an independent reference for the output code's tests."""

import numpy as np
import torch


class DensePlan:
    """What the output code uses of an alignment, on a dense float64 plan (an independent reference
    for coupled CCA and label transfer)."""

    device = torch.device("cpu")

    def __init__(self, plan: np.ndarray, graphs=None, evidence=None, relaxed=None) -> None:
        self.plan = plan
        # (source, target) masses of the one-sided check (Alignment.relaxed_mass); None: no check
        self.relaxed = relaxed
        self.graphs = graphs   # the two sides' KNNGraphs, for coupled CCA's plan diffusion
        # (source, target) counterpart evidence (Alignment.counterpart_evidence); ones by default
        self.evidence = evidence or (np.ones(plan.shape[0]), np.ones(plan.shape[1]))

    def counterpart_evidence(self) -> tuple[np.ndarray, np.ndarray]:
        return self.evidence

    def relaxed_mass(self):
        return self.relaxed

    def row_marginal(self) -> np.ndarray:
        return self.plan.sum(axis=1)

    def col_marginal(self) -> np.ndarray:
        return self.plan.sum(axis=0)

    def apply(self, z: np.ndarray) -> np.ndarray:
        return self.plan @ z

    def apply_t(self, z: np.ndarray) -> np.ndarray:
        return self.plan.T @ z
