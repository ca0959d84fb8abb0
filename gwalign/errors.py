"""The warning and error types gwalign raises, importable without torch (the command line's
``--help`` and error handling load this module, not the engine)."""

from __future__ import annotations


class GWAlignWarning(RuntimeWarning):
    """A result was produced, but under a condition the user should know about."""


class CPUFallbackWarning(GWAlignWarning):
    """``device="auto"`` found no CUDA device and runs on the CPU (a notice about speed, not the result)."""


class GPUMemoryError(MemoryError):
    """The GPU ran out of memory in a named stage of :func:`~gwalign.align` (message says what to lower)."""


class DistributedError(RuntimeError):
    """A collective of a distributed alignment failed: another rank stopped, or did not answer
    within the timeout (the message says which rank saw it and how long it waited)."""
