"""Fused Triton kernels for the engine's streamed operations (CUDA; CPU under TRITON_INTERPRET=1)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def available() -> bool:
    """True when Triton imports; the kernels themselves are loaded lazily."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # pragma: no cover - depends on the install
        return False
    return True
