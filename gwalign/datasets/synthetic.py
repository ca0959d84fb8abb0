"""Synthetic pairs with a known correspondence, for tests and benchmarks."""

from __future__ import annotations

import numpy as np


def spiral_and_roll(n_source: int, n_target: int, seed: int = 0, noise: float = 0.05,
                    width: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 2-D spiral and a 3-D Swiss roll sharing the curve parameter ``t`` in [0, 1].

    Both are parametrised by the angle ``θ = 1.5π(1 + 2t)``; the roll adds a uniform height in
    ``[0, width]``. GW should match them with ``t_source ≈ t_target``.

    Returns
    -------
    (x_source N×2, t_source, x_target K×3, t_target)
    """
    rng = np.random.default_rng(seed)
    t_s = np.sort(rng.uniform(0.0, 1.0, n_source))
    theta_s = 1.5 * np.pi * (1.0 + 2.0 * t_s)
    x_s = np.c_[theta_s * np.cos(theta_s), theta_s * np.sin(theta_s)]
    x_s = x_s + noise * rng.normal(size=x_s.shape)
    t_t = np.sort(rng.uniform(0.0, 1.0, n_target))
    theta_t = 1.5 * np.pi * (1.0 + 2.0 * t_t)
    x_t = np.c_[theta_t * np.cos(theta_t), width * rng.uniform(size=n_target), theta_t * np.sin(theta_t)]
    return x_s, t_s, x_t, t_t


def helix_and_s_curve(n_source: int, n_target: int, seed: int = 0, noise: float = 0.02,
                      width: float = 2.0, dims: int = 8
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A helix in ``dims`` dimensions and a 3-D S-curve sharing the curve parameter ``t`` in [0, 1].

    The helix makes two turns around a rising axis and is rotated at random into ``dims``
    dimensions; the S-curve (two half circles, as in scikit-learn's ``make_s_curve``) adds a uniform
    height in ``[0, width]``. Both move at constant speed in ``t``, so their geodesic distances along
    ``t`` are proportional and GW should match them with ``t_source ≈ t_target`` (or its mirror).

    Returns
    -------
    (x_source N×dims, t_source, x_target K×3, t_target)
    """
    rng = np.random.default_rng(seed)
    t_s = np.sort(rng.uniform(0.0, 1.0, n_source))
    angle = 4.0 * np.pi * t_s
    helix = np.c_[np.cos(angle), np.sin(angle), 3.0 * t_s]
    rotation, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    x_s = helix @ rotation[:3] + noise * rng.normal(size=(n_source, dims))
    t_t = np.sort(rng.uniform(0.0, 1.0, n_target))
    theta = 3.0 * np.pi * (t_t - 0.5)
    x_t = np.c_[np.sin(theta), width * rng.uniform(size=n_target), np.sign(theta) * (np.cos(theta) - 1.0)]
    return x_s, t_s, x_t, t_t


def blobs_with_extra(seed: int = 0, per_blob: int = 150, extra: int = 60
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An unbalanced problem: three 2-D blobs on a triangle, and the same points (in 3-D) plus
    a far fourth blob that has no counterpart in the source.

    Returns
    -------
    tuple of numpy.ndarray
        ``x_source`` (3·per_blob × 2), its blob labels, ``x_target`` (3·per_blob + extra × 3)
        and its blob labels (3 = the extra blob). The shared points have identical geodesics.
    """
    gen = np.random.default_rng(seed)

    def blob(centre: list[float], n: int) -> np.ndarray:
        return np.asarray(centre, dtype=float) + gen.normal(size=(n, len(centre)))

    xs = np.concatenate([blob([0, 0], per_blob), blob([12, 0], per_blob), blob([6, 10], per_blob)])
    xt = np.concatenate([np.c_[xs, np.zeros(len(xs))], blob([30, 20, 0], extra)])
    labels_s = np.repeat(np.arange(3), per_blob)
    return xs, labels_s, xt, np.concatenate([labels_s, np.full(extra, 3)])
