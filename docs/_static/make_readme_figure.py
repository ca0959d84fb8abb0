"""Draw docs/_static/example_umap.png: the joint UMAP of the bundled example pair (README and docs).

Run from the repository root: ``python docs/_static/make_readme_figure.py`` (about a minute on
2 CPU cores). It runs ``gwalign run`` on example_data/ with every default and
``--transfer-labels cell_type`` in a temporary folder, then draws the UMAP of ``X_gw`` with scanpy.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import scanpy as sc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "example_umap.png"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gwalign-figure-") as folder:
        subprocess.run([sys.executable, "-m", "gwalign.cli", "run", str(ROOT / "example_data" / "rna.h5ad"),
                        str(ROOT / "example_data" / "atac.h5ad"), "--out-dir", folder,
                        "--transfer-labels", "cell_type", "--no-figures", "--quiet"], check=True)
        joint = ad.read_h5ad(Path(folder) / "joint.gwalign.h5ad")
    sc.pp.neighbors(joint, use_rep="X_gw", random_state=0)
    sc.tl.umap(joint, random_state=0)
    joint.obs["data set"] = joint.obs["gw_dataset"].map({"rna": "RNA", "atac": "ATAC"}).astype("category")
    joint.obs["cell type"] = joint.obs["cell_type"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key in zip(axes, ("data set", "cell type")):
        sc.pl.umap(joint, color=key, ax=ax, show=False, frameon=False, size=25, title=key)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()
