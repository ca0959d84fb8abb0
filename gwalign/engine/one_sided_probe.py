"""The one-sided probe: each cell's mass when its own side's marginal is freed."""

from __future__ import annotations

from typing import Optional
import torch
from gwalign.config import GWConfig
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan
from gwalign.geometry.factors import LowRankDistances
from gwalign.engine.lowrank import LowRankGW


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
    swapped = None if joint is None else (joint[1], joint[0])

    def probe(held_a: torch.Tensor, held_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        source = _freed_mass(ft, fs, held_b, a, gram.T, relaxed, swapped)
        return source, _freed_mass(fs, ft, held_a, b, gram, relaxed, joint)

    first = probe(a, b)
    # Each side held at what its own probe left it (renormalised: a marginal sums to one).
    held_a, held_b = a * first[0], b * first[1]
    second = probe(held_a / held_a.sum(), held_b / held_b.sum())
    return torch.maximum(first[0], second[0]), torch.maximum(first[1], second[1])


def _freed_mass(f_kept: LowRankDistances, f_freed: LowRankDistances, kept: torch.Tensor, freed: torch.Tensor,
                start: torch.Tensor, relaxed: GWConfig, features: Optional[tuple[torch.Tensor, torch.Tensor]]
                ) -> torch.Tensor:
    """The freed side's masses over ``freed`` after a short semi-relaxed run (rows: the kept side,
    enforced at ``kept``; columns: the freed side, penalised towards ``freed``) from ``G = start``."""
    solver = LowRankGW(f_kept, f_freed, kept, freed, relaxed, features)
    state = solver.start(start)
    solver.run([state], relaxed.solver.max_iter)
    solver.polish(state)
    mass = ops.col_mass(state.plan)
    # The kept side fixes the total at 1 (to the polish's tolerance); ratios of the total stay
    # exact relative masses either way.
    return mass / mass.sum() / freed
