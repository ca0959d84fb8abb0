"""Tools on AnnData objects in memory, in scanpy's style (``gwalign.tl.align``).

:func:`align` writes the keys that ``gwalign run`` writes into its output files, through the same
code (:func:`gwalign.pipeline.align_adatas`); ``gwalign run`` adds only the reading and writing of
files around it.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

from gwalign.alignment import Alignment
from gwalign.config import GWConfig, RunConfig
from gwalign.errors import GWAlignWarning
from gwalign.pipeline import InMemory, align_adatas
from gwalign.threads import limited_threads


@dataclass
class AlignResult:
    """What :func:`align` returns.

    Attributes
    ----------
    adata_a, adata_b
        The annotated data sets: the objects given (``copy=False``) or annotated copies
        (``copy=True``).
    joint
        Both data sets' aligned cells in one AnnData, as ``joint.gwalign.h5ad`` of ``gwalign run``:
        ``obsm["X_gw"]``, ``obs["gw_dataset"]`` and, per transferred label column, ``obs[<label>]``
        and ``obs[<label>_origin]``.
    alignment
        The :class:`~gwalign.Alignment` (the transport plan and the solver's diagnostics).
    report
        The facts of ``report.json`` that do not depend on files: those of ``uns["gwalign"]``,
        ``inputs`` (cells and aligned cells per side), ``label_transfer`` (mean confidence per
        column and direction) and ``timings_s``.
    """

    adata_a: Any
    adata_b: Any
    joint: Any
    alignment: Alignment
    report: dict[str, Any] = field(default_factory=dict)


def align(adata_a, adata_b, *, rep_a: Optional[str] = None, rep_b: Optional[str] = None,
          config: Optional[Union[RunConfig, GWConfig]] = None, copy: bool = False,
          transfer_labels: Union[str, Sequence[str]] = (), names: tuple[str, str] = ("adata_a", "adata_b"),
          **settings: Any) -> AlignResult:
    """Align two AnnData objects with Gromov-Wasserstein OT and annotate both, as ``gwalign run``.

    The same steps and results as ``gwalign run`` on the two data sets written to files: a
    representation of each (``obsm[rep_a]``, else RNA PCA or ATAC LSI of ``X``), the GW alignment
    of their kNN graphs' geodesic distances, the joint embedding, the matches and the transferred
    labels. ``adata_a`` is the source, ``adata_b`` the target. Cells with all-zero counts are not
    aligned: they keep their place with ``obs["gw_aligned"]`` False and empty results (NaN, missing
    labels, an empty coupling row). Sets in each object (``n`` its cells, ``m`` the other's; the
    Outputs page of the documentation describes every key in full):

    - ``obs["gw_aligned"]`` (bool): True for the cells that were aligned.
    - ``obsm["X_gw"]`` (float64, n × d): the joint embedding, both objects' cells in one space.
    - ``obsm["gw_coupling"]`` (CSR, float32, n × m): the ``top_k`` (10) largest transport plan entries
      of each cell's row; columns are the other object's cells in its ``obs`` order.
    - ``obs["gw_match"]`` (categorical): the other object's cell with most of this cell's plan mass.
    - ``obs["gw_match_weight"]`` (float64): that partner's share of the cell's plan mass.
    - ``obs["gw_distortion"]`` (float32): with the low-rank solver (the default), how badly the cell's
      distances fit its partners'; high values mark candidates for cells without a counterpart.
    - ``obs["gw_relaxed_mass"]`` (float32), ``obs["gw_one_sided"]`` (bool): when the one-sided check
      runs, the cell's mass when its side's marginal is freed, and whether it may lack a counterpart.
    - ``obs["<label>_gw"]`` (categorical), ``obs["<label>_gw_confidence"]`` (float32): per column of
      ``transfer_labels`` that the other object has, the label carried across and its confidence.
    - ``uns["gwalign"]`` (dict): the run's parameters and diagnostics, with ``role`` and
      ``partner_file`` (the other object's name in ``names``).

    Parameters
    ----------
    adata_a, adata_b
        The source and target data sets: counts in ``X``, or a representation in ``obsm``.
    rep_a, rep_b
        ``obsm`` keys of ready representations (``"X_pca"``); ``None``: computed from ``X``.
    config
        A :class:`~gwalign.RunConfig`, or a :class:`~gwalign.GWConfig` for the engine alone;
        ``None``: the defaults of ``gwalign run``.
    copy
        ``False``: annotate ``adata_a`` and ``adata_b`` in place. ``True``: annotate copies and
        leave the objects given untouched.
    transfer_labels
        ``obs`` column(s) to carry across.
    names
        The data sets' names: in messages, ``joint.obs["gw_dataset"]``, the joint cells' names
        (``<name>:<obs name>``) and ``uns["gwalign"]["partner_file"]``.
    **settings
        Any other setting by its flat name, as in a TOML preset (``device="cpu"``,
        ``semi_relaxed=True``); they override ``config``.

    Returns
    -------
    AlignResult
        The annotated objects (``adata_a``, ``adata_b``), the joint AnnData (``joint``), the
        :class:`~gwalign.Alignment` (``alignment``) and the run's summary (``report``).

    Raises
    ------
    gwalign.InputError
        For data that cannot be aligned (duplicate ``obs_names``, a missing ``obsm`` key or label
        column, NaN values, ...); the message names the object (``adata_a``).
    ValueError
        For an unknown setting or a value out of range.
    """
    run_config = run_configuration(config, rep_a, rep_b, transfer_labels, settings)
    if copy:
        adata_a, adata_b = adata_a.copy(), adata_b.copy()
    held: list[Warning] = []
    try:
        with held_warnings(held):
            return aligned_in_memory(adata_a, adata_b, run_config, names)
    finally:
        for message in held:   # at the caller's line, as a notebook shows it
            warnings.warn(message, stacklevel=2)


def aligned_in_memory(adata_a, adata_b, config: RunConfig, names: tuple[str, str]) -> AlignResult:
    """:func:`gwalign.pipeline.align_adatas` on the two objects, under the run's thread limit."""
    wheres = (InMemory(names[0]), InMemory(names[1]))
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with limited_threads(config.engine.compute.threads):
        alignment, annotated, _ = align_adatas((adata_a, adata_b), wheres, config, timings)
    timings["total"] = time.perf_counter() - started
    report = {**annotated.report, "timings_s": {key: round(value, 4) for key, value in timings.items()}}
    return AlignResult(annotated.source, annotated.target, annotated.joint, alignment, report)


@contextmanager
def held_warnings(held: list[Warning]) -> Iterator[None]:
    """Hold gwalign's own warnings (:class:`~gwalign.GWAlignWarning`) in ``held`` instead of showing
    them where gwalign raised them; other warnings are shown as usual."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def hold(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, GWAlignWarning):
                held.append(message)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = hold
        yield


def run_configuration(config: Optional[Union[RunConfig, GWConfig]], rep_a: Optional[str], rep_b: Optional[str],
                      transfer_labels: Union[str, Sequence[str]], settings: dict[str, Any]) -> RunConfig:
    """``config`` (``None``: the defaults) with :func:`align`'s arguments applied.

    Raises
    ------
    ValueError
        For an unknown setting, a value out of range, or a ``config`` of another type.
    """
    if config is None:
        config = RunConfig()
    elif isinstance(config, GWConfig):
        config = RunConfig(engine=config)
    elif not isinstance(config, RunConfig):
        raise ValueError(f"config: expected a RunConfig or GWConfig, got {type(config).__name__}")
    changes = dict(settings)
    if rep_a is not None:
        changes["rep_source"] = rep_a
    if rep_b is not None:
        changes["rep_target"] = rep_b
    if transfer_labels:
        changes["transfer_labels"] = (transfer_labels,) if isinstance(transfer_labels, str) else tuple(transfer_labels)
    return config.replace(**changes) if changes else config
