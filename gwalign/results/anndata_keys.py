"""The AnnData keys ``gwalign run`` writes on each side, and the joint AnnData."""

from __future__ import annotations

from typing import Any, Optional
import numpy as np
import pandas as pd
import scipy.sparse as sp
from gwalign.alignment import Alignment
from gwalign.results.one_sided import OneSidedSide
from gwalign.results.transfer import best_matches, label_strings


def uns_safe(value: Any) -> Any:
    """Values that h5ad can store: tuples as lists, lists of numbers as arrays (a ``None`` among
    numbers as NaN); ``None`` itself is stored as ``None`` (anndata >= 0.12)."""
    if isinstance(value, dict):
        return {str(k): uns_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [uns_safe(v) for v in value]
        numbers = [v for v in items if v is not None]
        if numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            return np.asarray([np.nan if v is None else v for v in items])
        return items
    return value


#: A cell whose distortion exceeds this multiple of its side's median counts as high (report.json).
HIGH_DISTORTION = 3.0


def on_every_cell(values, kept: np.ndarray, fill: Any) -> np.ndarray:
    """Per-cell values of the aligned cells (``kept``) laid out over every cell, ``fill`` (NaN,
    False or None) for the others."""
    values = np.asarray(values)
    if kept.all():
        return values
    out = np.full((len(kept), *values.shape[1:]), fill, dtype=object if fill is None else values.dtype)
    out[kept] = values
    return out


def coupling_on_every_cell(coupling: sp.csr_matrix, kept: np.ndarray, partner_kept: np.ndarray) -> sp.csr_matrix:
    """The top-k coupling of the aligned cells as rows and columns of every cell (empty elsewhere)."""
    if kept.all() and partner_kept.all():
        return coupling
    coo = coupling.tocoo()
    rows, cols = np.flatnonzero(kept)[coo.row], np.flatnonzero(partner_kept)[coo.col]
    return sp.csr_matrix((coo.data, (rows, cols)), shape=(len(kept), len(partner_kept)))


def add_outputs(adata, alignment: Alignment, embedding: np.ndarray, partner_names, *,
                is_source: bool, top_k: int, labels: dict[str, tuple[np.ndarray, np.ndarray]],
                info: dict[str, Any], one_sided: Optional[OneSidedSide] = None,
                kept: Optional[np.ndarray] = None, partner_kept: Optional[np.ndarray] = None) -> None:
    """Write the contract's keys into ``adata`` (an object the caller owns).

    Parameters
    ----------
    adata, partner_names
        This file's AnnData and the other file's ``obs_names``, every cell of each.
    alignment, embedding, labels, one_sided
        Results for the aligned cells only: the alignment, this side's ``X_gw`` rows, the labels
        carried to this side (values, confidence), this side's
        :class:`gwalign.results.one_sided.OneSidedSide` when the run checked.
    is_source, top_k, info
        Which side this is, plan entries kept per cell, ``uns["gwalign"]``.
    kept, partner_kept
        The cells of each file that were aligned (default: all). The others get NaN, empty or
        ``False`` results and ``obs["gw_aligned"]`` False.
    """
    kept = np.ones(adata.n_obs, dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    partner_kept = (np.ones(len(partner_names), dtype=bool) if partner_kept is None
                    else np.asarray(partner_kept, dtype=bool))
    coupling = alignment.topk(top_k, transpose=not is_source)
    match_index, match_share = best_matches(alignment, transpose=not is_source)
    matched = np.asarray(partner_names)[np.flatnonzero(partner_kept)[match_index]]
    adata.obs["gw_aligned"] = kept
    adata.obsm["X_gw"] = on_every_cell(embedding, kept, np.nan)
    adata.obsm["gw_coupling"] = coupling_on_every_cell(coupling, kept, partner_kept)
    adata.obs["gw_match"] = pd.Categorical(on_every_cell(matched.astype(object), kept, None))
    adata.obs["gw_match_weight"] = on_every_cell(match_share, kept, np.nan)
    distortion = alignment.cell_distortion()
    if distortion is not None:
        adata.obs["gw_distortion"] = on_every_cell(distortion[0 if is_source else 1], kept, np.nan)
    if one_sided is not None:
        adata.obs["gw_relaxed_mass"] = on_every_cell(one_sided.mass, kept, np.nan)
        adata.obs["gw_one_sided"] = on_every_cell(one_sided.flagged, kept, False)
    for key, (values, confidence) in labels.items():
        adata.obs[f"{key}_gw"] = pd.Categorical(on_every_cell(np.asarray(values, dtype=object), kept, None))
        adata.obs[f"{key}_gw_confidence"] = on_every_cell(confidence, kept, np.nan)
    adata.uns["gwalign"] = uns_safe(info)


def joint_anndata(source, target, names: tuple[str, str], label_keys: list[str]):
    """The aligned cells of both files with ``obs["gw_dataset"]`` and ``obsm["X_gw"]``, ready for
    scanpy; per label column, ``obs[<label>]`` (a cell's own label where it has one, else the label
    carried to it) and ``obs[<label>_origin]`` (``own`` or ``transferred``, which of the two)."""
    import anndata as ad

    frames = []
    for adata, name in ((source, names[0]), (target, names[1])):
        obs = pd.DataFrame(index=[f"{name}:{o}" for o in adata.obs_names])
        obs["gw_dataset"] = name
        for key in label_keys:
            missing = np.full(adata.n_obs, None, dtype=object)
            own = label_strings(adata.obs[key]) if key in adata.obs else missing
            carried = label_strings(adata.obs[f"{key}_gw"]) if f"{key}_gw" in adata.obs else missing
            has_own = pd.notna(own)
            obs[key] = np.where(has_own, own, carried)
            obs[f"{key}_origin"] = np.where(has_own, "own", np.where(pd.notna(carried), "transferred", None))
        frames.append(obs)
    obs = pd.concat(frames)
    obs["gw_dataset"] = pd.Categorical(obs["gw_dataset"])
    for key in label_keys:
        obs[key] = pd.Categorical(obs[key])
        obs[f"{key}_origin"] = pd.Categorical(obs[f"{key}_origin"], categories=["own", "transferred"])
    joint = ad.AnnData(obs=obs)
    joint.obsm["X_gw"] = np.concatenate([source.obsm["X_gw"], target.obsm["X_gw"]])
    return joint
