"""Anderson acceleration of a batch of fixed-point iterations ``g ← T(g)`` (Sinkhorn's column
potentials), vectorised over the batch.

Anderson (1965); for Sinkhorn, the map ``T`` is one row and one column update. Each problem keeps
its last ``memory`` images ``T(g_k)`` and residuals ``r_k = T(g_k) − g_k``; the next iterate is
the combination ``Σ w_k T(g_k)`` whose residual combination ``Σ w_k r_k`` (weights summing to one)
is smallest, found from a regularised ``memory × memory`` system per problem. The iteration is the
same fixed point as plain Sinkhorn; only the path to it is shorter (docs/how-it-works/engine.md).
"""

from __future__ import annotations

import copy
import torch

from gwalign import distributed

#: Tikhonov term of the least-squares system, relative to its largest diagonal entry: residuals
#: of nearby iterates are nearly collinear, and the weights must stay bounded.
REGULARISATION = 1e-10


class AndersonMixer:
    """Histories of a batch of S problems (vectors of length K) and their mixing.

    Parameters
    ----------
    n_batch, length
        Problems and the length of each one's vector.
    memory
        Iterates remembered per problem (at least 2 to mix).
    like
        A tensor whose dtype and device the histories take.
    """

    def __init__(self, n_batch: int, length: int, memory: int, like: torch.Tensor) -> None:
        self.memory = memory
        self.images = torch.zeros(n_batch, memory, length, dtype=like.dtype, device=like.device)
        self.residuals = torch.zeros_like(self.images)
        self.counts = [0] * n_batch          # valid entries of each problem's history (the last ones)

    def selected(self, index: torch.Tensor, rows: list[int]) -> "AndersonMixer":
        """A mixer of only these batch rows (``index`` holds ``rows`` on the histories' device);
        this one is left as it is."""
        kept = copy.copy(self)
        kept.images = self.images.index_select(0, index)
        kept.residuals = self.residuals.index_select(0, index)
        kept.counts = [self.counts[row] for row in rows]
        return kept

    def step(self, g: torch.Tensor, image: torch.Tensor, active: list[bool]) -> torch.Tensor:
        """The next iterate of every problem from its current ``g`` and ``image = T(g)`` (S×K):
        mixed for the problems that are ``active`` and remember two steps or more, ``image``
        itself for the others (whose history is cleared)."""
        self.images = torch.roll(self.images, -1, dims=1)
        self.residuals = torch.roll(self.residuals, -1, dims=1)
        self.images[:, -1] = image
        self.residuals[:, -1] = image - g
        self.counts = [min(count + 1, self.memory) if on else 0 for count, on in zip(self.counts, active)]
        if max(self.counts, default=0) < 2:
            return image
        weights = self._weights()
        mixed = torch.einsum("sm,smk->sk", weights.to(image.dtype), self.images)
        plain = _on_device([count < 2 for count in self.counts], image.device)[:, None]
        return torch.where(plain, image, mixed)

    def _weights(self) -> torch.Tensor:
        """S×memory weights summing to one over each problem's valid entries (zero elsewhere)."""
        m = self.memory
        valid = _on_device([[j >= m - count for j in range(m)] for count in self.counts], self.images.device)
        r = self.residuals.double() * valid[:, :, None]
        gram = r @ r.transpose(1, 2)
        scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(1e-300)
        eye = torch.eye(m, dtype=gram.dtype, device=gram.device)
        # Invalid entries get an identity row and a zero right-hand side: their weight is zero.
        gram = gram + eye * (REGULARISATION * scale[:, None, None]) + torch.diag_embed((~valid).double())
        # solve_ex: no check for a singular system, which would wait for the GPU at every iteration;
        # a problem whose weights are not finite steps plainly (all weight on its newest image).
        weights = torch.linalg.solve_ex(gram, valid.double())[0]
        weights = weights / weights.sum(dim=1, keepdim=True)
        newest = torch.zeros_like(weights)
        newest[:, -1] = 1.0
        weights = torch.where(torch.isfinite(weights).all(dim=1, keepdim=True), weights, newest)
        return _agreed(weights)


def _on_device(flags: list, device: torch.device) -> torch.Tensor:
    """Boolean flags as a tensor on ``device``, copied without waiting for the device's queue (a
    blocking copy to a GPU would wait for the Sinkhorn passes queued before it)."""
    return torch.tensor(flags, dtype=torch.bool).to(device, non_blocking=True)


def _agreed(weights: torch.Tensor) -> torch.Tensor:
    """In a distributed alignment, rank 0's weights on every rank (the ranks' iterates then stay
    identical whatever their linear algebra's rounding); else ``weights`` unchanged."""
    group = distributed.active()
    if group is not None:
        weights = weights.contiguous()
        group.share([weights])
    return weights
