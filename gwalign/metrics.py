"""Alignment quality against a known ground truth (as SCOT defines them)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from gwalign.geometry.knn import knn_vote


#: Entries of one block of the squared-distance matrix in :func:`foscttm` (8 bytes each).
FOSCTTM_BLOCK_ENTRIES = 8_000_000


def _scoring_device():
    """CUDA when there is one (scores are float64 either way), else the CPU, without a warning:
    scoring on the CPU is not a fallback worth one."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def foscttm(x_source: np.ndarray, x_target: np.ndarray, device: Optional[str] = None) -> float:
    """Fraction Of Samples Closer Than the True Match, averaged over both directions.

    Row i of ``x_source`` and row i of ``x_target`` are the same cell (in a joint embedding).
    For each cell, the fraction of the other modality's cells strictly closer (Euclidean) than
    its true partner, over n − 1; 0 is perfect, 0.5 is random. This is SCOT's
    ``calc_domainAveraged_FOSCTTM``.

    Ties are not closer, in either direction: a cell at exactly its partner's distance (a
    duplicate row on either side, or the partner itself) does not count. Distances are compared
    as exact sums of squared differences wherever the fast form below cannot tell them apart.

    The n × n distances are compared in row blocks (float64, on ``device``: default CUDA when
    there is one, else the CPU's threads), so paired atlases of 10^5 cells and more are scored in
    bounded memory and seconds.
    """
    import torch

    xs, xt = np.asarray(x_source, dtype=np.float64), np.asarray(x_target, dtype=np.float64)
    if xs.shape != xt.shape:
        raise ValueError(f"foscttm needs paired embeddings of equal shape, got {xs.shape} and {xt.shape}")
    dev = torch.device(device) if device else _scoring_device()
    s, t = torch.as_tensor(xs, device=dev), torch.as_tensor(xt, device=dev)
    t_columns = t.T.contiguous()
    n = s.shape[0]
    sq_s, sq_t = (s * s).sum(1), (t * t).sum(1)
    everyone = torch.arange(n, device=dev)
    true = _pair_sq(s, t, everyone, everyone)
    block = max(1, FOSCTTM_BLOCK_ENTRIES // max(n, 1))
    closer_for_source = torch.zeros((), dtype=torch.int64, device=dev)
    closer_for_target = torch.zeros(n, dtype=torch.int64, device=dev)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        # |s|² + |t|² − 2⟨s, t⟩ orders cells as distances do, but its rounding (relative to
        # |s|² + |t|²) can split exact ties either way; entries within UNSURE of the partner's
        # distance are settled by exact sums of squared differences.
        scale = sq_s[lo:hi, None] + sq_t[None, :]
        sq = torch.addmm(sq_t[None, :], s[lo:hi], t_columns, alpha=-2.0).add_(sq_s[lo:hi, None])
        for against, counts in ((true[lo:hi, None], None), (true[None, :], closer_for_target)):
            closer = sq < against - UNSURE * scale
            rows, cols = torch.nonzero((sq - against).abs_() <= UNSURE * scale, as_tuple=True)
            exact = _pair_sq(s, t, rows + lo, cols) < (true[rows + lo] if counts is None else true[cols])
            if counts is None:
                closer_for_source += closer.sum() + exact.sum()
            else:
                counts += closer.sum(0) + torch.bincount(cols[exact], minlength=n)
    total = closer_for_source.item() / n + closer_for_target.double().mean().item()
    return float(total / (2.0 * (n - 1)))


#: Relative band (of |s|² + |t|²) within which :func:`foscttm` compares distances exactly; the fast
#: form's rounding is about d · 1e-16 of that scale.
UNSURE = 1e-9


def _pair_sq(s, t, rows, cols):
    """Squared distances of the pairs (s[rows], t[cols]), summed coordinate by coordinate in one
    order for every pair (a reduction kernel's order may depend on the batch), so that equal rows
    give bit-equal distances."""
    import torch

    diff = s[rows] - t[cols]
    total = torch.zeros(len(rows), dtype=diff.dtype, device=diff.device)
    for column in diff.T:
        total += column * column
    return total


def transferred_labels(x_source: np.ndarray, labels_source, x_target: np.ndarray, labels_target,
                       k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The labels a kNN (k=5) classifier in the joint embedding carries into each side:
    ``(into_target, into_source)``, one per target / source cell, each classifier trained on every
    cell of the other side."""
    return knn_predict(x_source, labels_source, x_target, k), knn_predict(x_target, labels_target, x_source, k)


def knn_predict(x_train: np.ndarray, labels_train, x_query: np.ndarray, k: int = 5) -> np.ndarray:
    """scikit-learn's ``KNeighborsClassifier(k).fit(x_train, labels_train).predict(x_query)``
    (majority of the k nearest, ties to the smallest label), searched in float64 on CUDA when there
    is one (blocked exact search; at 50,000 cells scikit-learn's takes minutes), else by
    scikit-learn's own search."""
    import torch

    classes, codes = np.unique(np.asarray(labels_train), return_inverse=True)
    votes = knn_vote(np.asarray(x_train, dtype=np.float64), codes, np.asarray(x_query, dtype=np.float64),
                     len(classes), k, _scoring_device(), dtype=torch.float64)
    return classes[votes]


def shared_label_masks(labels_source, labels_target) -> tuple[np.ndarray, np.ndarray]:
    """Cells whose label also occurs on the other side (the ones label transfer can get right)."""
    ls, lt = np.asarray(labels_source), np.asarray(labels_target)
    # Against the few distinct labels: np.isin on string (object) arrays compares every pair of
    # cells, which takes tens of seconds at 20,000 cells a side.
    return np.isin(ls, np.unique(lt)), np.isin(lt, np.unique(ls))


def label_transfer_by_direction(x_source: np.ndarray, labels_source, x_target: np.ndarray,
                                labels_target, k: int = 5, *, keep_source: Optional[np.ndarray] = None,
                                keep_target: Optional[np.ndarray] = None) -> tuple[float, float]:
    """Label transfer into each side: ``(into_target, into_source)``.

    Into the target: a kNN (k=5) classifier trained on the source's joint embedding and labels,
    scored on the target's cells; into the source, the reverse (:func:`transferred_labels`).
    ``keep_source``/``keep_target`` (boolean masks) restrict the cells that are *scored*, e.g. to
    cell types present on both sides (:func:`shared_label_masks`); every cell still trains.
    """
    ls, lt = np.asarray(labels_source), np.asarray(labels_target)
    ks = np.ones(len(ls), bool) if keep_source is None else np.asarray(keep_source, bool)
    kt = np.ones(len(lt), bool) if keep_target is None else np.asarray(keep_target, bool)
    to_target, to_source = transferred_labels(x_source, ls, x_target, lt, k)
    return float(np.mean(to_target[kt] == lt[kt])), float(np.mean(to_source[ks] == ls[ks]))


def label_transfer_accuracy(x_source: np.ndarray, labels_source, x_target: np.ndarray,
                            labels_target, k: int = 5, *, keep_source: Optional[np.ndarray] = None,
                            keep_target: Optional[np.ndarray] = None) -> float:
    """kNN (k=5) classifier trained on one side's joint embedding, scored on the other's.

    Averaged over both directions (:func:`label_transfer_by_direction`). ``keep_source``/
    ``keep_target`` (boolean masks) restrict the cells that are *scored*; every cell still trains.
    """
    return float(np.mean(label_transfer_by_direction(x_source, labels_source, x_target, labels_target, k,
                                                     keep_source=keep_source, keep_target=keep_target)))


def label_separability(x: np.ndarray, labels, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """How well one side's embedding separates that side's *own* labels: a kNN (k=5) classifier,
    ``folds``-fold cross-validated (shuffled, seeded).

    A reference for the label transfer into this side, which is a classifier of the same cells
    that never saw their labels: when the two are close, the side's own representation, not the
    alignment, limits the transfer (docs/how-it-works/label-transfer.md, "What bounds it").
    """
    from sklearn.model_selection import KFold

    x, labels = np.asarray(x), np.asarray(labels)
    if len(labels) < folds * (k + 1):
        raise ValueError(f"label_separability needs at least {folds * (k + 1)} labelled cells, got {len(labels)}")
    splits = KFold(folds, shuffle=True, random_state=seed).split(x)
    return float(np.mean([np.mean(knn_predict(x[train], labels[train], x[test], k) == labels[test])
                          for train, test in splits]))
