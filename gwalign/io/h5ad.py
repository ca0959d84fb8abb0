"""Reading and checking .h5ad files, and checksums of files and cell orders.

Every problem with a user's file becomes an :class:`InputError` whose message names the file,
so the CLI can print one line and exit with code 2.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class InputError(Exception):
    """A user-facing problem with an input or output path, or with an AnnData object given to
    :func:`gwalign.tl.align` (one line, names the file or the object)."""


def read_h5ad(path: str | Path, need_features: bool = True):
    """Read an AnnData file, turning every failure into a one-line :class:`InputError`.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    need_features
        Refuse a file without features (``n_vars == 0``, such as gwalign's own joint file): right
        when ``X`` is what will be used, wrong when an ``obsm`` representation is.
    """
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
    check_anndata(adata, path, need_features)
    return adata


def check_anndata(adata, where, need_features: bool = True,
                  rep_hint: str = "--rep-source/--rep-target") -> None:
    """Refuse an AnnData object that cannot be aligned: no cells, no features (when ``X`` will be
    used), duplicate ``obs_names``.

    Parameters
    ----------
    adata
        The AnnData object, read from a file or passed in memory.
    where
        What the messages name: the file's path, or the object's name in memory (``adata_a``).
    need_features
        As in :func:`read_h5ad`.
    rep_hint
        How the user gives an ``obsm`` representation, in the message about missing features.
    """
    if adata.n_obs == 0:
        raise InputError(f"{where}: has zero cells")
    if adata.n_vars == 0 and need_features:
        raise InputError(f"{where}: has zero features (give an obsm representation with {rep_hint})")
    if not adata.obs_names.is_unique:
        dup = adata.obs_names[adata.obs_names.duplicated()][0]
        raise InputError(f"{where}: duplicate obs_names (e.g. {dup!r}); run adata.obs_names_make_unique()")


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


def distinct_inputs(source: str | Path, target: str | Path) -> tuple[str, str]:
    """The SHA-256 checksums of two existing files, after checking that they are two data sets.

    Raises
    ------
    InputError
        When both paths name one file, or the two files have the same bytes: a file aligned with
        itself gives a perfect-looking result that says nothing.
    """
    if os.path.samefile(source, target):
        raise InputError(f"{source}, {target}: the same file given as source and target; "
                         "gwalign aligns two different data sets")
    sums = file_checksum(source), file_checksum(target)
    if sums[0] == sums[1]:
        raise InputError(f"{source}, {target}: the two files are identical (SHA-256 {sums[0][:12]}...); "
                         "gwalign aligns two different data sets")
    return sums
