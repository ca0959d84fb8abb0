"""Distance providers: columns ``D[:, anchors]`` of a graph (geodesic) distance matrix.

The engine never needs a whole N×N distance matrix: each GW step asks for the columns of its
anchors. Providers normalise distances once, globally (by their mean over a fixed random sample
of sources), so that the two sides are on one scale and costs do not drift between steps.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Optional
import numpy as np
import torch
from scipy.sparse.csgraph import dijkstra
from gwalign.geometry.knn import KNNGraph
from gwalign.geometry.landmarks import LandmarkChoice
from gwalign.geometry.landmarks import landmark_mds
from gwalign.geometry.landmarks import landmark_paths


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
        return cls.from_paths(full, device, dtype, seed)

    @classmethod
    def from_paths(cls, table: np.ndarray, device: torch.device, dtype: torch.dtype,
                   seed: int = 0) -> "PrecomputedDistances":
        """A graph's all-pairs shortest-path table (N×N), checked to be finite."""
        if not np.isfinite(table).all():
            raise RuntimeError("infinite graph distance: the graph is not connected")
        return cls(table, device, dtype, seed)

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

    Landmarks are chosen by :func:`~gwalign.geometry.landmarks.choose_landmarks` (by default half
    by farthest-point sampling, half uniformly among the other points); shortest paths from them
    give an L×N distance table, which classical MDS on the landmarks turns into coordinates
    ``Y`` (N×r) for every point by triangulation. The distance between i and j is approximated by
    ``‖Y_i − Y_j‖``: exact for points of an isometrically flat manifold (e.g. a Swiss roll),
    an approximation otherwise. Its square is a rank-(r+2) matrix, which keeps an exact low-rank
    GW mode possible (Scetbon, Peyré, Cuturi 2022).

    With ``points`` given, farthest-point sampling runs in the representation (Euclidean, on the
    points' device) and all L shortest-path trees are then grown at once, in parallel processes
    (:func:`~gwalign.geometry.shortest_paths.shortest_paths`). Without, it runs on the graph
    metric, which needs one Dijkstra after another, several times slower
    (docs/how-it-works/distances.md). ``paths`` takes the output of :func:`landmark_paths` (both
    sides of an alignment share one process pool that way).
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
        coords = landmark_mds(table, landmarks, dim, device, dtype)
        timings = {**timings, "mds": time.perf_counter() - tick}
        self.landmarks = landmarks
        # The exact geodesic rows of the landmarks (L×N), kept for the Nyström factorisation
        # of low-rank GW (gwalign.geometry.factors.factor_nystrom); float32 to halve the memory.
        self.table = np.asarray(table, dtype=np.float32)
        self.coords = coords
        super().__init__(n, device, dtype, seed)
        self.timings = timings

    def _raw_columns(self, idx: np.ndarray) -> torch.Tensor:
        anchors = self.coords[torch.as_tensor(idx, device=self.coords.device)]
        return torch.cdist(self.coords, anchors)
