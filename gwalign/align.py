"""The public entry point: ``align(X_source, X_target, config) -> Alignment``."""

from __future__ import annotations

import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from gwalign.config import AUTO_PRECOMPUTED_MAX_POINTS, GWConfig
from gwalign.distances import (DijkstraDistances, DistanceProvider, LandmarkDistances,
                               PrecomputedDistances, landmark_paths)
from gwalign.engine import ops
from gwalign.engine.lowrank import (factor_dense, factor_nystrom, factor_randomized, relaxed_mass,
                                    solve_lowrank_gw)
from gwalign.engine.plan import FactoredPlan
from gwalign.engine.solver import ProgressCallback, SolveResult, solve_sampled_gw
from gwalign.graph import KNNGraph, knn_graph
from gwalign.validate import as_linear_cost, as_marginal, as_matrix, as_square_distances

#: Starts when ``config.n_starts`` is None: low-rank starts are screened, so they are cheap.
DEFAULT_SAMPLED_STARTS = 3


class GWAlignWarning(RuntimeWarning):
    """A result was produced, but under a condition the user should know about."""


class GPUMemoryError(MemoryError):
    """The GPU ran out of memory in a named stage of :func:`align` (message says what to lower)."""


#: What lowers the memory of each stage (shown when CUDA runs out of memory there).
MEMORY_ADVICE = {
    "graph": "lower k, or build on device='cpu'",
    "distances": "use distance='landmark' with fewer n_landmarks, or a smaller landmark_dim",
    "solve": "lower block_elements (streamed tile size), n_anchors or rank",
}


@contextmanager
def _stage(name: str, timings: dict[str, float], shape: tuple[int, int]):
    """Time a stage; turn a CUDA out-of-memory error into a one-line :class:`GPUMemoryError`."""
    tick = time.perf_counter()
    try:
        yield
    except torch.OutOfMemoryError as error:
        wanted = re.search(r"Tried to allocate ([0-9.]+ [KMGT]i?B)", str(error))
        amount = f"it asked for {wanted.group(1)} more" if wanted else "the allocation size was not reported"
        raise GPUMemoryError(f"CUDA out of memory in stage '{name}' ({shape[0]:,} × {shape[1]:,} cells; "
                             f"{amount}): {MEMORY_ADVICE[name]}, or run on device='cpu'") from None
    timings[name] = time.perf_counter() - tick


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available (else CPU, with a warning); explicit CUDA must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        warnings.warn("no CUDA device found: running on the CPU", GWAlignWarning, stacklevel=2)
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} was asked for, but this machine has no CUDA device")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(name)


@dataclass
class Alignment:
    """Result of :func:`align`: an implicit coupling and what produced it.

    The coupling is never stored densely; its methods stream over it.
    """

    plan: FactoredPlan
    solve: SolveResult
    config: GWConfig
    graphs: tuple[Optional[KNNGraph], Optional[KNNGraph]]
    distance_mode: str
    timings: dict[str, float] = field(default_factory=dict)
    gradient_mode: str = "sampled"
    #: The cells' weights ``a`` and ``b`` the plan was asked to carry (uniform unless given; set by
    #: :func:`align`, the only constructor).
    marginals: Optional[tuple[np.ndarray, np.ndarray]] = None
    # counterpart_evidence(), computed once: in semi-relaxed runs it is a streamed pass over the
    # plan, asked for by the CCA and by every label transfer.
    _evidence: Optional[tuple[np.ndarray, np.ndarray]] = field(default=None, init=False, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(source cells N, target cells K)."""
        return self.plan.shape

    @property
    def device(self) -> torch.device:
        """Where the plan lives (and where label transfer searches neighbours)."""
        return self.plan.u.device

    @property
    def gw_objective(self) -> float:
        """Unbiased estimate of the GW objective (normalised geodesic distances)."""
        return self.solve.objective

    @property
    def history(self) -> list[float]:
        """GW objective estimate after each outer iteration."""
        return self.solve.history

    @property
    def converged(self) -> bool:
        return self.solve.converged

    @property
    def n_iter(self) -> int:
        return self.solve.n_iter

    @property
    def knn_k(self) -> Optional[int]:
        """Neighbours per cell of the kNN graphs (``config.knn_k`` of the two sides' sizes);
        ``None`` when both sides came with their own distance matrices."""
        if all(graph is None for graph in self.graphs):
            return None
        return self.config.knn_k(*self.shape)

    @property
    def n_bridges(self) -> tuple[int, int]:
        """Bridge edges added to connect each side's kNN graph."""
        return tuple(0 if g is None else g.n_bridges for g in self.graphs)  # type: ignore[return-value]

    def cell_distortion(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(source, target): each cell's share of the GW objective per unit of its mass, the mean
        squared mismatch between its distances and its partners'. Cells with no counterpart on the
        other side can stand out (PBMC: two of its six one-sided types, at 9.6 and 6.7 robust z-scores
        above the median), but so can matched cells that fit badly (a shared SNARE-seq type: 4.6),
        so it is a hint, not a test (docs/design-notes.md, "Per-cell distortion"). ``None`` for
        sampled GW."""
        return self.solve.cell_distortion

    def relaxed_mass(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(source, target): each cell's mass, relative to its balanced mass, when its own side's
        marginal is freed (a short semi-relaxed probe at ``config.rho`` from the balanced plan).
        Cells of a type absent from the other side can lose most of theirs (PBMC's RNA-only naive
        B cells); :func:`gwalign.one_sided.one_sided_groups` turns this into groups and a
        suggestion. ``None`` unless a balanced low-rank run made the check
        (:meth:`GWConfig.runs_one_sided_check`)."""
        return self.solve.relaxed_mass

    def counterpart_evidence(self) -> tuple[np.ndarray, np.ndarray]:
        """(source, target): how much each cell looks matched, in [0, 1]: its mass relative to its
        weight when its side's marginal is free, capped at 1. A semi-relaxed run frees the
        target's marginal (its plan gives the target's masses); after a balanced run the
        one-sided probe (:meth:`relaxed_mass`) gives both sides'. Ones where nothing freed a side
        (the enforced source of a semi-relaxed run; runs without the probe). Label transfer
        multiplies its label shares by it, so a cell that keeps little mass when allowed to shed
        it gets a low confidence even if its few partners agree on a label."""
        if self._evidence is None:
            n, k = self.shape
            if self.config.semi_relaxed:
                self._evidence = np.ones(n), np.minimum(1.0, self.col_marginal() / self.marginals[1])
            else:
                relaxed = self.relaxed_mass()
                self._evidence = (np.ones(n), np.ones(k)) if relaxed is None else (
                    np.minimum(1.0, relaxed[0]), np.minimum(1.0, relaxed[1]))
        return self._evidence

    def row_marginal(self) -> np.ndarray:
        """Mass of each source cell (``T 1``)."""
        return ops.row_mass(self.plan).cpu().numpy()

    def col_marginal(self) -> np.ndarray:
        """Mass of each target cell (``Tᵀ 1``)."""
        return ops.col_mass(self.plan).cpu().numpy()

    def apply(self, z) -> np.ndarray:
        """``T @ Z`` for Z with one row per target cell."""
        return ops.apply(self.plan, self._tensor(z)).cpu().numpy()

    def apply_t(self, z) -> np.ndarray:
        """``Tᵀ @ Z`` for Z with one row per source cell."""
        return ops.apply_t(self.plan, self._tensor(z)).cpu().numpy()

    def project_to_source(self, z_target) -> np.ndarray:
        """Barycentric projection of target values onto source cells: ``(T Z) / (T 1)``."""
        z = self._tensor(z_target)
        mass = ops.row_mass(self.plan)
        out = ops.apply(self.plan, z)
        return (out / (mass[:, None] if out.ndim == 2 else mass)).cpu().numpy()

    def project_to_target(self, z_source) -> np.ndarray:
        """Barycentric projection of source values onto target cells: ``(Tᵀ Z) / (Tᵀ 1)``."""
        z = self._tensor(z_source)
        mass = ops.col_mass(self.plan)
        out = ops.apply_t(self.plan, z)
        return (out / (mass[:, None] if out.ndim == 2 else mass)).cpu().numpy()

    def topk(self, k: int = 10, transpose: bool = False) -> sp.csr_matrix:
        """Sparse coupling keeping the ``k`` largest plan entries per row (raw plan mass).

        ``transpose=True`` gives the target × source view (top-k per target cell).
        """
        plan = self.plan.T if transpose else self.plan
        values, indices = ops.topk_rows(plan, k)
        n_rows, n_cols = plan.shape
        kk = values.shape[1]
        indptr = np.arange(0, n_rows * kk + 1, kk)
        return sp.csr_matrix((values.cpu().numpy().ravel(), indices.cpu().numpy().ravel(), indptr),
                             shape=(n_rows, n_cols))

    def to_dense(self) -> np.ndarray:
        """The full N×K plan; refused above ``config.dense_limit`` entries."""
        n, k = self.shape
        if n * k > self.config.dense_limit:
            raise ValueError(f"to_dense refused: {n}×{k} = {n * k} entries exceeds dense_limit="
                             f"{self.config.dense_limit}; use topk(), apply() or raise the limit")
        return ops.apply(self.plan, torch.eye(k, dtype=self.plan.u.dtype, device=self.device)).cpu().numpy()

    def _tensor(self, z) -> torch.Tensor:
        arr = z.detach() if isinstance(z, torch.Tensor) else torch.as_tensor(np.asarray(z, dtype=np.float64))
        return arr.to(device=self.device, dtype=self.plan.u.dtype)


def align(x_source, x_target, config: Optional[GWConfig] = None, *,
          a=None, b=None, joint_source=None, joint_target=None, linear_cost=None,
          d_source=None, d_target=None, progress: Optional[ProgressCallback] = None) -> Alignment:
    """Align two point clouds living in different spaces with (fused, semi-relaxed) GW.

    Parameters
    ----------
    x_source, x_target
        Representations, N×d and K×d' (any d, d'). Geodesic distances of their kNN graphs are
        matched. Ignored for a side whose distance matrix is given.
    config
        All run parameters (:class:`GWConfig`); defaults when ``None``.
    a, b
        Cell weights (positive, summing to one); uniform by default.
    joint_source, joint_target
        Shared features (N×p, K×p) for fused GW (used when ``config.fgw_alpha > 0``).
    linear_cost
        Dense N×K feature cost for fused GW, small problems only (``config.dense_limit``).
    d_source, d_target
        User distance matrices (N×N, K×K), used as ``precomputed`` distances.
    progress
        Optional callback ``progress(iteration, max_iter, objective)``.

    Returns
    -------
    Alignment
    """
    config = config or GWConfig()
    timings: dict[str, float] = {}
    min_rows = config.min_points
    xs = as_matrix("x_source", x_source, min_rows=min_rows) if d_source is None else None
    xt = as_matrix("x_target", x_target, min_rows=min_rows) if d_target is None else None
    n = xs.shape[0] if xs is not None else np.asarray(d_source).shape[0]
    k = xt.shape[0] if xt is not None else np.asarray(d_target).shape[0]
    ds = as_square_distances("d_source", d_source, n) if d_source is not None else None
    dt = as_square_distances("d_target", d_target, k) if d_target is not None else None
    wa = as_marginal("a", a, n)
    wb = as_marginal("b", b, k)
    joint = _joint(joint_source, joint_target, n, k)
    if config.fgw_alpha > 0 and joint is None and linear_cost is None:
        raise ValueError("fgw_alpha > 0 needs joint_source/joint_target or linear_cost")
    if joint is not None and linear_cost is not None:
        raise ValueError("give either joint_source/joint_target or linear_cost, not both")
    lin = as_linear_cost("linear_cost", linear_cost, n, k, config.dense_limit)

    device = resolve_device(config.device)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    mode = _distance_mode(config, n, k)
    # ε is set by the distances when left automatic; the engine and the result see the value used.
    config = config.with_epsilon(mode)
    knn_k = config.knn_k(n, k)

    def to_dev(arr: Optional[np.ndarray]) -> Optional[torch.Tensor]:
        return None if arr is None else torch.as_tensor(arr, dtype=dtype, device=device)

    with _stage("graph", timings, (n, k)):
        points = (to_dev(xs), to_dev(xt))
        graphs = (knn_graph(points[0], knn_k, weights=config.edge_weights) if xs is not None else None,
                  knn_graph(points[1], knn_k, weights=config.edge_weights) if xt is not None else None)

    with _stage("distances", timings, (n, k)):
        paths = [None, None]
        if mode == "landmark" and graphs[0] is not None and graphs[1] is not None:
            # Both sides' shortest paths in one process pool (see shortest_paths_many).
            paths = landmark_paths(list(graphs), list(points), config.n_landmarks, [config.seed, config.seed + 1],
                                   config.landmark_choice)
        dist_s = _provider(mode, graphs[0], ds, device, dtype, config, config.seed, points[0], paths[0])
        dist_t = _provider(mode, graphs[1], dt, device, dtype, config, config.seed + 1, points[1], paths[1])
    for part in set(dist_s.timings) | set(dist_t.timings):
        timings[f"distances_{part}"] = dist_s.timings.get(part, 0.0) + dist_t.timings.get(part, 0.0)

    coarse = None
    coarse_k = config.finalist_k(n, k)
    if coarse_k is not None and xs is not None and xt is not None and config.lowrank_starts > 1:
        coarse = _coarse_factors(points, coarse_k, config, device, dtype, timings)

    with _stage("solve", timings, (n, k)):
        solve = _solve(dist_s, dist_t, to_dev(wa), to_dev(wb), config, mode, lin, joint, to_dev, timings,
                       progress, coarse)
    if not solve.marginal_error <= config.final_tol:
        # The plan is still usable, but its marginals are off: say so instead of returning silently.
        warnings.warn(f"final Sinkhorn stopped at marginal error {solve.marginal_error:.2g} > final_tol "
                      f"{config.final_tol:g} after {solve.sinkhorn_iters[-1]} iterations: raise "
                      f"final_max_iter or epsilon", GWAlignWarning, stacklevel=2)
    timings.update({f"solve_{key}": value for key, value in solve.timings.items()})
    return Alignment(plan=solve.plan, solve=solve, config=config, graphs=graphs,
                     distance_mode=mode, timings=timings,
                     gradient_mode=_gradient_mode(config, mode, lin), marginals=(wa, wb))


def _coarse_factors(points: tuple[torch.Tensor, torch.Tensor], coarse_k: int, config: GWConfig,
                    device: torch.device, dtype: torch.dtype, timings: dict[str, float]):
    """The factory the low-rank solver calls, once it has two finalists, for the coarser graph's
    distances on the cells it compared them on: every cell, or the screening subsample
    (GWConfig.finalist_k_factor). Distances as the run's own for that many cells: exact geodesics
    up to AUTO_PRECOMPUTED_MAX_POINTS per side (factorised by a randomized range finder), else
    landmark geodesics (Nyström factors)."""
    def build(rows_s: Optional[np.ndarray], rows_t: Optional[np.ndarray]):
        tick = time.perf_counter()
        cells = [x if rows is None else x[torch.as_tensor(rows, device=x.device)]
                 for x, rows in ((points[0], rows_s), (points[1], rows_t))]
        graphs = [knn_graph(x, min(coarse_k, x.shape[0] - 1), weights=config.edge_weights) for x in cells]
        seeds = [config.seed, config.seed + 1]
        if max(x.shape[0] for x in cells) <= AUTO_PRECOMPUTED_MAX_POINTS:
            # On PBMC's RNA side (k = 30) 0.14 s against 1.2 s for the full eigendecomposition,
            # relative error 0.0400 against the optimal 0.0399 (2 CPU cores).
            factors = [factor_randomized(PrecomputedDistances.from_graph(graph, device, dtype, seed).dense(),
                                         config.rank, seed=seed) for graph, seed in zip(graphs, seeds)]
        else:
            # All-pairs paths on a 4000-cell subsample took 11.7 s of a 155 s CPU run (spiral 6k x 6k).
            paths = landmark_paths(graphs, cells, config.n_landmarks, seeds, config.landmark_choice)
            factors = [_factor(_provider("landmark", graph, None, device, dtype, config, seed, x, path), config.rank)
                       for graph, seed, x, path in zip(graphs, seeds, cells, paths)]
        timings["finalist_distances"] = time.perf_counter() - tick
        return factors[0], factors[1]
    return build


def _factor(provider: DistanceProvider, rank: int):
    """Low-rank factors of a provider's normalised distances: exact eigenvectors of a dense
    matrix, or the Nyström factorisation of landmark rows."""
    if isinstance(provider, LandmarkDistances):
        return factor_nystrom(provider.table, provider.landmarks, provider.scale, rank,
                              provider.device, provider.dtype)
    return factor_dense(provider.dense(), rank)


def _solve(dist_s: DistanceProvider, dist_t: DistanceProvider, a: torch.Tensor, b: torch.Tensor,
           config: GWConfig, mode: str, lin, joint, to_dev, timings: dict[str, float],
           progress: Optional[ProgressCallback], coarse=None) -> SolveResult:
    """Run the chosen GW solver (low-rank with screened starts, or sampled with full starts);
    ``coarse``: the factory of the distances the low-rank finalists are also scored under."""
    joint_t = None if joint is None else (to_dev(joint[0]), to_dev(joint[1]))
    if _gradient_mode(config, mode, lin) == "lowrank":
        tick = time.perf_counter()
        factors = (_factor(dist_s, config.rank), _factor(dist_t, config.rank))
        timings["factorise"] = time.perf_counter() - tick
        solve = solve_lowrank_gw(factors[0], factors[1], a, b, config, config.lowrank_starts,
                                 joint=joint_t, progress=progress, coarse=coarse)
        if config.runs_one_sided_check(a.shape[0], b.shape[0]):
            tick = time.perf_counter()
            ratios = relaxed_mass(factors[0], factors[1], a, b, solve.plan, config, joint_t)
            solve.relaxed_mass = (ratios[0].cpu().numpy(), ratios[1].cpu().numpy())
            timings["one_sided_check"] = time.perf_counter() - tick
        return solve
    starts = []
    for start in range(config.n_starts or DEFAULT_SAMPLED_STARTS):
        starts.append(solve_sampled_gw(dist_s, dist_t, a, b, config.replace(seed=config.seed + start),
                                       joint=joint_t, linear_cost=to_dev(lin), progress=progress))
    solve = min(starts, key=lambda result: result.objective)
    solve.start_objectives = [result.objective for result in starts]
    return solve


def _joint(js, jt, n: int, k: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    if js is None and jt is None:
        return None
    if js is None or jt is None:
        raise ValueError("joint_source and joint_target must be given together")
    js_arr = as_matrix("joint_source", js)
    jt_arr = as_matrix("joint_target", jt)
    if js_arr.shape[0] != n or jt_arr.shape[0] != k:
        raise ValueError(f"joint_source/joint_target need {n} and {k} rows, got "
                         f"{js_arr.shape[0]} and {jt_arr.shape[0]}")
    if js_arr.shape[1] != jt_arr.shape[1]:
        raise ValueError(f"joint_source and joint_target must have equal width, got "
                         f"{js_arr.shape[1]} and {jt_arr.shape[1]}")
    return js_arr, jt_arr


def _gradient_mode(config: GWConfig, mode: str, linear_cost) -> str:
    """Resolve ``gradient="auto"``.

    Low-rank GW whenever it applies (precomputed or landmark distances), since it was as good or
    better on every real pair: forced onto landmark distances (session 4: 128 farthest-point
    landmarks) it scored label transfer 0.901 / 0.815 / 0.803 / 0.745 (SNARE-seq, PBMC, scNMT-met,
    scNMT-acc) against sampled GW's 0.897 / 0.106 / 0.776 / 0.747 (with the landmarks of session
    13, 256 mixed: 0.960 / 0.939-0.941 / 0.891 / 0.808), and with its starts screened on a
    subsample it was also faster at every size measured on the H100 (250k: 36 s against 52 s for
    one sampled start; 500k: 135 s against 176 s; 1M: 515 s, docs/benchmarks.md). Semi-relaxed runs too (their starts are chosen
    as balanced GW, :func:`gwalign.engine.lowrank.solve_lowrank_gw`): sampled semi-relaxed GW
    mirrored PBMC (label transfer 0.06-0.10). Sampled GW for the ``dijkstra`` distance mode and
    dense linear costs.
    """
    if config.gradient == "lowrank":
        if mode not in ("precomputed", "landmark"):
            raise ValueError(f"gradient='lowrank' needs distance='precomputed' or 'landmark' (got {mode!r})")
        if linear_cost is not None:
            raise ValueError("gradient='lowrank' takes fused features (joint_source/joint_target), "
                             "not a dense linear_cost; use gradient='sampled'")
        return "lowrank"
    if config.gradient == "sampled" or linear_cost is not None:
        return "sampled"
    return "lowrank" if mode in ("precomputed", "landmark") else "sampled"


def _distance_mode(config: GWConfig, n: int, k: int) -> str:
    if config.distance != "auto":
        return config.distance
    return "precomputed" if max(n, k) <= AUTO_PRECOMPUTED_MAX_POINTS else "landmark"


def _provider(mode: str, graph: Optional[KNNGraph], user_d: Optional[np.ndarray],
              device: torch.device, dtype: torch.dtype, config: GWConfig, seed: int,
              points: Optional[torch.Tensor] = None, paths=None) -> DistanceProvider:
    if user_d is not None:
        return PrecomputedDistances(user_d, device, dtype, seed)
    assert graph is not None
    if mode == "precomputed":
        if graph.n_points > config.precomputed_max_points:
            raise ValueError(f"distance='precomputed' needs N² memory: {graph.n_points} points exceed "
                             f"precomputed_max_points={config.precomputed_max_points}; use 'landmark'")
        return PrecomputedDistances.from_graph(graph, device, dtype, seed)
    if mode == "dijkstra":
        return DijkstraDistances(graph, device, dtype, seed)
    return LandmarkDistances(graph, device, dtype, seed, n_landmarks=config.n_landmarks,
                             dim=config.landmark_dim, points=points, paths=paths,
                             choice=config.landmark_choice)
