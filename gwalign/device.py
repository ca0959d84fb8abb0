"""The run's device, and CUDA out-of-memory errors turned into advice."""

from __future__ import annotations

import re
import time
import warnings
from contextlib import contextmanager
import torch
from gwalign.errors import CPUFallbackWarning
from gwalign.errors import GPUMemoryError


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a CUDA device (nothing elsewhere): a stage's time then
    counts its kernels, not only their launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: What lowers the memory of each stage (shown when CUDA runs out of memory there).
MEMORY_ADVICE = {
    "graph": "lower k, or build on device='cpu'",
    "distances": "use distance='landmark' with fewer n_landmarks, or a smaller landmark_dim",
    "solve": "lower block_elements (streamed tile size), n_anchors or rank",
}


@contextmanager
def timed_stage(name: str, timings: dict[str, float], shape: tuple[int, int]):
    """Time a stage; turn a CUDA out-of-memory error into a one-line :class:`GPUMemoryError`."""
    tick = time.perf_counter()
    try:
        yield
    except torch.OutOfMemoryError as error:
        wanted = re.search(r"Tried to allocate ([0-9.]+ [KMGT]i?B)", str(error))
        amount = f"it asked for {wanted.group(1)} more" if wanted else "the allocation size was not reported"
        raise GPUMemoryError(f"CUDA out of memory in stage '{name}' ({shape[0]:,} × {shape[1]:,} cells; "
                             f"{amount}): {MEMORY_ADVICE[name]}, or run on device='cpu'") from None
    timings[name] = time.perf_counter() - tick


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available (else CPU, with a warning); explicit CUDA must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        warnings.warn("no CUDA device found: running on the CPU", CPUFallbackWarning, stacklevel=2)
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} was asked for, but this machine has no CUDA device")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(name)


def peak_memory(device) -> dict[str, float]:
    """The process's peak resident memory and, on CUDA, the peak GPU memory allocated by torch, in GB:
    what a batch job must request."""
    import resource
    import sys

    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    peak = {"host_rss": round(rss / (2**30 if sys.platform == "darwin" else 2**20), 3)}
    if torch.device(device).type == "cuda":
        peak["gpu_allocated"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return peak
