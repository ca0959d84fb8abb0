"""The symmetric kNN graph from each point's neighbour list: an edge wherever either end lists the
other, with the larger of the two lengths where both do."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def symmetric_graph(lengths: np.ndarray, neighbours: np.ndarray, device: torch.device) -> sp.csr_matrix:
    """``G = max(A, Aᵀ)`` of the directed kNN graph ``A`` (row ``i`` holds ``neighbours[i]`` at
    ``lengths[i]``), as a canonical CSR matrix (sorted indices, no duplicates): by SciPy on the
    host, or, for a run on a GPU, by one sort on the device (:func:`_on_device`), which gives the
    same arrays.

    Parameters
    ----------
    lengths
        N×k positive edge lengths (float64).
    neighbours
        N×k neighbour indices.
    device
        Where the tensors of the run live.
    """
    n, k = neighbours.shape
    if device.type == "cuda":
        # SciPy's conversions are host time on a GPU run's critical path: 60–70 ms a graph at
        # 45,000 points and 1.9 s at 1,000,000, against 15 ms and 0.4–0.7 s sorted on an H100
        # (docs/performance.md).
        return _on_device(lengths, neighbours, device)
    rows = np.repeat(np.arange(n), k)
    graph = sp.csr_matrix((lengths.ravel(), (rows, neighbours.ravel())), shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def _on_device(lengths: np.ndarray, neighbours: np.ndarray, device: torch.device) -> sp.csr_matrix:
    """:func:`symmetric_graph` by one sort of both directions' edges by ``row · N + column`` on
    ``device``, the larger length kept where an edge comes twice."""
    n, k = neighbours.shape
    cols = torch.as_tensor(neighbours, device=device).reshape(-1).long()
    length = torch.as_tensor(lengths, dtype=torch.float64, device=device).reshape(-1)
    rows = torch.arange(n, device=device).repeat_interleave(k)
    keys, order = torch.sort(torch.cat([rows * n + cols, cols * n + rows]))
    length = torch.cat([length, length])[order]
    edges, inverse = torch.unique_consecutive(keys, return_inverse=True)
    data = torch.full((edges.shape[0],), -torch.inf, dtype=torch.float64, device=device)
    data = data.scatter_reduce(0, inverse, length, "amax")
    indptr = torch.zeros(n + 1, dtype=torch.int64, device=device)
    indptr[1:] = torch.bincount(edges // n, minlength=n).cumsum(0)
    # SciPy's own choice of index type: 32 bits while every index fits.
    index = torch.int32 if max(n, edges.shape[0]) < 2 ** 31 else torch.int64
    graph = sp.csr_matrix((data.cpu().numpy(), (edges % n).to(index).cpu().numpy(), indptr.to(index).cpu().numpy()),
                          shape=(n, n))
    graph.has_sorted_indices = True
    return graph
