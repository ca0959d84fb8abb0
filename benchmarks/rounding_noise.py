"""How far a real pair's scores move under perturbations at the level of rounding.

Each draw multiplies every entry of the source representation by ``1 + δ·z`` (z standard normal,
seeded by the draw; δ = ``--scale``, 1e-6 by default: about ten float32 ulps) and aligns the pair
at every default, scored as ``benchmarks/real_data.py`` scores it (FOSCTTM for paired data, label
transfer on shared types, the labels ``gwalign run`` writes). Draw 0 is the unperturbed pair.

A change of the code that alters only rounding (another order of a sum, another exponential
function) moves a pair's scores within this range; a score that moves further is the change's
doing. Prints one row per draw and one summary line per pair.

    python benchmarks/rounding_noise.py --datasets pbmc pbmc-cite scnmt-acc --draws 6
"""

from __future__ import annotations

import argparse

import numpy as np

import gwalign
from real_data import DATASETS, load_pair, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["pbmc"], choices=list(DATASETS))
    parser.add_argument("--draws", type=int, default=6, help="draws, the unperturbed pair (draw 0) included")
    parser.add_argument("--scale", type=float, default=1e-6, help="relative size of the perturbation")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print("| data | draw | GW objective | FOSCTTM | label transfer | labels written |")
    print("|---|---|---|---|---|---|")
    summaries = []
    for name in args.datasets:
        data = DATASETS[name]
        xs, xt, ls, lt = load_pair(name, None, "auto")
        rows = []
        for draw in range(args.draws):
            noise = np.random.default_rng(draw).standard_normal(xs.shape)
            perturbed = xs * (1.0 + args.scale * noise) if draw else xs
            result = gwalign.align(perturbed, xt, gwalign.GWConfig(device=args.device))
            s = score(data, result, perturbed, xt, ls, lt)
            rows.append(s)
            fos = f"{s['foscttm']:.3f}" if "foscttm" in s else "–"
            print(f"| {name} | {draw} | {result.gw_objective:.5f} | {fos} | {s['label_transfer']:.3f} "
                  f"| {s['labels_written']:.3f} |", flush=True)
        ranges = [f"{key} {min(r[key] for r in rows):.3f}–{max(r[key] for r in rows):.3f}"
                  for key in ("foscttm", "label_transfer", "labels_written") if key in rows[0]]
        summaries.append(f"# {name}, {args.draws} draws at δ = {args.scale:g}: " + ", ".join(ranges))
    print("\n".join(summaries))


if __name__ == "__main__":
    main()
