"""Labels carried across an alignment, with their confidence."""

from __future__ import annotations

from typing import Any, Optional
import numpy as np
import pandas as pd
from gwalign.alignment import Alignment
from gwalign.config import TRANSFER_K
from gwalign.geometry.knn import knn_vote


def best_matches(alignment: Alignment, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Partner with most mass for each row, and that mass's share of the row."""
    top = alignment.topk(1, transpose=transpose)
    mass = alignment.col_marginal() if transpose else alignment.row_marginal()
    index = top.indices.astype(np.int64)
    share = np.asarray(top.data, dtype=np.float64) / np.maximum(mass, 1e-300)
    return index, share


def label_text(value: Any) -> str:
    """One label as text; a whole-number float is written as an integer (``1.0`` -> ``"1"``)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def label_strings(values) -> np.ndarray:
    """Labels as text (an object array), missing values (NaN, None) as ``None``.

    An integer label column that has missing values is stored by pandas as floats (1 becomes 1.0);
    writing whole numbers as integers makes the same label read the same on both sides.
    """
    series = pd.Series(np.asarray(values, dtype=object))
    missing = series.isna().to_numpy()
    out = np.full(len(series), None, dtype=object)
    present = series[~missing]
    text = {value: label_text(value) for value in pd.unique(present)}
    out[~missing] = present.map(text).to_numpy(dtype=object)
    return out


def transfer(alignment: Alignment, labels, to_target: bool, *, embedding_labelled: Optional[np.ndarray] = None,
             embedding_receiving: Optional[np.ndarray] = None, k: int = TRANSFER_K
             ) -> tuple[np.ndarray, np.ndarray]:
    """Carry categorical labels across the coupling.

    Parameters
    ----------
    alignment
        The solved alignment.
    labels
        One label per cell of the labelled side (the source when ``to_target``); missing values
        (NaN, None) mark unlabelled cells, which are left out. Labels are compared as text
        (:func:`label_strings`).
    to_target
        Direction: source labels to target cells, or target labels to source cells.
    embedding_labelled, embedding_receiving
        Both sides' rows of the joint embedding (``X_gw``). Given: each receiving cell gets the
        majority label of its ``k`` nearest labelled cells there. Omitted: the label with most of
        its plan mass.
    k
        Neighbours of the kNN classifier.

    Returns
    -------
    tuple of numpy.ndarray
        The labels, and each one's confidence in [0, 1]: the share of the receiving cell's plan
        mass that comes from cells carrying that label, times the cell's evidence of having a
        counterpart at all (:meth:`gwalign.Alignment.counterpart_evidence`: its mass when its
        side's marginal is free, relative to its weight, capped at 1; 1 when nothing was freed).
        A cell type the other side lacks draws its mass from several types, or sheds it when
        allowed, so its cells get lower confidence (docs/how-it-works/one-sided.md, "Counterpart evidence").
    """
    if (embedding_labelled is None) != (embedding_receiving is None):
        raise ValueError("give both sides' embeddings for kNN transfer, or neither")
    series = pd.Series(label_strings(labels))
    # Cells without a label (NaN/None, as in a partly annotated obs column) neither vote nor count
    # in the mass shares.
    labelled = ~series.isna().to_numpy()
    if not labelled.any():
        raise ValueError("no labelled cells to transfer from (every label is missing)")
    categories = pd.Categorical(series[labelled].astype(str))
    onehot = np.zeros((len(series), len(categories.categories)))
    onehot[np.flatnonzero(labelled), categories.codes] = 1.0
    mass = alignment.apply_t(onehot) if to_target else alignment.apply(onehot)
    share = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-300)
    if embedding_labelled is None:
        winner = share.argmax(axis=1)
    else:
        # Any object with the plan methods can be transferred across; a run's own search policy
        # applies when it has one.
        config = getattr(alignment, "config", None)
        winner = knn_vote(np.asarray(embedding_labelled)[labelled], categories.codes, embedding_receiving,
                          len(categories.categories), k, alignment.device,
                          search="auto" if config is None else config.graph.knn_search)
    evidence = alignment.counterpart_evidence()[1 if to_target else 0]
    return np.asarray(categories.categories)[winner], share[np.arange(len(share)), winner] * evidence


def label_transfers(alignment: Alignment, source, target, keys: list[str],
                    embeddings: Optional[tuple[np.ndarray, np.ndarray]] = None, k: int = TRANSFER_K
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Transfers for both outputs: labels on the source go to the target and vice versa, by kNN in
    the joint embedding when ``embeddings`` (source rows, target rows) are given, else by plan mass
    (see :func:`transfer`)."""
    emb_s, emb_t = embeddings if embeddings is not None else (None, None)
    to_target: dict[str, Any] = {}
    to_source: dict[str, Any] = {}
    for key in keys:
        if key in source.obs:
            to_target[key] = transfer(alignment, source.obs[key].to_numpy(), to_target=True,
                                      embedding_labelled=emb_s, embedding_receiving=emb_t, k=k)
        if key in target.obs:
            to_source[key] = transfer(alignment, target.obs[key].to_numpy(), to_target=False,
                                      embedding_labelled=emb_t, embedding_receiving=emb_s, k=k)
    return to_source, to_target
