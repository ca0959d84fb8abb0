"""One typed, validated configuration object for the whole pipeline.

Every tunable of the engine lives here, so that a run is described by one value that can be
printed, saved into ``uns["gwalign"]`` and loaded back from a TOML preset.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

DistanceMode = Literal["auto", "precomputed", "dijkstra", "landmark"]
StabilisationMode = Literal["none", "cost_ema"]
GradientMode = Literal["auto", "lowrank", "sampled"]

#: Above this many points per side, ``distance="auto"`` switches from exact all-pairs geodesics
#: to landmark distances (all-pairs costs N² memory).
AUTO_PRECOMPUTED_MAX_POINTS = 2500

#: Up to this many points on the larger side, ``one_sided_check=None`` runs the check: its probe
#: cost 0.06 s at 4k x 5k and 0.5 s at 45k x 45k on an H100 (about +20%), but 15 s (+40%) at
#: 250k x 250k (benchmarks/scale.py, docs/benchmarks.md, session 8).
AUTO_ONE_SIDED_MAX_POINTS = 50_000


#: Fewest neighbours a kNN graph is built with (k = 3 broke PBMC: label transfer 0.032), so a side
#: needs at least ``K_MIN + 1`` cells.
K_MIN = 5

#: The automatic kNN k (:meth:`GWConfig.knn_k`), below the smaller side's cell count. Until session 14
#: it was round(log2 m) clipped to [5, 15] (k = 9-11 on the real pairs); random subsets of the real
#: pairs (``benchmarks/robustness.py``, 100 draws of 88-1588 cells) failed 26 times with that rule and
#: 16 with k = 15, which costs nothing at scale (the log rule reached 15 at 23k cells). Above 15 scNMT
#: declined (k = 20: 0.855 / 0.758 with ε = 0.01) and graph and path costs grow with k. A noise-free
#: spiral of 400 points is short-circuited at 15 (thin trajectories of a few hundred cells: ``k=9``).
K_AUTO = 15

#: The automatic relative ε (:meth:`GWConfig.relative_epsilon`): 0.01 with exact geodesics (up to
#: :data:`AUTO_PRECOMPUTED_MAX_POINTS`, 2,500 cells a side, by default), 0.03 with landmark distances.
#: On the random subsets of the real pairs (k = 15) 0.01 failed 10 draws of 100 against 16 at 0.03
#: (SNARE-seq 0 against 3, all other failures PBMC at half size); on the H200 it doubles the Sinkhorn
#: work at 250k cells a side (55 -> 113 s, benchmarks/scale.py), so landmark runs keep 0.03.
EPSILON_EXACT, EPSILON_LANDMARK = 0.01, 0.03


@dataclass(frozen=True)
class GWConfig:
    """Parameters of a gwalign run.

    Parameters
    ----------
    k
        Neighbours per point in the kNN graphs whose shortest paths give geodesic distances.
        ``None`` (default): :data:`K_AUTO` (15), or one less than the smaller side's cell count,
        the same for both graphs (:meth:`knn_k`). One k keeps the two geodesic approximations at
        one resolution. A kNN graph needs k to grow like log m to stay connected (Brito, Chávez,
        Quiroz, Yukich 1997), which the old rule ``round(log2 m)`` followed; but on random subsets
        of the real pairs more neighbours gave geodesics that kept the right basin (failed draws
        26 → 16 of 100 at k = 15; ``benchmarks/robustness.py``, docs/design-notes.md).
    edge_weights
        ``distance`` (Euclidean kNN edge lengths), ``connectivity`` (hop counts, as SCOT) or
        ``local`` (lengths over the endpoints' k-th neighbour distances, :func:`gwalign.graph.knn_graph`):
        see docs/design-notes.md for the measurement on the real pairs.
    distance
        ``precomputed`` (all-pairs shortest paths, small N only), ``dijkstra`` (shortest paths
        from the anchors at each step), ``landmark`` (landmark-MDS embedding of the geodesic
        metric) or ``auto`` (precomputed up to ``AUTO_PRECOMPUTED_MAX_POINTS`` points, else landmark).
    gradient
        How each GW step linearises the objective. ``lowrank``: the exact gradient of rank-``rank``
        factorisations of the distance matrices (``precomputed`` distances: truncated
        eigendecomposition; ``landmark``: Nyström factors from the landmarks' geodesic rows;
        no sampling noise, exact objective for the factors). ``sampled``: M anchor pairs drawn from the plan (any distance
        mode, any size). ``auto``: lowrank for precomputed and landmark distances (semi-relaxed
        runs included, their start chosen as balanced GW), unless given a dense linear cost;
        else sampled (``gwalign.align._gradient_mode`` has the measurements).
        On SNARE-seq (1047 cells) sampled GW with M=64 ended in mirrored minima for every seed
        (FOSCTTM 0.41-0.64) while low-rank GW's best start reached 0.160 (docs/design-notes.md).
    rank
        Rank of the distance factorisations for ``gradient="lowrank"``.
    start_noise
        Relative size (× max|G|) of the start perturbations of the initial plan's ``G``
        (``gradient="lowrank"``): the sign patterns and, beyond them, Gaussian noise.
    start_signs
        ``m``: low-rank starts include every sign pattern of the ``m`` leading non-constant
        eigen-components (``2**m`` starts). A reflection of a shape flips the signs of its
        distance matrix's eigenvectors, so these starts cover the mirror images GW cannot tell
        apart. Measured with rows scaled by ``normalise_rows="auto"``: the best of product +
        8 sign starts reached the basin of the label-consistent plan on SNARE-seq, PBMC and
        scNMT (both pairs); 8 Gaussian starts missed it on PBMC (0.730 against 0.899).
    profile_start
        Low-rank GW with several starts: one start is the entropic OT plan between the cells'
        distance profiles (quantiles of each cell's distances; Mémoli's third lower bound,
        :mod:`gwalign.engine.profiles`), invariant to isometries, so it needs no luck with signs.
        On SNARE-seq with k = 15 all nine other starts ended at objective 0.275 (label transfer
        0.33) while the profile start reached 0.257 (0.956).
    finalist_k_factor
        Low-rank GW with several starts on kNN-graph geodesics: the finalists' plans are also
        scored under the geodesics of a coarser graph, ``round(finalist_k_factor · k)``
        neighbours, built on the cells they ran on (every cell, or the screening subsample), and
        the finalist with the lowest mean of its two objectives, each relative to the finalists'
        best under that graph, wins. The graph scale is a nuisance parameter: a matching that
        only one scale prefers by a hair is the weaker one (PBMC's half-size draws,
        docs/design-notes.md, session 16). ``0`` scores the finalists under the run's own graph
        only.
    screen_points
        Low-rank GW with several starts: above this many cells on a side, the starts are screened
        on this many cells per side (uniform subsample), and only the finalists (up to three
        distinct basins) continue at full size, where the lowest objective wins.
    continue_winner
        The run that follows a screening (the full-size run after a subsample screening, the
        semi-relaxed run after a balanced one) starts at the final ε from the winner's ``G``
        instead of annealing again: the winner has been through the annealing already. Same
        objectives and accuracy on the four real pairs with a forced subsample and on the
        semi-relaxed draws; half the GW iterations, 5–17% less time (CPU 10k, H200 45k–500k;
        docs/design-notes.md, "Continuing the screened winner").
    n_landmarks, landmark_choice
        Landmarks for ``distance="landmark"`` and how they are chosen
        (:func:`gwalign.distances.choose_landmarks`): ``mixed`` (half farthest-point sampling, for
        small and remote groups, half uniform, for the dense interior), ``farthest`` or
        ``uniform``. Low-rank GW factorises each side's geodesics from the landmarks' rows
        (Nyström), so too few or badly placed landmarks change the alignment. PBMC (1,985 ×
        1,919 cells) forced onto landmark distances, label transfer over seeds 0–4 (exact
        geodesics: 0.939): farthest 128 0.854 (seed 0), farthest 256 0.903–0.932, mixed 128
        0.926–0.938, mixed 256 0.930–0.941; the other four real pairs within 0.005 of their
        exact-geodesic rows with every choice (docs/design-notes.md, "Landmarks").
    landmark_dim
        Dimension of the landmark-MDS embedding (its squared distances have rank ``dim + 2``).
    n_anchors
        Anchor pairs M sampled from the plan per GW step; ``None`` picks ``clip(n/16, 64, 128)``
        where n is the smaller side, and never more than n.
    epsilon
        Entropic regularisation *relative to the cost scale* (the mean linearised cost under the
        product plan at the first step), so it means the same on any data. ``None`` (default):
        :meth:`relative_epsilon`, 0.01 with exact geodesics and 0.03 with landmark distances.
        Session 3 chose 0.03 on the four real pairs as drawn (0.01 → 0.893/0.900/0.792/0.740,
        0.03 → 0.899/0.909/0.796/0.745, 0.1 → 0.926/0.015/0.726/0.747: PBMC collapses at 0.1);
        session 14 drew random subsets of them (``benchmarks/robustness.py``): at 0.03, 6 of 20
        SNARE-seq subsets kept a mirrored plan with the old k and 3 of 20 with k = 15; at 0.01 with
        k = 15 none (docs/design-notes.md).
    epsilon_start_factor, epsilon_decay_iters
        ε starts at ``epsilon * epsilon_start_factor`` and decays geometrically to ``epsilon``
        over ``epsilon_decay_iters`` outer iterations (annealing avoids early poor minima).
    max_iter, min_iter
        Bounds on outer (GW) iterations.
    window, tol_rel, noise_z
        Stopping rule: after annealing and ``min_iter``, stop when the mean objective of the last
        ``window`` iterations is not lower than the window before by more than
        ``max(noise_z * standard error, tol_rel * |mean|)``: it adapts to sampling noise.
    sinkhorn_max_iter, sinkhorn_tol
        Sinkhorn bound and tolerance per GW step (L1 error of the column marginal; for
        semi-relaxed, its L1 change). ``None`` → 10 for sampled GW (its steps are noisy
        estimates, a loose warm-started solve suffices; 10 against 20 with ``gradient="sampled"``
        on the real pairs: SNARE-seq FOSCTTM 0.171 vs 0.188, scNMT label transfer 0.776/0.747
        vs 0.776/0.745, PBMC mirrored with both; 45k×45k spiral: Sinkhorn 1.3 s vs 2.4 s,
        |Spearman| 1.000 with both) and 50 for low-rank GW, whose starts are compared
        by their exact objectives: with 20, marginal errors decided the comparison (SNARE-seq:
        the best screened start, 0.2245, became 0.2331 and mirrored once solved tightly).
    sinkhorn_omega
        Over-relaxation of balanced Sinkhorn solves (1 = plain). It starts once the marginal
        error is below 0.1 and is dropped for the rest of a solve once the error exceeds twice
        its best (``gwalign.engine.sinkhorn``).
        Final polish of a 5000×5000 sampled-GW run on 2 CPU cores: 147 iterations at 1.0, 28 at
        1.5 (all Sinkhorn steps 510 → 361, run 68 s → 49 s); ``benchmarks/sinkhorn_relaxation.py``
        (3000×3000, to 1e-4): cold 252 at 1.0, 96 at 1.5, while 1.7 and 1.9 tripped the
        safeguard (245, 250); warm 56 / 32 / 23 / 35 at 1.0 / 1.5 / 1.7 / 1.9.
    precision
        GPU dot precision of the Sinkhorn kernels: ``tf32`` (fastest, ~4e-4 relative LSE error),
        ``tf32x3`` (3 TF32 passes, ~1e-7), ``ieee`` (fp32 FMA, 20-100× slower on H100);
        ``mixed`` (default) runs sampled-GW steps and their final polish in tf32, on cost
        features rounded to tf32 first (``gwalign.engine.precision``: every pass then computes
        the same cost to fp32 accuracy, on the CPU too), and low-rank GW in tf32x3. The low-rank
        cost ``row + col − 2⟨u, v⟩`` cancels large terms: in tf32 it gave negative objectives and
        NaN plans on all four real pairs (H100), while sampled steps in tf32 kept |Spearman|
        1.000 up to 100k cells and cut 45k×45k from 46 s to 32 s.
    final_max_iter, final_tol
        Sinkhorn bound and tolerance of the final polish of the returned plan.

    semi_relaxed, rho
        Semi-relaxed GW: source marginal enforced, target marginal penalised by ``rho * KL``;
        ``rho`` is relative to the cost scale like ``epsilon``.
    one_sided_check
        After a balanced low-rank run, free each side's marginal in turn (a short semi-relaxed
        probe at ``rho`` from the balanced plan) and record each cell's mass ratio
        (:meth:`gwalign.Alignment.relaxed_mass`); :mod:`gwalign.one_sided` groups the cells that
        lose most and suggests ``--semi-relaxed`` for them. ``None`` (default): run it when the
        larger side has at most :data:`AUTO_ONE_SIDED_MAX_POINTS` points, where it is cheap
        (docs/design-notes.md, "One-sided cell groups").
    fgw_alpha
        Fused GW weight of the feature cost (0 = pure GW, 1 = pure feature OT).
    stabilisation, cost_ema
        ``cost_ema``: the linearised cost is an exponential moving average of the sampled costs
        (weight ``cost_ema`` on the past), streamed as concatenated features over ``ema_window``
        steps. ``none``: plain iteration (the default, see docs/design-notes.md).
    ema_window
        Steps kept for the cost EMA.
    n_starts
        Starts; the one with the lowest GW objective is kept. ``lowrank``: the product plan,
        the distance-profile plan (``profile_start``), then the ``2**start_signs`` sign-pattern
        starts, then Gaussian perturbations seeded ``seed+1, …``; ``None`` →
        ``2 + 2**start_signs`` (screened: each start runs only through
        the ε annealing, the best continues; seed-independent). ``sampled``: full runs with
        seeds ``seed, seed+1, …``; ``None`` → 3. GW is non-convex and
        mirror-symmetric shapes have several minima; on the example data one start in three landed in the wrong one (FOSCTTM 0.54,
        objective 0.066) while the others reached 0.055 with objective 0.027.
    n_eval_anchors
        Fresh anchor pairs used for the final unbiased GW objective estimate.
    seed
        Seed of every random choice; a CPU run with one seed is bit-for-bit repeatable.
    device
        ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:i``.
    dtype
        ``float32`` or ``float64`` for the engine's tensors.
    block_rows, block_cols
        Block sizes of the streamed operations; ``None`` chooses them from the sizes.
    block_elements
        Target elements per streamed block when block sizes are chosen automatically.
    dense_limit
        Largest N·K for which a dense plan (``to_dense``) or a dense ``C_linear`` is accepted.
    precomputed_max_points
        Largest side for which all-pairs shortest paths are computed.
    """

    k: Optional[int] = None
    edge_weights: Literal["distance", "connectivity", "local"] = "distance"
    distance: DistanceMode = "auto"
    gradient: GradientMode = "auto"
    rank: int = 32
    start_noise: float = 1.0
    start_signs: int = 3
    profile_start: bool = True
    finalist_k_factor: float = 2.0
    screen_points: int = 4000
    continue_winner: bool = True
    n_landmarks: int = 256
    landmark_choice: Literal["mixed", "farthest", "uniform"] = "mixed"
    landmark_dim: int = 32
    n_anchors: Optional[int] = None
    epsilon: Optional[float] = None
    epsilon_start_factor: float = 10.0
    epsilon_decay_iters: int = 10
    max_iter: int = 100
    min_iter: int = 15
    window: int = 5
    tol_rel: float = 1e-3
    noise_z: float = 1.0
    sinkhorn_max_iter: Optional[int] = None
    sinkhorn_tol: float = 1e-3
    sinkhorn_omega: float = 1.5
    precision: Literal["mixed", "tf32", "tf32x3", "ieee"] = "mixed"
    final_max_iter: int = 2000
    final_tol: float = 1e-4
    semi_relaxed: bool = False
    rho: float = 1.0
    one_sided_check: Optional[bool] = None
    fgw_alpha: float = 0.0
    stabilisation: StabilisationMode = "none"
    cost_ema: float = 0.5
    ema_window: int = 4
    n_starts: Optional[int] = None
    n_eval_anchors: int = 256
    seed: int = 0
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    block_rows: Optional[int] = None
    block_cols: Optional[int] = None
    block_elements: int = 1 << 20
    dense_limit: int = 25_000_000
    precomputed_max_points: int = 8000

    def __post_init__(self) -> None:
        if self.k is not None:
            _check_int("k", self.k, 1)
        _check_choice("edge_weights", self.edge_weights, ("distance", "connectivity", "local"))
        _check_choice("distance", self.distance, ("auto", "precomputed", "dijkstra", "landmark"))
        _check_int("n_landmarks", self.n_landmarks, 2)
        _check_choice("landmark_choice", self.landmark_choice, ("mixed", "farthest", "uniform"))
        if not (isinstance(self.finalist_k_factor, (int, float)) and not isinstance(self.finalist_k_factor, bool)
                and (self.finalist_k_factor == 0 or self.finalist_k_factor > 1)):
            raise ValueError(f"finalist_k_factor must be 0 (off) or above 1, got {self.finalist_k_factor!r}")
        _check_int("screen_points", self.screen_points, 16)
        for name in ("profile_start", "continue_winner", "semi_relaxed"):
            _check_bool(name, getattr(self, name))
        if self.one_sided_check is not None:
            _check_bool("one_sided_check", self.one_sided_check)
        _check_int("landmark_dim", self.landmark_dim, 1)
        if self.n_anchors is not None:
            _check_int("n_anchors", self.n_anchors, 1)
        if self.epsilon is not None:
            _check_positive("epsilon", self.epsilon)
        if not (math.isfinite(self.epsilon_start_factor) and self.epsilon_start_factor >= 1.0):
            raise ValueError(f"epsilon_start_factor must be >= 1, got {self.epsilon_start_factor!r}")
        _check_int("epsilon_decay_iters", self.epsilon_decay_iters, 0)
        _check_int("max_iter", self.max_iter, 1)
        _check_int("min_iter", self.min_iter, 0)
        _check_int("window", self.window, 2)
        _check_positive("tol_rel", self.tol_rel, allow_zero=True)
        _check_positive("noise_z", self.noise_z, allow_zero=True)
        if self.sinkhorn_max_iter is not None:
            _check_int("sinkhorn_max_iter", self.sinkhorn_max_iter, 1)
        _check_choice("precision", self.precision, ("mixed", "tf32", "tf32x3", "ieee"))
        _check_positive("sinkhorn_tol", self.sinkhorn_tol)
        if not (isinstance(self.sinkhorn_omega, (int, float)) and 1.0 <= self.sinkhorn_omega < 2.0):
            raise ValueError(f"sinkhorn_omega must lie in [1, 2), got {self.sinkhorn_omega!r}")
        _check_int("final_max_iter", self.final_max_iter, 1)
        _check_positive("final_tol", self.final_tol)
        _check_positive("rho", self.rho)
        if not (isinstance(self.fgw_alpha, (int, float)) and 0.0 <= self.fgw_alpha <= 1.0):
            raise ValueError(f"fgw_alpha must lie in [0, 1], got {self.fgw_alpha!r}")
        _check_choice("stabilisation", self.stabilisation, ("none", "cost_ema"))
        if not (0.0 <= self.cost_ema < 1.0):
            raise ValueError(f"cost_ema must lie in [0, 1), got {self.cost_ema!r}")
        _check_int("ema_window", self.ema_window, 1)
        if self.n_starts is not None:
            _check_int("n_starts", self.n_starts, 1)
        _check_choice("gradient", self.gradient, ("auto", "lowrank", "sampled"))
        _check_int("rank", self.rank, 1)
        _check_positive("start_noise", self.start_noise, allow_zero=True)
        _check_int("start_signs", self.start_signs, 0)
        _check_int("n_eval_anchors", self.n_eval_anchors, 1)
        _check_int("seed", self.seed, 0)
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:i, got {self.device!r}")
        _check_choice("dtype", self.dtype, ("float32", "float64"))
        for name in ("block_rows", "block_cols"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, 1)
        _check_int("block_elements", self.block_elements, 1024)
        _check_int("dense_limit", self.dense_limit, 1)
        _check_int("precomputed_max_points", self.precomputed_max_points, 2)

    def finalist_k(self, n_source: int, n_target: int) -> Optional[int]:
        """Neighbours of the coarser graph the finalists are also scored under
        (``finalist_k_factor``), or ``None`` when it is off or no coarser than the run's own."""
        if self.finalist_k_factor == 0:
            return None
        k = self.knn_k(n_source, n_target)
        coarse = min(int(round(self.finalist_k_factor * k)), min(n_source, n_target) - 1)
        return coarse if coarse > k else None

    def knn_k(self, n_source: int, n_target: int) -> int:
        """Neighbours of both kNN graphs: ``k``, or :data:`K_AUTO` capped one below the smaller
        side's cell count."""
        if self.k is not None:
            return self.k
        return int(max(min(K_AUTO, min(n_source, n_target) - 1), 1))

    def relative_epsilon(self, distance_mode: str) -> float:
        """The relative ε of a run whose distances are ``distance_mode`` (``precomputed``,
        ``dijkstra`` or ``landmark``): ``epsilon``, or :data:`EPSILON_LANDMARK` for landmark
        distances and :data:`EPSILON_EXACT` for exact ones."""
        if self.epsilon is not None:
            return self.epsilon
        return EPSILON_LANDMARK if distance_mode == "landmark" else EPSILON_EXACT

    def with_epsilon(self, distance_mode: str = "precomputed") -> "GWConfig":
        """This configuration with ``epsilon`` set (:meth:`relative_epsilon`); engine entry points
        called without :func:`gwalign.align` take given distances as exact."""
        return self if self.epsilon is not None else self.replace(epsilon=self.relative_epsilon(distance_mode))

    def runs_one_sided_check(self, n_source: int, n_target: int) -> bool:
        """Whether a balanced run of this size makes the one-sided check (see ``one_sided_check``)."""
        if self.semi_relaxed:
            return False
        if self.one_sided_check is None:
            return max(n_source, n_target) <= AUTO_ONE_SIDED_MAX_POINTS
        return bool(self.one_sided_check)

    @property
    def min_points(self) -> int:
        """Fewest points a side needs for its kNN graph: ``k + 1`` (the smallest automatic k)."""
        return (self.k or K_MIN) + 1

    @property
    def lowrank_starts(self) -> int:
        """Low-rank GW starts: ``n_starts``, else product + profile + ``2**start_signs``."""
        return self.n_starts or 1 + int(self.profile_start) + 2 ** self.start_signs

    def step_sinkhorn_max_iter(self, gradient: str) -> int:
        """Sinkhorn cap per GW step: ``sinkhorn_max_iter``, else 50 (lowrank) / 10 (sampled)."""
        if self.sinkhorn_max_iter is not None:
            return self.sinkhorn_max_iter
        return 50 if gradient == "lowrank" else 10

    def step_precision(self, gradient: str) -> str:
        """GPU dot precision inside GW steps (``mixed`` → tf32 for sampled, tf32x3 for lowrank)."""
        if self.precision != "mixed":
            return self.precision
        return "tf32" if gradient == "sampled" else "tf32x3"

    @property
    def final_precision(self) -> str:
        """GPU dot precision of the low-rank final polish (``mixed`` → tf32x3; sampled GW
        polishes at its step precision, see :mod:`gwalign.engine.precision`)."""
        return "tf32x3" if self.precision == "mixed" else self.precision

    def replace(self, **changes: Any) -> "GWConfig":
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (for reports and ``uns``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "GWConfig":
        """Build from a dict, naming any unknown key and its source."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown config key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path) -> "GWConfig":
        """Load a TOML preset; keys may sit at top level or under ``[gwalign]``."""
        return cls.from_dict(load_toml(path), source=str(path))


#: Neighbours of the kNN classifier that carries labels across in ``X_gw`` (scanpy's neighbourhood
#: size). Accuracy of the written labels on the four real pairs (SNARE-seq / PBMC shared types /
#: scNMT-met / scNMT-acc, both directions): k = 5 0.956 / 0.942 / 0.864 / 0.782, 15 0.960 / 0.948 /
#: 0.864 / 0.815, 30 0.960 / 0.949 / 0.863 / 0.815; by plan mass 0.918 / 0.920 / 0.784 / 0.760
#: (docs/benchmarks.md, session 7).
TRANSFER_K = 15

#: Lazy random-walk steps over each side's kNN graph applied to the plan before the coupled CCA
#: reads it (``S_s^t T (S_t^t)ᵀ``, :func:`gwalign.results.coupled_cca`). Chosen on the four real
#: pairs at k = 7, the automatic k and k = 14 with 0 / 2 / 4 / 8 steps (docs/design-notes.md,
#: session 10): label transfer mean 0.886 / 0.893 / 0.897 / 0.899 at the automatic k, four steps
#: taking about 80% of eight's gain at a smaller PBMC loss (-0.006 against -0.008 at the
#: automatic k, against -0.011 at k = 14).
CCA_DIFFUSION_STEPS = 4


@dataclass(frozen=True)
class RunConfig:
    """A whole ``gwalign run``: how to read and prepare the two files, plus the engine.

    Parameters
    ----------
    engine
        The GW engine parameters.
    rep_source, rep_target
        ``obsm`` keys of ready representations; ``None`` = compute one from ``X``.
    modality_source, modality_target
        ``auto`` (peaks named like ``chr1:100-200`` → ATAC, otherwise RNA), ``rna`` or ``atac``.
    n_components
        Dimensions of the computed representation (PCA for RNA, LSI for ATAC).
    n_top_genes
        Highly variable genes kept before PCA (RNA).
    joint_rep_source, joint_rep_target
        ``obsm`` keys of shared features for fused GW (equal widths).
    transfer_labels
        ``obs`` columns to carry across through the coupling.
    transfer
        How labels are carried (:func:`gwalign.results.transfer`): ``knn``, the majority label of
        each cell's ``transfer_k`` nearest labelled cells in ``X_gw`` (the default: more accurate
        on all four real pairs, see :data:`TRANSFER_K`), or ``plan``, the label with most of the
        cell's plan mass. Either way the confidence is the share of the cell's plan mass that
        comes from cells carrying the label given, times the cell's evidence of having a
        counterpart (:meth:`gwalign.Alignment.counterpart_evidence`).
    transfer_k
        Neighbours of the kNN transfer.
    normalise_rows
        ``l2`` scales each cell's representation to unit length before building graphs (as SCOT
        does); ``none`` keeps it; ``auto`` scales only uncentred representations whose norm is
        a size factor (:func:`gwalign.preprocess.scale_rows`). Measured with
        ``benchmarks/real_data.py`` (label transfer, l2 → auto): SNARE-seq 0.951 → 0.897,
        PBMC 0.500 → 0.730, scNMT RNA–methylation 0.171 → 0.791, RNA–accessibility
        0.151 → 0.740: L2 erases the norm, which orders the scNMT stages. A size factor must
        also carry a large share of the variance: on held-out scGEM (uncentred, near-constant
        norms) scaling both sides mirrored the alignment, FOSCTTM 0.682 against 0.190.
    top_k
        Plan entries kept per cell in the sparse ``obsm["gw_coupling"]``.
    joint_embedding
        ``obsm["X_gw"]``: ``cca`` (both sides projected on the canonical directions of the
        coupling-weighted CCA, the default), ``target`` (source cells projected into the
        target's representation), ``source`` or ``spectral``
        (:func:`gwalign.results.joint_embedding` has the measurements).
    cca_diffusion
        Random-walk steps that average the plan over both cells' kNN neighbourhoods before the
        ``cca`` embedding reads it (:data:`CCA_DIFFUSION_STEPS`; 0 reads the plan as is).
    figures
        Write PNG figures (convergence, joint UMAP).
    """

    engine: GWConfig = dataclasses.field(default_factory=GWConfig)
    rep_source: Optional[str] = None
    rep_target: Optional[str] = None
    modality_source: Literal["auto", "rna", "atac"] = "auto"
    modality_target: Literal["auto", "rna", "atac"] = "auto"
    n_components: int = 30
    n_top_genes: int = 2000
    joint_rep_source: Optional[str] = None
    joint_rep_target: Optional[str] = None
    transfer_labels: tuple[str, ...] = ()
    transfer: Literal["knn", "plan"] = "knn"
    transfer_k: int = TRANSFER_K
    normalise_rows: Literal["auto", "l2", "none"] = "auto"
    top_k: int = 10
    joint_embedding: Literal["cca", "target", "source", "spectral"] = "cca"
    cca_diffusion: int = CCA_DIFFUSION_STEPS
    figures: bool = True

    def __post_init__(self) -> None:
        _check_choice("modality_source", self.modality_source, ("auto", "rna", "atac"))
        _check_choice("modality_target", self.modality_target, ("auto", "rna", "atac"))
        _check_int("n_components", self.n_components, 2)
        _check_int("n_top_genes", self.n_top_genes, 10)
        _check_int("top_k", self.top_k, 1)
        _check_choice("transfer", self.transfer, ("knn", "plan"))
        _check_int("transfer_k", self.transfer_k, 1)
        _check_choice("normalise_rows", self.normalise_rows, ("auto", "l2", "none"))
        _check_choice("joint_embedding", self.joint_embedding, ("cca", "target", "source", "spectral"))
        _check_int("cca_diffusion", self.cca_diffusion, 0)
        if (self.joint_rep_source is None) != (self.joint_rep_target is None):
            raise ValueError("joint_rep_source and joint_rep_target must be given together")

    def to_dict(self) -> dict[str, Any]:
        """Flat dict: run fields plus engine fields (as written to reports)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "engine"}
        out["transfer_labels"] = list(self.transfer_labels)
        out.update(self.engine.to_dict())
        return out

    @classmethod
    def from_flat(cls, values: dict[str, Any], source: str = "config") -> "RunConfig":
        """Split a flat dict (TOML preset, CLI flags) into run and engine fields."""
        run_keys = {f.name for f in dataclasses.fields(cls)} - {"engine"}
        engine_keys = {f.name for f in dataclasses.fields(GWConfig)}
        unknown = sorted(set(values) - run_keys - engine_keys)
        if unknown:
            raise ValueError(f"{source}: unknown config key {unknown[0]!r}")
        run = {k: v for k, v in values.items() if k in run_keys}
        if "transfer_labels" in run:
            labels = run["transfer_labels"]
            run["transfer_labels"] = tuple([labels] if isinstance(labels, str) else labels)
        engine = GWConfig(**{k: v for k, v in values.items() if k in engine_keys})
        return cls(engine=engine, **run)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Flat key/value pairs of a TOML preset (top level, or under ``[gwalign]``)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    if "gwalign" in data and isinstance(data["gwalign"], dict):
        data = data["gwalign"]
    return data


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    # A TOML string such as "false" would otherwise pass as a true value.
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


__all__ = ["GWConfig", "RunConfig", "AUTO_PRECOMPUTED_MAX_POINTS", "load_toml"]
