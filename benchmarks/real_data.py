"""Alignment quality on real paired data (SNARE-seq), through the public API.

Prints, per seed: FOSCTTM (both directions, as SCOT) of the barycentric projection of the source
into the target representation, kNN (k=5) label transfer accuracy, the GW objective, the start
objectives and the time. Rows are L2-normalised first (as SCOT and the CLI default do).

    python benchmarks/real_data.py --seeds 0 1 2 3 4
    python benchmarks/real_data.py --seeds 0 1 2 3 --gradient sampled --n-starts 1

Data: ../shared/data/snareseq by default, or the copy in tests/data/snareseq (MIT, SCOT).
Published: SCOT 0.1496 (tuned k=110, ε=1e-3), Pamona 0.168.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import gwalign
from gwalign.metrics import foscttm, label_transfer_accuracy

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "snareseq"


def l2_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with rna.npy, atac.npy, labels")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--gradient", default="auto", choices=["auto", "lowrank", "sampled"])
    parser.add_argument("--n-anchors", type=int, default=None)
    parser.add_argument("--n-starts", type=int, default=None)
    args = parser.parse_args()

    xs, xt = l2_rows(np.load(args.data / "rna.npy")), l2_rows(np.load(args.data / "atac.npy"))
    labels = np.load(args.data / "rna_labels.npy")
    n = xs.shape[0]
    print(f"# {args.data.name}: {n} cells, gradient={args.gradient}, n_anchors={args.n_anchors}, "
          f"n_starts={args.n_starts}")
    print("| seed | FOSCTTM | label transfer | GW objective | start objectives | time (s) |")
    print("|---|---|---|---|---|---|")
    scores = []
    for seed in args.seeds:
        config = gwalign.GWConfig(device="cpu", seed=seed, gradient=args.gradient,
                                  n_anchors=args.n_anchors, n_starts=args.n_starts)
        start = time.perf_counter()
        result = gwalign.align(xs, xt, config)
        elapsed = time.perf_counter() - start
        projected = result.apply(xt) * n          # barycentre of each source cell's partners
        score = foscttm(projected, xt)
        scores.append(score)
        transfer = label_transfer_accuracy(projected, labels, xt, labels)
        starts = ", ".join(f"{v:.4f}" for v in result.solve.start_objectives)
        print(f"| {seed} | {score:.3f} | {transfer:.3f} | {result.gw_objective:.4f} | {starts} | {elapsed:.1f} |",
              flush=True)
    print(f"# FOSCTTM mean {np.mean(scores):.3f}, spread (max - min) {np.ptp(scores):.3f}")


if __name__ == "__main__":
    main()
