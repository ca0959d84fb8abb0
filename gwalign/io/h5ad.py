"""Reading and checking .h5ad files, and checksums of files and cell orders.

Every problem with a user's file becomes an :class:`InputError` whose message names the file,
so the CLI can print one line and exit with code 2.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


class InputError(Exception):
    """A user-facing problem with an input or output path (one line, names the file)."""


def read_h5ad(path: str | Path):
    """Read an AnnData file, turning every failure into a one-line :class:`InputError`."""
    import anndata as ad
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an .h5ad file")
    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: not an HDF5 file (expected AnnData .h5ad)")
    try:
        with h5py.File(path, "r") as handle:
            keys = set(handle.keys())
    except OSError as err:
        raise InputError(f"{path}: cannot open HDF5 file ({err})") from None
    if not {"obs", "var"} <= keys:
        raise InputError(f"{path}: HDF5 but not AnnData (no obs/var groups; found {sorted(keys)})")
    try:
        adata = ad.read_h5ad(path)
    except Exception as err:  # anndata raises many types for damaged files
        raise InputError(f"{path}: corrupt or truncated .h5ad ({type(err).__name__}: {err})") from None
    if adata.n_obs == 0:
        raise InputError(f"{path}: has zero cells")
    if adata.n_vars == 0:
        raise InputError(f"{path}: has zero features")
    if not adata.obs_names.is_unique:
        dup = adata.obs_names[adata.obs_names.duplicated()][0]
        raise InputError(f"{path}: duplicate obs_names (e.g. {dup!r}); run adata.obs_names_make_unique()")
    return adata


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def names_checksum(names) -> str:
    """SHA-256 of obs_names joined by newlines (identifies the partner's cell order)."""
    return hashlib.sha256("\n".join(map(str, names)).encode()).hexdigest()
