"""Landmarks: which cells the geodesic distances are computed from, and their landmark-MDS embedding."""

from __future__ import annotations

import time
from typing import Literal, Optional
import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra
from gwalign.geometry.knn import KNNGraph
from gwalign.geometry.shortest_paths import PendingPaths, start_shortest_paths


#: How landmarks are chosen (:func:`choose_landmarks`).
LandmarkChoice = Literal["mixed", "farthest", "uniform"]


def farthest_points(points: torch.Tensor, n_points: int, seed: int) -> np.ndarray:
    """Greedy farthest-point sampling in Euclidean space, on the points' device.

    The first point is drawn with ``seed``; each next one is the point farthest from all chosen.
    Indices stay on the device until the end (no host synchronisation per point).
    """
    n = points.shape[0]
    first = int(np.random.default_rng(seed).integers(n))
    x = points.to(torch.float32) if points.dtype not in (torch.float32, torch.float64) else points
    chosen = [torch.tensor(first, device=x.device)]
    nearest = ((x - x[first]) ** 2).sum(dim=1)
    for _ in range(1, n_points):
        nxt = torch.argmax(nearest)
        chosen.append(nxt)
        nearest = torch.minimum(nearest, ((x - x[nxt]) ** 2).sum(dim=1))
    return torch.stack(chosen).cpu().numpy().astype(np.int64)


def _farthest_count(choice: str, n_landmarks: int) -> int:
    """How many of ``n_landmarks`` :func:`choose_landmarks` takes by farthest-point sampling."""
    counts = {"farthest": n_landmarks, "mixed": (n_landmarks + 1) // 2, "uniform": 0}
    if choice not in counts:
        raise ValueError(f"landmark choice must be mixed, farthest or uniform, got {choice!r}")
    return counts[choice]


def choose_landmarks(points: torch.Tensor, n_points: int, seed: int,
                     choice: LandmarkChoice = "mixed") -> np.ndarray:
    """Landmark indices: ``farthest`` (:func:`farthest_points`), ``uniform`` (without
    replacement) or ``mixed``: the first half by farthest-point sampling, the rest uniformly
    among the other points.

    Farthest points cover small and remote groups of cells that a uniform draw can miss, but
    they crowd the edges of the data and leave its dense interior, where most cells (and most of
    the GW objective's mass) lie, to few landmarks; the Nyström factors of the geodesic matrix
    (:func:`gwalign.geometry.factors.factor_nystrom`) then fit it worst where it matters most. The
    mixture keeps both (docs/how-it-works/distances.md, "Landmarks, above 2,500 cells a side").
    """
    n = points.shape[0]
    spread = _farthest_count(choice, n_points)
    rng = np.random.default_rng(seed)
    if spread == 0:
        return np.sort(rng.choice(n, size=n_points, replace=False)).astype(np.int64)
    far = farthest_points(points, spread, seed)
    if spread == n_points:
        return far
    rest = np.setdiff1d(np.arange(n), far)
    return np.concatenate([far, rng.choice(rest, size=n_points - spread, replace=False)]).astype(np.int64)


def landmark_paths(graphs: list[KNNGraph], points: list[Optional[torch.Tensor]], n_landmarks: int,
                   seeds: list[int], choice: LandmarkChoice = "mixed"
                   ) -> list[tuple[np.ndarray, np.ndarray, dict[str, float]]]:
    """Landmarks (:func:`choose_landmarks`) and landmark-to-all geodesic tables for several
    graphs, with one process pool.

    Returns ``(landmarks, L×N table, timings)`` per graph (see
    :class:`~gwalign.geometry.distances.LandmarkDistances`).
    """
    return start_landmark_paths(graphs, points, n_landmarks, seeds, choice).result()


class PendingLandmarkPaths:
    """:func:`landmark_paths` under way in the worker pool; :meth:`result` waits for it."""

    def __init__(self, results: list, euclidean: list[tuple[int, np.ndarray]], timings: list[dict[str, float]],
                 pending: PendingPaths):
        self._results, self._euclidean, self._timings, self._pending = results, euclidean, timings, pending

    def result(self) -> list[tuple[np.ndarray, np.ndarray, dict[str, float]]]:
        """``(landmarks, L×N table, timings)`` per graph; a table's ``paths`` time is the time
        this call waited for it, shared between the graphs searched together."""
        tick = time.perf_counter()
        tables = self._pending.result()
        waited = (time.perf_counter() - tick) / max(len(self._euclidean), 1)
        for (i, landmarks), table in zip(self._euclidean, tables):
            self._results[i] = (landmarks, table, {**self._timings[i], "paths": waited})
        return self._results

    def discard(self) -> None:
        """Drop the search under way (its tables are never read)."""
        self._pending.discard()


def start_landmark_paths(graphs: list[KNNGraph], points: list[Optional[torch.Tensor]], n_landmarks: int,
                         seeds: list[int], choice: LandmarkChoice = "mixed") -> PendingLandmarkPaths:
    """:func:`landmark_paths` without waiting for the shortest paths of graphs with points: their
    landmarks are chosen here, and the pool searches while the caller goes on."""
    results: list = [None] * len(graphs)
    timings: list[dict[str, float]] = [{} for _ in graphs]
    euclidean = []
    for i, (graph, pts, seed) in enumerate(zip(graphs, points, seeds)):
        count = min(n_landmarks, graph.n_points)
        tick = time.perf_counter()
        if pts is not None:
            euclidean.append((i, choose_landmarks(pts, count, seed, choice)))
            timings[i]["landmarks"] = time.perf_counter() - tick
        else:
            landmarks, table = _farthest_point_landmarks(graph.matrix, count, seed, choice)
            results[i] = (landmarks, table, {"landmarks": 0.0, "paths": time.perf_counter() - tick})
    pending = start_shortest_paths([(graphs[i].matrix, landmarks) for i, landmarks in euclidean])
    return PendingLandmarkPaths(results, euclidean, timings, pending)


def _farthest_point_landmarks(graph: sp.csr_matrix, n_landmarks: int, seed: int,
                              choice: LandmarkChoice = "mixed") -> tuple[np.ndarray, np.ndarray]:
    """:func:`choose_landmarks` on the graph metric; returns (landmarks, L×N distances)."""
    spread = _farthest_count(choice, n_landmarks)
    n = graph.shape[0]
    rng = np.random.default_rng(seed)
    landmarks = [int(rng.integers(n))] if spread else []
    table = np.empty((n_landmarks, n), dtype=np.float64)
    nearest = np.full(n, np.inf)
    for t in range(spread):
        table[t] = dijkstra(graph, directed=True, indices=landmarks[t])
        if not np.isfinite(table[t]).all():
            raise RuntimeError("infinite graph distance: the graph is not connected")
        np.minimum(nearest, table[t], out=nearest)
        if t + 1 < spread:
            landmarks.append(int(np.argmax(nearest)))
    if spread < n_landmarks:
        rest = np.setdiff1d(np.arange(n), landmarks)
        drawn = rng.choice(rest, size=n_landmarks - spread, replace=False)
        table[spread:] = dijkstra(graph, directed=True, indices=drawn)
        if not np.isfinite(table[spread:]).all():
            raise RuntimeError("infinite graph distance: the graph is not connected")
        landmarks.extend(int(i) for i in drawn)
    return np.array(landmarks), table


#: Landmark rows triangulated at once by :func:`landmark_mds` (bounds its device memory:
#: 2 × this × N × 8 bytes). Row blocks of the table are contiguous: no strided copies.
MDS_CHUNK_LANDMARKS = 32


def landmark_mds(table: np.ndarray, landmarks: np.ndarray, dim: int,
                 device: Optional[torch.device] = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Landmark MDS: coordinates N×r, on ``device`` in ``dtype``, from landmark-to-all distances L×N.

    Classical MDS of the L×L landmark block runs on the host in float64; the triangulation of
    every point (an r×L by L×N product, summed over blocks of :data:`MDS_CHUNK_LANDMARKS`
    landmarks) runs on ``device`` in float64. ``table`` is not modified.
    """
    sq_land = table[:, landmarks] ** 2               # L×L squared distances among landmarks
    sq_land = 0.5 * (sq_land + sq_land.T)
    n_land = sq_land.shape[0]
    centring = np.eye(n_land) - 1.0 / n_land
    gram = -0.5 * centring @ sq_land @ centring
    vals, vecs = np.linalg.eigh(gram)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    positive = vals > vals[0] * 1e-9
    r = int(min(dim, positive.sum()))
    vals, vecs = vals[:r], vecs[:, :r]
    # Triangulation: y_x = -1/2 · Λ^{-1/2} Vᵀ (δ_x − mean_δ) for squared distances δ_x to landmarks.
    mean_sq = torch.as_tensor(sq_land.mean(axis=1), device=device)
    pinv_t = torch.as_tensor(np.ascontiguousarray((vecs / np.sqrt(vals)).T), device=device)   # r×L
    coords_t = torch.zeros(r, table.shape[1], dtype=torch.float64, device=device)
    for lo in range(0, n_land, MDS_CHUNK_LANDMARKS):
        hi = min(lo + MDS_CHUNK_LANDMARKS, n_land)
        squared = torch.as_tensor(table[lo:hi], dtype=torch.float64, device=device).square()
        coords_t.addmm_(pinv_t[:, lo:hi], squared.sub_(mean_sq[lo:hi, None]), alpha=-0.5)
    return coords_t.T.to(dtype).contiguous()
