"""The run summary stored in ``uns["gwalign"]`` and ``report.json``."""

from __future__ import annotations

from typing import Any, Optional
import numpy as np
from gwalign.alignment import Alignment
from gwalign.results.anndata_keys import HIGH_DISTORTION


#: A finalist sharing less than this much of its mass with the chosen plan is a different matching.
DIFFERENT_PLAN = 0.5


def runner_up(finalists: Optional[dict]) -> Optional[dict[str, float]]:
    """The closest *different* matching the start screening found: of the finalists sharing less
    than :data:`DIFFERENT_PLAN` of their mass with the chosen plan, the best ranked, as
    ``objective_gap`` (its ranking score over the chosen finalist's, minus one: the relative
    objective gap, averaged over the run's and the coarser graph when both scored them,
    :func:`gwalign.engine.finalists.rank_plans`) and ``shared_mass``; ``None`` when no finalist
    was a different matching (or there was one start).

    A gap of a few per cent says the geometry alone barely prefers the chosen matching: PBMC's
    random halves have one of 0-3%, good and failing draws alike (docs/how-it-works/engine.md).
    """
    if not finalists:
        return None
    scores = finalists["scores"]   # relative objectives, so the chosen finalist's is at least 1
    for score, shared in zip(scores[1:], finalists["shared_mass"][1:]):
        if shared < DIFFERENT_PLAN:
            return {"objective_gap": score / scores[0] - 1.0, "shared_mass": shared}
    return None


def summary(alignment: Alignment, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Convergence facts shared by ``uns["gwalign"]`` and report.json."""
    out = {
        "gw_objective": alignment.gw_objective,
        "start_objectives": list(map(float, alignment.solve.start_objectives)),
        "gradient": alignment.gradient_mode,
        "distance": alignment.distance_mode,
        "iterations": alignment.n_iter,
        "converged": alignment.converged,
        "history": list(map(float, alignment.history)),
        "sinkhorn_iterations": list(map(int, alignment.solve.sinkhorn_iters)),
        "distance_mode": alignment.distance_mode,
        "knn_k": alignment.knn_k,
        "epsilon": alignment.config.solver.epsilon,   # the relative ε used (parameters hold None when automatic)
        "bridges_added": list(alignment.n_bridges),
        "timings_s": {k: round(v, 4) for k, v in alignment.timings.items()},
        "device": str(alignment.device),
        "world_size": alignment.world_size,
        "backend": alignment.backend,
        "finalists": alignment.solve.finalists,
        "runner_up": runner_up(alignment.solve.finalists),
    }
    distortion = alignment.cell_distortion()
    if distortion is not None:
        # Cells fitting at least HIGH_DISTORTION times worse than their side's median: candidates
        # for cells without a counterpart (a hint, not a test: see obs["gw_distortion"]).
        out["high_distortion_fraction"] = [float(np.mean(d > HIGH_DISTORTION * np.median(d))) for d in distortion]
    out.update(extra or {})
    return out
