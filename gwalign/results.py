"""Turn an :class:`~gwalign.align.Alignment` into AnnData outputs (see DESIGN "Output contract")."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from gwalign.align import Alignment


def joint_embedding(alignment: Alignment, rep_source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sides in the source's representation space.

    Source cells keep their own representation; each target cell is the barycentre of the source
    cells it is coupled to (``Tᵀ X / Tᵀ1``).
    """
    return np.asarray(rep_source, dtype=np.float64), alignment.project_to_target(rep_source)


def best_matches(alignment: Alignment, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Partner with most mass for each row, and that mass's share of the row."""
    top = alignment.topk(1, transpose=transpose)
    mass = alignment.col_marginal() if transpose else alignment.row_marginal()
    index = top.indices.astype(np.int64)
    share = np.asarray(top.data, dtype=np.float64) / np.maximum(mass, 1e-300)
    return index, share


def transfer(alignment: Alignment, labels, to_target: bool) -> tuple[np.ndarray, np.ndarray]:
    """Carry categorical labels across the coupling.

    Each receiving cell gets the label with most plan mass, and that label's share of the
    cell's mass as a confidence in [0, 1].
    """
    categories = pd.Categorical(pd.Series(labels).astype(str))
    onehot = np.zeros((len(categories), len(categories.categories)))
    onehot[np.arange(len(categories)), categories.codes] = 1.0
    mass = alignment.apply_t(onehot) if to_target else alignment.apply(onehot)
    share = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-300)
    winner = share.argmax(axis=1)
    return np.asarray(categories.categories)[winner], share.max(axis=1)


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


def add_outputs(adata, alignment: Alignment, embedding: np.ndarray, partner_names, *,
                is_source: bool, top_k: int, labels: dict[str, tuple[np.ndarray, np.ndarray]],
                info: dict[str, Any]) -> None:
    """Write the contract's keys into ``adata`` (a copy the caller owns)."""
    coupling = alignment.topk(top_k, transpose=not is_source)
    match_index, match_share = best_matches(alignment, transpose=not is_source)
    adata.obsm["X_gw"] = embedding
    adata.obsm["gw_coupling"] = coupling
    adata.obs["gw_match"] = pd.Categorical(np.asarray(partner_names)[match_index])
    adata.obs["gw_match_weight"] = match_share
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
            own = adata.obs[key].astype(str).to_numpy() if key in adata.obs else None
            carried = adata.obs[f"{key}_gw"].astype(str).to_numpy() if f"{key}_gw" in adata.obs else None
            obs[key] = own if own is not None else carried
        frames.append(obs)
    obs = pd.concat(frames)
    obs["gw_dataset"] = pd.Categorical(obs["gw_dataset"])
    for key in label_keys:
        obs[key] = pd.Categorical(obs[key])
    joint = ad.AnnData(obs=obs)
    joint.obsm["X_gw"] = np.concatenate([source.obsm["X_gw"], target.obsm["X_gw"]])
    return joint


def label_transfers(alignment: Alignment, source, target, keys: list[str]
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Transfers for both outputs: labels on the source go to the target and vice versa."""
    to_target: dict[str, Any] = {}
    to_source: dict[str, Any] = {}
    for key in keys:
        if key in source.obs:
            to_target[key] = transfer(alignment, source.obs[key].to_numpy(), to_target=True)
        if key in target.obs:
            to_source[key] = transfer(alignment, target.obs[key].to_numpy(), to_target=False)
    return to_source, to_target


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
        "bridges_added": list(alignment.n_bridges),
        "timings_s": {k: round(v, 4) for k, v in alignment.timings.items()},
        "device": str(alignment.plan.u.device),
    }
    out.update(extra or {})
    return out
