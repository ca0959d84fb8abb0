"""Row scaling of a pair of representations: L2-scale each cell when a norm is a size factor.

A representation whose cells share one mean direction and whose row norms carry a noticeable
share of its variance (an ATAC LSI that keeps its depth component, say) measures sequencing
depth with its norms; scaling rows to unit length removes it. The decision is made once for the
pair (:func:`scale_pair`): GW compares the two sides' distances, so both sides are measured alike,
in directions when either side's norm is a size factor.
"""

from __future__ import annotations

from typing import Optional
import numpy as np


#: Mean cosine between the cells and their mean above which the row norm can be a size factor.
UNCENTRED_COSINE = 0.5


#: Share of the cells' spread carried by their norms (:func:`norm_variance_share`) above which
#: the norm of an uncentred representation counts as a size factor; 0.1 lies between scGEM's shares
#: (stage biology, at most 0.088: scaling mirrors it) and the lowest share at which SNARE-seq's ATAC
#: keeps its mirror with rows kept (0.122) (docs/how-it-works/representations.md).
NORM_SHARE = 0.1


def mean_direction_cosine(matrix: np.ndarray) -> float:
    """Mean cosine similarity between each row and the mean row (0 for a centred embedding)."""
    mean = matrix.mean(axis=0)
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(mean)), 1e-300)
    return float(np.mean(matrix @ mean / np.maximum(norms, 1e-300)))


def norm_variance_share(matrix: np.ndarray) -> float:
    """Variance of the cells' norms over their total variance (sum of the feature variances).

    In [0, 1], since ``|‖x‖ − ‖y‖| ≤ ‖x − y‖``: the share of the cell-to-cell spread that is a
    difference in length alone.
    """
    total = float(matrix.var(axis=0).sum())
    return float(np.linalg.norm(matrix, axis=1).var() / total) if total > 0 else 0.0


def size_factor(matrix: np.ndarray) -> tuple[bool, Optional[str]]:
    """Whether the rows' norms are a size factor (``auto`` scales them, :func:`scale_rows`), and,
    for an uncentred representation, why, in words for run reports (``None`` for a centred one).

    A single column is never a size factor: its norm is its value, and unit length would leave
    every cell at +1 or -1."""
    if matrix.shape[1] == 1:
        return False, "one column: its norm is its value (not a size factor): rows kept"
    if mean_direction_cosine(matrix) <= UNCENTRED_COSINE:
        return False, None
    share = norm_variance_share(matrix)
    if share <= NORM_SHARE:
        return False, (f"uncentred, but norms carry only {share:.0%} of the variance (not a size factor, "
                       f"threshold {NORM_SHARE:.0%}): rows kept")
    return True, f"uncentred, norms carry {share:.0%} of the variance (a size factor): rows scaled to unit L2 norm"


def scale_rows(matrix: np.ndarray, mode: str) -> tuple[np.ndarray, bool]:
    """Scale cells to unit L2 norm (``l2``), never (``none``), or when the norm is a size factor.

    One side alone; a pair is scaled by :func:`scale_pair`, which decides ``auto`` once for both.

    ``auto`` L2-normalises an *uncentred* representation whose cells share one dominant direction
    (mean cosine to the mean row above :data:`UNCENTRED_COSINE`, e.g. LSI of ATAC without
    dropping its first, depth-driven component) *and* whose norms carry a large share of the
    cells' spread (:func:`norm_variance_share` above :data:`NORM_SHARE`): there the norm mostly
    measures sequencing depth. A centred embedding (PCA) is kept: its norm is the distance from
    the centre of the data, which is biology (in scNMT-seq it orders the gastrulation stages).
    So is an uncentred one whose norms barely vary (non-negative marker genes, binary
    methylation calls): there the differences in length are biology, not depth, and erasing
    them changes which alignment GW prefers (docs/how-it-works/representations.md).

    Returns
    -------
    (matrix, scaled)
        The (possibly) scaled copy and whether it was scaled.
    """
    if mode == "none" or (mode == "auto" and not size_factor(matrix)[0]):
        return matrix, False
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12), True


def pair_size_factor(first: np.ndarray, second: np.ndarray) -> tuple[bool, tuple[Optional[str], Optional[str]]]:
    """Whether ``auto`` scales the rows of a pair, and why, per side (``None``: nothing to say).

    Both sides are scaled when either side's norm is a size factor (:func:`size_factor`): a
    geometry of directions on one side and of lengths on the other would differ in kind, whatever
    the cells share (a CITE-seq pair of 25 genes and 25 proteins, one side just over the threshold:
    FOSCTTM 0.427 scaling one side, 0.169 scaling both). A one-column side is never scaled (unit
    length would leave every cell at +1 or -1).
    """
    decisions = [size_factor(first), size_factor(second)]
    scale = any(own for own, _ in decisions)
    reasons: list[Optional[str]] = []
    for index, (own, why) in enumerate(decisions):
        matrix = (first, second)[index]
        if scale and not own and matrix.shape[1] > 1:
            why = (f"{why + '; but' if why else 'centred, but'} the other side's norm is a size factor, "
                   "and both sides are treated alike: rows scaled to unit L2 norm")
        reasons.append(why)
    return scale, (reasons[0], reasons[1])


def scale_pair(first: np.ndarray, second: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both sides' rows scaled as :func:`scale_rows` says, with ``auto`` decided once for the pair
    (:func:`pair_size_factor`).

    Returns
    -------
    (first, second, scaled)
        The (possibly) scaled copies and whether the rows were scaled.
    """
    scale = mode == "l2" or (mode == "auto" and pair_size_factor(first, second)[0])
    if not scale:
        return first, second, False
    kept = [m if mode == "auto" and m.shape[1] == 1 else scale_rows(m, "l2")[0] for m in (first, second)]
    return kept[0], kept[1], True
