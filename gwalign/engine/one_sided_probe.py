"""The one-sided probe: each cell's mass when its own side's marginal is freed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, Optional
import numpy as np
import torch
from gwalign.config import GWConfig
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan
from gwalign.geometry.factors import LowRankDistances, restrict_rows
from gwalign.engine.lowrank import LowRankGW, SolverState


#: Semi-relaxed steps of the one-sided probe (:func:`relaxed_mass`), at the final ε from the
#: balanced plan's G, then the polish, which the masses need to converge: they flag the groups
#: that a full semi-relaxed continuation flags, at about half its cost
#: (docs/how-it-works/one-sided.md).
PROBE_STEPS = 5


#: Smallest relative ε of the one-sided probe: its steps and thresholds were set at 0.03, so runs
#: at a sharper ε (exact geodesics: 0.01) probe at 0.03 (docs/how-it-works/one-sided.md).
PROBE_EPSILON = 0.03


def relaxed_mass(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor,
                 plan: FactoredPlan, config: GWConfig,
                 joint: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each cell's mass when its own side's marginal is freed, relative to its balanced mass.

    Short semi-relaxed runs (``config.solver.rho``; :data:`PROBE_STEPS` steps at the final ε) start
    from the balanced ``plan``'s ``G``, as a semi-relaxed alignment continues from its balanced
    start: one frees the target marginal, one (on the transposed problem) the source's. A cell
    that no cell of the other side fits loses mass: under the KL penalty its mass falls by
    ``exp(-Δ/ρ)`` when its cost exceeds the side's typical one by ``Δ``. A probe, not a converged
    semi-relaxed solution. :mod:`gwalign.results.one_sided` groups the cells that lose most.

    Each side is probed twice: with the other side held at its balanced marginal, and held at the
    masses the other side's own probe left it. A cell counts by the larger of its two ratios. Held
    at its balanced marginal, the other side's one-sided cells still claim mass, and the cells that
    must supply it fit badly too (a source blob split between its counterpart and a target-only
    blob lost 59% of its mass at ρ = 0.3); once those cells are let go, only cells without a
    counterpart of their own still lose theirs (docs/how-it-works/one-sided.md).

    Above ``config.solver.probe_points`` cells on the larger side, the probes run on a seeded
    uniform subsample of that many cells a side (``G`` is a sum over cell pairs, so the subsample
    starts from the same plan's ``G``), and every cell's mass follows from the probe's final
    potentials (:func:`_every_cell`).

    Returns
    -------
    (source, target)
        Mass ratios (1 = the balanced mass), one per cell.
    """
    # The probe keeps ε >= PROBE_EPSILON, where its steps and thresholds were set: at 0.01 its five
    # steps do not converge (with rho = 1e4, where every mass must be 1, a whole blob keeps 0.89).
    epsilon = max(config.with_epsilon().solver.epsilon, PROBE_EPSILON)
    relaxed = config.replace(semi_relaxed=True, epsilon=epsilon, epsilon_decay_iters=0, min_iter=0,
                             max_iter=PROBE_STEPS)
    gram = fs.phi.T @ ops.apply(plan, ft.phi)       # G = Φ_sᵀ T Φ_t of the balanced plan
    source, target = _probe_sides(fs, ft, a, b, config, joint)

    def probe(held_a: torch.Tensor, held_b: torch.Tensor) -> tuple[_Masses, _Masses]:
        return (_freed_mass(target, source, held_b, gram.T, relaxed),
                _freed_mass(source, target, held_a, gram, relaxed))

    a_probed, b_probed = source.probed[1], target.probed[1]
    first_s, first_t = probe(a_probed, b_probed)
    # Each side held at what its own probe left it (renormalised: a marginal sums to one).
    held_a, held_b = a_probed * first_s.probed, b_probed * first_t.probed
    second_s, second_t = probe(held_a / held_a.sum(), held_b / held_b.sum())
    return torch.maximum(first_s.every, second_s.every), torch.maximum(first_t.every, second_t.every)


class _Masses(NamedTuple):
    """A freed side's mass ratios on the probed cells and on every cell."""

    probed: torch.Tensor
    every: torch.Tensor


@dataclass
class _Side:
    """One side of the probe: its factors, marginal and shared features over every cell, and the
    cells the probe runs on (``rows``; ``None``: every cell)."""

    factors: LowRankDistances
    marginal: torch.Tensor
    features: Optional[torch.Tensor]
    rows: Optional[np.ndarray] = None

    @cached_property
    def probed(self) -> tuple[LowRankDistances, torch.Tensor, Optional[torch.Tensor]]:
        """Factors, marginal (renormalised) and shared features of the probed cells (made once:
        every probe reads them)."""
        if self.rows is None:
            return self.factors, self.marginal, self.features
        index = torch.as_tensor(self.rows, device=self.marginal.device)
        mass = self.marginal[index]
        return (restrict_rows(self.factors, self.rows), mass / mass.sum(),
                None if self.features is None else self.features[index])


def _probe_sides(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor, config: GWConfig,
                 joint: Optional[tuple[torch.Tensor, torch.Tensor]]) -> tuple[_Side, _Side]:
    """Both sides, with at most ``probe_points`` cells of each drawn (seeded) when the larger
    side has more."""
    points = config.solver.probe_points
    sides = (_Side(fs, a, None if joint is None else joint[0]), _Side(ft, b, None if joint is None else joint[1]))
    if max(a.shape[0], b.shape[0]) <= points:
        return sides
    # Another seeded draw than the screening's (seed) and the race's (seed + 1).
    gen = np.random.default_rng(config.compute.seed + 2)
    for side in sides:
        n = side.marginal.shape[0]
        if n > points:
            side.rows = np.sort(gen.choice(n, size=points, replace=False))
    return sides


def _freed_mass(kept: _Side, freed: _Side, held: torch.Tensor, start: torch.Tensor, relaxed: GWConfig
                ) -> _Masses:
    """The freed side's mass ratios after a short semi-relaxed run (rows: the kept side's probed
    cells, enforced at ``held``; columns: the freed side's, penalised towards its marginal) from
    ``G = start``: on the probed cells, and on every cell of the freed side."""
    f_kept, _, x = kept.probed
    f_freed, marginal, y = freed.probed
    solver = LowRankGW(f_kept, f_freed, held, marginal, relaxed, None if x is None else (x, y))
    state = solver.start(start)
    solver.run([state], relaxed.solver.max_iter)
    linearised = (state.gram, state.col_mass)     # the polish re-solves this linearisation
    solver.polish(state)
    mass = state.col_mass       # the polish's step left the plan's column marginal
    # The kept side fixes the total at 1 (to the polish's tolerance); ratios of the total stay
    # exact relative masses either way.
    probed = mass / mass.sum() / marginal
    return _Masses(probed, probed if freed.rows is None else _every_cell(solver, state, linearised, freed))


def _every_cell(solver: LowRankGW, state: SolverState, linearised: tuple[torch.Tensor, torch.Tensor],
                freed: _Side) -> torch.Tensor:
    """Every freed cell's mass ratio under the probe's final row potentials.

    The semi-relaxed column update is ``g = ρ/(ρ+ε) · g_bal``, with ``g_bal`` the balanced
    c-transform of the row potentials, so a column keeps ``b_j exp(-g_bal_j / (ρ+ε))``. For a
    cell outside the probe, ``g_bal`` is one c-transform against the probed rows, under the
    linearisation that gave the final plan: its ``G``, and the probed columns' masses standing
    in for the whole side's in the ``(D∘D) m`` term. One streamed pass over (cells × probed rows).
    """
    gram, probed_mass = linearised
    full = solver.with_columns(freed.factors, freed.marginal, freed.features)
    mass = torch.zeros_like(freed.marginal)
    mass[torch.as_tensor(freed.rows, device=mass.device)] = probed_mass
    at = SolverState(plan=state.plan, f=None, g=None, gram=gram, col_mass=mass, history=[], sinkhorn_iters=[])
    # The balanced c-transform of the probe's row potentials (one scale: ``full`` is ``solver``'s copy).
    g_balanced = full.column_potential(at, solver, state)
    log_ratio = -g_balanced / (solver.config.solver.rho + solver.config.solver.epsilon)
    return torch.exp(log_ratio - torch.logsumexp(log_ratio + torch.log(freed.marginal), dim=0))
