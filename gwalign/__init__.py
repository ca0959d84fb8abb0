"""gwalign: Gromov-Wasserstein alignment of single-cell data sets, streamed on CPU and GPU.

The public names below are imported on first use, so that ``import gwalign`` (and the command
line's ``--help``) does not pay for torch until something needs it. So are the scanpy-style
submodules: ``gwalign.tl`` (tools on AnnData objects) and ``gwalign.pl`` (plots).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "Alignment": "gwalign.alignment", "GWAlignWarning": "gwalign.errors", "GPUMemoryError": "gwalign.errors",
    "DistributedError": "gwalign.errors", "align": "gwalign.align_arrays", "InputError": "gwalign.io.h5ad",
    "GWConfig": "gwalign.config", "RunConfig": "gwalign.config", "GraphConfig": "gwalign.config",
    "DistanceConfig": "gwalign.config", "SolverConfig": "gwalign.config", "StartsConfig": "gwalign.config",
    "ComputeConfig": "gwalign.config", "InputConfig": "gwalign.config", "OutputConfig": "gwalign.config",
    "FactoredPlan": "gwalign.engine.plan",
    "KNNGraph": "gwalign.geometry.knn", "knn_graph": "gwalign.geometry.knn",
    "foscttm": "gwalign.metrics", "label_separability": "gwalign.metrics",
    "label_transfer_accuracy": "gwalign.metrics", "label_transfer_by_direction": "gwalign.metrics",
    "shared_label_masks": "gwalign.metrics",
    "OneSidedSide": "gwalign.results.one_sided", "one_sided_groups": "gwalign.results.one_sided",
    "coupled_cca": "gwalign.results.embedding", "joint_embedding": "gwalign.results.embedding",
}

#: Submodules loaded on first use, as scanpy's ``sc.tl`` and ``sc.pl``.
_SUBMODULES = ("pl", "tl")

__all__ = sorted(_PUBLIC) + list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"gwalign.{name}")
    raise AttributeError(f"module 'gwalign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
