"""The configuration of a whole ``gwalign run``: inputs, the engine and outputs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from gwalign.config.engine import CCA_DIFFUSION_STEPS, ENGINE_STAGES, TRANSFER_K, GWConfig
from gwalign.config.fields import Stage, bounded, split_flat, stage_fields


#: Fused GW weight of ``gene_activity`` runs that set none: the GW and the feature costs, each divided
#: by its mean under the product plan, count equally (docs/how-it-works/limits.md).
GENE_ACTIVITY_ALPHA = 0.5


@dataclass(frozen=True)
class InputConfig(Stage):
    """How ``gwalign run`` turns each file into a representation.

    Parameters
    ----------
    rep_source, rep_target
        ``obsm`` keys of ready representations; ``None``: computed from ``X``.
    modality_source, modality_target
        ``auto`` (peak-like feature names mean ATAC), ``rna`` or ``atac``.
    n_components
        Dimensions of a computed representation (RNA PCA, ATAC LSI).
    n_top_genes
        Highly variable genes kept before the RNA PCA.
    joint_rep_source, joint_rep_target
        ``obsm`` keys of shared features for fused GW (equal widths).
    gene_activity
        Shared features from genomic coordinates: RNA expression against ATAC gene activity
        (:mod:`gwalign.preprocess.gene_activity`); fused GW at ``fgw_alpha``, else
        :data:`GENE_ACTIVITY_ALPHA`.
    normalise_rows
        ``l2`` (unit-length cells), ``none`` or ``auto`` (L2 only where the norm is a size factor).
    """

    rep_source: Optional[str] = None
    rep_target: Optional[str] = None
    modality_source: Literal["auto", "rna", "atac"] = "auto"
    modality_target: Literal["auto", "rna", "atac"] = "auto"
    n_components: int = bounded(30, low=2)
    n_top_genes: int = bounded(2000, low=10)
    joint_rep_source: Optional[str] = None
    joint_rep_target: Optional[str] = None
    normalise_rows: Literal["auto", "l2", "none"] = "auto"
    gene_activity: bool = False

    def check(self) -> None:
        if (self.joint_rep_source is None) != (self.joint_rep_target is None):
            raise ValueError("joint_rep_source and joint_rep_target must be given together")
        if self.gene_activity and self.joint_rep_source is not None:
            raise ValueError("give either gene_activity or joint_rep_source/joint_rep_target, not both")


@dataclass(frozen=True)
class OutputConfig(Stage):
    """What ``gwalign run`` writes.

    Parameters
    ----------
    transfer_labels
        ``obs`` columns to carry across.
    transfer
        ``knn`` (majority of the ``transfer_k`` nearest labelled cells in ``X_gw``) or ``plan``
        (the label with most of the cell's plan mass).
    transfer_k
        Neighbours of the kNN transfer.
    top_k
        Plan entries kept per cell in ``obsm["gw_coupling"]``.
    joint_embedding
        ``obsm["X_gw"]``: ``cca`` (coupled CCA), ``target``, ``source`` or ``spectral``.
    cca_diffusion
        Random-walk steps over each side's kNN graph applied to the plan before the CCA.
    figures
        Write PNG figures (convergence, joint UMAP).
    """

    transfer_labels: tuple[str, ...] = ()
    transfer: Literal["knn", "plan"] = "knn"
    transfer_k: int = bounded(TRANSFER_K, low=1)
    top_k: int = bounded(10, low=1)
    joint_embedding: Literal["cca", "target", "source", "spectral"] = "cca"
    cca_diffusion: int = bounded(CCA_DIFFUSION_STEPS, low=0)
    figures: bool = True


RUN_STAGES = {"inputs": InputConfig, "outputs": OutputConfig}


@dataclass(frozen=True)
class RunConfig:
    """A whole ``gwalign run``: inputs, the engine and outputs.

    Parameters
    ----------
    engine
        The GW engine (:class:`GWConfig`).
    inputs
        Reading and preparing the two files (:class:`InputConfig`).
    outputs
        What is written (:class:`OutputConfig`).
    """

    engine: GWConfig = field(default_factory=GWConfig)
    inputs: InputConfig = field(default_factory=InputConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        # Gene activity is a request for fused GW: without a weight of its own it gets the
        # documented starting weight.
        if self.inputs.gene_activity and self.engine.solver.fgw_alpha == 0:
            object.__setattr__(self, "engine", self.engine.replace(fgw_alpha=GENE_ACTIVITY_ALPHA))

    def to_dict(self) -> dict[str, Any]:
        """Every field under its flat name (as written to reports)."""
        out = {name: value for stage in RUN_STAGES for name, value in dataclasses.asdict(getattr(self, stage)).items()}
        out["transfer_labels"] = list(self.outputs.transfer_labels)
        out.update(self.engine.to_dict())
        return out

    @classmethod
    def from_flat(cls, values: dict[str, Any], source: str = "config") -> "RunConfig":
        """Split flat (or stage-table) values from a TOML preset or CLI flags into stages."""
        engine_keys = frozenset(stage_fields(ENGINE_STAGES)) | frozenset(ENGINE_STAGES)
        grouped = split_flat(values, RUN_STAGES, source, allowed_extra=engine_keys)
        labels = grouped["outputs"].get("transfer_labels")
        if labels is not None:
            grouped["outputs"]["transfer_labels"] = tuple([labels] if isinstance(labels, str) else labels)
        engine = GWConfig.from_flat({k: v for k, v in values.items() if k in engine_keys}, source)
        return cls(engine=engine, inputs=InputConfig(**grouped["inputs"]), outputs=OutputConfig(**grouped["outputs"]))

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with flat-named ``changes`` applied, engine fields included."""
        engine_keys = frozenset(stage_fields(ENGINE_STAGES))
        grouped = split_flat(changes, RUN_STAGES, "replace", allowed_extra=engine_keys)
        engine = self.engine.replace(**{k: v for k, v in changes.items() if k in engine_keys})
        return dataclasses.replace(self, engine=engine, **{stage: dataclasses.replace(getattr(self, stage), **values)
                                                           for stage, values in grouped.items() if values})


