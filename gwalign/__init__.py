"""gwalign: Gromov-Wasserstein alignment of single-cell data sets, streamed on CPU and GPU."""

from gwalign.align import Alignment, GPUMemoryError, GWAlignWarning, align
from gwalign.config import GWConfig
from gwalign.engine.plan import FactoredPlan
from gwalign.graph import KNNGraph, knn_graph
from gwalign.one_sided import OneSidedSide, one_sided_groups
from gwalign.results import coupled_cca, joint_embedding

__version__ = "0.1.0"

__all__ = ["Alignment", "FactoredPlan", "GPUMemoryError", "GWAlignWarning", "GWConfig", "KNNGraph", "OneSidedSide",
           "align", "coupled_cca", "joint_embedding", "knn_graph", "one_sided_groups", "__version__"]
