"""Truncated SVD / PCA of a cells × features matrix by randomised range finding, in torch on the
run's device: the RNA PCA and the ATAC LSI of ``gwalign run``.

Halko, Martinsson & Tropp (2011), "Finding structure with randomness", Algorithm 4.4 (subspace
iteration with re-orthonormalisation). Centring for PCA is implicit (``X − 1μᵀ`` is never formed),
so sparse counts stay sparse. scanpy's ARPACK PCA and scikit-learn's TruncatedSVD run their
products on one CPU core, several times slower at atlas size (docs/how-it-works/representations.md).
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional
import numpy as np
import scipy.sparse as sp
import torch


#: Extra random directions beyond the components asked for, and subspace iterations (those of
#: scikit-learn's randomized_svd). A component's error shrinks as (σ_{k+11} / σ_k)^15: one standing
#: 0.6 above a flat noise floor agrees with an exact SVD to about 1e-4 of the largest score, the
#: strong ones to round-off (tests/preprocess/test_metrics_preprocess.py).
OVERSAMPLE = 10


SUBSPACE_ITERATIONS = 7


#: A sparse matrix at least this dense (stored entries / all entries) is multiplied as a dense one
#: when that fits in :data:`DENSE_MAX_BYTES`: on 2 CPU cores both cost about the same at 10% filled,
#: and dense is 6× faster at 58% (a log-normalised HVG matrix of the example pair, 50,000 cells).
DENSE_FROM = 0.1


DENSE_MAX_BYTES = 2 * 2**30


class _Operator:
    """``X`` (optionally centred) and its transpose as products with dense blocks on ``device``.

    Sparse products: cuSPARSE (torch CSR, both orientations stored) on CUDA; SciPy on the CPU,
    where torch's CSR product with the transpose (few rows, many columns) is 3–4× slower than
    SciPy's (50,000 cells).
    """

    def __init__(self, matrix, center: bool, device: torch.device):
        self.scipy = None
        n_cells, n_features = matrix.shape
        if sp.issparse(matrix):
            csr = sp.csr_matrix(matrix, dtype=np.float64)
            mean = np.asarray(csr.mean(axis=0)).ravel()
            dense_enough = csr.nnz >= DENSE_FROM * n_cells * n_features
            if dense_enough and 8 * n_cells * n_features <= DENSE_MAX_BYTES:
                self.x = torch.as_tensor(csr.toarray(), device=device)
                self.xt = self.x.T
            elif device.type == "cpu" or not _fits_on(device, 2 * (csr.nnz * 16 + (max(csr.shape) + 1) * 8)):
                # On CUDA both orientations are stored (int64 indices): a matrix that would take over
                # half the free GPU memory is multiplied by SciPy instead, blocks crossing over.
                self.scipy = csr
            else:
                with warnings.catch_warnings():
                    # torch marks CSR tensors as beta and warns on construction.
                    warnings.simplefilter("ignore", UserWarning)
                    self.x = _torch_csr(csr, device)
                    self.xt = _torch_csr(csr.T.tocsr(), device)
        else:
            dense = np.asarray(matrix, dtype=np.float64)
            mean = dense.mean(axis=0)
            self.x = torch.as_tensor(dense, device=device)
            self.xt = self.x.T
        self.mean = torch.as_tensor(mean, device=device) if center else None

    def _product(self, block: torch.Tensor, transposed: bool) -> torch.Tensor:
        if self.scipy is not None:
            x = self.scipy.T if transposed else self.scipy
            return torch.from_numpy(np.ascontiguousarray(x @ block.cpu().numpy())).to(block.device)
        return (self.xt if transposed else self.x) @ block

    def apply(self, block: torch.Tensor) -> torch.Tensor:
        """``(X − 1μᵀ) B``."""
        out = self._product(block, transposed=False)
        return out if self.mean is None else out - (self.mean @ block)[None, :]

    def apply_t(self, block: torch.Tensor) -> torch.Tensor:
        """``(X − 1μᵀ)ᵀ B``."""
        out = self._product(block, transposed=True)
        return out if self.mean is None else out - self.mean[:, None] * block.sum(0)[None, :]


def _fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` take at most half of the CUDA device's free memory."""
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= free // 2


def _torch_csr(csr: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    return torch.sparse_csr_tensor(torch.from_numpy(csr.indptr.astype(np.int64)),
                                   torch.from_numpy(csr.indices.astype(np.int64)),
                                   torch.from_numpy(csr.data), size=csr.shape, dtype=torch.float64).to(device)


def randomized_range(apply: Callable[[torch.Tensor], torch.Tensor], apply_t: Callable[[torch.Tensor], torch.Tensor],
                     test: torch.Tensor, n_products: int) -> torch.Tensor:
    """An orthonormal basis of the range of ``A`` by subspace iteration (Halko, Martinsson & Tropp
    2011, Algorithm 4.4): ``Q = qr(A · test)``, then products with ``Aᵀ`` and ``A`` in turn, each
    re-orthonormalised, ``n_products`` products in all (odd, so the basis ends in ``A``'s range;
    for a symmetric ``A`` pass the same product twice and any count).

    Parameters
    ----------
    apply, apply_t
        ``B ↦ A B`` and ``B ↦ Aᵀ B``.
    test
        The random test matrix (columns: the basis width).
    n_products
        Products with ``A`` or ``Aᵀ``, the first included.
    """
    basis = torch.linalg.qr(apply(test)).Q
    for product in range(1, n_products):
        basis = torch.linalg.qr(apply_t(basis) if product % 2 else apply(basis)).Q
    return basis


def truncated_svd_scores(matrix, n_components: int, *, center: bool, seed: int,
                         device: Optional[torch.device] = None) -> np.ndarray:
    """The cells' coordinates on the leading singular directions, ``U_k S_k`` (PCA scores when
    ``center``), as float64 NumPy.

    Parameters
    ----------
    matrix
        Cells × features, dense or SciPy sparse (kept sparse; centring is implicit).
    n_components
        Components kept (at most ``min(matrix.shape) - 1``).
    center
        Subtract the feature means first (PCA); ``False`` for LSI.
    seed
        Seed of the random test matrix (drawn on the CPU, so every device gets the same one).
    device
        Where the products run (default CPU).

    Each direction's sign is fixed so that its largest-magnitude feature loading is positive, so
    results do not depend on the device's QR and SVD routines.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    n_cells, n_features = matrix.shape
    k = int(min(n_components, min(n_cells, n_features) - 1))
    if k < 1:
        raise ValueError(f"need at least 2 cells and 2 features for an SVD, got {matrix.shape}")
    op = _Operator(matrix, center, device)
    width = min(k + OVERSAMPLE, n_cells, n_features)
    gen = torch.Generator().manual_seed(int(seed))
    test = torch.randn(n_features, width, generator=gen, dtype=torch.float64).to(device)
    basis = randomized_range(op.apply, op.apply_t, test, 1 + 2 * SUBSPACE_ITERATIONS)   # n_cells × width
    small = op.apply_t(basis).T                                    # width × n_features: Qᵀ X
    u_small, singular, vt = torch.linalg.svd(small, full_matrices=False)
    u_small, singular, vt = u_small[:, :k], singular[:k], vt[:k]
    signs = torch.sign(vt.gather(1, vt.abs().argmax(dim=1, keepdim=True))).squeeze(1)
    signs[signs == 0] = 1.0
    scores = (basis @ u_small) * (singular * signs)[None, :]
    return scores.cpu().numpy()
