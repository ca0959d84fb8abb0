"""Lazy random walks on a kNN graph, used to diffuse the plan before the coupled CCA."""

from __future__ import annotations

import warnings
from typing import Optional
import numpy as np
import scipy.sparse as sp
import torch


class GraphWalk:
    """``z ↦ S^t z`` (or ``(S^t)ᵀ z``) for the lazy random walk ``S = (I + D⁻¹A)/2`` of a kNN
    graph's unweighted, symmetric adjacency ``A`` (``D`` its degrees); the identity without a
    graph or with ``steps = 0``. Runs as sparse products on ``device`` (float32 on a GPU), so a
    walk over a million cells costs what a plan product does, not a CPU pass."""

    def __init__(self, graph, steps: int, device: torch.device = torch.device("cpu")) -> None:
        self.steps = steps if graph is not None else 0
        self.device = device
        if self.steps:
            adjacency = sp.csr_matrix(graph.matrix, copy=True)
            adjacency.data[:] = 1.0
            self.dtype = torch.float32 if device.type == "cuda" else torch.float64
            with warnings.catch_warnings():   # torch calls sparse CSR "beta"; products are all we use
                warnings.simplefilter("ignore", UserWarning)
                self.adjacency = torch.sparse_csr_tensor(
                    torch.from_numpy(adjacency.indptr.astype(np.int64)),
                    torch.from_numpy(adjacency.indices.astype(np.int64)),
                    torch.from_numpy(adjacency.data.astype(np.float64)), size=adjacency.shape,
                    dtype=self.dtype, device=device, check_invariants=False)
            degree = np.maximum(np.diff(adjacency.indptr), 1).astype(np.float64)
            self.inv_degree = torch.as_tensor(1.0 / degree, dtype=self.dtype, device=device)[:, None]

    def __call__(self, z: np.ndarray, transpose: bool = False) -> np.ndarray:
        if not self.steps:
            return np.asarray(z, dtype=np.float64)
        out = torch.as_tensor(np.asarray(z), dtype=self.dtype, device=self.device)
        for _ in range(self.steps):
            # S z = (z + D⁻¹ A z) / 2 and, A being symmetric, Sᵀ z = (z + A D⁻¹ z) / 2.
            spread = self.adjacency @ (self.inv_degree * out) if transpose else self.inv_degree * (self.adjacency @ out)
            out = 0.5 * (out + spread)
        return out.cpu().numpy().astype(np.float64)


def graph_walk(graph, steps: int, device: Optional[torch.device] = None) -> GraphWalk:
    """The lazy random walk of ``graph`` (a :class:`~gwalign.geometry.knn.KNNGraph` or ``None``) over
    ``steps`` steps, computed on ``device`` (CPU by default)."""
    if not (isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 0):
        raise ValueError(f"diffusion_steps must be a non-negative integer, got {steps!r}")
    return GraphWalk(graph, int(steps), device or torch.device("cpu"))
