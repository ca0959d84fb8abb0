"""Align a synthetic pair with ``gwalign.align`` (low-rank, then sampled GW), alone or as one rank
of a torchrun/srun launch, and save what rank 0 gets (potentials, objective, history, top-k coupling) with ``torch.save``.

    python tests/distributed/align_script.py OUT.pt [N K] [--exit-rank R --exit-after C [--hang]]

``--exit-rank R --exit-after C``: rank R ends its process abruptly (``os._exit``) at its C-th
collective (with ``--hang``: stops answering), to check that the other ranks stop with a clear
error instead of waiting forever.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from gwalign import GWConfig, align
from gwalign.align_arrays import align_call
from gwalign.datasets.synthetic import spiral_and_roll
from gwalign.distributed.group import Group
from gwalign.distributed.launch import launched, serve
from gwalign.errors import DistributedError


def _stop_at(rank: int, count: int, hang: bool = False) -> None:
    """Make ``rank`` exit abruptly (or, with ``hang``, stop answering) when it enters its
    ``count``-th collective."""
    original = Group.collective
    seen = [0]

    def collective(self, name, run):
        if self.rank == rank:
            seen[0] += 1
            if seen[0] == count:
                if hang:
                    time.sleep(3600)
                os._exit(3)
        return original(self, name, run)

    Group.collective = collective


def configs() -> dict[str, GWConfig]:
    """Both solvers, briefly. Tiles of 256 × 256: the row and the column passes of a 1000 × 800 plan
    both have several blocks to split (unevenly over three ranks). The low-rank run's one-sided
    check probes a 600-cell subsample and carries the masses to every cell."""
    options = dict(device="cpu", threads=1, block_rows=256, block_cols=256)
    return {"lowrank": GWConfig(**options, n_starts=3, max_iter=8, probe_points=600),
            "sampled": GWConfig(**options, gradient="sampled", n_starts=1, max_iter=6)}


def saved(alignment) -> dict:
    coupling = alignment.topk(5)
    relaxed = alignment.relaxed_mass()
    return {"p": alignment.plan.p, "q": alignment.plan.q, "objective": alignment.gw_objective,
            "relaxed": None if relaxed is None else [torch.as_tensor(side) for side in relaxed],
            "history": alignment.history, "topk_data": torch.as_tensor(coupling.data),
            "topk_indices": torch.as_tensor(coupling.indices), "world_size": alignment.world_size,
            "backend": alignment.backend, "collectives": alignment.timings.get("collectives")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 800])
    parser.add_argument("--exit-rank", type=int)
    parser.add_argument("--exit-after", type=int, default=20)
    parser.add_argument("--hang", action="store_true", help="the rank stops answering instead of exiting")
    args = parser.parse_args()
    if args.exit_rank is not None:
        _stop_at(args.exit_rank, args.exit_after, args.hang)
    xs, _, xt, _ = spiral_and_roll(*args.sizes, seed=0)
    try:
        with launched("cpu") as group:
            if group is not None and group.rank > 0:
                serve(group, lambda call: align_call(call, group))
                return 0
            results = {name: saved(align(xs, xt, config)) for name, config in configs().items()}
    except DistributedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    torch.save(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
