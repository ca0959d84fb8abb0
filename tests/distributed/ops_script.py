"""Every streamed pass of :mod:`gwalign.engine.ops`, on this process and split over the ranks of
a torchrun launch: each rank checks that the split results are bitwise its own, and exits 1 if not.

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


def passes() -> dict[str, torch.Tensor]:
    """One of every pass over a 700 × 500 plan in 64 × 128 tiles (several row and column blocks)."""
    gen = torch.Generator().manual_seed(0)
    u, v = 0.3 * torch.randn(700, 8, generator=gen), 0.3 * torch.randn(500, 8, generator=gen)
    p, q = 0.1 * torch.randn(700, generator=gen), 0.1 * torch.randn(500, generator=gen)
    plan = FactoredPlan(u=u, v=v, p=p, q=q, eps=0.5, block_rows=64, block_cols=128)
    cu, cv = torch.randn(700, 5, generator=gen), torch.randn(500, 5, generator=gen)
    batch = 0.3 * torch.randn(3, 500, 8, generator=gen)
    values, indices = ops.topk_rows(plan, 3)
    return {"row_lse": ops.row_lse(plan), "col_mass": ops.col_mass(plan),
            "apply": ops.apply(plan, cv), "apply_t": ops.apply_t(plan, cu[:, 0]),
            "cost": torch.tensor(ops.transport_cost(plan)), "cost_of": torch.tensor(ops.transport_cost(plan, cu, cv)),
            "topk_values": values, "topk_indices": indices,
            "batched_lse": ops.lse_rows(u, batch, q.expand(3, -1), 0.5, None, 64, 128)}


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
