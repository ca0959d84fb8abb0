"""Starts of the low-rank solver and their screening.

The product plan is symmetric under reflections of either shape, so GW from it lands in
whichever basin rounding favours. Further starts flip the signs of the leading eigen-components
in the initial ``G`` (a reflection flips eigenvector signs); every start runs through the ε
annealing side by side, and the lowest few in distinct basins run to convergence.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional
import torch
from gwalign.config import GWConfig


#: Screened starts that run to convergence (the lowest final objective is kept): the best
#: screened start can still end in a worse basin than the runner-up.
FINALISTS = 3


#: Screened objectives closer than this (relative) count as one basin: starts that reached the
#: same plan (SNARE-seq: the profile start and four sign starts end the screening within 1e-5 of
#: each other) would otherwise fill every finalist's place with one basin.
SAME_BASIN = 1e-3


def distinct_lowest(objectives: list[float], count: int) -> list[int]:
    """Indices of up to ``count`` lowest objectives, skipping any within :data:`SAME_BASIN`
    (relative) of one already taken; lowest first. A non-finite objective sorts last and is
    taken only when it is the only one."""
    def key(i: int) -> float:
        return objectives[i] if math.isfinite(objectives[i]) else math.inf

    taken: list[int] = []
    for i in sorted(range(len(objectives)), key=key):
        value = objectives[i]
        if not taken or all(abs(value - objectives[j]) > SAME_BASIN * abs(objectives[j]) for j in taken):
            taken.append(i)
        if len(taken) == count:
            break
    return taken


#: Two screened starts whose ``G`` differ by less than this (Frobenius norm, relative) have
#: reached the same plan: their further steps would repeat each other, so the higher one stops
#: (SNARE-seq: four pairs of its ten starts meet during the annealing, the first after three steps).
SAME_PLAN = 1e-2


def coincident(grams: torch.Tensor, objectives: list[float]) -> dict[int, int]:
    """The starts to stop, each mapped to its twin: a start whose ``G`` (``grams``, S×r×r) lies
    within :data:`SAME_PLAN` of a lower start's (by ``objectives``), that start being kept (the
    closest one when several are)."""
    from gwalign import distributed

    flat = grams.reshape(grams.shape[0], -1).double()
    gaps = torch.cdist(flat, flat) / flat.norm(dim=1).clamp_min(1e-300)[:, None]
    # The decision must be the same on every rank of a distributed alignment.
    gaps = torch.tensor(distributed.agree(gaps.flatten().tolist()), dtype=torch.float64).reshape(gaps.shape)
    twins: dict[int, int] = {}
    kept: list[int] = []
    for i in sorted(range(len(objectives)), key=lambda i: objectives[i]):
        near = [j for j in kept if gaps[j, i] < SAME_PLAN]
        if near:
            twins[i] = min(near, key=lambda j: float(gaps[j, i]))
        else:
            kept.append(i)
    return twins


def start_grams(base: torch.Tensor, n_starts: int, config: GWConfig,
                profile: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
    """Initial ``G`` of each start: product plan, the distance-profile plan's ``G`` (when
    given), sign patterns, then seeded Gaussian noise."""
    size = config.starts.start_noise * base.abs().max()
    m = min(config.starts.start_signs, min(base.shape) - 1)
    grams = [base] if profile is None else [base, profile]
    for pattern in itertools.product((1.0, -1.0), repeat=m):
        diagonal = torch.zeros(min(base.shape), dtype=base.dtype, device=base.device)
        diagonal[1:1 + m] = torch.tensor(pattern, dtype=base.dtype)
        gram = base.clone()
        gram[range(len(diagonal)), range(len(diagonal))] += size * diagonal
        grams.append(gram)
    s = len(grams)
    while len(grams) < n_starts:
        gen = torch.Generator(device="cpu").manual_seed(config.compute.seed + s)
        noise = torch.randn(base.shape, generator=gen, dtype=torch.float64).to(base)
        grams.append(base + size * noise)
        s += 1
    return grams[:n_starts]
