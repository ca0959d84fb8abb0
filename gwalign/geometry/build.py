"""From kNN graphs to the distance providers and low-rank factors a GW solver runs on."""

from __future__ import annotations

import time
import weakref
from typing import Callable, Optional
import numpy as np
import torch
from gwalign.config import AUTO_PRECOMPUTED_MAX_POINTS, GWConfig
from gwalign.geometry.distances import DijkstraDistances, DistanceProvider, LandmarkDistances, PrecomputedDistances
from gwalign.geometry.landmarks import PendingLandmarkPaths, start_landmark_paths
from gwalign.geometry.factors import LowRankDistances, factor_dense, factor_nystrom, factor_randomized
from gwalign.geometry.knn import KNNGraph, knn_graph
from gwalign.geometry.shortest_paths import shortest_paths_many, start_shortest_paths


class CoarseFactors:
    """The coarser graph's factors on given cells of each side, for the finalists' ranking
    (``GWConfig.finalist_k_factor``): every cell, or the screening subsample. Distances as the
    run's own: exact geodesics (factorised by a randomized range finder) where the run's are
    exact, landmark geodesics (Nyström factors) where the run's are landmark, also on a subsample
    small enough for exact ones.

    ``ahead`` (default: on a GPU): :meth:`begin` builds the graphs at once and leaves their
    shortest paths to the worker pool while the screening keeps the device busy; otherwise nothing
    is built until the ranking asks, which a run whose starts all end in one basin never does.
    """

    def __init__(self, points: tuple[torch.Tensor, torch.Tensor], coarse_k: int, config: GWConfig,
                 device: torch.device, dtype: torch.dtype, timings: dict[str, float],
                 ahead: Optional[bool] = None):
        self.points, self.coarse_k, self.config = points, coarse_k, config
        self.device, self.dtype, self.timings = device, dtype, timings
        self.ahead = points[0].device.type == "cuda" if ahead is None else ahead
        # All-pairs paths on a 2,000-cell screening subsample took 2.5-3.0 s of a 45,000-cell GPU
        # run (landmarks: 0.2 s): the run's own mode says what its size can afford.
        self.exact = config.resolved_distance(points[0].shape[0], points[1].shape[0]) != "landmark"

    def begin(self, rows_s: Optional[np.ndarray], rows_t: Optional[np.ndarray]
              ) -> Callable[[], tuple[LowRankDistances, LowRankDistances]]:
        """The call that returns both sides' factors on these rows (``None``: every row): begun
        now when ``ahead``, else when called."""
        if self.ahead:
            return self._started(rows_s, rows_t)
        return lambda: self._started(rows_s, rows_t)()

    def _started(self, rows_s: Optional[np.ndarray], rows_t: Optional[np.ndarray]
                 ) -> Callable[[], tuple[LowRankDistances, LowRankDistances]]:
        """Build the graphs and start their shortest paths; returns the call that waits for the
        paths and factorises them (the time of both parts goes to ``finalist_distances``)."""
        tick = time.perf_counter()
        config, seeds = self.config, [self.config.compute.seed, self.config.compute.seed + 1]
        cells = [x if rows is None else x[torch.as_tensor(rows, device=x.device)]
                 for x, rows in zip(self.points, (rows_s, rows_t))]
        graphs = [knn_graph(x, min(self.coarse_k, x.shape[0] - 1), weights=config.graph.edge_weights,
                            search=config.graph.knn_search, seed=seed) for x, seed in zip(cells, seeds)]
        exact = self.exact and max(x.shape[0] for x in cells) <= AUTO_PRECOMPUTED_MAX_POINTS
        if exact:
            pending = start_shortest_paths([(graph.matrix, np.arange(graph.n_points)) for graph in graphs])
        else:
            # Landmarks, as in the run itself: all-pairs paths would cost a large share of the run.
            pending = start_landmark_paths(graphs, cells, config.distances.n_landmarks, seeds,
                                           config.distances.landmark_choice)
        begun = time.perf_counter() - tick

        def finish() -> tuple[LowRankDistances, LowRankDistances]:
            tick = time.perf_counter()
            if exact:
                # A randomized range finder: about 10× faster than the full eigendecomposition, at
                # the same error (docs/how-it-works/distances.md, "The coarser graph of the finalists").
                factors = [factor_randomized(PrecomputedDistances.from_paths(table, self.device, self.dtype, seed).dense(),
                                             config.distances.rank, seed=seed)
                           for table, seed in zip(pending.result(), seeds)]
            else:
                factors = [factor_distances(distance_provider("landmark", graph, None, self.device, self.dtype, config,
                                                              seed, x, path), config.distances.rank)
                           for graph, seed, x, path in zip(graphs, seeds, cells, pending.result())]
            self.timings["finalist_distances"] = begun + time.perf_counter() - tick
            return factors[0], factors[1]
        # A run whose starts all end in one basin never ranks finalists: its search is dropped.
        weakref.finalize(finish, pending.discard)
        return finish


def factor_distances(provider: DistanceProvider, rank: int):
    """Low-rank factors of a provider's normalised distances: exact eigenvectors of a dense
    matrix, or the Nyström factorisation of landmark rows."""
    if isinstance(provider, LandmarkDistances):
        return factor_nystrom(provider.table, provider.landmarks, provider.scale, rank,
                              provider.device, provider.dtype)
    return factor_dense(provider.dense(), rank)


def distance_provider(mode: str, graph: Optional[KNNGraph], user_d: Optional[np.ndarray],
              device: torch.device, dtype: torch.dtype, config: GWConfig, seed: int,
              points: Optional[torch.Tensor] = None, paths=None) -> DistanceProvider:
    if user_d is not None:
        return PrecomputedDistances(user_d, device, dtype, seed)
    assert graph is not None
    if mode == "precomputed":
        if graph.n_points > config.distances.precomputed_max_points:
            raise ValueError(f"distance='precomputed' needs N² memory: {graph.n_points} points exceed "
                             f"precomputed_max_points={config.distances.precomputed_max_points}; use 'landmark'")
        if paths is not None:
            return PrecomputedDistances.from_paths(paths, device, dtype, seed)
        return PrecomputedDistances.from_graph(graph, device, dtype, seed)
    if mode == "dijkstra":
        return DijkstraDistances(graph, device, dtype, seed)
    return LandmarkDistances(graph, device, dtype, seed, n_landmarks=config.distances.n_landmarks,
                             dim=config.distances.landmark_dim, points=points, paths=paths,
                             choice=config.distances.landmark_choice)


def all_pairs_paths(graphs: tuple[Optional[KNNGraph], ...], given: tuple[Optional[np.ndarray], ...],
                    config: GWConfig) -> list[Optional[np.ndarray]]:
    """All-pairs shortest paths of each side with a graph, no given distances and at most
    ``precomputed_max_points`` points (``None`` for the others), both sides searched side by side
    by the worker pool: SciPy's Dijkstra holds the GIL, and one side takes about a second at
    2,000 points on one core."""
    wanted = [graph is not None and matrix is None and graph.n_points <= config.distances.precomputed_max_points
              for graph, matrix in zip(graphs, given)]
    jobs = [(graph.matrix, np.arange(graph.n_points)) for graph, want in zip(graphs, wanted) if want]
    tables = iter(shortest_paths_many(jobs) if jobs else [])
    return [next(tables) if want else None for want in wanted]


class _Paths:
    """Both sides' landmark paths: under way per side, to start when asked for, or none."""

    def __init__(self, pending: list[PendingLandmarkPaths],
                 later: Optional[Callable[[], PendingLandmarkPaths]] = None):
        self._pending, self._later = pending, later

    def result(self) -> list:
        """``(landmarks, table, timings)`` per side, or ``None`` per side without landmark paths."""
        pending = self._pending if self._later is None else [self._later()]
        if not pending:
            return [None, None]
        return [path for one in pending for path in one.result()]

    def discard(self) -> None:
        """Drop the searches under way (their tables are never read)."""
        for one in self._pending:
            one.discard()


def graphs_and_paths(points: tuple[Optional[torch.Tensor], Optional[torch.Tensor]], sizes: tuple[int, int],
                     config: GWConfig, mode: str, overlap: Optional[bool] = None
                     ) -> tuple[tuple[Optional[KNNGraph], ...], _Paths]:
    """Both sides' kNN graphs (``None`` for a side without points), and the landmark geodesics
    of landmark runs, searched by the worker pool.

    On a GPU the source's paths are searched by the CPU workers while the target's graph is
    built on the device. On the CPU the graph search has the cores, so both sides' paths are
    searched when :meth:`_Paths.result` asks for them, in one call that shares the workers.
    ``overlap`` chooses between the two (default: overlap on a GPU).
    """
    seed, choice, n_landmarks = config.compute.seed, config.distances.landmark_choice, config.distances.n_landmarks
    landmark = mode == "landmark" and points[0] is not None and points[1] is not None
    overlap = landmark and (points[0].device.type == "cuda" if overlap is None else overlap)
    graphs: list[Optional[KNNGraph]] = []
    pending: list[PendingLandmarkPaths] = []
    try:
        for side, x in enumerate(points):
            graphs.append(None if x is None else knn_graph(x, config.knn_k(*sizes), weights=config.graph.edge_weights,
                                                           search=config.graph.knn_search, seed=seed + side))
            if overlap:
                pending.append(start_landmark_paths([graphs[side]], [x], n_landmarks, [seed + side], choice))
    except BaseException:
        _Paths(pending).discard()
        raise
    if landmark and not overlap:
        return tuple(graphs), _Paths([], lambda: start_landmark_paths(graphs, list(points), n_landmarks,
                                                                       [seed, seed + 1], choice))
    return tuple(graphs), _Paths(pending)
