"""The GW engine's configuration, :class:`GWConfig`: one stage config per pipeline stage
(:mod:`gwalign.config.stages`) and the methods that resolve every automatic value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from gwalign.config.fields import load_toml, split_flat
from gwalign.config.stages import (  # noqa: F401 - re-exported: the stages belong to the engine's config
    AUTO_PRECOMPUTED_MAX_POINTS, CCA_DIFFUSION_STEPS, ENGINE_STAGES, EPSILON_EXACT, EPSILON_LANDMARK, K_AUTO, K_MIN, SAMPLED_STARTS, TRANSFER_K, ComputeConfig, DistanceConfig, GraphConfig, SolverConfig, StartsConfig)


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

    def resolved_finish(self, distances_given: bool, dense_distances: bool, n_entries: int) -> str:
        """The returned plan of a run: ``finish``, or, when automatic, ``exact`` for a balanced GW
        run without shared features on two given distance matrices whose plan fits ``dense_limit``."""
        plain = not self.solver.semi_relaxed and self.solver.fgw_alpha == 0
        if self.solver.finish == "auto":
            automatic = distances_given and plain and n_entries <= self.compute.dense_limit
            return "exact" if automatic else "entropic"
        if self.solver.finish == "exact":
            if not plain:
                raise ValueError("finish='exact' needs balanced GW without shared features "
                                 "(semi_relaxed=False, fgw_alpha=0)")
            if not dense_distances:
                raise ValueError("finish='exact' needs dense distances: given matrices or distance='precomputed'")
            if n_entries > self.compute.dense_limit:
                raise ValueError(f"finish='exact' needs a dense plan: {n_entries} entries exceed "
                                 f"dense_limit={self.compute.dense_limit}")
        return self.solver.finish

    def runs_one_sided_check(self, n_source: int, n_target: int) -> bool:
        """Whether a balanced run of this size makes the one-sided check: unless switched off, at
        every size (``probe_points`` bounds its cost)."""
        if self.solver.semi_relaxed:
            return False
        return self.solver.one_sided_check is not False

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
        """GPU dot precision inside GW steps (``mixed``: tf32). Passes in tf32 run on features the
        solvers round to TF32, so each computes their cost to fp32 accuracy; the low-rank solver's
        passes on features it does not round keep tf32x3 (docs/how-it-works/gpu-kernels.md)."""
        if self.compute.precision != "mixed":
            return self.compute.precision
        return "tf32"

    @property
    def product_precision(self) -> str:
        """GPU dot precision of plan products ``T Z`` (each step's ``G``, the per-cell distortion):
        tf32x3 under ``mixed``, else the precision chosen (``tf32`` rounds ``Z`` too)."""
        return "tf32x3" if self.compute.precision == "mixed" else self.compute.precision

    @property
    def final_precision(self) -> str:
        """GPU dot precision of the low-rank final polish (``mixed``: tf32, as the steps)."""
        return self.step_precision("lowrank")


