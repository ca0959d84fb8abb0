"""Input checks for the public API: one ``ValueError`` per problem, naming the argument."""

from __future__ import annotations

from typing import Optional
import numpy as np
import torch
from gwalign.io.content import same_rows


def as_matrix(name: str, x, *, min_rows: int = 1) -> np.ndarray:
    """A finite 2-D float array (a copy: callers' arrays are never touched); a point cloud
    (``min_rows`` > 1) must have at least ``min_rows`` rows, not all the same."""
    if x is None:
        raise ValueError(f"{name} is missing")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if hasattr(x, "toarray") and not isinstance(x, np.ndarray):
        x = x.toarray()
    arr = np.array(x, dtype=np.float64, copy=True)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (cells × features), got {arr.ndim} dimensions")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.nonzero(bad.any(axis=1))[0][0])
        kind = "NaN" if np.isnan(arr).any() else "Inf"
        raise ValueError(f"{name} contains {kind} values ({int(bad.sum())} entries, first in row {row})")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} has {arr.shape[0]} points, fewer than k+1 = {min_rows}")
    if min_rows > 1 and same_rows(arr):
        # All distances zero: any plan is optimal, and a result would mean nothing.
        raise ValueError(f"{name}: every point is the same ({arr.shape[0]} identical rows); there is nothing to align")
    return arr


def as_marginal(name: str, w, n: int) -> np.ndarray:
    """A positive weight vector of length ``n`` summing to 1 (uniform when ``None``)."""
    if w is None:
        return np.full(n, 1.0 / n)
    arr = np.array(w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else w,
                   dtype=np.float64, copy=True).ravel()
    if arr.shape[0] != n:
        raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    if (arr <= 0).any():
        raise ValueError(f"{name} must be strictly positive (min {arr.min():.3g})")
    if abs(arr.sum() - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, sums to {arr.sum():.6g}")
    return arr


def as_square_distances(name: str, d, n: int) -> np.ndarray:
    """A finite, non-negative n×n distance matrix."""
    arr = as_matrix(name, d)
    if arr.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}), got {arr.shape}")
    if (arr < 0).any():
        raise ValueError(f"{name} has negative distances")
    return arr


def as_linear_cost(name: str, c, n_source: int, n_target: int, limit: int) -> Optional[np.ndarray]:
    """A dense n×k feature cost, only for small problems."""
    if c is None:
        return None
    if n_source * n_target > limit:
        raise ValueError(f"{name} is dense ({n_source}×{n_target} = {n_source * n_target} entries) above dense_limit={limit}; "
                         "give shared features (joint_source/joint_target) instead")
    arr = as_matrix(name, c)
    if arr.shape != (n_source, n_target):
        raise ValueError(f"{name} must have shape ({n_source}, {n_target}), got {arr.shape}")
    return arr
