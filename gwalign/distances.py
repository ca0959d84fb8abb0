"""Distance providers: columns ``D[:, anchors]`` of a graph (geodesic) distance matrix.

The engine never needs a whole N×N distance matrix: each GW step asks for the columns of its
anchors. Providers normalise distances once, globally (by their mean over a fixed random sample
of sources), so that the two sides are on one scale and costs do not drift between steps.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Literal, Optional

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra

from gwalign.graph import KNNGraph
from gwalign.paths import shortest_paths, shortest_paths_many

#: How landmarks are chosen (:func:`choose_landmarks`).
LandmarkChoice = Literal["mixed", "farthest", "uniform"]

#: Sources whose distance rows estimate the global mean distance.
SCALE_SAMPLE = 64


class DistanceProvider:
    """Base class: normalised columns of a distance matrix.

    Subclasses implement ``_raw_columns(idx) -> N×len(idx)`` (float64 NumPy or tensor).
    """

    name = "base"

    def __init__(self, n_points: int, device: torch.device, dtype: torch.dtype, seed: int) -> None:
        self.timings: dict[str, float] = {}
        self.n_points = n_points
        self.device = device
        self.dtype = dtype
        rng = np.random.default_rng(seed)
        sample = rng.choice(n_points, size=min(n_points, SCALE_SAMPLE), replace=False)
        self.scale = 1.0
        raw = self._as_tensor(self._raw_columns(np.sort(sample)))
        if not bool(torch.isfinite(raw).all()):
            raise RuntimeError("infinite graph distance: the graph is not connected")
        self.scale = float(raw.double().mean())
        if not self.scale > 0:
            raise ValueError("all distances are zero: the representation has no spread")

    def _raw_columns(self, idx: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    def _as_tensor(self, values) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            return values.to(device=self.device, dtype=self.dtype)
        return torch.as_tensor(np.ascontiguousarray(values), dtype=self.dtype, device=self.device)

    def columns(self, idx: np.ndarray) -> torch.Tensor:
        """Normalised distances from every point to the points ``idx``: N×len(idx)."""
        idx = np.asarray(idx, dtype=np.int64)
        return self._as_tensor(self._raw_columns(idx)) / self.scale


class PrecomputedDistances(DistanceProvider):
    """A dense N×N distance matrix: given by the user, or all-pairs shortest paths of a graph."""

    name = "precomputed"

    def __init__(self, matrix: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype,
                 seed: int = 0) -> None:
        self._matrix = torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix,
                                       dtype=dtype, device=device).clone()
        super().__init__(self._matrix.shape[0], device, dtype, seed)
        # Exact global mean instead of the sample estimate.
        self.scale = float(self._matrix.double().mean())
        if not self.scale > 0:
            raise ValueError("all distances are zero: the representation has no spread")

    @classmethod
    def from_graph(cls, graph: KNNGraph, device: torch.device, dtype: torch.dtype,
                   seed: int = 0) -> "PrecomputedDistances":
        """All-pairs shortest paths of ``graph`` (N² memory: small N only)."""
        full = dijkstra(graph.matrix, directed=True)  # symmetric graph: same result, faster
        if not np.isfinite(full).all():
            raise RuntimeError("infinite graph distance: the graph is not connected")
        return cls(full, device, dtype, seed)

    def _raw_columns(self, idx: np.ndarray) -> torch.Tensor:
        return self._matrix[:, torch.as_tensor(idx, device=self._matrix.device)]

    def dense(self) -> torch.Tensor:
        """The normalised N×N matrix."""
        return self._matrix / self.scale


class DijkstraDistances(DistanceProvider):
    """Exact geodesics by Dijkstra from the requested anchors, with a bounded row cache."""

    name = "dijkstra"

    def __init__(self, graph: KNNGraph, device: torch.device, dtype: torch.dtype, seed: int = 0,
                 cache_rows: Optional[int] = None) -> None:
        self._graph = graph.matrix
        n = graph.n_points
        # Default cache: about 256 MB of float32 rows, at least 64 rows.
        self._cache_rows = cache_rows if cache_rows is not None else max(64, (64 << 20) // max(n, 1))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        super().__init__(n, device, dtype, seed)

    def _raw_columns(self, idx: np.ndarray) -> np.ndarray:
        missing = sorted({int(i) for i in idx if int(i) not in self._cache})
        if missing:
            rows = dijkstra(self._graph, directed=True, indices=missing)
            rows = np.atleast_2d(rows).astype(np.float32)
            if not np.isfinite(rows).all():
                raise RuntimeError("infinite graph distance: the graph is not connected")
            for i, row in zip(missing, rows):
                self._cache[i] = row
        out = np.stack([self._cache[int(i)] for i in idx], axis=1)
        for i in idx:
            self._cache.move_to_end(int(i))
        while len(self._cache) > self._cache_rows:
            self._cache.popitem(last=False)
        return out


class LandmarkDistances(DistanceProvider):
    """Landmark-MDS embedding of the geodesic metric (de Silva & Tenenbaum 2004).

    Landmarks are chosen by :func:`choose_landmarks` (by default half by farthest-point sampling,
    half uniformly among the other points); shortest paths from them give an L×N
    distance table, which classical MDS on the landmarks turns into coordinates ``Y`` (N×r) for
    every point by triangulation. The distance between i and j is approximated by
    ``‖Y_i − Y_j‖``: exact for points of an isometrically flat manifold (e.g. a Swiss roll),
    an approximation otherwise. Its square is a rank-(r+2) matrix, which keeps an exact low-rank
    GW mode possible (Scetbon, Peyré, Cuturi 2022).

    With ``points`` given, farthest-point sampling runs in the representation (Euclidean, on the
    points' device) and all L shortest-path trees are then grown at once, in parallel processes
    (:func:`shortest_paths`). Without, it runs on the graph metric, which needs one Dijkstra after
    another: at 45k points that sequential chain was 4.1 s of a 17 s run on the H100 host.
    ``paths`` takes the output of :func:`landmark_paths` (both sides of an alignment share one
    process pool that way).
    """

    name = "landmark"

    def __init__(self, graph: KNNGraph, device: torch.device, dtype: torch.dtype, seed: int = 0,
                 n_landmarks: int = 256, dim: int = 32, points: Optional[torch.Tensor] = None,
                 paths: Optional[tuple[np.ndarray, np.ndarray, dict[str, float]]] = None,
                 choice: LandmarkChoice = "mixed") -> None:
        n = graph.n_points
        if paths is None:
            paths = landmark_paths([graph], [points], min(n_landmarks, n), [seed], choice)[0]
        landmarks, table, timings = paths
        if not np.isfinite(table).all():
            raise RuntimeError("infinite graph distance: the graph is not connected")
        tick = time.perf_counter()
        coords = _landmark_mds(table, landmarks, dim)
        timings = {**timings, "mds": time.perf_counter() - tick}
        self.landmarks = landmarks
        # The exact geodesic rows of the landmarks (L×N), kept for the Nyström factorisation
        # of low-rank GW (gwalign.engine.lowrank.factor_nystrom); float32 to halve the memory.
        self.table = np.asarray(table, dtype=np.float32)
        self.coords = torch.as_tensor(coords, dtype=dtype, device=device)
        super().__init__(n, device, dtype, seed)
        self.timings = timings

    def _raw_columns(self, idx: np.ndarray) -> torch.Tensor:
        anchors = self.coords[torch.as_tensor(idx, device=self.coords.device)]
        return torch.cdist(self.coords, anchors)


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
    (:func:`gwalign.engine.lowrank.factor_nystrom`) then fit it worst where it matters most. The
    mixture keeps both (docs/design-notes.md, "Landmarks"): on PBMC with 128 landmarks, label
    transfer 0.854 (farthest) / 0.923 (uniform) / 0.937 (mixed) against 0.939 for exact
    geodesics.
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

    Returns ``(landmarks, L×N table, timings)`` per graph (see :class:`LandmarkDistances`).
    """
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
    tick = time.perf_counter()
    tables = shortest_paths_many([(graphs[i].matrix, landmarks) for i, landmarks in euclidean])
    elapsed = (time.perf_counter() - tick) / max(len(euclidean), 1)
    for (i, landmarks), table in zip(euclidean, tables):
        results[i] = (landmarks, table, {**timings[i], "paths": elapsed})
    return results


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


def _landmark_mds(table: np.ndarray, landmarks: np.ndarray, dim: int) -> np.ndarray:
    """Landmark MDS: coordinates N×r from landmark-to-all distances L×N."""
    sq = table ** 2
    sq_land = sq[:, landmarks]                       # L×L squared distances among landmarks
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
    mean_sq = sq_land.mean(axis=1)
    pinv = vecs / np.sqrt(vals)                      # L×r
    return -0.5 * (sq - mean_sq[:, None]).T @ pinv   # N×r
