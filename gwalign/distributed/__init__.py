"""One alignment on several processes (GPUs or CPU cores) with ``torch.distributed``.

:mod:`gwalign.distributed.launch` joins the process group that torchrun or srun describe;
:mod:`gwalign.distributed.group` holds the collectives. Only the engine's streamed O(N·K) passes
are split (:mod:`gwalign.engine.ops`); every rank keeps the O(N + K) state, so every plan entry is
computed as in one process and the results are bitwise those of one process
(docs/how-it-works/distributed.md).
"""

from __future__ import annotations

from typing import Sequence

import torch

from gwalign.distributed.group import Group, activated, active, agree

__all__ = ["Group", "activated", "active", "agree", "share"]


def share(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite ``tensors`` with rank 0's while a distributed alignment runs (else nothing)."""
    group = active()
    if group is not None:
        group.share(tensors)
