"""gwalign: Gromov-Wasserstein alignment of single-cell data sets, streamed on CPU and GPU."""

from gwalign.align import Alignment, GPUMemoryError, GWAlignWarning, align
from gwalign.config import GWConfig
from gwalign.engine.plan import FactoredPlan
from gwalign.graph import KNNGraph, knn_graph
from gwalign.metrics import (foscttm, label_separability, label_transfer_accuracy, label_transfer_by_direction,
                             shared_label_masks)
from gwalign.one_sided import OneSidedSide, one_sided_groups
from gwalign.results import coupled_cca, joint_embedding

__version__ = "0.1.0"

__all__ = ["Alignment", "FactoredPlan", "GPUMemoryError", "GWAlignWarning", "GWConfig", "KNNGraph", "OneSidedSide",
           "align", "coupled_cca", "foscttm", "joint_embedding", "knn_graph", "label_separability",
           "label_transfer_accuracy", "label_transfer_by_direction", "one_sided_groups", "shared_label_masks",
           "__version__"]
