"""Alignment quality against a known ground truth (as SCOT defines them)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from sklearn.neighbors import KNeighborsClassifier


def foscttm(x_source: np.ndarray, x_target: np.ndarray) -> float:
    """Fraction Of Samples Closer Than the True Match, averaged over both directions.

    Row i of ``x_source`` and row i of ``x_target`` are the same cell (in a joint embedding).
    For each cell, the fraction of the other modality's cells strictly closer (Euclidean) than
    its true partner, over n − 1; 0 is perfect, 0.5 is random.
    """
    xs, xt = np.asarray(x_source, dtype=np.float64), np.asarray(x_target, dtype=np.float64)
    if xs.shape != xt.shape:
        raise ValueError(f"foscttm needs paired embeddings of equal shape, got {xs.shape} and {xt.shape}")
    n = xs.shape[0]
    sq_s = (xs * xs).sum(1)
    sq_t = (xt * xt).sum(1)
    dist = np.sqrt(np.maximum(sq_s[:, None] + sq_t[None, :] - 2.0 * xs @ xt.T, 0.0))
    true = np.diag(dist)
    closer_for_source = (dist < true[:, None]).sum(axis=1)
    closer_for_target = (dist < true[None, :]).sum(axis=0)
    return float((closer_for_source.mean() + closer_for_target.mean()) / (2.0 * (n - 1)))


def label_transfer_accuracy(x_source: np.ndarray, labels_source, x_target: np.ndarray,
                            labels_target, k: int = 5, *, keep_source: Optional[np.ndarray] = None,
                            keep_target: Optional[np.ndarray] = None) -> float:
    """kNN (k=5) classifier trained on one side's joint embedding, scored on the other's.

    Averaged over both directions. ``keep_source``/``keep_target`` (boolean masks) restrict the
    cells that are *scored*, e.g. to cell types present on both sides; every cell still trains.
    """
    ls, lt = np.asarray(labels_source), np.asarray(labels_target)
    ks = np.ones(len(ls), bool) if keep_source is None else np.asarray(keep_source, bool)
    kt = np.ones(len(lt), bool) if keep_target is None else np.asarray(keep_target, bool)
    xs, xt = np.asarray(x_source), np.asarray(x_target)
    forward = KNeighborsClassifier(n_neighbors=k).fit(xs, ls).score(xt[kt], lt[kt])
    backward = KNeighborsClassifier(n_neighbors=k).fit(xt, lt).score(xs[ks], ls[ks])
    return float((forward + backward) / 2.0)
