"""gwalign: Gromov-Wasserstein alignment of single-cell data sets, streamed on CPU and GPU."""

from gwalign.alignment import Alignment, GWAlignWarning
from gwalign.device import GPUMemoryError
from gwalign.align import align
from gwalign.config import (ComputeConfig, DistanceConfig, GraphConfig, GWConfig, InputConfig, OutputConfig, RunConfig,
                            SolverConfig, StartsConfig)
from gwalign.engine.plan import FactoredPlan
from gwalign.geometry.knn import KNNGraph, knn_graph
from gwalign.metrics import (foscttm, label_separability, label_transfer_accuracy, label_transfer_by_direction,
                             shared_label_masks)
from gwalign.results.one_sided import OneSidedSide, one_sided_groups
from gwalign.results.embedding import coupled_cca, joint_embedding

__version__ = "0.1.0"

__all__ = ["Alignment", "ComputeConfig", "DistanceConfig", "FactoredPlan", "GPUMemoryError", "GWAlignWarning", "GWConfig",
           "GraphConfig", "InputConfig", "KNNGraph", "OneSidedSide", "OutputConfig", "RunConfig", "SolverConfig",
           "StartsConfig",
           "align", "coupled_cca", "foscttm", "joint_embedding", "knn_graph", "label_separability",
           "label_transfer_accuracy", "label_transfer_by_direction", "one_sided_groups", "shared_label_masks",
           "__version__"]
