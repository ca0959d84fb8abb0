"""Ranking the finalists of a screened run, and how much mass their plans share."""

from __future__ import annotations

import math
from typing import Optional
import numpy as np
import torch
from gwalign.engine import ops
from gwalign.engine.lowrank import SolverState


def rank_plans(objectives: list[float], coarse_objectives: Optional[list[float]] = None
               ) -> tuple[list[int], list[float]]:
    """Order of the plans, best first, and each plan's score: the mean, over the run's graph and
    (when given) the coarser one, of its objective over the best plan's under that graph
    (``GWConfig.finalist_k_factor``). Non-finite objectives sort last.

    Relative objectives make the two graphs' scales comparable, and a plan best under both
    scores 1. The graph scale is a nuisance parameter, so a matching that only one scale prefers
    by a hair is the weaker one (docs/how-it-works/engine.md, "Finalists in distinct basins").
    """
    columns = [objectives] + ([] if coarse_objectives is None else [coarse_objectives])
    relative = []
    for column in columns:
        best = min((value for value in column if math.isfinite(value)), default=math.nan)
        relative.append([value / best if math.isfinite(value) and best > 0 else math.inf for value in column])
    scores = [sum(parts) / len(parts) for parts in zip(*relative)]
    return sorted(range(len(objectives)), key=lambda i: (scores[i], objectives[i])), scores


#: Rows on which the finalists' plans are compared (every row when there are fewer): the shared
#: mass is a mean over rows, which a uniform sample of this size estimates to about ±0.01.
COMPARE_ROWS = 2048


def compare_finalists(states: list[SolverState], a: torch.Tensor, seed: int) -> dict:
    """The finalists' converged objectives (``states`` best first) and the mass each plan shares
    with the chosen one's.

    ``shared_mass`` is ``Σ_ij min(T_ij, T*_ij)`` with ``T*`` the chosen finalist's plan (1 for
    itself; entropic plans of one basin share most of their mass, plans that send cells to other
    partners little), estimated on :data:`COMPARE_ROWS` seeded rows. A close objective with
    little shared mass marks data on which the geometry barely decides between two matchings
    (docs/how-it-works/engine.md, "The runner-up report").
    """
    n = a.shape[0]
    if n <= COMPARE_ROWS:
        rows = torch.arange(n, device=a.device)
    else:
        rows = torch.as_tensor(np.sort(np.random.default_rng(seed).choice(n, COMPARE_ROWS, replace=False)),
                               device=a.device)
    row_mass = float(a[rows].sum())
    best = states[0].plan
    shared = [1.0] + [float(ops.shared_mass(best, state.plan, rows).sum()) / row_mass for state in states[1:]]
    return {"cells": [n, int(best.shape[1])], "objectives": [float(state.history[-1]) for state in states],
            "shared_mass": shared}
