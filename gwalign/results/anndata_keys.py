"""The AnnData keys ``gwalign run`` writes on each side, and the joint AnnData."""

from __future__ import annotations

from typing import Any, Optional
import numpy as np
import pandas as pd
from gwalign.alignment import Alignment
from gwalign.results.one_sided import OneSidedSide
from gwalign.results.transfer import best_matches


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
    side's :class:`gwalign.results.one_sided.OneSidedSide`, when the run checked."""
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
