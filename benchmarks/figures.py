"""The joint UMAP figure of ``gwalign run`` (``joint_umap.png``) against scanpy's UMAP of the same
cells, each in a new process as in a run.

    python benchmarks/figures.py --repeats 3
    python benchmarks/figures.py --repeats 3 --joint out/joint.gwalign.h5ad
    python benchmarks/figures.py --repeats 3 --fresh-numba-cache

``gwalign``: :func:`gwalign.results.figures.umap_figure` (exact neighbours, :mod:`gwalign.results.umap_layout`).
``scanpy``: ``sc.pp.neighbors(use_rep="X_gw", transformer="sklearn")`` and ``sc.tl.umap`` (umap-learn),
drawn the same way. The two alternate (A, B, A, B, ...), so that load that comes and goes on shared
cores falls on both. Each row gives the seconds of the imports the figure needs beyond those of a
run (scanpy, matplotlib; umap-learn for scanpy's UMAP), of the neighbour graph, of the layout, of the
drawing, and their sum; and how well the layout keeps neighbourhoods: the mean share of each cell's
15 nearest cells in ``X_gw`` that are among its 15 nearest in the layout.

Without ``--joint`` it first writes the joint file of the example pair (``gwalign run`` on
example_data/ with ``--no-figures``). ``--fresh-numba-cache`` gives every process an empty numba
cache folder: the first run after installation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np
import torch, anndata as ad   # imported by every run before its figures
from pathlib import Path

method, path, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
joint = ad.read_h5ad(path)
labels = [key for key in ("cell_type",) if key in joint.obs]
clock = time.perf_counter
tick = clock()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import scanpy as sc
from gwalign.results.figures import FIGURE_MAX_CELLS, draw_joint, figure_cells
times = {"imports": clock() - tick}
work = joint[figure_cells(joint.n_obs, 0, FIGURE_MAX_CELLS)].copy()
tick = clock()
if method == "gwalign":
    from gwalign.results.umap_layout import umap_graph, umap_layout
    points = np.asarray(work.obsm["X_gw"], dtype=np.float64)
    graph = umap_graph(points)
    times["graph"] = clock() - tick
    tick = clock()
    work.obsm["X_umap"] = umap_layout(graph.connectivities, points, 0)[0]
else:
    import umap   # noqa: F401 - scanpy imports it inside sc.pp.neighbors; timed apart
    times["imports"] += clock() - tick
    tick = clock()
    sc.pp.neighbors(work, use_rep="X_gw", transformer="sklearn", random_state=0)
    times["graph"] = clock() - tick
    tick = clock()
    sc.tl.umap(work, random_state=0)
times["layout"] = clock() - tick
tick = clock()
colours = ["gw_dataset", *labels]
fig, axes = plt.subplots(1, len(colours), figsize=(4.5 * len(colours), 4), dpi=110, squeeze=False)
draw_joint(work, colours, axes[0])
fig.tight_layout()
fig.savefig(out, format="png")
plt.close(fig)
times["draw"] = clock() - tick

x, y = np.asarray(work.obsm["X_gw"], dtype=np.float64), np.asarray(work.obsm["X_umap"], dtype=np.float64)
from gwalign.geometry.knn import exact_knn
near_x = exact_knn(torch.as_tensor(x), torch.as_tensor(x), 16)[1][:, 1:]
near_y = exact_knn(torch.as_tensor(y), torch.as_tensor(y), 16)[1][:, 1:]
kept = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(near_x, near_y)])
print(json.dumps({**times, "cells": work.n_obs, "kept": float(kept)}))
"""

PARTS = ("imports", "graph", "layout", "draw")


def measure(method: str, joint: Path, folder: Path, fresh_cache: bool) -> dict:
    """One figure in a new process."""
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        if fresh_cache:
            env["NUMBA_CACHE_DIR"] = cache
        done = subprocess.run([sys.executable, "-c", CHILD, method, str(joint), str(folder / f"{method}.png")],
                              capture_output=True, text=True, check=True, env=env, cwd=cache)
    return json.loads(done.stdout.strip().splitlines()[-1])


def example_joint(folder: Path) -> Path:
    """The joint file of the example pair, every default but the figures."""
    subprocess.run([sys.executable, "-m", "gwalign.cli", "run", str(REPO / "example_data" / "rna.h5ad"),
                    str(REPO / "example_data" / "atac.h5ad"), "--out-dir", str(folder / "run"),
                    "--transfer-labels", "cell_type", "--no-figures", "--quiet"], check=True, cwd=REPO)
    return folder / "run" / "joint.gwalign.h5ad"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joint", type=Path, nargs="*", help="joint.gwalign.h5ad files (default: the example pair's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["gwalign", "scanpy"], choices=["gwalign", "scanpy"])
    parser.add_argument("--fresh-numba-cache", action="store_true", help="an empty numba cache for every process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gwalign-figures-") as name:
        folder = Path(name)
        joints = [path.resolve() for path in args.joint] if args.joint else [example_joint(folder)]
        print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
              f"numba cache: {'empty for every process' if args.fresh_numba_cache else 'as installed'}")
        print("| cells drawn | UMAP | " + " | ".join(f"{part} (s)" for part in PARTS)
              + " | figure (s) | 15-NN kept |")
        print("|---|---|" + "---|" * len(PARTS) + "---|---|")
        for joint in joints:
            for _ in range(args.repeats):
                for method in args.methods:
                    row = measure(method, joint, folder, args.fresh_numba_cache)
                    print(f"| {row['cells']:,} | {method} | " + " | ".join(f"{row[part]:.2f}" for part in PARTS)
                          + f" | {sum(row[part] for part in PARTS):.2f} | {row['kept']:.3f} |", flush=True)
        print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
