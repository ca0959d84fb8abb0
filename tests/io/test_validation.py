"""Bad input: a ValueError naming the argument and the problem; callers' arrays untouched."""

import numpy as np
import pytest

import gwalign
from gwalign.datasets.synthetic import spiral_and_roll

CPU = gwalign.GWConfig(device="cpu", max_iter=3)


@pytest.fixture
def pair():
    xs, _, xt, _ = spiral_and_roll(60, 70, seed=0)
    return xs, xt


def with_nan(x):
    y = x.copy()
    y[3, 1] = np.nan
    return y


def with_inf(x):
    y = x.copy()
    y[5, 0] = np.inf
    return y


@pytest.mark.parametrize("bad, match", [
    (with_nan, "x_source contains NaN"),
    (with_inf, "x_source contains Inf"),
    (lambda x: x[:5], "fewer than k\\+1"),
    (lambda x: np.empty((0, 2)), "x_source is empty"),
    (lambda x: np.empty((10, 0)), "x_source is empty"),
])
def test_bad_source_matrix(pair, bad, match):
    xs, xt = pair
    with pytest.raises(ValueError, match=match):
        gwalign.align(bad(xs), xt, CPU)


@pytest.mark.parametrize("kwargs, match", [
    (dict(a=-np.ones(60) / 60), "a must be strictly positive"),
    (dict(a=np.ones(60)), "a must sum to 1"),
    (dict(b=np.ones(69) / 69), "b has length 69, expected 70"),
    (dict(linear_cost=np.zeros((60, 71))), "linear_cost must have shape \\(60, 70\\)"),
    (dict(joint_source=np.zeros((60, 2)), joint_target=np.zeros((70, 3))), "equal width"),
    (dict(joint_source=np.zeros((60, 2))), "given together"),
])
def test_bad_keyword_inputs(pair, kwargs, match):
    xs, xt = pair
    with pytest.raises(ValueError, match=match):
        gwalign.align(xs, xt, CPU, **kwargs)


@pytest.mark.parametrize("field, value, match", [
    ("epsilon", 0.0, "epsilon must be a finite number > 0"),
    ("epsilon", -1.0, "epsilon must be"),
    ("n_anchors", 0, "n_anchors must be an integer >= 1"),
    ("fgw_alpha", 1.5, "fgw_alpha must lie in \\[0, 1\\]"),
    ("fgw_alpha", -0.1, "fgw_alpha must lie"),
    ("rho", 0.0, "rho must be a finite number > 0"),
    ("k", 0, "k must be an integer >= 1"),
    ("distance", "euclid", "distance must be one of"),
    ("device", "tpu", "device must be"),
    ("continue_winner", "false", "continue_winner must be true or false"),
    ("one_sided_check", 1, "one_sided_check must be true or false"),
])
def test_bad_config(field, value, match):
    with pytest.raises(ValueError, match=match):
        gwalign.GWConfig(**{field: value})


def test_fused_needs_features(pair):
    xs, xt = pair
    with pytest.raises(ValueError, match="fgw_alpha > 0 needs"):
        gwalign.align(xs, xt, CPU.replace(fgw_alpha=0.3))


def test_dense_linear_cost_refused_for_large_problems(pair):
    xs, xt = pair
    with pytest.raises(ValueError, match="above dense_limit"):
        gwalign.align(xs, xt, CPU.replace(fgw_alpha=0.3, dense_limit=100), linear_cost=np.zeros((60, 70)))


def test_cuda_asked_without_gpu(pair):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    xs, xt = pair
    with pytest.raises(ValueError, match="no CUDA device"):
        gwalign.align(xs, xt, CPU.replace(device="cuda"))


def test_inputs_are_not_modified(pair):
    xs, xt = pair
    xs_copy, xt_copy = xs.copy(), xt.copy()
    a = np.full(60, 1 / 60)
    a_copy = a.copy()
    gwalign.align(xs, xt, CPU, a=a)
    assert np.array_equal(xs, xs_copy) and np.array_equal(xt, xt_copy) and np.array_equal(a, a_copy)


def test_unknown_config_key_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("epsilon = 0.01\nepsilonn = 3\n")
    with pytest.raises(ValueError, match="unknown config key 'epsilonn'"):
        gwalign.GWConfig.from_toml(path)


def test_presets_load_and_the_default_preset_is_the_default():
    """configs/default.toml writes the defaults out: it must stay equal to RunConfig()."""
    from pathlib import Path

    from gwalign.config import RunConfig, load_toml

    configs = Path(__file__).resolve().parents[2] / "configs"
    presets = {path.name: RunConfig.from_flat(load_toml(path), str(path)) for path in configs.glob("*.toml")}
    assert presets["default.toml"] == RunConfig()
    assert presets["large.toml"].engine.distances.n_landmarks < RunConfig().engine.distances.n_landmarks
    assert len(presets) >= 3


@pytest.mark.parametrize("stage, module, target", [("graph", "gwalign.geometry.build", "knn_graph"),
                                                   ("distances", "gwalign.align_arrays", "distance_provider"),
                                                   ("solve", "gwalign.align_arrays", "solve_sampled_gw")])
def test_cuda_out_of_memory_names_stage_and_size(pair, monkeypatch, stage, module, target):
    import importlib

    import torch

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.25 GiB. GPU 0 has a total "
                                     "capacity of 79.19 GiB of which 1.02 GiB is free.")

    monkeypatch.setattr(importlib.import_module(module), target, exhausted)
    xs, xt = pair
    with pytest.raises(gwalign.GPUMemoryError) as info:
        gwalign.align(xs, xt, gwalign.GWConfig(device="cpu", gradient="sampled", max_iter=2))
    message = str(info.value)
    assert f"stage '{stage}'" in message and "3.25 GiB" in message and "\n" not in message
    assert f"{len(xs):,} × {len(xt):,}" in message


@pytest.mark.parametrize("sizes, expected", [((600, 725), 15), ((1919, 1985), 15), ((1047, 1047), 15),
                                             ((20000, 25000), 15), ((10**6, 10**6), 15), ((12, 900), 11),
                                             ((6, 900), 5)])
def test_automatic_knn_k_is_15_below_the_smaller_side(sizes, expected):
    from gwalign.config import GWConfig

    assert GWConfig().knn_k(*sizes) == expected
    assert GWConfig(k=7).knn_k(*sizes) == 7
