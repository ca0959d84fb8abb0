"""What an input's matrices hold: counts or not, numbers or not, cells that differ or not.

``gwalign run`` refuses what cannot be aligned with these checks (:class:`InputError`, one line
naming the file), and ``gwalign check`` lists the same findings before a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from gwalign.io.h5ad import InputError

#: Entries of X inspected to tell integer counts from normalised values.
INTEGER_SAMPLE = 200_000

#: Rows whose largest per-column spread is at most this share of the largest absolute value are
#: taken as one and the same cell (floating-point rounding of identical inputs stays far below it).
SAME_ROWS_RTOL = 1e-12


def stored_values(x) -> np.ndarray:
    """The stored entries of a dense or sparse matrix, flattened."""
    return np.asarray(x.data if sp.issparse(x) else x).ravel()


def x_kind(x) -> str:
    """What ``X`` holds.

    Returns
    -------
    str
        ``counts`` (non-negative integers), ``negative integers`` (integers, some negative: no
        valid counts), ``normalised`` (non-negative, not all integers: taken as log-normalised)
        or ``scaled`` (not all integers, some negative: centred or z-scored values).
    """
    values = stored_values(x)
    negative = bool(values.size) and float(values.min()) < 0
    sample = values[:INTEGER_SAMPLE]
    integer = bool(np.allclose(sample, np.round(sample))) if sample.size else True
    if integer:
        return "negative integers" if negative else "counts"
    return "scaled" if negative else "normalised"


def same_rows(x, floor: float = 0.0) -> bool:
    """True when every row of ``x`` (dense or sparse) equals every other, within rounding.

    ``floor`` is an absolute spread below which rows count as equal too (for computed
    representations, whose identical inputs come out as rounding noise around zero).
    """
    if x.shape[0] < 2 or x.shape[1] == 0:
        return True
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        high, low = x.max(axis=0).toarray().ravel(), x.min(axis=0).toarray().ravel()
    else:
        x = np.asarray(x)
        high, low = x.max(axis=0), x.min(axis=0)
    spread = float(np.max(high - low))
    scale = float(max(np.max(np.abs(high)), np.max(np.abs(low))))
    return spread <= max(SAME_ROWS_RTOL * scale, floor)


def numeric_matrix(path: Path, name: str, value: Any) -> np.ndarray:
    """``value`` (an array, sparse matrix or DataFrame from ``obsm``) as a float64 matrix.

    Raises
    ------
    InputError
        When it holds anything but numbers (a DataFrame with a text column, say).
    """
    if sp.issparse(value):
        return np.asarray(value.toarray(), dtype=np.float64)
    columns = getattr(value, "columns", None)
    if columns is not None:
        import pandas as pd

        text = [str(c) for c in columns if not pd.api.types.is_numeric_dtype(value[c])
                or pd.api.types.is_bool_dtype(value[c])]
        if text:
            raise InputError(f"{path}: {name} is a table with non-numeric column(s) {', '.join(text[:3])}; "
                             "a representation must hold numbers only")
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: {name} does not hold numbers ({err})") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InputError(f"{path}: {name} must be a 2-D array with at least one column")
    return matrix


def check_finite(path: Path, name: str, x) -> None:
    """Refuse NaN and Inf values, naming the file and the matrix."""
    values = stored_values(x)
    if not np.isfinite(values).all():
        kind = "NaN" if np.isnan(values).any() else "Inf"
        raise InputError(f"{path}: {name} contains {kind} values")


def file_findings(adata, min_cells: int) -> tuple[list[str], list[str]]:
    """What ``gwalign check`` lists: problems (``gwalign run`` refuses the file as it is) and
    warnings (it runs, with the consequence named).

    Parameters
    ----------
    adata
        The file's AnnData.
    min_cells
        Fewest cells a file needs (k + 1 at the automatic k).
    """
    problems: list[str] = []
    warnings: list[str] = []
    if adata.n_obs < min_cells:
        problems.append(f"{adata.n_obs} cells, fewer than k+1 = {min_cells}")
    x = adata.X
    if x is None or adata.n_vars == 0:
        if len(adata.obsm):
            warnings.append("no X: give one of the obsm keys with --rep-source/--rep-target")
        else:
            problems.append("no X and no obsm representation: nothing to align")
        return problems, warnings
    values = stored_values(x)
    if not np.isfinite(values).all():
        problems.append("X contains NaN/Inf")
        return problems, warnings
    kind = x_kind(x)
    if kind == "negative integers":
        problems.append("X holds integers with negative values: not valid counts")
    elif kind == "scaled":
        warnings.append("X has negative values: taken as scaled data by the RNA path (PCA as is); "
                        "the ATAC path refuses it")
    if same_rows(x):
        problems.append("every cell has the same X: nothing to align")
    zero = int((np.asarray(x.sum(axis=1)).ravel() == 0).sum())
    if zero:
        warnings.append(f"{zero} cell(s) with all-zero X: kept in the outputs but not aligned (obs['gw_aligned'] False)")
    return problems, warnings
