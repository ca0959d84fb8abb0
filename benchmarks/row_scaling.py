"""Where row scaling helps and where it hurts: the measurements behind ``NORM_SHARE``.

``normalise_rows="auto"`` L2-scales a representation that is uncentred *and* whose norms carry
more than ``gwalign.preprocess.NORM_SHARE`` of its variance (``norm_variance_share``). Two
experiments bound that threshold, both with every other default:

- SNARE-seq with its ATAC norms compressed towards their mean, ``‖x‖ ↦ m (‖x‖ / m)^γ`` (directions
  kept): how small a depth-driven norm share still breaks the alignment when rows are kept, and
  whether scaling ever hurts there;
- scGEM (held out) with each side scaled or kept: uncentred sides whose norms are biology.

    python benchmarks/row_scaling.py
    python benchmarks/row_scaling.py --gammas 0.3 0.25 0.22
"""

from __future__ import annotations

import argparse

import numpy as np

import gwalign
from gwalign.metrics import foscttm, label_transfer_accuracy
from gwalign.preprocess import NORM_SHARE, mean_direction_cosine, norm_variance_share, scale_rows
from gwalign.results import coupled_cca
from real_data import DATASETS, data_folder, load_labels


def scores(xs: np.ndarray, xt: np.ndarray, labels: np.ndarray) -> str:
    result = gwalign.align(xs, xt, gwalign.GWConfig(device="cpu"))
    emb_s, emb_t, _ = coupled_cca(result, xs, xt)
    return f"{foscttm(emb_s, emb_t):.3f} / {label_transfer_accuracy(emb_s, labels, emb_t, labels):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gammas", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.27, 0.25, 0.22, 0.2, 0.1])
    args = parser.parse_args()
    print(f"NORM_SHARE = {NORM_SHARE}; cells: FOSCTTM / label transfer")
    print("| SNARE-seq ATAC norms ^γ | mean cosine | norm share | auto scales | rows kept | rows L2-scaled |")
    print("|---|---|---|---|---|---|")
    folder = data_folder("snareseq", None)
    rna, atac = np.load(folder / "rna.npy"), np.load(folder / "atac.npy")
    labels = load_labels(DATASETS["snareseq"], folder)[0]
    norm = np.linalg.norm(atac, axis=1, keepdims=True)
    for gamma in args.gammas:
        x = atac / norm * norm.mean() * (norm / norm.mean()) ** gamma
        print(f"| {gamma:g} | {mean_direction_cosine(x):.2f} | {norm_variance_share(x):.3f} | "
              f"{scale_rows(x, 'auto')[1]} | {scores(rna, x, labels)} | {scores(rna, scale_rows(x, 'l2')[0], labels)} |",
              flush=True)
    print()
    print("| scGEM: expression / methylation rows | norm shares | FOSCTTM / label transfer |")
    print("|---|---|---|")
    folder = data_folder("scgem", None)
    expr, met = np.load(folder / "rna.npy"), np.load(folder / "met.npy")
    labels = load_labels(DATASETS["scgem"], folder)[0]
    shares = f"{norm_variance_share(expr):.3f} / {norm_variance_share(met):.3f}"
    for mode_s, mode_t in (("none", "none"), ("l2", "none"), ("none", "l2"), ("l2", "l2")):
        print(f"| {mode_s} / {mode_t} | {shares} | "
              f"{scores(scale_rows(expr, mode_s)[0], scale_rows(met, mode_t)[0], labels)} |", flush=True)


if __name__ == "__main__":
    main()
