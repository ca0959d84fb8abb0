"""The result of an alignment: the streamed plan and what can be read from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
import numpy as np
import scipy.sparse as sp
import torch
from gwalign.config import GWConfig
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan
from gwalign.engine.schedule import SolveResult
from gwalign.geometry.knn import KNNGraph




@dataclass
class Alignment:
    """Result of :func:`~gwalign.align`: an implicit coupling and what produced it.

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
    #: :func:`~gwalign.align`, the only constructor).
    marginals: Optional[tuple[np.ndarray, np.ndarray]] = None
    #: Processes that solved it (``torch.distributed``; 1: this process alone), and their backend
    #: (``nccl``, ``gloo``; ``None`` for one process).
    world_size: int = 1
    backend: Optional[str] = None
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
        other side can stand out, but so can matched cells that fit badly, so it is a hint, not a
        test (docs/how-it-works/one-sided.md, "Tried and not adopted"). ``None`` for sampled GW."""
        return self.solve.cell_distortion

    def relaxed_mass(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(source, target): each cell's mass, relative to its balanced mass, when its own side's
        marginal is freed (a short semi-relaxed probe at ``config.solver.rho`` from the balanced plan).
        Cells of a type absent from the other side can lose most of theirs (PBMC's RNA-only naive
        B cells); :func:`gwalign.results.one_sided.one_sided_groups` turns this into groups and a
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
            n_source, n_target = self.shape
            if self.config.solver.semi_relaxed:
                self._evidence = np.ones(n_source), np.minimum(1.0, self.col_marginal() / self.marginals[1])
            else:
                relaxed = self.relaxed_mass()
                self._evidence = (np.ones(n_source), np.ones(n_target)) if relaxed is None else (
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
        """The full N×K plan; refused above ``config.compute.dense_limit`` entries."""
        n_source, n_target = self.shape
        if n_source * n_target > self.config.compute.dense_limit:
            raise ValueError(f"to_dense refused: {n_source}×{n_target} = {n_source * n_target} entries exceeds dense_limit="
                             f"{self.config.compute.dense_limit}; use topk(), apply() or raise the limit")
        return ops.apply(self.plan, torch.eye(n_target, dtype=self.plan.u.dtype, device=self.device)).cpu().numpy()

    def _tensor(self, z) -> torch.Tensor:
        arr = z.detach() if isinstance(z, torch.Tensor) else torch.as_tensor(np.asarray(z, dtype=np.float64))
        return arr.to(device=self.device, dtype=self.plan.u.dtype)
