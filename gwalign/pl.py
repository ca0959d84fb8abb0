"""Plots of an alignment, in scanpy's style (``gwalign.pl``): the joint embedding, the agreement of
transferred with existing labels, and the solver's convergence.

Each function takes what :func:`gwalign.tl.align` returns (or the files ``gwalign run`` writes, read
back with anndata) and follows scanpy's ``show``/``save`` convention: ``show=None`` shows the
figure when ``scanpy.settings.autoshow`` is on (the default) and returns nothing; ``show=False``
returns the matplotlib Axes. ``save=True`` writes ``<name>.<format>`` into ``scanpy.settings.figdir``
(format: ``scanpy.settings.file_format_figs``); a text such as ``"_rna.pdf"`` is appended to the
name there, as in scanpy; a path with a folder (or a :class:`pathlib.Path`) is written as given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from gwalign.results.figures import FIGURE_MAX_CELLS, draw_convergence, draw_joint, joint_umap

Save = Optional[Union[bool, str, Path]]
FIGURE_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps", ".ps")


def joint_embedding(joint, color: Optional[Union[str, Sequence[str]]] = None, *, basis: str = "umap",
                    ncols: int = 4, seed: int = 0, max_cells: int = FIGURE_MAX_CELLS,
                    show: Optional[bool] = None, save: Save = None, **kwargs: Any):
    """The joint embedding, one panel per colour, through scanpy's plotting.

    Uses ``joint.obsm["X_<basis>"]`` when it is there (every cell), such as the UMAP of
    ``sc.pp.neighbors(joint, use_rep="X_gw")`` and ``sc.tl.umap(joint)``. Without it, and with
    ``basis="umap"``, it draws a UMAP of ``X_gw`` computed on a copy as ``gwalign run`` computes its
    ``joint_umap.png`` (:func:`gwalign.results.figures.joint_umap`: scanpy's parameters, exact
    neighbours; at most ``max_cells`` cells, a seeded random subsample above); ``joint`` itself is
    not modified. Cells whose label was transferred (``obs["<label>_origin"]`` ``transferred``)
    are ringed.

    Parameters
    ----------
    joint
        The joint AnnData (``joint.gwalign.h5ad``, or ``.joint`` of :func:`gwalign.tl.align`'s
        result), or that result itself.
    color
        ``obs`` column(s) to colour by. ``None``: ``gw_dataset`` and every transferred label column.
    basis
        The embedding drawn: ``obsm["X_<basis>"]``.
    ncols
        Panels per row, as in scanpy.
    seed, max_cells
        The UMAP's random seed and the most cells it draws (when computed here).
    show, save
        As in scanpy (:mod:`gwalign.pl`).
    **kwargs
        Passed to :func:`scanpy.pl.embedding` for every panel (``size``, ``palette``, ``legend_loc``, ...).

    Returns
    -------
    matplotlib.axes.Axes or list of matplotlib.axes.Axes or None
        One Axes per colour (a single one for one colour) when ``show`` is False.
    """
    import matplotlib.pyplot as plt

    joint = getattr(joint, "joint", joint)
    colours = default_colours(joint) if color is None else [color] if isinstance(color, str) else list(color)
    missing = [key for key in colours if key not in joint.obs]
    if missing:
        raise KeyError(f"joint has no obs column(s) {missing} (obs columns: {list(joint.obs.columns)})")
    note = ""
    if f"X_{basis}" in joint.obsm:
        work = joint
    elif basis == "umap":
        work = joint_umap(joint, seed, max_cells)
        note = "" if work.n_obs == joint.n_obs else f" ({work.n_obs:,} of {joint.n_obs:,} cells)"
    else:
        raise KeyError(f"joint has no obsm['X_{basis}'] (obsm keys: {list(joint.obsm.keys())})")
    rows, cols = -(-len(colours) // max(ncols, 1)), min(len(colours), max(ncols, 1))
    fig, grid = plt.subplots(rows, cols, figsize=(4.5 * cols, 4 * rows), squeeze=False)
    axes = list(grid.ravel())
    for spare in axes[len(colours):]:
        spare.remove()
    draw_joint(work, colours, axes[:len(colours)], basis=basis, note=note, **kwargs)
    fig.tight_layout()
    return finish(fig, axes[:len(colours)] if len(colours) > 1 else axes[0], "joint_embedding", show, save)


def default_colours(joint) -> list[str]:
    """``gw_dataset`` and every label column that has an ``_origin`` column beside it."""
    labels = [str(key)[: -len("_origin")] for key in joint.obs.columns if str(key).endswith("_origin")]
    return ["gw_dataset", *[key for key in labels if key in joint.obs]]


def label_agreement(adata, key: str, *, ax=None, show: Optional[bool] = None, save: Save = None):
    """How the labels carried to a data set agree with the labels it already has: a heatmap of
    ``obs[key]`` (rows) against ``obs[key + "_gw"]`` (columns).

    Each cell of the heatmap counts the cells with that own label that received that transferred
    label; its colour is that count's share of the row. Cells missing either label (not aligned,
    or unlabelled) are left out. The title gives the share of cells whose two labels are equal
    (compared as text, as :func:`gwalign.tl.align` compares them).

    Parameters
    ----------
    adata
        One annotated data set (``adata_a`` or ``adata_b`` of :func:`gwalign.tl.align`, or an
        output file of ``gwalign run``).
    key
        The label column that was transferred (``transfer_labels``).
    ax
        Axes to draw on; ``None``: a new figure.
    show, save
        As in scanpy (:mod:`gwalign.pl`).

    Returns
    -------
    matplotlib.axes.Axes or None
        The heatmap's Axes when ``show`` is False.
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    from gwalign.results.transfer import label_strings

    for column in (key, f"{key}_gw"):
        if column not in adata.obs:
            raise KeyError(f"obs[{column!r}] not found: give a label column that was transferred "
                           f"(obs columns: {list(adata.obs.columns)})")
    own, carried = label_strings(adata.obs[key]), label_strings(adata.obs[f"{key}_gw"])
    both = pd.notna(own) & pd.notna(carried)
    if not both.any():
        raise ValueError(f"no cell has both obs[{key!r}] and obs[{key + '_gw'!r}]")
    labels = sorted(set(own[both]) | set(carried[both]))
    table = pd.crosstab(pd.Series(own[both], name=key), pd.Series(carried[both], name=f"{key}_gw"))
    table = table.reindex(index=[x for x in labels if x in table.index],
                          columns=[x for x in labels if x in table.columns], fill_value=0)
    shares = table.to_numpy() / table.to_numpy().sum(axis=1, keepdims=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.6 * table.shape[1], 1.0 + 0.5 * table.shape[0]))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (row, col), count in np.ndenumerate(table.to_numpy()):
        ax.text(col, row, str(count), ha="center", va="center", fontsize="small",
                color="white" if shares[row, col] > 0.6 else "black")
    ax.grid(False)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index)
    ax.set_xlabel(f"{key}_gw (transferred)")
    ax.set_ylabel(f"{key} (own)")
    agree = float(np.mean(own[both] == carried[both]))
    ax.set_title(f"{key}: {agree:.1%} of {int(both.sum()):,} cells agree")
    ax.figure.colorbar(image, ax=ax, label="share of the row")
    return finish(ax.figure, ax, "label_agreement", show, save)


def convergence(data, *, ax=None, show: Optional[bool] = None, save: Save = None):
    """The GW objective (its unbiased estimate) after each outer iteration of the solver, as
    ``convergence.png`` of ``gwalign run``.

    Parameters
    ----------
    data
        An :class:`~gwalign.Alignment`, the result of :func:`gwalign.tl.align`, or an annotated
        data set (its ``uns["gwalign"]["history"]``).
    ax
        Axes to draw on; ``None``: a new figure.
    show, save
        As in scanpy (:mod:`gwalign.pl`).

    Returns
    -------
    matplotlib.axes.Axes or None
        The plot's Axes when ``show`` is False.
    """
    import matplotlib.pyplot as plt

    history = objective_history(data)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    draw_convergence(history, ax)
    ax.figure.tight_layout()
    return finish(ax.figure, ax, "convergence", show, save)


def objective_history(data) -> list[float]:
    """The GW objective per iteration held by an Alignment, :func:`gwalign.tl.align`'s result or an
    annotated AnnData.

    Raises
    ------
    TypeError
        For an object holding none (such as the joint AnnData, which has no ``uns["gwalign"]``).
    """
    data = getattr(data, "alignment", data)
    if hasattr(data, "history") and hasattr(data, "plan"):
        return list(data.history)
    info = getattr(data, "uns", {}).get("gwalign")
    if info is None or "history" not in info:
        raise TypeError(f"{type(data).__name__} holds no GW objective history: give the Alignment, the result of "
                        "gwalign.tl.align or an annotated data set (uns['gwalign'])")
    return list(np.asarray(info["history"], dtype=float))


def figure_path(name: str, save: Union[bool, str, Path]) -> Path:
    """Where ``save`` writes the figure called ``name`` (this module's description)."""
    import scanpy as sc

    default = f".{sc.settings.file_format_figs}"
    if save is True:
        return Path(sc.settings.figdir) / f"{name}{default}"
    if isinstance(save, Path) or os.path.dirname(str(save)):
        path = Path(save)
        return path if path.suffix.lower() in FIGURE_FORMATS else path.with_name(path.name + default)
    text = str(save)
    return Path(sc.settings.figdir) / (f"{name}{text}" if text.lower().endswith(FIGURE_FORMATS)
                                       else f"{name}{text}{default}")


def finish(fig, axes, name: str, show: Optional[bool], save: Save):
    """Save and show ``fig`` as scanpy does: ``axes`` when ``show`` is False, else ``None``."""
    import matplotlib.pyplot as plt
    import scanpy as sc

    if save:
        path = figure_path(name, save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    show = sc.settings.autoshow if show is None else show
    if show:
        plt.show()
    if save:
        plt.close(fig)
    return None if show else axes
