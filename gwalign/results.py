"""Turn an :class:`~gwalign.align.Alignment` into AnnData outputs (see DESIGN "Output contract")."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from gwalign.align import Alignment
from gwalign.config import CCA_DIFFUSION_STEPS, TRANSFER_K
from gwalign.graph import nearest_between
from gwalign.one_sided import OneSidedSide


#: Eigenvectors kept by the spectral joint embedding (10 beat 30 on SNARE-seq: FOSCTTM 0.31 vs 0.42,
#: label transfer 0.91 vs 0.90, in a throwaway sweep).
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
        largest plan entries. Measured on the four real pairs, each embedding on the same plan
        (``benchmarks/real_data.py --datasets all --embedding cca target source spectral``, CPU;
        label transfer on SNARE-seq (FOSCTTM) / PBMC / scNMT-met / scNMT-acc): cca 0.956
        (0.153) / 0.936 / 0.857 / 0.782; target 0.900 (0.168) / 0.909 / 0.796 / 0.744; source
        0.889 (0.190) / 0.889 / 0.763 / 0.710; spectral 0.912 (0.310) / 0.886 / 0.775 / 0.737
        (session 5; cca with its plan diffusion, session 10: 0.960 (0.147) / 0.936 / 0.883 / 0.807).
        A barycentre averages the partners a cell is spread over, so it lands between clusters
        when the plan is diffuse; CCA instead keeps every cell's own coordinates and only
        chooses the directions in which the plan ties the two sides together.
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
    ``Xᵀ diag(r) X``, ``Yᵀ diag(c) Y`` (each plus ``ridge`` × its mean variance). Both sides are
    projected on all ``min(d, d')`` canonical directions, each scaled by its canonical
    correlation so that directions the coupling does not tie together fade out instead of
    needing a cut-off. Streamed: one ``T Y`` and one ``Tᵀ u`` product, no N×K matrix.

    With ``diffusion_steps`` t > 0 and the alignment's kNN graphs (``alignment.graphs``; a side
    given as a distance matrix has none and is left as is), ``T`` is first replaced by
    ``S_s^t T (S_t^t)ᵀ``, ``S`` the lazy random walk of a side's kNN graph (half the weight on
    the cell, half spread evenly over its neighbours): each pair's weight becomes the plan's mean
    over the two cells' neighbourhoods. An entropic plan ties each cell to its partners with
    cell-level noise; averaging it along both manifolds keeps the structure both sides share
    and lets the noise cancel, which improved FOSCTTM and label transfer on three of the four
    real pairs at every k tried (docs/design-notes.md, session 10). The embedded coordinates
    stay each cell's own projection.

    Before the walks, each pair is weighted by both cells' counterpart evidence
    (:meth:`gwalign.Alignment.counterpart_evidence`: ``diag(e_s) T diag(e_t)``), so cells that
    shed their mass when allowed (no counterpart) do not steer the shared directions; they are
    still embedded by them. Where nothing was freed the evidence is 1 and this changes nothing.

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
    e_s, e_t = (np.asarray(e, dtype=np.float64)[:, None] for e in alignment.counterpart_evidence())
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


class GraphWalk:
    """``z ↦ S^t z`` (or ``(S^t)ᵀ z``) for the lazy random walk ``S = (I + D⁻¹A)/2`` of a kNN
    graph's unweighted, symmetric adjacency ``A`` (``D`` its degrees); the identity without a
    graph or with ``steps = 0``. Runs as sparse products on ``device`` (float32 on a GPU), so a
    walk over a million cells costs what a plan product does, not a CPU pass."""

    def __init__(self, graph, steps: int, device: torch.device = torch.device("cpu")) -> None:
        self.steps = steps if graph is not None else 0
        self.device = device
        if self.steps:
            adjacency = sp.csr_matrix(graph.matrix, copy=True)
            adjacency.data[:] = 1.0
            self.dtype = torch.float32 if device.type == "cuda" else torch.float64
            with warnings.catch_warnings():   # torch calls sparse CSR "beta"; products are all we use
                warnings.simplefilter("ignore", UserWarning)
                self.adjacency = torch.sparse_csr_tensor(
                    torch.from_numpy(adjacency.indptr.astype(np.int64)),
                    torch.from_numpy(adjacency.indices.astype(np.int64)),
                    torch.from_numpy(adjacency.data.astype(np.float64)), size=adjacency.shape,
                    dtype=self.dtype, device=device, check_invariants=False)
            degree = np.maximum(np.diff(adjacency.indptr), 1).astype(np.float64)
            self.inv_degree = torch.as_tensor(1.0 / degree, dtype=self.dtype, device=device)[:, None]

    def __call__(self, z: np.ndarray, transpose: bool = False) -> np.ndarray:
        if not self.steps:
            return np.asarray(z, dtype=np.float64)
        out = torch.as_tensor(np.asarray(z), dtype=self.dtype, device=self.device)
        for _ in range(self.steps):
            # S z = (z + D⁻¹ A z) / 2 and, A being symmetric, Sᵀ z = (z + A D⁻¹ z) / 2.
            spread = self.adjacency @ (self.inv_degree * out) if transpose else self.inv_degree * (self.adjacency @ out)
            out = 0.5 * (out + spread)
        return out.cpu().numpy().astype(np.float64)


def graph_walk(graph, steps: int, device: Optional[torch.device] = None) -> GraphWalk:
    """The lazy random walk of ``graph`` (a :class:`~gwalign.graph.KNNGraph` or ``None``) over
    ``steps`` steps, computed on ``device`` (CPU by default)."""
    if not (isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 0):
        raise ValueError(f"diffusion_steps must be a non-negative integer, got {steps!r}")
    return GraphWalk(graph, int(steps), device or torch.device("cpu"))


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


def best_matches(alignment: Alignment, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Partner with most mass for each row, and that mass's share of the row."""
    top = alignment.topk(1, transpose=transpose)
    mass = alignment.col_marginal() if transpose else alignment.row_marginal()
    index = top.indices.astype(np.int64)
    share = np.asarray(top.data, dtype=np.float64) / np.maximum(mass, 1e-300)
    return index, share


def transfer(alignment: Alignment, labels, to_target: bool, *, embedding_labelled: Optional[np.ndarray] = None,
             embedding_receiving: Optional[np.ndarray] = None, k: int = TRANSFER_K
             ) -> tuple[np.ndarray, np.ndarray]:
    """Carry categorical labels across the coupling.

    Parameters
    ----------
    alignment
        The solved alignment.
    labels
        One label per cell of the labelled side (the source when ``to_target``); missing values
        (NaN, None) mark unlabelled cells, which are left out.
    to_target
        Direction: source labels to target cells, or target labels to source cells.
    embedding_labelled, embedding_receiving
        Both sides' rows of the joint embedding (``X_gw``). Given: each receiving cell gets the
        majority label of its ``k`` nearest labelled cells there. Omitted: the label with most of
        its plan mass.
    k
        Neighbours of the kNN classifier.

    Returns
    -------
    tuple of numpy.ndarray
        The labels, and each one's confidence in [0, 1]: the share of the receiving cell's plan
        mass that comes from cells carrying that label, times the cell's evidence of having a
        counterpart at all (:meth:`gwalign.Alignment.counterpart_evidence`: its mass when its
        side's marginal is free, relative to its weight, capped at 1; 1 when nothing was freed).
        A cell type the other side lacks draws its mass from several types, or sheds it when
        allowed, so its cells get lower confidence (docs/design-notes.md, "Transfer confidence and CCA weights").
    """
    if (embedding_labelled is None) != (embedding_receiving is None):
        raise ValueError("give both sides' embeddings for kNN transfer, or neither")
    series = pd.Series(np.asarray(labels, dtype=object))
    # Cells without a label (NaN/None, as in a partly annotated obs column) neither vote nor count
    # in the mass shares.
    labelled = ~series.isna().to_numpy()
    if not labelled.any():
        raise ValueError("no labelled cells to transfer from (every label is missing)")
    categories = pd.Categorical(series[labelled].astype(str))
    onehot = np.zeros((len(series), len(categories.categories)))
    onehot[np.flatnonzero(labelled), categories.codes] = 1.0
    mass = alignment.apply_t(onehot) if to_target else alignment.apply(onehot)
    share = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-300)
    if embedding_labelled is None:
        winner = share.argmax(axis=1)
    else:
        winner = knn_vote(np.asarray(embedding_labelled)[labelled], categories.codes, embedding_receiving,
                          len(categories.categories), k, alignment.device)
    evidence = alignment.counterpart_evidence()[1 if to_target else 0]
    return np.asarray(categories.categories)[winner], share[np.arange(len(share)), winner] * evidence


def knn_vote(train: np.ndarray, codes: np.ndarray, query: np.ndarray, n_classes: int, k: int,
             device: torch.device, dtype: Optional[torch.dtype] = None) -> np.ndarray:
    """Majority class code among each query row's ``k`` nearest training rows (Euclidean; ties go
    to the smallest code, as scikit-learn's ``KNeighborsClassifier``), searched on ``device``
    (default precision: float64 on the CPU, float32 on a GPU)."""
    dtype = dtype or (torch.float64 if device.type == "cpu" else torch.float32)
    idx = nearest_between(torch.as_tensor(train, dtype=dtype, device=device),
                          torch.as_tensor(query, dtype=dtype, device=device), k)
    votes = np.zeros((len(query), n_classes))
    np.add.at(votes, (np.repeat(np.arange(len(query)), idx.shape[1]), np.asarray(codes)[idx].ravel()), 1.0)
    return votes.argmax(axis=1)


def uns_safe(value: Any) -> Any:
    """Values that h5ad can store: ``None`` becomes the string ``"none"``, tuples lists."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return {str(k): uns_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [uns_safe(v) for v in value]
        return np.asarray(items) if items and all(isinstance(v, (int, float)) for v in items) else items
    return value


#: A cell whose distortion exceeds this multiple of its side's median counts as high (report.json).
HIGH_DISTORTION = 3.0


def add_outputs(adata, alignment: Alignment, embedding: np.ndarray, partner_names, *,
                is_source: bool, top_k: int, labels: dict[str, tuple[np.ndarray, np.ndarray]],
                info: dict[str, Any], one_sided: Optional[OneSidedSide] = None) -> None:
    """Write the contract's keys into ``adata`` (a copy the caller owns); ``one_sided`` is this
    side's :class:`gwalign.one_sided.OneSidedSide`, when the run checked."""
    coupling = alignment.topk(top_k, transpose=not is_source)
    match_index, match_share = best_matches(alignment, transpose=not is_source)
    adata.obsm["X_gw"] = embedding
    adata.obsm["gw_coupling"] = coupling
    adata.obs["gw_match"] = pd.Categorical(np.asarray(partner_names)[match_index])
    adata.obs["gw_match_weight"] = match_share
    distortion = alignment.cell_distortion()
    if distortion is not None:
        adata.obs["gw_distortion"] = distortion[0 if is_source else 1]
    if one_sided is not None:
        adata.obs["gw_relaxed_mass"] = one_sided.mass
        adata.obs["gw_one_sided"] = one_sided.flagged
    for key, (values, confidence) in labels.items():
        adata.obs[f"{key}_gw"] = pd.Categorical(values)
        adata.obs[f"{key}_gw_confidence"] = confidence
    adata.uns["gwalign"] = uns_safe(info)


def joint_anndata(source, target, names: tuple[str, str], label_keys: list[str]):
    """Both sets of cells with ``obs["gw_dataset"]`` and ``obsm["X_gw"]``, ready for scanpy."""
    import anndata as ad

    frames = []
    for adata, name in ((source, names[0]), (target, names[1])):
        obs = pd.DataFrame(index=[f"{name}:{o}" for o in adata.obs_names])
        obs["gw_dataset"] = name
        for key in label_keys:
            # A cell's own label where it has one, else the label carried to it (if any).
            own = adata.obs[key] if key in adata.obs else pd.Series(np.nan, index=adata.obs_names, dtype=object)
            carried = adata.obs[f"{key}_gw"] if f"{key}_gw" in adata.obs else None
            merged = own.astype(object)
            if carried is not None:
                merged = merged.where(merged.notna(), carried.astype(object))
            obs[key] = merged.astype(str).to_numpy()
        frames.append(obs)
    obs = pd.concat(frames)
    obs["gw_dataset"] = pd.Categorical(obs["gw_dataset"])
    for key in label_keys:
        obs[key] = pd.Categorical(obs[key])
    joint = ad.AnnData(obs=obs)
    joint.obsm["X_gw"] = np.concatenate([source.obsm["X_gw"], target.obsm["X_gw"]])
    return joint


def label_transfers(alignment: Alignment, source, target, keys: list[str],
                    embeddings: Optional[tuple[np.ndarray, np.ndarray]] = None, k: int = TRANSFER_K
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Transfers for both outputs: labels on the source go to the target and vice versa, by kNN in
    the joint embedding when ``embeddings`` (source rows, target rows) are given, else by plan mass
    (see :func:`transfer`)."""
    emb_s, emb_t = embeddings if embeddings is not None else (None, None)
    to_target: dict[str, Any] = {}
    to_source: dict[str, Any] = {}
    for key in keys:
        if key in source.obs:
            to_target[key] = transfer(alignment, source.obs[key].to_numpy(), to_target=True,
                                      embedding_labelled=emb_s, embedding_receiving=emb_t, k=k)
        if key in target.obs:
            to_source[key] = transfer(alignment, target.obs[key].to_numpy(), to_target=False,
                                      embedding_labelled=emb_t, embedding_receiving=emb_s, k=k)
    return to_source, to_target


#: A finalist sharing less than this much of its mass with the chosen plan is a different matching.
DIFFERENT_PLAN = 0.5


def runner_up(finalists: Optional[dict]) -> Optional[dict[str, float]]:
    """The closest *different* matching the start screening found: of the finalists sharing less
    than :data:`DIFFERENT_PLAN` of their mass with the chosen plan, the best ranked, as
    ``objective_gap`` (its ranking score over the chosen finalist's, minus one: the relative
    objective gap, averaged over the run's and the coarser graph when both scored them,
    :func:`gwalign.engine.lowrank.rank_plans`) and ``shared_mass``; ``None`` when no finalist
    was a different matching (or there was one start).

    A gap of a few per cent says the geometry alone barely prefers the chosen matching: PBMC's
    runs, good or bad, have one within 0.1-3.4% (docs/design-notes.md, session 16).
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
        "distance_mode": alignment.distance_mode,
        "knn_k": alignment.knn_k,
        "epsilon": alignment.config.epsilon,   # the relative ε used (parameters hold None when automatic)
        "bridges_added": list(alignment.n_bridges),
        "timings_s": {k: round(v, 4) for k, v in alignment.timings.items()},
        "device": str(alignment.device),
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
