"""Joint embeddings of both data sets from an alignment: coupled CCA (default), one side's space, or spectral."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from gwalign.alignment import Alignment
from gwalign.config import CCA_DIFFUSION_STEPS
from gwalign.results.diffusion import graph_walk
from gwalign.results.one_sided import one_sided_groups


#: Eigenvectors kept by the spectral joint embedding (on SNARE-seq 10 place cells better than 30:
#: FOSCTTM 0.31 against 0.42).
SPECTRAL_DIM = 10


#: Plan entries per cell that tie the two kNN graphs in the spectral joint embedding.
SPECTRAL_TIES = 10


#: Ridge added to each side's covariance in the coupled CCA embedding, as a fraction of its mean
#: variance (shrinks the directions of tiny variance whose correlations are noise).
CCA_RIDGE = 0.3


def joint_embedding(alignment: Alignment, rep_source: np.ndarray, rep_target: np.ndarray,
                    method: str = "cca", diffusion_steps: int = CCA_DIFFUSION_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' cells in one embedding (``obsm["X_gw"]``).

    Parameters
    ----------
    alignment
        The solved alignment.
    rep_source, rep_target
        The representations the graphs were built on.
    method
        ``cca`` (default): :func:`coupled_cca`, both sides projected on the canonical directions
        of a CCA whose cell pairs are weighted by the plan. ``target``: target cells keep their
        representation, each source cell is the barycentre of the target cells it is coupled to
        (``T Y / T1``). ``source``: the mirror image. ``spectral``: Laplacian eigenmaps
        (:data:`SPECTRAL_DIM`) of both kNN graphs joined by each cell's :data:`SPECTRAL_TIES`
        largest plan entries. A barycentre averages the partners a cell is spread over, so it
        lands between clusters when the plan is diffuse; CCA instead keeps every cell's own
        coordinates and only chooses the directions in which the plan ties the two sides
        together (docs/how-it-works/joint-embedding.md compares them on the real pairs).
    diffusion_steps
        For ``cca``: random-walk steps averaging the plan over both kNN graphs first
        (:func:`coupled_cca`; 0 reads the plan as is).

    Returns
    -------
    tuple of numpy.ndarray
        Source and target cells' rows of the joint embedding.
    """
    if method == "target":
        return alignment.project_to_source(rep_target), np.asarray(rep_target, dtype=np.float64)
    if method == "source":
        return np.asarray(rep_source, dtype=np.float64), alignment.project_to_target(rep_source)
    if method == "spectral":
        return spectral_embedding(alignment)
    if method == "cca":
        return coupled_cca(alignment, rep_source, rep_target, diffusion_steps=diffusion_steps)[:2]
    raise ValueError(f"joint embedding must be cca, target, source or spectral, got {method!r}")


def coupled_cca(alignment: Alignment, rep_source: np.ndarray, rep_target: np.ndarray,
                ridge: float = CCA_RIDGE, diffusion_steps: int = CCA_DIFFUSION_STEPS
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical correlation analysis of the two representations, paired by the coupling.

    The plan ``T`` weighs every pair (i, j) of cells: with ``X``, ``Y`` centred under the plan's
    marginals ``r = T1`` and ``c = Tᵀ1``, the cross-covariance is ``Xᵀ T Y`` and the covariances
    ``Xᵀ diag(r) X``, ``Yᵀ diag(c) Y``. Both sides are projected on all ``min(d, d')`` canonical
    directions, each scaled by its canonical correlation so that directions the coupling does
    not tie together fade out without a cut-off. Streamed: one ``T Y`` and one ``Tᵀ u`` product,
    no N×K matrix. Each pair is first weighted by both cells' counterpart evidence
    (:func:`cca_evidence`: ``diag(e_s) T diag(e_t)``), so cells that shed their mass when allowed
    (no counterpart) do not steer the shared directions; they are still embedded by them. Where
    nothing was freed the evidence is 1 and this changes nothing.

    Parameters
    ----------
    alignment
        The solved alignment.
    rep_source, rep_target
        The representations the graphs were built on (N×d and K×d').
    ridge
        Added to each side's covariance, as a fraction of its mean variance.
    diffusion_steps
        Steps t of the lazy random walk ``S`` of each side's kNN graph (half the weight on the
        cell, half spread evenly over its neighbours): ``T`` becomes ``S_s^t T (S_t^t)ᵀ``, each
        pair's weight the plan's mean over the two cells' neighbourhoods, which lets the plan's
        cell-level noise cancel (docs/how-it-works/joint-embedding.md). 0 reads the plan as is,
        as does a side given as a distance matrix (it has no graph).

    Returns
    -------
    tuple of numpy.ndarray
        Source rows, target rows of the embedding, and the canonical correlations.
    """
    x = np.asarray(rep_source, dtype=np.float64)
    y = np.asarray(rep_target, dtype=np.float64)
    graphs = getattr(alignment, "graphs", None) or (None, None)
    device = getattr(alignment, "device", None)
    walk_s = graph_walk(graphs[0], diffusion_steps, device)
    walk_t = graph_walk(graphs[1], diffusion_steps, device)
    e_s, e_t = (np.asarray(e, dtype=np.float64)[:, None] for e in cca_evidence(alignment))
    # One streamed pass gives both T' Y and the row marginal T' 1 (a column of ones appended),
    # T' = diag(e_s) T diag(e_t); with the walks, S_s T' S_tᵀ [Y, 1] = S_s (e_s T (e_t S_tᵀ [Y, 1])).
    applied = walk_s(e_s * alignment.apply(e_t * walk_t(np.c_[y, np.ones(len(y))], transpose=True)))
    applied = np.asarray(applied, dtype=np.float64)
    ty, r = applied[:, :-1], applied[:, -1]
    if walk_s.steps == 0 and walk_t.steps == 0 and (e_s == 1).all() and (e_t == 1).all():
        c = alignment.col_marginal().astype(np.float64)
    else:   # (S_s T' S_tᵀ)ᵀ 1 = S_t (e_t Tᵀ (e_s S_sᵀ 1))
        c = walk_t(e_t * alignment.apply_t(e_s * walk_s(np.ones((len(x), 1)), transpose=True)))
        c = np.asarray(c, dtype=np.float64).ravel()
    mass = r.sum()
    r, c = r / mass, c / c.sum()
    xc = x - r @ x
    yc = y - c @ y
    # Xcᵀ T Yc = Xcᵀ (T Y) because Xcᵀ r = 0.
    cross = xc.T @ ty / mass
    whiten_x = _inverse_sqrt(_shrunk_covariance(xc, r, ridge))
    whiten_y = _inverse_sqrt(_shrunk_covariance(yc, c, ridge))
    left, corr, right_t = np.linalg.svd(whiten_x @ cross @ whiten_y, full_matrices=False)
    return xc @ whiten_x @ left * corr, yc @ whiten_y @ right_t.T * corr, corr


def cca_evidence(alignment: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) weights of the cells in coupled CCA: their counterpart evidence.

    After a balanced run's one-sided check, only cells in a flagged group keep their evidence and
    every other cell weighs 1: a low-mass cell outside such a group is the probe's noise
    (:mod:`gwalign.results.one_sided`), and down-weighting it would bend the shared directions
    away from cells that do have a counterpart. Semi-relaxed runs use the evidence as it is.
    """
    evidence = alignment.counterpart_evidence()
    check = one_sided_groups(alignment)
    if check is None:
        return evidence
    return tuple(np.where(side.flagged, np.asarray(e), 1.0) for side, e in zip(check, evidence))


def _shrunk_covariance(centred: np.ndarray, weights: np.ndarray, ridge: float) -> np.ndarray:
    cov = centred.T @ (weights[:, None] * centred)
    return cov + ridge * max(float(np.trace(cov)) / len(cov), 1e-300) * np.eye(len(cov))


def _inverse_sqrt(cov: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    return (vectors / np.sqrt(np.maximum(values, 1e-300))) @ vectors.T


def spectral_embedding(alignment: Alignment, dim: int = SPECTRAL_DIM,
                       ties: int = SPECTRAL_TIES) -> tuple[np.ndarray, np.ndarray]:
    """Laplacian eigenmaps of the two kNN graphs tied by the coupling.

    Within each side, kNN edges weigh 1. Between sides, each cell's ``ties`` largest plan
    entries, normalised to sum to that side's mean degree, so both kinds of edges weigh alike;
    the two directions are averaged to make the graph symmetric. The embedding is
    ``D^{-1/2}`` times the leading non-trivial eigenvectors of ``D^{-1/2} W D^{-1/2}``.
    """
    from scipy.sparse.linalg import eigsh

    if alignment.graphs[0] is None or alignment.graphs[1] is None:
        raise ValueError("the spectral joint embedding needs both kNN graphs (not user distance matrices)")
    adj_s = (alignment.graphs[0].matrix > 0).astype(np.float64)
    adj_t = (alignment.graphs[1].matrix > 0).astype(np.float64)
    n = adj_s.shape[0]

    def row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
        return sp.diags(1.0 / np.maximum(np.asarray(matrix.sum(axis=1)).ravel(), 1e-300)) @ matrix

    forward = row_normalised(alignment.topk(ties)) * float(adj_s.sum(axis=1).mean())
    backward = row_normalised(alignment.topk(ties, transpose=True)) * float(adj_t.sum(axis=1).mean())
    cross = 0.5 * (forward + backward.T)
    weights = sp.bmat([[adj_s, cross], [cross.T, adj_t]]).tocsr()
    inv_sqrt = sp.diags(1.0 / np.sqrt(np.asarray(weights.sum(axis=1)).ravel()))
    k = min(dim + 1, weights.shape[0] - 2)
    values, vectors = eigsh(inv_sqrt @ weights @ inv_sqrt, k=k, which="LA")
    order = np.argsort(values)[::-1][1:]
    embedding = inv_sqrt @ vectors[:, order]
    return embedding[:n], embedding[n:]
