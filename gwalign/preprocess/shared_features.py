"""Shared features of the two files for fused GW: ``obsm`` keys, or the var names both files have."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gwalign.config import RunConfig
from gwalign.errors import GWAlignWarning
from gwalign.io.content import numeric_matrix
from gwalign.io.h5ad import InputError


def shared_features(source, target, source_path: Path, target_path: Path, config: RunConfig):
    """Shared features for fused GW: obsm keys, gene activity, else shared var names
    (log-normalised); ``None`` for plain GW, with a note when an RNA and an ATAC file carry the
    coordinates ``--gene-activity`` reads."""
    if config.engine.solver.fgw_alpha == 0:
        if _coordinates_unused(source, target, config):
            warnings.warn(f"{source_path} and {target_path} carry genomic coordinates: --gene-activity "
                          "(gene_activity=True) adds RNA expression against ATAC gene activity as shared features, "
                          "which help where geometry alone is ambiguous (mirror images, cell types missing "
                          "on one side)",
                          GWAlignWarning, stacklevel=3)
        return None
    if config.inputs.gene_activity:
        return _gene_activity(source, target, source_path, target_path, config)
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


def _gene_activity(source, target, source_path: Path, target_path: Path, config: RunConfig):
    """:func:`~gwalign.preprocess.gene_activity.activity_features` with the ATAC side found by
    the files' modalities (given, or detected from the feature names)."""
    from gwalign.preprocess.gene_activity import activity_features

    modalities = _modalities(source, target, config)
    if sorted(modalities) != ["atac", "rna"]:
        raise InputError(f"{source_path}, {target_path}: --gene-activity needs one RNA and one ATAC file "
                         f"(found {modalities[0]} and {modalities[1]})")
    if modalities[0] == "atac":
        rna_features, atac_features, _ = activity_features(target, source, target_path, source_path)
        return atac_features, rna_features
    rna_features, atac_features, _ = activity_features(source, target, source_path, target_path)
    return rna_features, atac_features


def _coordinates_unused(source, target, config: RunConfig) -> bool:
    """Whether a run without shared features has one RNA and one ATAC file that both carry the
    coordinates gene activity reads."""
    from gwalign.preprocess.gene_activity import has_coordinates

    if config.inputs.joint_rep_source is not None:     # features given, at weight zero: their choice
        return False
    modalities = _modalities(source, target, config)
    if sorted(modalities) != ["atac", "rna"]:
        return False
    rna, atac = (source, target) if modalities[0] == "rna" else (target, source)
    return has_coordinates(rna.var, atac.var)


def _modalities(source, target, config: RunConfig) -> list[str]:
    """The two files' modalities: given, or detected from their feature names."""
    from gwalign.preprocess.representation import detect_modality

    given = (config.inputs.modality_source, config.inputs.modality_target)
    return [mode if mode != "auto" else detect_modality(adata.var_names) for mode, adata in zip(given, (source, target))]
