"""The process group of a distributed alignment: who this rank is, and the collectives it uses.

A :class:`Group` wraps ``torch.distributed``'s default process group (NCCL between GPUs, gloo
between CPU processes) with the few collectives the engine needs: gather row shards in rank
order, agree on host-side numbers (rank 0's values win), and broadcast Python objects. Every
collective is timed (``collective_seconds``) and turns a failure (a rank that exited, or did not
answer within ``timeout`` seconds) into one :class:`~gwalign.errors.DistributedError`.

While :func:`activated` holds a group, :mod:`gwalign.engine.ops` splits its streamed passes
over the ranks (:func:`active`); outside it, and in a single process, every pass runs locally.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch

from gwalign.errors import DistributedError

#: Seconds a collective may wait for the other ranks before every rank stops with an error.
DEFAULT_TIMEOUT = 600.0

#: Plan entries (rows × columns × problems) below which a streamed pass is not split: every rank
#: computes it whole (identical results, no collective), because gathering costs more than it saves.
DEFAULT_MIN_ENTRIES = 1 << 26

Rows = Union[torch.Tensor, tuple[torch.Tensor, ...]]


@dataclass
class Group:
    """This rank's place in a distributed alignment.

    Attributes
    ----------
    rank, world_size, local_rank
        From the launcher's environment (torchrun or srun).
    backend
        ``nccl`` or ``gloo``.
    device
        Where this rank computes (``cuda:local_rank`` with NCCL, the CPU with gloo).
    timeout
        Seconds a collective waits before failing.
    min_entries
        Passes over fewer plan entries run whole on every rank.
    collective_seconds
        Wall time spent in collectives so far (including waits for slower ranks).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    timeout: float = DEFAULT_TIMEOUT
    min_entries: int = DEFAULT_MIN_ENTRIES
    collective_seconds: float = 0.0
    broken: bool = field(default=False, repr=False)
    control: Any = field(default=None, repr=False)

    def bounds(self, n_rows: int, unit: int) -> list[tuple[int, int]]:
        """Each rank's rows ``[lo, hi)``: whole blocks of ``unit`` rows, as even as possible, in
        rank order (earlier ranks take the extra blocks; a rank may get none)."""
        blocks = -(-n_rows // unit)
        base, extra = divmod(blocks, self.world_size)
        out, start = [], 0
        for rank in range(self.world_size):
            stop = start + base + (rank < extra)
            out.append((min(start * unit, n_rows), min(stop * unit, n_rows)))
            start = stop
        return out

    def splits(self, n_rows: int, unit: int, entries: int) -> bool:
        """Whether a pass over ``entries`` plan entries in blocks of ``unit`` rows is split."""
        return entries >= self.min_entries and n_rows > unit

    def rows(self, n_rows: int, unit: int, entries: int, compute: Callable[[int, int], Rows]) -> Rows:
        """``compute(lo, hi)`` (tensors whose first dimension is rows ``lo:hi``) on this rank's
        share of ``n_rows`` rows, gathered in row order on every rank; the whole range on every
        rank when the pass is too small to split (:meth:`splits`)."""
        if not self.splits(n_rows, unit, entries):
            return compute(0, n_rows)
        bounds = self.bounds(n_rows, unit)
        part = compute(*bounds[self.rank])
        lengths = [hi - lo for lo, hi in bounds]
        if isinstance(part, tuple):
            return tuple(self.gather(piece, lengths) for piece in part)
        return self.gather(part, lengths)

    def gather(self, part: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """Concatenate every rank's ``part`` (``lengths[r]`` rows from rank r) in rank order."""
        longest = max(lengths)
        padded = part.new_zeros((longest, *part.shape[1:]))
        padded[:part.shape[0]] = part
        pieces = [torch.empty_like(padded) for _ in range(self.world_size)]
        self.collective("all_gather", lambda: torch.distributed.all_gather(pieces, padded))
        return torch.cat([piece[:length] for piece, length in zip(pieces, lengths)])

    def agree(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank: decisions taken from them (stopping, ranking, the
        winner) are then the same everywhere, so no rank can wait in a collective the others skip."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.collective("broadcast", lambda: torch.distributed.broadcast(tensor, 0))
        return tensor.tolist()

    def share(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's."""
        for tensor in tensors:
            # Collectives take contiguous tensors only; a strided view is sent through a copy.
            buffer = tensor if tensor.is_contiguous() else tensor.contiguous()
            self.collective("broadcast", lambda: torch.distributed.broadcast(buffer, 0))
            if buffer is not tensor:
                tensor.copy_(buffer)

    def send_object(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank, over the control channel: it waits without the
        collective timeout, since rank 0 reads, prepares and writes alone in between."""
        box = [obj]
        self.collective("broadcast_object_list",
                        lambda: torch.distributed.broadcast_object_list(box, 0, group=self.control))
        return box[0]

    def collective(self, name: str, run: Callable[[], Any]) -> Any:
        """Run one collective, timed; any failure becomes one :class:`DistributedError`."""
        if self.broken:
            raise DistributedError(f"rank {self.rank}: the process group failed earlier")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)   # time the collective, not the kernels before it
        tick = time.perf_counter()
        try:
            result = run()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        except Exception as error:   # gloo and NCCL raise several types; all mean the same here
            self.broken = True
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {name} failed after {time.perf_counter() - tick:.1f} s: "
                f"another rank stopped or did not answer within the {self.timeout:g} s timeout "
                f"(GWALIGN_DIST_TIMEOUT): {cause(error)}") from None
        self.collective_seconds += time.perf_counter() - tick
        return result


def cause(error: BaseException) -> str:
    """The first line of a backend's error, without its source location (``[.../pair.cc:553]``)."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0][:160]


#: The group a distributed alignment is running under (set by :func:`activated`).
_active: Optional[Group] = None


def active() -> Optional[Group]:
    """The group of the alignment in progress, or ``None`` (single process, or outside one)."""
    return _active


@contextmanager
def activated(group: Optional[Group]) -> Iterator[Optional[Group]]:
    """Split the engine's streamed passes over ``group`` inside the block (no-op for ``None``)."""
    global _active
    previous, _active = _active, group if group is not None else _active
    try:
        yield group
    finally:
        _active = previous


def agree(values: list[float]) -> list[float]:
    """``values`` as rank 0 has them when a distributed alignment is running, else unchanged."""
    return values if _active is None else _active.agree(values)


def env_float(name: str, default: float) -> float:
    """A positive number from the environment, or ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise DistributedError(f"{name}={text!r}: expected a number") from None
    if value < 0:
        raise DistributedError(f"{name}={text!r}: expected a number >= 0")
    return value
