"""The GW engine's configuration: one stage config per pipeline stage, and :class:`GWConfig`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from gwalign.config.fields import Stage, bounded, load_toml, split_flat

#: Above this many points per side, ``distance="auto"`` switches from exact all-pairs geodesics
#: to landmark distances (all-pairs costs N² memory; docs/how-it-works/distances.md).
AUTO_PRECOMPUTED_MAX_POINTS = 2500

#: Up to this many points on the larger side, ``one_sided_check=None`` runs the check (docs/how-it-works/one-sided.md).
AUTO_ONE_SIDED_MAX_POINTS = 50_000

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
    """

    k: Optional[int] = bounded(None, low=1)
    edge_weights: Literal["distance", "connectivity", "local"] = "distance"


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
        Over-relaxation of balanced Sinkhorn solves (1 = plain).
    final_max_iter, final_tol
        Sinkhorn bound and tolerance of the final polish of the returned plan.
    semi_relaxed, rho
        Semi-relaxed GW: the target marginal is penalised by ``rho`` × KL (relative to the
        cost scale) instead of enforced; the one-sided check's probe uses the same ``rho``
        (docs/how-it-works/engine.md, "Semi-relaxed mode").
    fgw_alpha
        Weight of the shared-feature cost in fused GW (0 = pure GW, 1 = pure feature OT).
    one_sided_check
        Probe each side for cells without counterpart after a balanced run; ``None``: on up
        to 50,000 cells a side.
    n_anchors
        Anchor pairs per sampled GW step; ``None``: ``clip(n / 16, 64, 128)``.
    n_eval_anchors
        Fresh anchor pairs of the sampled solver's final objective estimate.
    coupling_rank
        Low-rank gradient only: solve over couplings of this rank first (linear time in the
        cells) and continue from its plan instead of screening starts; ``None``: off
        (:mod:`gwalign.engine.lowrank_coupling`).
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
    final_max_iter: int = bounded(2000, low=1)
    final_tol: float = bounded(1e-4, low=0.0, low_open=True)
    semi_relaxed: bool = False
    rho: float = bounded(0.3, low=0.0, low_open=True)
    fgw_alpha: float = bounded(0.0, low=0.0, high=1.0)
    one_sided_check: Optional[bool] = None
    n_anchors: Optional[int] = bounded(None, low=1)
    n_eval_anchors: int = bounded(256, low=1)
    coupling_rank: Optional[int] = bounded(None, low=1)


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
    screen_points: int = bounded(4000, low=16)
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
        GPU dot precision of the streamed kernels: ``tf32``, ``tf32x3``, ``ieee`` or ``mixed``
        (tf32 for sampled steps, tf32x3 for low-rank steps and every final polish).
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


@dataclass(frozen=True, init=False)
class GWConfig:
    """Parameters of the GW engine, grouped by stage.

    Fields are given by their flat names (``GWConfig(k=9, epsilon=0.02, device="cpu")``), as
    stage objects (``GWConfig(graph=GraphConfig(k=9))``) or both; :meth:`replace` and TOML
    presets use the flat names too.

    Parameters
    ----------
    graph
        kNN graphs (:class:`GraphConfig`).
    distances
        Geodesic distances and their factors (:class:`DistanceConfig`).
    solver
        GW iterations and Sinkhorn solves (:class:`SolverConfig`).
    starts
        Starts, screening and finalists (:class:`StartsConfig`).
    compute
        Device, precision, tiles and seed (:class:`ComputeConfig`).
    **fields
        Any stage field by its flat name.
    """

    graph: GraphConfig
    distances: DistanceConfig
    solver: SolverConfig
    starts: StartsConfig
    compute: ComputeConfig

    def __init__(self, *, graph: Optional[GraphConfig] = None, distances: Optional[DistanceConfig] = None,
                 solver: Optional[SolverConfig] = None, starts: Optional[StartsConfig] = None,
                 compute: Optional[ComputeConfig] = None, **fields: Any) -> None:
        given = {"graph": graph, "distances": distances, "solver": solver, "starts": starts, "compute": compute}
        grouped = split_flat(fields, ENGINE_STAGES, "GWConfig")
        for stage, cls in ENGINE_STAGES.items():
            base = given[stage] if given[stage] is not None else cls()
            object.__setattr__(self, stage, dataclasses.replace(base, **grouped[stage]) if grouped[stage] else base)

    @classmethod
    def from_flat(cls, values: dict[str, Any], source: str = "config") -> "GWConfig":
        """Build from flat field names (or stage tables), naming ``source`` in any error."""
        split_flat(values, ENGINE_STAGES, source)
        flat = {}
        for key, value in values.items():
            flat.update(value if key in ENGINE_STAGES and isinstance(value, dict) else {key: value})
        return cls(**flat)

    @classmethod
    def from_toml(cls, path: str | Path) -> "GWConfig":
        """Load a TOML preset (flat keys at top level or under ``[gwalign]``, or stage tables)."""
        return cls.from_flat(load_toml(path), source=str(path))

    def replace(self, **changes: Any) -> "GWConfig":
        """A copy with the flat-named ``changes`` applied (and validated)."""
        return GWConfig(**{stage: getattr(self, stage) for stage in ENGINE_STAGES}, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field under its flat name (for reports and ``uns``)."""
        return {name: value for stage in ENGINE_STAGES for name, value in dataclasses.asdict(getattr(self, stage)).items()}

    # Automatic values ("None means automatic") are resolved here and nowhere else.

    def knn_k(self, n_source: int, n_target: int) -> int:
        """Neighbours of both kNN graphs: ``k``, or :data:`K_AUTO` capped one below the smaller side."""
        return self.graph.k if self.graph.k is not None else int(max(min(K_AUTO, min(n_source, n_target) - 1), 1))

    @property
    def min_points(self) -> int:
        """Fewest points a side needs for its kNN graph: ``k + 1`` (the smallest automatic k)."""
        return (self.graph.k or K_MIN) + 1

    def finalist_k(self, n_source: int, n_target: int) -> Optional[int]:
        """Neighbours of the coarser graph the finalists are also scored under, or ``None``."""
        if self.starts.finalist_k_factor == 0:
            return None
        k = self.knn_k(n_source, n_target)
        coarse = min(int(round(self.starts.finalist_k_factor * k)), min(n_source, n_target) - 1)
        return coarse if coarse > k else None

    def resolved_distance(self, n_source: int, n_target: int) -> str:
        """The distance mode of a run: ``distance``, or precomputed up to
        :data:`AUTO_PRECOMPUTED_MAX_POINTS` cells a side and landmark above."""
        mode = self.distances.distance
        if mode == "auto":
            mode = "precomputed" if max(n_source, n_target) <= AUTO_PRECOMPUTED_MAX_POINTS else "landmark"
        return mode

    def resolved_gradient(self, distance_mode: str, has_linear_cost: bool) -> str:
        """The gradient of a run: ``gradient``, or low-rank for precomputed and landmark
        distances without a dense linear cost, else sampled."""
        gradient = self.solver.gradient
        if gradient == "lowrank":
            if distance_mode not in ("precomputed", "landmark"):
                raise ValueError(f"gradient='lowrank' needs distance='precomputed' or 'landmark' (got {distance_mode!r})")
            if has_linear_cost:
                raise ValueError("gradient='lowrank' takes fused features (joint_source/joint_target), "
                                 "not a dense linear_cost; use gradient='sampled'")
            return "lowrank"
        if gradient == "sampled" or has_linear_cost:
            return "sampled"
        return "lowrank" if distance_mode in ("precomputed", "landmark") else "sampled"

    def relative_epsilon(self, distance_mode: str) -> float:
        """The relative ε: ``epsilon``, or :data:`EPSILON_LANDMARK` / :data:`EPSILON_EXACT`."""
        if self.solver.epsilon is not None:
            return self.solver.epsilon
        return EPSILON_LANDMARK if distance_mode == "landmark" else EPSILON_EXACT

    def with_epsilon(self, distance_mode: str = "precomputed") -> "GWConfig":
        """This configuration with ``epsilon`` set (:meth:`relative_epsilon`)."""
        return self if self.solver.epsilon is not None else self.replace(epsilon=self.relative_epsilon(distance_mode))

    def runs_one_sided_check(self, n_source: int, n_target: int) -> bool:
        """Whether a balanced run of this size makes the one-sided check."""
        if self.solver.semi_relaxed:
            return False
        if self.solver.one_sided_check is None:
            return max(n_source, n_target) <= AUTO_ONE_SIDED_MAX_POINTS
        return bool(self.solver.one_sided_check)

    @property
    def lowrank_starts(self) -> int:
        """Low-rank GW starts: ``n_starts``, else product + profile + ``2**start_signs``."""
        return self.starts.n_starts or 1 + int(self.starts.profile_start) + 2 ** self.starts.start_signs

    def anchors_per_step(self, n_source: int, n_target: int) -> int:
        """Anchor pairs per sampled GW step: ``n_anchors``, else ``clip(n / 16, 64, 128)`` and at
        most n, n the smaller side (M is the feature dimension of every streamed pass)."""
        if self.solver.n_anchors is not None:
            return self.solver.n_anchors
        n = min(n_source, n_target)
        return int(min(n, max(64, min(128, n // 16))))

    @property
    def sampled_starts(self) -> int:
        """Sampled GW starts: ``n_starts``, else :data:`SAMPLED_STARTS`."""
        return self.starts.n_starts or SAMPLED_STARTS

    def step_sinkhorn_max_iter(self, gradient: str) -> int:
        """Sinkhorn cap per GW step: ``sinkhorn_max_iter``, else 50 (lowrank) / 10 (sampled)."""
        if self.solver.sinkhorn_max_iter is not None:
            return self.solver.sinkhorn_max_iter
        return 50 if gradient == "lowrank" else 10

    def step_precision(self, gradient: str) -> str:
        """GPU dot precision inside GW steps (``mixed``: tf32 sampled, tf32x3 low-rank)."""
        if self.compute.precision != "mixed":
            return self.compute.precision
        return "tf32" if gradient == "sampled" else "tf32x3"

    @property
    def final_precision(self) -> str:
        """GPU dot precision of the low-rank final polish (``mixed``: tf32x3)."""
        return "tf32x3" if self.compute.precision == "mixed" else self.compute.precision


