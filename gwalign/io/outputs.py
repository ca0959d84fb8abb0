"""Output folders written atomically (staged, then renamed), JSON reports."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
import numpy as np
from gwalign.io.h5ad import InputError


def check_output_dir(out_dir: Path, names: list[str], overwrite: bool) -> None:
    """Fail early if outputs exist (without ``overwrite``) or the directory is not writable."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: output path exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{out_dir}: cannot create output directory ({err.strerror})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise InputError(f"{out_dir}: output directory is not writable")
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise InputError(f"{out_dir / existing[0]}: output exists; pass --overwrite to replace it")


@contextmanager
def staged_outputs(out_dir: Path) -> Iterator[Path]:
    """A private staging folder inside ``out_dir``; its files are renamed into place on success.

    On any exception (Ctrl-C included) the staging folder is removed and no partial output
    is left. ``os.replace`` within one file system is atomic per file.
    """
    staging = Path(tempfile.mkdtemp(prefix=".gwalign-tmp-", dir=out_dir))
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            os.replace(item, out_dir / item.name)
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
    path.write_text(json.dumps(to_jsonable(payload), indent=2))
