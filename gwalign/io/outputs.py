"""Output folders written atomically (staged, then renamed), JSON reports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
import numpy as np
from gwalign.io.h5ad import InputError

#: Longest file name most file systems accept (bytes), where the file system does not say.
NAME_MAX = 255


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while outputs were being written (:func:`staged_outputs`).

    A ``KeyboardInterrupt``, so that every clean-up path that handles Ctrl-C handles it too, and no
    ``except Exception`` on the way swallows it.
    """


def existing_ancestor(path: Path) -> Path:
    """``path`` itself or the nearest of its parents that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def name_limit(folder: Path) -> int:
    """The longest file name (in bytes) the file system of ``folder`` accepts."""
    try:
        return int(os.pathconf(existing_ancestor(folder), "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def check_output_dir(out_dir: Path, names: list[str], overwrite: bool) -> None:
    """Fail early if outputs exist (without ``overwrite``) or the directory cannot be written.

    Creates nothing: the directory is made when the outputs are moved into it
    (:func:`staged_outputs`), so a run refused for its inputs leaves no empty folder behind.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: output path exists and is not a directory")
    base = existing_ancestor(out_dir)
    if not base.is_dir():
        raise InputError(f"{out_dir}: cannot create output directory ({base} is not a directory)")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "output directory is not writable" if base == Path(os.path.abspath(out_dir)) else \
            f"cannot create output directory ({base} is not writable)"
        raise InputError(f"{out_dir}: {what}")
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise InputError(f"{out_dir / existing[0]}: output exists; pass --overwrite to replace it")


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (so ``finally`` clauses run) instead of
    ending the process at once; the previous handler is restored afterwards. Outside the main
    thread (where Python cannot install handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def raise_terminated(signum, frame):
        if os.getpid() != owner:
            # A process forked inside the block (a worker pool) ends as SIGTERM would end it.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        # A second SIGTERM must not cut the clean-up short: ignored until the handler is restored.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def staged_outputs(out_dir: Path) -> Iterator[Path]:
    """A private staging folder inside ``out_dir``; its files are renamed into place on success.

    ``out_dir`` (and any missing parent) is created here. On any exception, Ctrl-C and SIGTERM
    included, the staging folder is removed, and so are the folders this call created, so that no
    partial output and no empty folder is left. ``os.replace`` within one file system is atomic per
    file.
    """
    out_dir = Path(out_dir)
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    with terminate_as_exception():
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"{out_dir}: cannot create output directory ({err.strerror})") from None
        staging = Path(tempfile.mkdtemp(prefix=".gwalign-tmp-", dir=out_dir))
        try:
            yield staging
            for item in sorted(staging.iterdir()):
                os.replace(item, out_dir / item.name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for folder in created:   # deepest first; a folder someone else filled meanwhile stays
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def to_jsonable(value: Any) -> Any:
    """Numbers, arrays and nested containers as plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path: Path, payload: dict) -> None:
    """``payload`` as indented JSON (NumPy values as plain numbers and lists)."""
    path.write_text(json.dumps(to_jsonable(payload), indent=2))
