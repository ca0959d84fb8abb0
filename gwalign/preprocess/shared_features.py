"""Shared features of the two files for fused GW: ``obsm`` keys, or the var names both files have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gwalign.config import RunConfig
from gwalign.io.content import numeric_matrix
from gwalign.io.h5ad import InputError


def shared_features(source, target, source_path: Path, target_path: Path, config: RunConfig):
    """Shared features for fused GW: obsm keys, else shared var names (log-normalised)."""
    if config.engine.solver.fgw_alpha == 0:
        return None
    if config.inputs.joint_rep_source is not None:
        for adata, path, key in ((source, source_path, config.inputs.joint_rep_source),
                                 (target, target_path, config.inputs.joint_rep_target)):
            if key not in adata.obsm:
                keys = ", ".join(sorted(adata.obsm.keys())) or "none"
                raise InputError(f"{path}: obsm key {key!r} not found (obsm keys: {keys})")
        js, jt = (numeric_matrix(path, f"obsm[{key!r}]", adata.obsm[key])
                  for adata, path, key in ((source, source_path, config.inputs.joint_rep_source),
                                           (target, target_path, config.inputs.joint_rep_target)))
        if js.shape[1] != jt.shape[1]:
            raise InputError(f"{source_path}, {target_path}: joint representations have different widths "
                             f"({js.shape[1]} and {jt.shape[1]})")
        return js, jt
    shared = source.var_names.intersection(target.var_names)
    if len(shared) == 0:
        raise InputError(f"{source_path}, {target_path}: --fgw-alpha needs --joint-rep-source/--joint-rep-target "
                         "or shared var names, and the files share none")
    return lognorm(source[:, shared].X), lognorm(target[:, shared].X)


def lognorm(x) -> np.ndarray:
    dense = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
    totals = np.maximum(dense.sum(axis=1, keepdims=True), 1e-12)
    return np.log1p(dense / totals * 1e4)
