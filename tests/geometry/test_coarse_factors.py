"""The coarser graph's factors of the finalists' ranking: begun ahead (GPU runs) or built when asked."""

import gc
import os

import numpy as np
import pytest
import torch

import gwalign
from gwalign.geometry.build import CoarseFactors
from gwalign.datasets.synthetic import spiral_and_roll


@pytest.fixture(scope="module")
def points():
    xs, _, xt, _ = spiral_and_roll(300, 280, seed=3)
    return torch.as_tensor(xs, dtype=torch.float32), torch.as_tensor(xt, dtype=torch.float32)


@pytest.mark.parametrize("distance", ["precomputed", "landmark"])
def test_factors_begun_ahead_equal_those_built_when_asked(points, distance):
    config = gwalign.GWConfig(device="cpu", distance=distance, n_landmarks=40)
    rows = (np.arange(0, 300, 2), np.arange(0, 280, 2))
    built = [CoarseFactors(points, 20, config, torch.device("cpu"), torch.float32, {}, ahead=ahead).begin(*rows)()
             for ahead in (False, True)]
    for lazy, early in zip(*built):
        torch.testing.assert_close(lazy.phi, early.phi, rtol=0, atol=0)
        torch.testing.assert_close(lazy.lam, early.lam, rtol=0, atol=0)
    assert built[0][0].phi.shape[0] == 150


def test_a_search_begun_and_never_used_leaves_no_files(points, monkeypatch):
    from gwalign.geometry import shortest_paths
    from gwalign.threads import available_cores

    if available_cores() < 2:
        pytest.skip("the worker pool needs two cores")

    monkeypatch.setattr(shortest_paths, "PARALLEL_MIN_WORK", 1)    # through the pool's files, at this size
    folders = []
    real_mkdtemp = shortest_paths.tempfile.mkdtemp
    monkeypatch.setattr(shortest_paths.tempfile, "mkdtemp", lambda **kw: folders.append(real_mkdtemp(**kw)) or folders[-1])
    config = gwalign.GWConfig(device="cpu", distance="landmark", n_landmarks=40, threads=2)
    with gwalign.threads.limited_threads(2):
        finish = CoarseFactors(points, 20, config, torch.device("cpu"), torch.float32, {}, ahead=True).begin(None, None)
        assert folders and all(os.path.isdir(folder) for folder in folders)
        del finish
        gc.collect()
    assert not any(os.path.isdir(folder) for folder in folders)
