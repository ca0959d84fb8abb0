"""The engine's stage configurations (graph, distances, solver, starts, compute) and the
constants their automatic values resolve to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from gwalign.config.fields import Stage, bounded

#: Above this many points per side, ``distance="auto"`` switches from exact all-pairs geodesics
#: to landmark distances (all-pairs costs N² memory; docs/how-it-works/distances.md).
AUTO_PRECOMPUTED_MAX_POINTS = 2500

#: Fewest neighbours a kNN graph is built with, so a side needs at least ``K_MIN + 1`` cells.
K_MIN = 5

#: The automatic kNN k (:meth:`GWConfig.knn_k`), capped below the smaller side's cells (docs/how-it-works/graphs.md).
K_AUTO = 15

#: Automatic relative ε with exact and landmark distances (:meth:`GWConfig.relative_epsilon`; docs/how-it-works/engine.md).
EPSILON_EXACT, EPSILON_LANDMARK = 0.01, 0.03

#: Sampled GW starts when ``n_starts`` is None (low-rank starts are screened, so they are cheaper).
SAMPLED_STARTS = 3

#: Neighbours of the kNN classifier that carries labels across in ``X_gw`` (docs/how-it-works/label-transfer.md).
TRANSFER_K = 15

#: Lazy random-walk steps of each kNN graph applied to the plan before the coupled CCA (docs/how-it-works/joint-embedding.md).
CCA_DIFFUSION_STEPS = 4


@dataclass(frozen=True)
class GraphConfig(Stage):
    """The kNN graphs whose shortest paths give geodesic distances.

    Parameters
    ----------
    k
        Neighbours per cell, the same for both graphs; ``None``: 15, capped one below the
        smaller side's cell count.
    edge_weights
        ``distance`` (Euclidean edge lengths), ``connectivity`` (hop counts) or ``local``
        (lengths over the endpoints' k-th neighbour distances).
    knn_search
        Neighbour searches of the graphs and of label transfer: ``exact`` (on a GPU blocked
        ``cdist`` + ``topk``), ``approximate`` (nearest-neighbour descent, on the CPU), ``fused``
        (exact; on a GPU by the fused top-k kernel, with no block of distances in memory) or
        ``auto`` (fused on a GPU, approximate on the CPU above 100,000 points;
        :mod:`gwalign.geometry.approximate_knn`).
    """

    k: Optional[int] = bounded(None, low=1)
    edge_weights: Literal["distance", "connectivity", "local"] = "distance"
    knn_search: Literal["auto", "exact", "approximate", "fused"] = "auto"


@dataclass(frozen=True)
class DistanceConfig(Stage):
    """Geodesic distances on the graphs and their low-rank factors.

    Parameters
    ----------
    distance
        ``precomputed`` (all-pairs shortest paths), ``dijkstra`` (paths from each step's anchors),
        ``landmark`` (from landmarks only) or ``auto`` (precomputed up to 2,500 cells a side).
    n_landmarks
        Landmarks per side for landmark distances.
    landmark_choice
        ``mixed`` (half farthest-point, half uniform), ``farthest`` or ``uniform``.
    landmark_dim
        Dimension of the landmark-MDS embedding used by the sampled gradient.
    rank
        Rank of the distance factorisations used by the low-rank gradient.
    precomputed_max_points
        Largest side for which all-pairs shortest paths are computed.
    """

    distance: Literal["auto", "precomputed", "dijkstra", "landmark"] = "auto"
    n_landmarks: int = bounded(256, low=2)
    landmark_choice: Literal["mixed", "farthest", "uniform"] = "mixed"
    landmark_dim: int = bounded(32, low=1)
    rank: int = bounded(32, low=1)
    precomputed_max_points: int = bounded(8000, low=2)


@dataclass(frozen=True)
class SolverConfig(Stage):
    """Entropic GW iterations, their Sinkhorn solves and the objective's variants.

    Parameters
    ----------
    gradient
        How each GW step linearises the objective: ``lowrank`` (exact gradient of factored
        distances), ``sampled`` (anchor pairs drawn from the plan) or ``auto``.
    epsilon
        Entropic regularisation relative to the cost scale; ``None``: 0.01 with exact
        distances, 0.03 with landmark distances.
    epsilon_start_factor, epsilon_decay_iters
        ε starts at ``epsilon * epsilon_start_factor`` and decays geometrically over this many
        GW iterations.
    max_iter, min_iter
        Bounds on GW iterations.
    window, tol_rel, noise_z
        Stopping rule: stop when the mean objective of the last ``window`` iterations is not
        lower than the window before by more than ``tol_rel`` (relative) plus ``noise_z``
        standard errors of the sampled estimate.
    sinkhorn_max_iter, sinkhorn_tol
        Sinkhorn iterations per GW step (``None``: 50 low-rank, 10 sampled) and its tolerance
        (L1 error of the column marginal).
    sinkhorn_omega
        Over-relaxation of balanced Sinkhorn solves (1 = plain) when ``sinkhorn_anderson`` is off.
    sinkhorn_anderson
        Memory of the Anderson acceleration of balanced Sinkhorn solves (0 or 1: off, then
        ``sinkhorn_omega`` applies; docs/how-it-works/engine.md, "Sinkhorn").
    final_max_iter, final_tol
        Sinkhorn bound and tolerance of the final polish of the returned plan.
    semi_relaxed, rho
        Semi-relaxed GW: the target marginal is penalised by ``rho`` × KL (relative to the
        cost scale) instead of enforced; the one-sided check's probe uses the same ``rho``
        (docs/how-it-works/engine.md, "Semi-relaxed mode").
    fgw_alpha
        Weight of the shared-feature cost in fused GW (0 = pure GW, 1 = pure feature OT).
    one_sided_check
        Probe each side for cells without counterpart after a balanced run; ``None``: on
        (above ``probe_points`` cells it probes a subsample, so its cost hardly grows with size).
    probe_points
        Above this many cells on the larger side, the one-sided check probes a seeded subsample
        of this many cells a side and carries the result to every cell
        (docs/how-it-works/one-sided.md).
    n_anchors
        Anchor pairs per sampled GW step; ``None``: ``clip(n / 16, 64, 128)``.
    n_eval_anchors
        Fresh anchor pairs of the sampled solver's final objective estimate.
    coupling_rank
        Low-rank gradient only: solve over couplings of this rank first (linear time in the
        cells) and continue from its plan instead of screening starts; ``None``: off
        (:mod:`gwalign.engine.lowrank_coupling`).
    finish
        The returned plan: ``entropic``; ``exact``, conditional-gradient steps from the entropic
        plan to the unregularised optimum of its basin on the dense distances
        (:mod:`gwalign.engine.exact_finish`); or ``auto``: exact when both distance matrices
        are given, the run is balanced GW without shared features and the plan fits ``dense_limit``.
    """

    gradient: Literal["auto", "lowrank", "sampled"] = "auto"
    epsilon: Optional[float] = bounded(None, low=0.0, low_open=True)
    epsilon_start_factor: float = bounded(10.0, low=1.0)
    epsilon_decay_iters: int = bounded(10, low=0)
    max_iter: int = bounded(100, low=1)
    min_iter: int = bounded(15, low=0)
    window: int = bounded(5, low=2)
    tol_rel: float = bounded(1e-3, low=0.0)
    noise_z: float = bounded(1.0, low=0.0)
    sinkhorn_max_iter: Optional[int] = bounded(None, low=1)
    sinkhorn_tol: float = bounded(1e-3, low=0.0, low_open=True)
    sinkhorn_omega: float = bounded(1.5, low=1.0, high=2.0, high_open=True)
    sinkhorn_anderson: int = bounded(5, low=0)
    final_max_iter: int = bounded(2000, low=1)
    final_tol: float = bounded(1e-4, low=0.0, low_open=True)
    semi_relaxed: bool = False
    rho: float = bounded(0.3, low=0.0, low_open=True)
    fgw_alpha: float = bounded(0.0, low=0.0, high=1.0)
    one_sided_check: Optional[bool] = None
    probe_points: int = bounded(2000, low=16)
    n_anchors: Optional[int] = bounded(None, low=1)
    n_eval_anchors: int = bounded(256, low=1)
    coupling_rank: Optional[int] = bounded(None, low=1)
    finish: Literal["auto", "entropic", "exact"] = "auto"


@dataclass(frozen=True)
class StartsConfig(Stage):
    """Starts of the low-rank solver, their screening and the finalists' ranking.

    Parameters
    ----------
    n_starts
        Starts; ``None``: product + distance profile + ``2**start_signs`` sign patterns
        (low-rank), 3 (sampled).
    start_signs
        Sign patterns of this many leading eigen-components are tried as starts.
    start_noise
        Size of the start perturbations of ``G``, relative to its largest entry.
    profile_start
        Include the start that matches cells by their distance profiles.
    screen_points
        Above this many cells on a side, starts are screened on this many cells per side.
    race_points
        Above this many cells on a side, the finalists of a subsample screening race on this
        many cells per side, and only the winner runs at full size; at most this many, they
        race at full size.
    screen_sinkhorn_iters
        Sinkhorn cap of each GW step while the starts are screened (``None``: the run's cap).
        Screening ranks starts, whose potentials carry over from step to step; the finalists
        and the polish solve to the run's own cap and tolerance.
    continue_winner
        The run after a screening starts at the final ε from the winner's ``G``.
    finalist_k_factor
        Finalists are also scored under a kNN graph of this many times k neighbours (0: off).
    """

    n_starts: Optional[int] = bounded(None, low=1)
    start_signs: int = bounded(3, low=0)
    start_noise: float = bounded(1.0, low=0.0)
    profile_start: bool = True
    screen_points: int = bounded(2000, low=16)
    race_points: int = bounded(4000, low=16)
    screen_sinkhorn_iters: Optional[int] = bounded(30, low=1)
    continue_winner: bool = True
    finalist_k_factor: float = 2.0

    def check(self) -> None:
        factor = self.finalist_k_factor
        if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and (factor == 0 or factor > 1)):
            raise ValueError(f"finalist_k_factor must be 0 (off) or above 1, got {factor!r}")


@dataclass(frozen=True)
class ComputeConfig(Stage):
    """Where and how the engine computes.

    Parameters
    ----------
    device
        ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:i``.
    dtype
        Floating type of the engine's tensors.
    precision
        GPU dot precision of the Sinkhorn passes: ``tf32``, ``tf32x3``, ``ieee`` or ``mixed``
        (the default: tf32 for the GW steps and their polish, tf32x3 for the low-rank passes on
        features that are not rounded, such as the profile start). Passes in tf32 run on cost
        features rounded to TF32 once per step, so each computes that cost to fp32 accuracy.
        Plan products ``T Z`` (each step's ``G``, the per-cell distortion) run in tf32x3, in
        tf32 only under ``tf32``; other plan passes (costs, top-k) always run in tf32x3.
    threads
        CPU threads of torch, BLAS, numba and the shortest-path workers; ``None``: the cores
        this process may use.
    seed
        Seed of every random choice; a CPU run with one seed and one thread count is bit-for-bit
        repeatable.
    block_rows, block_cols
        Tile sizes of the streamed passes; ``None``: chosen from the problem size.
    block_elements
        Target entries per tile when tile sizes are chosen automatically.
    dense_limit
        Largest N·K for which a dense plan or a dense linear cost is accepted.
    """

    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    precision: Literal["mixed", "tf32", "tf32x3", "ieee"] = "mixed"
    threads: Optional[int] = bounded(None, low=1)
    seed: int = bounded(0, low=0)
    block_rows: Optional[int] = bounded(None, low=1)
    block_cols: Optional[int] = bounded(None, low=1)
    block_elements: int = bounded(1 << 20, low=1024)
    dense_limit: int = bounded(25_000_000, low=1)

    def check(self) -> None:
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:i, got {self.device!r}")


ENGINE_STAGES = {"graph": GraphConfig, "distances": DistanceConfig, "solver": SolverConfig,
                 "starts": StartsConfig, "compute": ComputeConfig}
