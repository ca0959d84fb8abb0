"""Every streamed pass of :mod:`gwalign.engine.ops`, and the GPU kNN search, on this process and
split over the ranks of a torchrun launch: each rank checks that the split results are bitwise its
own, and exits 1 if not.

    torchrun --standalone --nproc-per-node 2 tests/distributed/ops_script.py

With ``GWALIGN_TRITON=1 TRITON_INTERPRET=1`` the Triton kernels run (interpreted) instead of
the PyTorch reference.
"""

from __future__ import annotations

import sys

import torch

from gwalign.distributed import activated
from gwalign.distributed.launch import launched, serve
from gwalign.engine import ops
from gwalign.engine.plan import FactoredPlan
from gwalign.geometry.knn import blocked_topk


def passes() -> dict[str, torch.Tensor]:
    """One of every pass over a 600 × 300 plan in 64 × 128 tiles: both passes have several row
    blocks (of 64 for the reference, of 256 for the kernels) to split."""
    gen = torch.Generator().manual_seed(0)
    u, v = 0.3 * torch.randn(600, 8, generator=gen), 0.3 * torch.randn(300, 8, generator=gen)
    p, q = 0.1 * torch.randn(600, generator=gen), 0.1 * torch.randn(300, generator=gen)
    plan = FactoredPlan(u=u, v=v, p=p, q=q, eps=0.5, block_rows=64, block_cols=128)
    cu, cv = torch.randn(600, 5, generator=gen), torch.randn(300, 5, generator=gen)
    batch = 0.3 * torch.randn(3, 300, 8, generator=gen)
    values, indices = ops.topk_rows(plan, 3)
    distances, neighbours = blocked_topk(u, u, 5, 64)
    return {"row_lse": ops.row_lse(plan), "col_mass": ops.col_mass(plan),
            "apply": ops.apply(plan, cv), "apply_t": ops.apply_t(plan, cu[:, 0]),
            "cost": torch.tensor(ops.transport_cost(plan)), "cost_of": torch.tensor(ops.transport_cost(plan, cu, cv)),
            "topk_values": values, "topk_indices": indices,
            "batched_lse": ops.lse_rows(u, batch, q.expand(3, -1), 0.5, None, 64, 128),
            "knn_distances": torch.as_tensor(distances), "knn_indices": torch.as_tensor(neighbours)}


def main() -> int:
    with launched("cpu") as group:
        alone = passes()
        with activated(group):
            split = passes()
        wrong = [name for name in alone if not torch.equal(alone[name], split[name])]
        seconds = group.collective_seconds
        if group.rank > 0:
            serve(group, lambda call: None)   # until rank 0 leaves launched() and says it is done
    if wrong or seconds == 0.0:
        print(f"rank {group.rank}: differ: {wrong}, seconds in collectives: {seconds}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
