"""Low-rank factorisations ``D ≈ Φ diag(λ) Φᵀ`` of symmetric distance matrices.

A graph-geodesic distance matrix is close to low rank, so the engine keeps it as an N×r factor
and r weights: a truncated eigendecomposition of an exact matrix, a randomized range finder,
or Nyström factors from landmark rows (Williams & Seeger 2001).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional
import numpy as np
import torch
from gwalign.preprocess.svd import randomized_range


@dataclass(frozen=True)
class LowRankDistances:
    """A symmetric distance matrix kept as ``D ≈ Φ diag(λ) Φᵀ``.

    Attributes
    ----------
    phi
        N×r factor.
    lam
        The r weights (eigenvalues; distance matrices are indefinite, so signs vary).
    relative_error
        ``‖D − Φ Λ Φᵀ‖_F / ‖D‖_F`` of the truncation.
    """

    phi: torch.Tensor
    lam: torch.Tensor
    relative_error: float

    def quad(self, w: torch.Tensor) -> float:
        """``wᵀ D w``."""
        x = self.phi.T @ w
        return float((self.lam * x * x).sum())

    def squared_apply(self, w: torch.Tensor) -> torch.Tensor:
        """``(D ∘ D) w`` in O(N r²): row i is ``φ_i Λ (Φᵀ diag(w) Φ) Λ φ_iᵀ``. ``w`` is a
        length-N vector or an S×N batch of them."""
        weighted = self.phi * self.lam
        gram = (self.phi * w[..., None]).transpose(-1, -2) @ self.phi
        return ((weighted @ gram) * weighted).sum(dim=-1)


def product_plan_objective(fs: LowRankDistances, ft: LowRankDistances, a: torch.Tensor, b: torch.Tensor) -> float:
    """GW objective (square loss) of the product plan ``a bᵀ`` on factored distances:
    ``Σ a a D_s² + Σ b b D_t² − 2 (aᵀ D_s a)(bᵀ D_t b)``, in O((N + K) r²). The solvers divide
    their costs by it; it is also the objective of an alignment that aligns nothing."""
    return float(a @ fs.squared_apply(a) + b @ ft.squared_apply(b)) - 2.0 * fs.quad(a) * ft.quad(b)


#: Points from which :func:`factor_dense` finds its eigenpairs by subspace iteration instead of a
#: full eigendecomposition. The iteration's cost grows with N² and the full one's with N³; on 2 CPU
#: cores they cross near here (SNARE-seq, 1,047 points: 0.12–0.14 against 0.19 s; PBMC, 1,919 and
#: 1,985: 0.46–0.61 against 1.0–1.4 s; scNMT-seq, 597 and 725: slower), ``python
#: benchmarks/factorisation.py``, docs/how-it-works/distances.md.
SUBSPACE_MIN_POINTS = 1000

#: Subspace iteration stops when every kept eigenpair's residual ``‖Dφ − λφ‖`` is below this,
#: relative to the largest |λ|: its factors then agree with the full eigendecomposition's to
#: about 1e-7 per entry, the precision of the float32 factors the engine uses.
SUBSPACE_TOLERANCE = 1e-8

#: Iterations after which subspace iteration gives way to the full eigendecomposition.
SUBSPACE_MAX_ITERATIONS = 60

#: Columns the iterated subspace holds beyond the rank: the kept eigenpairs converge at the rate
#: |λ_{rank+oversample}| / |λ_rank| per iteration.
SUBSPACE_OVERSAMPLE = 32


def factor_dense(matrix: torch.Tensor, rank: int, seed: int = 0) -> LowRankDistances:
    """Truncated eigendecomposition of a symmetric N×N matrix, keeping the ``rank`` largest |λ|.

    Computed in float64 (the factors are then cast back to the matrix's dtype): by a full
    eigendecomposition below :data:`SUBSPACE_MIN_POINTS` points, else by subspace iteration
    (seeded by ``seed``) to :data:`SUBSPACE_TOLERANCE`.
    """
    sym = matrix.double()
    sym = 0.5 * (sym + sym.T)
    found = iterated_eigenpairs(sym, rank, seed) if sym.shape[0] >= SUBSPACE_MIN_POINTS else None
    if found is None:
        values, vectors = torch.linalg.eigh(sym)
        order = torch.argsort(values.abs(), descending=True)[:rank]
        kept, vectors = values[order], vectors[:, order]
    else:
        kept, vectors, _ = found
    total = float((sym * sym).sum())   # the sum of all λ²
    error = math.sqrt(max(total - float((kept * kept).sum()), 0.0) / total) if total > 0 else 0.0
    return LowRankDistances(phi=vectors.to(matrix.dtype).contiguous(), lam=kept.to(matrix.dtype),
                            relative_error=error)


def iterated_eigenpairs(sym: torch.Tensor, rank: int, seed: int
                         ) -> Optional[tuple[torch.Tensor, torch.Tensor, int]]:
    """The ``rank`` largest-|λ| eigenvalues and eigenvectors of ``sym`` by subspace iteration with
    Rayleigh-Ritz extraction (Saad, "Numerical methods for large eigenvalue problems", 5.1), and
    the iterations taken; ``None`` if their residuals have not met :data:`SUBSPACE_TOLERANCE`
    after :data:`SUBSPACE_MAX_ITERATIONS` products."""
    n = sym.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    test = torch.randn(n, min(n, rank + SUBSPACE_OVERSAMPLE), generator=gen, dtype=torch.float64)
    basis = torch.linalg.qr(sym @ test.to(sym.device)).Q
    for iteration in range(1, SUBSPACE_MAX_ITERATIONS + 1):
        image = sym @ basis
        values, small = torch.linalg.eigh(basis.T @ image)
        order = torch.argsort(values.abs(), descending=True)[:rank]
        values, small = values[order], small[:, order]
        vectors = basis @ small
        # D φ = image @ small: the residuals cost no further product with D.
        residual = (image @ small - vectors * values).norm(dim=0).max()
        if residual <= SUBSPACE_TOLERANCE * values.abs().max():
            return values, vectors, iteration
        basis = torch.linalg.qr(image).Q
    return None


def factor_randomized(matrix: torch.Tensor, rank: int, oversample: int = 32, power: int = 3,
                      seed: int = 0) -> LowRankDistances:
    """The ``rank`` largest-|λ| eigenpairs of a symmetric N×N matrix by a randomized range finder
    (Halko, Martinsson, Tropp 2011, Algorithms 4.4 and 5.3): ``power`` subspace iterations on
    ``rank + oversample`` Gaussian vectors, then the eigendecomposition of the projected matrix.
    A few products with the matrix instead of :func:`factor_dense`'s full eigendecomposition
    (N = 4000 on 2 CPU cores: 12 s); distance matrices' spectra decay fast, so the kept
    components match the exact ones closely (``tests/engine/test_lowrank.py``)."""
    sym = matrix.double()
    sym = 0.5 * (sym + sym.T)
    n = sym.shape[0]
    width = min(n, rank + oversample)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    test = torch.randn(n, width, generator=gen, dtype=torch.float64).to(sym.device)
    basis = randomized_range(sym.__matmul__, sym.__matmul__, test, 1 + power)
    values, small = torch.linalg.eigh(basis.T @ sym @ basis)
    order = torch.argsort(values.abs(), descending=True)[:rank]
    kept = values[order]
    total = float((sym * sym).sum())
    error = math.sqrt(max(total - float((kept * kept).sum()), 0.0) / total) if total > 0 else 0.0
    return LowRankDistances(phi=(basis @ small[:, order]).to(matrix.dtype).contiguous(),
                            lam=kept.to(matrix.dtype), relative_error=error)


def factor_nystrom(table: np.ndarray, landmarks: np.ndarray, scale: float, rank: int,
                   device: torch.device, dtype: torch.dtype) -> LowRankDistances:
    """Nyström factorisation of a distance matrix from its landmark rows, in O(N·L²).

    With ``C = D[:, L]`` (from the L×N ``table``) and ``W = D[L, L] = Q Λ Qᵀ`` truncated to the
    ``rank`` largest |λ|, ``D ≈ C Q Λ⁻¹ Qᵀ Cᵀ`` (Williams & Seeger 2001; for indefinite
    matrices the truncation drops the near-zero eigenvalues that make ``W⁻¹`` unstable). A QR
    of ``C Q Λ⁻¹`` and an r×r eigendecomposition turn it into ``Φ diag(λ) Φᵀ`` with orthonormal
    ``Φ``, the form :class:`~gwalign.engine.lowrank.LowRankGW` expects. Distances are divided by
    ``scale`` (the provider's normalisation). ``relative_error`` is measured on the landmark rows.
    Computed in float64 on ``device``: on the host it takes a noticeable share of a GPU run.
    """
    # float32 table to the device first (half the transfer), then float64 there.
    c = torch.as_tensor(np.asarray(table, dtype=np.float32).T).to(device).double() / scale   # N×L
    landmarks = torch.as_tensor(np.asarray(landmarks), device=device)
    w = c[landmarks]                                                           # L×L
    w = 0.5 * (w + w.T)
    values, vectors = torch.linalg.eigh(w)
    order = torch.argsort(values.abs(), descending=True)[:min(rank, len(values))]
    values, vectors = values[order], vectors[:, order]
    basis, upper = torch.linalg.qr(c @ (vectors / values))                     # N×r, r×r
    middle = upper @ torch.diag(values) @ upper.T
    lam, rotation = torch.linalg.eigh(0.5 * (middle + middle.T))
    phi = basis @ rotation
    keep = torch.argsort(lam.abs(), descending=True)
    phi, lam = phi[:, keep], lam[keep]
    approx = (phi[landmarks] * lam) @ phi.T                                    # L×N
    error = float(torch.linalg.norm(approx - c.T) / torch.linalg.norm(c.T))
    return LowRankDistances(phi=phi.to(device=device, dtype=dtype).contiguous(),
                            lam=lam.to(device=device, dtype=dtype), relative_error=error)


def restrict_rows(factors: LowRankDistances, rows: np.ndarray) -> LowRankDistances:
    """The factorisation restricted to some points: ``D[rows][:, rows] ≈ Φ_rows Λ Φ_rowsᵀ``."""
    index = torch.as_tensor(rows, device=factors.phi.device)
    return LowRankDistances(phi=factors.phi[index].contiguous(), lam=factors.lam,
                            relative_error=factors.relative_error)


def nearest_sample_mass(factors: LowRankDistances, mass: torch.Tensor, rows: np.ndarray,
                        block_rows: int = 4096) -> torch.Tensor:
    """A marginal on the sampled points ``rows`` that stands for every point: each point's mass
    goes to its nearest sampled point under ``D ≈ Φ Λ Φᵀ`` (a sampled point to itself), and the
    result sums to one.

    Parameters
    ----------
    factors
        Factored distances of every point (N×r).
    mass
        Every point's mass (length N).
    rows
        Indices of the sampled points.
    block_rows
        Points compared with the sample at once (one block × sample matrix at a time).

    Returns
    -------
    torch.Tensor
        Length ``len(rows)``: the sampled points' masses.
    """
    index = torch.as_tensor(rows, device=mass.device)
    if len(rows) == mass.shape[0]:
        return mass[index] / mass.sum()
    sampled = (factors.phi[index] * factors.lam).T                      # r × S
    nearest = torch.cat([torch.argmin(factors.phi[i0:i0 + block_rows] @ sampled, dim=1)
                         for i0 in range(0, mass.shape[0], block_rows)])
    # Approximate factors need not put a point's own distance lowest: a sampled point keeps its own mass.
    nearest[index] = torch.arange(len(rows), device=mass.device)
    moved = torch.zeros(len(rows), dtype=mass.dtype, device=mass.device).index_add_(0, nearest, mass)
    return moved / moved.sum()

