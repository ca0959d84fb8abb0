"""Row scaling of representations and the ground-truth metrics."""

import numpy as np
import pytest

from gwalign.metrics import (foscttm, label_separability, label_transfer_accuracy, label_transfer_by_direction,
                             shared_label_masks, transferred_labels)
from gwalign.preprocess.row_scaling import NORM_SHARE, mean_direction_cosine, norm_variance_share, scale_rows


def test_auto_scaling_only_for_uncentred_size_factor_embeddings(rng):
    centred = rng.normal(size=(300, 12))
    direction = rng.normal(size=12)
    # Uncentred: one shared direction times a per-cell size factor, plus a little biology.
    uncentred = np.outer(rng.lognormal(sigma=0.8, size=300), direction) + 0.2 * rng.normal(size=(300, 12))
    assert abs(mean_direction_cosine(centred)) < 0.2
    assert mean_direction_cosine(uncentred) > 0.8
    same, scaled = scale_rows(centred, "auto")
    assert not scaled and same is centred
    out, scaled = scale_rows(uncentred, "auto")
    assert scaled and np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert np.allclose(np.linalg.norm(scale_rows(centred, "l2")[0], axis=1), 1.0)
    assert scale_rows(uncentred, "none")[0] is uncentred
    before = uncentred.copy()
    scale_rows(uncentred, "l2")
    assert np.array_equal(uncentred, before)


def test_uncentred_without_a_size_factor_is_not_scaled(rng):
    # Binary calls (as scGEM's methylation): every cell shares one direction, but the norms
    # (sqrt of the number of calls) barely vary, so the norm is no size factor.
    calls = (rng.random((300, 27)) < rng.uniform(0.5, 0.8, size=27)).astype(float)
    assert mean_direction_cosine(calls) > 0.5
    assert norm_variance_share(calls) < NORM_SHARE
    same, scaled = scale_rows(calls, "auto")
    assert not scaled and same is calls
    # The share is a fraction of the spread: |‖x‖ - ‖y‖| <= ‖x - y‖ keeps it in [0, 1].
    for x in (calls, rng.normal(size=(200, 5)), np.outer(rng.lognormal(size=200), rng.normal(size=7))):
        assert 0.0 <= norm_variance_share(x) <= 1.0 + 1e-12
    assert norm_variance_share(np.ones((10, 3))) == 0.0


def test_foscttm_perfect_and_random(rng):
    x = rng.normal(size=(200, 5))
    assert foscttm(x, x) == 0.0
    assert foscttm(x, rng.normal(size=(200, 5))) == pytest.approx(0.5, abs=0.06)


@pytest.mark.parametrize("block_entries", [37, 10**7])
def test_foscttm_in_row_blocks_equals_the_definition(rng, monkeypatch, block_entries):
    """Scored in row blocks (37 entries: one row per block; 10^7: one block), FOSCTTM counts, for each
    cell, the other side's cells strictly closer than its partner, as the definition does on the full
    distance matrix."""
    from scipy.spatial.distance import cdist

    import gwalign.metrics as metrics

    monkeypatch.setattr(metrics, "FOSCTTM_BLOCK_ENTRIES", block_entries)
    xs = rng.normal(size=(150, 4))
    xt = xs + 0.7 * rng.normal(size=(150, 4))
    xt[:5] = xs[:5]                      # exact partners: distance 0, nothing closer
    dist = cdist(xs, xt)
    true = np.diag(dist)
    reference = ((dist < true[:, None]).sum() + (dist < true[None, :]).sum()) / (2 * 150 * 149)
    assert metrics.foscttm(xs, xt) == pytest.approx(reference, abs=1e-12)
    assert 0.01 < reference < 0.45   # not degenerate (fresh draws can reach 0.0495, so not 0.05)


def scot_foscttm(xs, xt):
    """SCOT's ``calc_domainAveraged_FOSCTTM``, brute force: for each cell and each direction, the
    other side's cells strictly closer than its partner (distances from direct differences),
    over n - 1, averaged."""
    n = len(xs)
    fractions = []
    for a, b in ((xs, xt), (xt, xs)):
        for i in range(n):
            dist = np.sqrt(np.sum(np.square(a[i] - b), axis=1))
            fractions.append(np.sum(dist < dist[i]) / (n - 1))
    return float(np.mean(fractions))


@pytest.mark.parametrize("block_entries", [37, 10**7])
def test_foscttm_counts_ties_alike_in_both_directions(rng, monkeypatch, block_entries):
    """Duplicate rows (on either side) put cells at exactly their partner's distance: such ties are
    not closer in either direction, as in SCOT's brute-force definition."""
    import gwalign.metrics as metrics

    monkeypatch.setattr(metrics, "FOSCTTM_BLOCK_ENTRIES", block_entries)
    # Few distinct values with large offsets: rows repeat, and |s|² + |t|² − 2⟨s, t⟩ rounds.
    xs = rng.integers(0, 3, size=(120, 6)).astype(float) * 0.1 + 1e3
    xt = xs + rng.integers(0, 2, size=(120, 6)) * 0.1
    xs[60:90], xt[90:120] = xs[:30], xt[30:60]
    n_duplicates = 120 - len(np.unique(xs, axis=0)) + 120 - len(np.unique(xt, axis=0))
    assert n_duplicates >= 60
    assert metrics.foscttm(xs, xt) == pytest.approx(scot_foscttm(xs, xt), abs=1e-12)
    assert metrics.foscttm(xt, xs) == pytest.approx(scot_foscttm(xs, xt), abs=1e-12)


def test_label_transfer_scores_only_kept_cells(rng):
    # Two well-separated classes; the target's class-1 cells carry a label the source never has.
    xs = np.concatenate([rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 20])
    ls = np.repeat([0, 1], 50)
    xt = xs + 0.01 * rng.normal(size=xs.shape)
    lt = np.repeat([0, 7], 50)
    everyone = label_transfer_accuracy(xs, ls, xt, lt)
    shared = label_transfer_accuracy(xs, ls, xt, lt, keep_source=ls == 0, keep_target=lt == 0)
    assert everyone == pytest.approx(0.5)
    assert shared == pytest.approx(1.0)
    keep_s, keep_t = shared_label_masks(ls, lt)
    assert np.array_equal(keep_s, ls == 0) and np.array_equal(keep_t, lt == 0)
    to_target, to_source = transferred_labels(xs, ls, xt, lt)
    assert np.array_equal(to_target, ls) and np.array_equal(to_source, lt)


def test_label_transfer_directions_and_separability(rng):
    # Three separated blobs; the target's blob 2 lies on the source's blob 1, so only the transfer
    # into the target goes wrong, for a third of its cells.
    centres = np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0]])
    ls = np.repeat([0, 1, 2], 60)
    xs = centres[ls] + rng.normal(size=(180, 2))
    lt = ls.copy()
    xt = centres[np.where(lt == 2, 1, lt)] + rng.normal(size=(180, 2))
    into_target, into_source = label_transfer_by_direction(xs, ls, xt, lt)
    assert into_target == pytest.approx(2 / 3, abs=0.1)
    assert into_source < 1.0
    assert label_transfer_accuracy(xs, ls, xt, lt) == pytest.approx((into_target + into_source) / 2)
    # Own labels: the source's blobs are separable, the target's blobs 1 and 2 are not.
    assert label_separability(xs, ls) == 1.0
    assert label_separability(xt, lt) == pytest.approx(2 / 3, abs=0.12)
    with pytest.raises(ValueError, match="at least 30 labelled cells"):
        label_separability(xs[:20], ls[:20])


@pytest.mark.real_data
def test_auto_scaling_decides_the_measured_cases():
    # SNARE-seq's ATAC (depth in the norm) mirrors unless scaled, down to a norm share of 0.122 (norms
    # compressed, gamma 0.25); scGEM's two sides (norms = stage biology, shares 0.088 / 0.030) mirror
    # when both are scaled (docs/how-it-works/representations.md).
    from pathlib import Path

    data = Path(__file__).parents[1] / "data"
    atac = np.load(data / "snareseq" / "atac.npy")
    norm = np.linalg.norm(atac, axis=1, keepdims=True)
    for gamma in (1.0, 0.5, 0.25):
        compressed = atac / norm * norm.mean() * (norm / norm.mean()) ** gamma
        assert scale_rows(compressed, "auto")[1], gamma
    for side in ("rna", "met"):
        assert not scale_rows(np.load(data / "scgem" / f"{side}.npy"), "auto")[1], side
    assert not scale_rows(np.load(data / "snareseq" / "rna.npy"), "auto")[1]   # centred PCs


def _exact_scores(dense: np.ndarray, k: int, center: bool) -> np.ndarray:
    """float64 reference: full SVD, the same sign rule (largest-magnitude loading positive)."""
    x = dense - dense.mean(axis=0) if center else dense
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    return u[:, :k] * s[:k] * signs


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("storage", ["dense", "sparse-as-dense", "sparse"])
def test_truncated_svd_scores_equal_the_exact_svd(rng, center, storage):
    """Randomised subspace iteration gives the exact SVD's leading scores (PCA when centred, LSI
    when not), for dense input and for sparse input kept sparse or multiplied densely."""
    import scipy.sparse as sp

    from gwalign.preprocess.svd import truncated_svd_scores

    n, d, k = 600, 120, 8
    # Non-negative, sparse, with gaps between the leading singular values (else the components are
    # not defined): k positive rank-one blocks of strengths 60 … 8 on disjoint rows and columns,
    # plus sparse noise whose density (3% or 30%) picks the sparse or the dense product.
    dense = np.zeros((n, d))
    for i, strength in enumerate(np.geomspace(60, 8, k)):
        a, b = rng.uniform(0.5, 1.5, 50), rng.uniform(0.5, 1.5, 10)
        dense[50 * i:50 * (i + 1), 10 * i:10 * (i + 1)] = strength * np.outer(a / np.linalg.norm(a), b / np.linalg.norm(b))
    density = 0.3 if storage == "sparse-as-dense" else 0.03
    dense += np.where(rng.random((n, d)) < density, rng.uniform(0.0, 0.5, (n, d)), 0.0)
    matrix = dense if storage == "dense" else sp.csr_matrix(dense)
    scores = truncated_svd_scores(matrix, k, center=center, seed=3)
    reference = _exact_scores(dense, k, center)
    assert scores.shape == (n, k)
    # Subspace iteration's error shrinks as (σ_{k+11} / σ_k)^15: here the last component stands
    # 0.6 above a flat noise floor, which gives about 1e-4 of the largest score.
    assert np.abs(scores - reference).max() <= 1e-3 * np.abs(reference).max()
    assert np.abs(scores[:, :4] - reference[:, :4]).max() <= 1e-8 * np.abs(reference).max()
    assert np.array_equal(scores, truncated_svd_scores(matrix, k, center=center, seed=3))


@pytest.mark.parametrize("fits", [True, False])
def test_truncated_svd_scores_on_cuda_equal_the_cpu(monkeypatch, fits):
    """cuSPARSE products, and SciPy's for a matrix too large for the GPU's free memory (forced)."""
    import scipy.sparse as sp
    import torch

    import gwalign.preprocess.svd as decompose
    from gwalign.preprocess.svd import truncated_svd_scores

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not fits:
        monkeypatch.setattr(decompose, "_fits_on", lambda device, nbytes: False)
    rng = np.random.default_rng(1)
    dense = np.where(rng.random((800, 300)) < 0.04, rng.gamma(1.0, size=(800, 300)), 0.0)
    for center in (True, False):
        cpu = truncated_svd_scores(sp.csr_matrix(dense), 10, center=center, seed=0)
        gpu = truncated_svd_scores(sp.csr_matrix(dense), 10, center=center, seed=0, device=torch.device("cuda"))
        assert np.abs(cpu - gpu).max() <= 1e-6 * np.abs(cpu).max()


def test_knn_predict_is_scikit_learns_classifier(rng):
    """The label-transfer scores' classifier (float64 search on CUDA where there is one) predicts
    what scikit-learn's KNeighborsClassifier predicts, ties between labels included."""
    from sklearn.neighbors import KNeighborsClassifier

    from gwalign.metrics import knn_predict

    train, query = rng.normal(size=(400, 6)), rng.normal(size=(300, 6))
    labels = np.array(["b", "a", "c", "d"], dtype=object)[rng.integers(0, 4, 400)]
    for k in (4, 5):   # k = 4: two-two ties between labels are common
        expected = KNeighborsClassifier(n_neighbors=k).fit(train, labels).predict(query)
        assert np.array_equal(knn_predict(train, labels, query, k), expected)


def test_row_scaling_is_decided_once_for_the_pair(rng, few_features):
    from gwalign.preprocess.row_scaling import pair_size_factor, scale_pair, size_factor

    genes, proteins = few_features
    # On its own, each side would be decided differently: the test pair is the hard case.
    assert size_factor(genes)[0] and not size_factor(proteins)[0]
    for first, second in ((genes, proteins), (proteins, genes)):
        scale, reasons = pair_size_factor(first, second)
        assert scale and all(reason is not None for reason in reasons)
        out_first, out_second, scaled = scale_pair(first, second, "auto")
        assert scaled
        for out in (out_first, out_second):
            assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    # Neither side a size factor: both kept, as given.
    centred = rng.normal(size=(200, 25))
    kept = scale_pair(proteins, centred, "auto")
    assert not kept[2] and kept[0] is proteins and kept[1] is centred
    assert scale_pair(proteins, centred, "none")[0] is proteins
    assert np.allclose(np.linalg.norm(scale_pair(proteins, centred, "l2")[1], axis=1), 1.0)
