"""Groups of cells that seem to have no counterpart on the other side, and what to do about them.

A balanced plan must place every cell somewhere. Freeing one side's marginal (semi-relaxed GW, see
:meth:`gwalign.Alignment.relaxed_mass`) lets a cell's mass fall where no cell of the other side
fits it; a *cell type* without counterpart shows up as a connected group of such cells in its
side's kNN graph, while isolated low-mass cells are noise (docs/how-it-works/one-sided.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
import numpy as np
from scipy.sparse.csgraph import connected_components
from gwalign.alignment import Alignment


#: A cell keeping less than this share of its balanced mass fits worse than its side's typical
#: cell by at least ρ·ln 2 under the KL penalty (in units of the cost scale, as ρ): "unmatched".
LOW_MASS = 0.5


#: A connected group of unmatched cells counts as a possible one-sided cell type from this share
#: of its side's cells (and at least MIN_GROUP_CELLS cells), so that scattered cells, a plan's
#: noise, do not; a choice, not a fit (docs/how-it-works/one-sided.md, "From cells to groups").
MIN_GROUP_SHARE = 0.02


MIN_GROUP_CELLS = 10


@dataclass(frozen=True)
class OneSidedSide:
    """The check on one side.

    Attributes
    ----------
    side
        ``"source"`` or ``"target"``.
    mass
        Each cell's mass ratio when this side's marginal is freed (1 = balanced mass).
    flagged
        Boolean per cell: in a group large enough to be a possible one-sided cell type.
    group_sizes
        Sizes of those groups, largest first.
    """

    side: str
    mass: np.ndarray
    flagged: np.ndarray
    group_sizes: tuple[int, ...]

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def summary(self) -> dict[str, object]:
        """JSON-ready facts for report.json and ``uns["gwalign"]``."""
        return {"low_mass_cells": int((self.mass < LOW_MASS).sum()), "flagged_cells": self.n_flagged,
                "flagged_fraction": round(float(self.flagged.mean()), 4), "groups": list(self.group_sizes),
                "median_mass_flagged": round(float(np.median(self.mass[self.flagged])), 4) if self.n_flagged else None}


def one_sided_groups(alignment: Alignment) -> Optional[tuple[OneSidedSide, OneSidedSide]]:
    """Possible one-sided cell groups on each side of a solved ``alignment``.

    Returns
    -------
    tuple of OneSidedSide or None
        (source, target); ``None`` when the run made no check (semi-relaxed or sampled runs,
        ``one_sided_check=False``). A side without a kNN
        graph (a user distance matrix) is grouped by nothing: its unmatched cells form one group.
    """
    ratios = alignment.relaxed_mass()
    if ratios is None:
        return None
    sides = []
    for name, mass, graph in zip(("source", "target"), ratios, alignment.graphs):
        low = np.asarray(mass) < LOW_MASS
        labels = np.zeros(len(mass), dtype=np.int64)
        if graph is not None and low.any():
            sub = graph.matrix[low][:, low]
            labels[low] = connected_components(sub, directed=True, connection="weak")[1]
        sizes = np.bincount(labels[low]) if low.any() else np.zeros(0, dtype=np.int64)
        big = np.flatnonzero(sizes >= max(MIN_GROUP_CELLS, MIN_GROUP_SHARE * len(mass)))
        flagged = low & np.isin(labels, big)
        sides.append(OneSidedSide(name, np.asarray(mass), flagged, tuple(sorted(map(int, sizes[big]), reverse=True))))
    return sides[0], sides[1]


def suggestion(check: tuple[OneSidedSide, OneSidedSide], source_name: str, target_name: str,
               python: bool = False) -> Optional[str]:
    """One line for the user when a side holds a flagged group, else ``None`` (``--semi-relaxed``
    frees only the target's marginal, so flagged source cells are best served by swapping the
    inputs). ``python``: the advice names :func:`gwalign.tl.align`'s arguments instead of the
    command line's."""
    parts = []
    for side, name in zip(check, (source_name, target_name)):
        if side.n_flagged:
            groups = len(side.group_sizes)
            parts.append(f"{side.n_flagged} cells of {name} ({100 * side.flagged.mean():.1f}%, {groups} "
                         f"group{'s' if groups > 1 else ''}) lose over {1 - LOW_MASS:.0%} of their mass when "
                         f"{name}'s marginal is freed")
    if not parts:
        return None
    source_flagged = check[0].n_flagged > 0
    if python:
        advice = (f"call `gwalign.tl.align` with {target_name} first and `semi_relaxed=True` (semi-relaxed frees "
                  "the target's marginal)" if source_flagged and not check[1].n_flagged else "try `semi_relaxed=True`")
    else:
        advice = (f"run `gwalign run {target_name} {source_name} --semi-relaxed` (semi-relaxed frees the target's "
                  "marginal)" if source_flagged and not check[1].n_flagged else "try `--semi-relaxed`")
    return ("; ".join(parts) + ": they may have no counterpart (obs['gw_one_sided'] marks them); to let them go "
            f"unmatched, {advice}")


#: A side with fewer than this share of the other side's cells gets :func:`size_note`. Each of its
#: cells must then take the mass of several of the other side's, the situation of a sorted
#: population aligned with a whole tissue; a choice, not a fit (docs/how-it-works/limits.md).
SMALL_SIDE_SHARE = 0.25


def size_note(n_cells: tuple[int, int], names: tuple[str, str], fused: bool = False,
              python: bool = False) -> Optional[str]:
    """One line when one side has under :data:`SMALL_SIDE_SHARE` of the other's aligned cells, else
    ``None``. Each side's distances are divided by their own mean, so GW matches the smaller side
    to the whole of the larger at one scale whether it covers all of its cell types or only some;
    the distances cannot tell which, and the one-sided check cannot either. ``fused``: the run
    already has shared features, so none are suggested; ``python``: the suggestion names
    :func:`gwalign.tl.align`'s arguments instead of the command line's."""
    small = int(np.argmin(n_cells))
    if n_cells[small] >= SMALL_SIDE_SHARE * n_cells[1 - small]:
        return None
    note = (f"{names[small]} has {n_cells[small]} aligned cells against {n_cells[1 - small]} in "
            f"{names[1 - small]}: GW matches it to the whole of {names[1 - small]}, so if it holds only some "
            "of that side's cell types, cells of the others are matched (and labelled) as if they were of these")
    if fused:
        return note
    remedy = "gene_activity=True, fgw_alpha" if python else "--gene-activity, --fgw-alpha"
    return f"{note}; shared features ({remedy}) may tell them apart"
