"""Figures of a run: GW objective per iteration, joint UMAP. The ``draw_*`` functions draw on
given axes (:mod:`gwalign.pl` shows them in a notebook); the ``*_figure`` functions write the PNG
files of ``gwalign run``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from gwalign.errors import GWAlignWarning


#: Cells drawn in the joint UMAP. A figure cannot show more points apart, and the UMAP's cost grows
#: with the cells: at this size the figure takes 6–7 s on 2 CPU cores (docs/performance.md),
#: at any atlas size the same. Above it a uniform random subsample (seeded) is drawn.
FIGURE_MAX_CELLS = 20_000

#: Neighbours per cell of the UMAP's graph, the cell itself included (scanpy's default).
UMAP_NEIGHBORS = 15


def draw_convergence(history, ax) -> None:
    """Draw the unbiased GW objective estimate after each outer iteration on ``ax``."""
    ax.plot(range(1, len(history) + 1), history, marker="o", markersize=3)
    ax.set_xlabel("GW iteration")
    ax.set_ylabel("GW objective (estimate)")
    ax.set_title("Convergence")


def convergence_figure(history: list[float], path: Path) -> None:
    """Write :func:`draw_convergence` as a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    draw_convergence(history, ax)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def figure_cells(n_cells: int, seed: int, max_cells: int = FIGURE_MAX_CELLS) -> np.ndarray:
    """Sorted indices of the cells drawn: all of them, or ``max_cells`` chosen uniformly at random."""
    if n_cells <= max_cells:
        return np.arange(n_cells)
    return np.sort(np.random.default_rng(seed).choice(n_cells, size=max_cells, replace=False))


def joint_umap(joint, seed: int, max_cells: int = FIGURE_MAX_CELLS):
    """A copy of the joint AnnData (at most ``max_cells`` cells, :func:`figure_cells`) with a UMAP
    of ``X_gw`` in ``obsm["X_umap"]``.

    The UMAP is :mod:`gwalign.results.umap_layout`'s (scanpy's parameters, exact neighbours, no
    numba); the copy also holds its graph under scanpy's keys (``obsp["distances"]``,
    ``obsp["connectivities"]``, ``uns["neighbors"]``, ``uns["umap"]``), so ``scanpy.tl.umap``
    can lay the same graph out again.
    """
    from gwalign.results.umap_layout import umap_graph, umap_layout

    work = joint[figure_cells(joint.n_obs, seed, max_cells)].copy()
    points = np.asarray(work.obsm["X_gw"], dtype=np.float64)
    graph = umap_graph(points, UMAP_NEIGHBORS)
    layout, (a, b) = umap_layout(graph.connectivities, points, seed)
    work.obsp["distances"] = graph.distances
    work.obsp["connectivities"] = graph.connectivities
    work.uns["neighbors"] = {"connectivities_key": "connectivities", "distances_key": "distances",
                             "params": {"n_neighbors": graph.n_neighbors, "method": "umap", "metric": "euclidean",
                                        "use_rep": "X_gw", "random_state": seed}}
    work.uns["umap"] = {"params": {"a": a, "b": b, "random_state": seed}}
    work.obsm["X_umap"] = layout
    return work


def draw_joint(work, colours: list[str], axes, basis: str = "umap", note: str = "",
               draw: Optional[Callable] = None, **kwargs) -> None:
    """Draw ``obsm["X_<basis>"]`` of ``work`` once per colour (an ``obs`` column) on ``axes``; cells
    whose label was carried to them (``obs[<label>_origin]`` ``transferred``) are ringed, and
    ``note`` ends each title. Each panel is drawn by ``draw(work, key, ax, title)`` (the UMAP
    basis only), or by default by :func:`scanpy.pl.embedding`, which ``kwargs`` go to."""
    for ax, key in zip(axes, colours):
        origin = work.obs.get(f"{key}_origin")
        carried = np.zeros(work.n_obs, dtype=bool) if origin is None else (origin == "transferred").to_numpy()
        title = key + (" (ringed: transferred)" if carried.any() else "") + note
        if draw is None:
            import scanpy as sc

            sc.pl.embedding(work, basis=basis, color=key, ax=ax, show=False, **{"title": title, **kwargs})
        else:
            draw(work, key, ax, title)
        if carried.any():
            # Own and transferred labels share the column: a ring marks the cells whose label was carried.
            xy = np.asarray(work.obsm[f"X_{basis}"])[carried]
            ax.scatter(xy[:, 0], xy[:, 1], s=8, facecolors="none", edgecolors="black", linewidths=0.3)


#: scanpy's default dot area in points² is this over the number of cells drawn.
DOT_AREA = 120_000


def draw_categories(work, key: str, ax, title: str) -> None:
    """Scatter ``obsm["X_umap"]`` of ``work`` coloured by the categories of ``obs[key]`` on ``ax``,
    as :func:`scanpy.pl.embedding` draws a categorical column at its defaults (dot size, legend on
    the right, cells without a value in light grey underneath), with matplotlib alone: a run given
    its representations then never imports scanpy (about 1 s on 2 CPU cores)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    xy = np.asarray(work.obsm["X_umap"])
    values = pd.Categorical(work.obs[key])
    categories = list(values.categories)
    # matplotlib's tab10 / tab20 hold scanpy's 10- and 20-colour palettes' hues; past 20, an even
    # sweep of a perceptual map keeps the categories apart.
    colours = (plt.get_cmap("tab10" if len(categories) <= 10 else "tab20").colors if len(categories) <= 20
               else plt.get_cmap("turbo")(np.linspace(0, 1, len(categories))))
    size = DOT_AREA / max(work.n_obs, 1)
    missing = values.codes < 0
    if missing.any():
        ax.scatter(xy[missing, 0], xy[missing, 1], s=size, c="lightgray", linewidths=0)
        ax.scatter([], [], c="lightgray", label="NA")
    for code, name in enumerate(categories):
        chosen = values.codes == code
        ax.scatter(xy[chosen, 0], xy[chosen, 1], s=size, color=colours[code], linewidths=0)
        ax.scatter([], [], color=colours[code], label=str(name))   # a legend dot of readable size
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    ax.set(xticks=[], yticks=[], xlabel="UMAP1", ylabel="UMAP2", title=title)


def umap_figure(joint, label_keys: list[str], path: Path, seed: int,
                max_cells: int = FIGURE_MAX_CELLS) -> int:
    """UMAP of ``X_gw`` coloured by data set and by each transferred label (:func:`draw_categories`,
    transferred labels ringed as :func:`draw_joint` rings them), written as a PNG file.

    Returns
    -------
    int
        The number of cells drawn (at most ``max_cells``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = joint_umap(joint, seed, max_cells)
    colours = ["gw_dataset", *label_keys]
    fig, axes = plt.subplots(1, len(colours), figsize=(4.5 * len(colours), 4), dpi=110, squeeze=False)
    note = "" if work.n_obs == joint.n_obs else f" ({work.n_obs:,} of {joint.n_obs:,} cells)"
    draw_joint(work, colours, axes[0], note=note, draw=draw_categories)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return work.n_obs


def write_figures(history: list[float], joint_ad, label_keys: list[str], folder: Path, seed: int
                   ) -> dict[str, str]:
    """Both PNGs, each on its own: a figure that fails is reported and warned about, and the run's
    data outputs are written all the same (figures are a view of them, never worth losing them)."""
    status: dict[str, str] = {}
    for name, draw in (("convergence.png", lambda path: convergence_figure(history, path)),
                       ("joint_umap.png", lambda path: umap_figure(joint_ad, label_keys, path, seed))):
        try:
            drawn = draw(folder / name)
        except Exception as err:  # noqa: BLE001 - any plotting failure must spare the outputs
            (folder / name).unlink(missing_ok=True)
            status[name] = f"not written: {type(err).__name__}: {err}"
            warnings.warn(f"{name} {status[name]}", GWAlignWarning, stacklevel=3)
            continue
        status[name] = "written" if drawn is None or drawn == joint_ad.n_obs else (
            f"written, {drawn} of {joint_ad.n_obs} cells drawn at random")
    return status
