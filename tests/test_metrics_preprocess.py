"""Row scaling of representations and the ground-truth metrics."""

import numpy as np
import pytest

from gwalign.metrics import foscttm, label_transfer_accuracy
from gwalign.preprocess import mean_direction_cosine, scale_rows


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


def test_foscttm_perfect_and_random(rng):
    x = rng.normal(size=(200, 5))
    assert foscttm(x, x) == 0.0
    assert foscttm(x, rng.normal(size=(200, 5))) == pytest.approx(0.5, abs=0.06)


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
