"""PNG figures of a run: GW objective per iteration, joint UMAP."""

from __future__ import annotations

from pathlib import Path


def convergence_figure(history: list[float], path: Path) -> None:
    """The unbiased GW objective estimate after each outer iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(range(1, len(history) + 1), history, marker="o", markersize=3)
    ax.set_xlabel("GW iteration")
    ax.set_ylabel("GW objective (estimate)")
    ax.set_title("Convergence")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def umap_figure(joint, label_keys: list[str], path: Path, seed: int) -> None:
    """UMAP of ``X_gw`` coloured by data set and by each transferred label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc

    work = joint.copy()
    sc.pp.neighbors(work, use_rep="X_gw", random_state=seed)
    sc.tl.umap(work, random_state=seed)
    colours = ["gw_dataset", *label_keys]
    fig, axes = plt.subplots(1, len(colours), figsize=(4.5 * len(colours), 4), dpi=110, squeeze=False)
    for ax, key in zip(axes[0], colours):
        sc.pl.umap(work, color=key, ax=ax, show=False, title=key)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
