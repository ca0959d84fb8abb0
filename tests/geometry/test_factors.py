"""Masses of a subsample that stands for every point (gwalign.geometry.factors.nearest_sample_mass)."""

import numpy as np
import torch

from gwalign.geometry.factors import factor_dense, nearest_sample_mass


def _line_factors(positions: np.ndarray):
    """Exact factors (full rank) of the distances between points on a line."""
    d = torch.as_tensor(np.abs(positions[:, None] - positions[None, :]), dtype=torch.float64)
    return factor_dense(d, len(positions))


def test_every_point_gives_its_mass_to_the_nearest_sampled_point():
    positions = np.array([0.0, 0.1, 0.2, 1.0, 1.1, 3.0, 3.05, 3.1, 3.2, 5.0])
    mass = torch.full((10,), 0.1, dtype=torch.float64)
    rows = np.array([1, 4, 6])                 # at 0.1, 1.1 and 3.05
    moved = nearest_sample_mass(_line_factors(positions), mass, rows)
    # 0.0, 0.1, 0.2 → 0.1; 1.0, 1.1 → 1.1; 3.0 … 3.2 and 5.0 → 3.05.
    assert torch.allclose(moved, torch.tensor([0.3, 0.2, 0.5], dtype=torch.float64))


def test_masses_are_carried_not_counted_and_sum_to_one():
    positions = np.array([0.0, 1.0, 2.0, 10.0])
    mass = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    moved = nearest_sample_mass(_line_factors(positions), mass, np.array([0, 3]), block_rows=3)
    assert torch.allclose(moved, torch.tensor([0.6, 0.4], dtype=torch.float64))
    assert abs(float(moved.sum()) - 1.0) < 1e-12


def test_a_sample_of_every_point_keeps_the_marginal():
    positions = np.linspace(0.0, 1.0, 7)
    mass = torch.arange(1.0, 8.0, dtype=torch.float64)
    moved = nearest_sample_mass(_line_factors(positions), mass, np.arange(7))
    assert torch.allclose(moved, mass / mass.sum())
