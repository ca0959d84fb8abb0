"""End-to-end scale benchmark: spiral (2-D) → Swiss roll (3-D) on one GPU (or the CPU).

Prints, per size: end-to-end time and per stage, peak GPU memory, GW iterations and the
|Spearman| of the barycentric match; the stages comment also times the default joint embedding
(``joint_embedding``, not part of the end-to-end time). Kernels are compiled by a warm-up run first.

    python benchmarks/scale.py --sizes 4000 10000 20000 45000
    python benchmarks/scale.py --sizes 4000 10000 20000 45000 --compare torchgw pot

``--compare`` also runs, on the same data and GPU, TorchGW 0.4.2 (``torchgw.sampled_gw`` with its
fast settings: landmark distances, mixed precision, M = 80, ε = 0.005) and POT's entropic GW on
exact graph geodesics (all-pairs Dijkstra on the CPU, then ``ot.gromov.entropic_gromov_wasserstein``
on the GPU; sizes up to ``POT_MAX``), when they are installed (``../shared/tools/device-wheels.sh``).
"""

from __future__ import annotations

import argparse
import ast
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr

import gwalign
from gwalign.synthetic import spiral_and_roll

#: Largest side POT's dense entropic GW is asked to handle (N² distances on the CPU, N·K plans on the GPU).
POT_MAX = 5000

PAIRS = {4000: 5000, 10000: 12000, 20000: 25000, 45000: 45000, 100000: 100000, 250000: 250000,
         1000000: 1000000}


def run(n: int, k: int, device: str, config: gwalign.GWConfig) -> dict:
    xs, ts, xt, tt = spiral_and_roll(n, k, seed=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = gwalign.align(xs, xt, config)
    tick = time.perf_counter()
    projected = result.project_to_source(tt)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    result.timings["project"] = time.perf_counter() - tick
    # The default joint embedding (obsm["X_gw"]), outside the end-to-end time: coupled CCA with its
    # plan diffusion over both kNN graphs.
    tick = time.perf_counter()
    gwalign.coupled_cca(result, xs, xt)
    result.timings["joint_embedding"] = time.perf_counter() - tick
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return {"time": elapsed, "peak_gb": peak, "iters": result.n_iter,
            "spearman": abs(spearmanr(ts, projected)[0]), "stages": result.timings,
            "sinkhorn": int(np.sum(result.solve.sinkhorn_iters)), "polish": result.solve.sinkhorn_iters[-1]}


def barycentric_spearman(plan: torch.Tensor, ts: np.ndarray, tt: np.ndarray) -> float:
    """|Spearman| between source positions and the barycentre of their coupled target positions."""
    plan = plan.double()
    proj = (plan @ torch.as_tensor(tt, dtype=torch.float64, device=plan.device)) / plan.sum(1).clamp_min(1e-300)
    return abs(spearmanr(ts, proj.cpu().numpy())[0])


def run_other(tool: str, n: int, k: int, device: str) -> dict:
    """Time another tool end to end on the same pair; ``error`` says why a size failed."""
    xs, ts, xt, tt = spiral_and_roll(n, k, seed=0)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        if tool == "torchgw":
            import torchgw

            plan = torchgw.sampled_gw(X_source=xs, X_target=xt, distance_mode="landmark", M=80, epsilon=0.005,
                                      mixed_precision=True, device=torch.device(device))
        else:
            if max(n, k) > POT_MAX:
                return {"error": f"not run (> {POT_MAX} points: N² distances)"}
            import ot
            from scipy.sparse.csgraph import dijkstra

            from gwalign.graph import knn_graph

            dist = [dijkstra(knn_graph(torch.as_tensor(x, dtype=torch.float32), 10).matrix, directed=True)
                    for x in (xs, xt)]
            cs, ct = (torch.as_tensor(d / d.mean(), device=device) for d in dist)
            ps = torch.full((n,), 1.0 / n, dtype=torch.float64, device=device)
            pt = torch.full((k,), 1.0 / k, dtype=torch.float64, device=device)
            plan = ot.gromov.entropic_gromov_wasserstein(cs, ct, ps, pt, "square_loss", epsilon=5e-3)
        plan = torch.as_tensor(plan, device=device)
        torch.cuda.synchronize()
    except torch.OutOfMemoryError:
        return {"error": "CUDA out of memory"}
    except Exception as error:  # a benchmark row, not a crash: report what stopped it
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"}
    elapsed = time.perf_counter() - start
    return {"time": elapsed, "peak_gb": torch.cuda.max_memory_allocated() / 2**30,
            "spearman": barycentric_spearman(plan, ts, tt)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 10000, 20000, 45000])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-starts", type=int, default=1, help="starts (0: GWConfig's default)")
    parser.add_argument("--n-anchors", type=int, default=80)
    parser.add_argument("--precision", default="mixed", choices=["mixed", "tf32", "tf32x3", "ieee"])
    parser.add_argument("--compare", nargs="*", default=[], choices=["torchgw", "pot"],
                        help="also run these tools on the same pairs (GPU only)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other GWConfig fields, e.g. --set sinkhorn_max_iter=10 (Python literals)")
    args = parser.parse_args()
    overrides = {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in args.set)}
    config = gwalign.GWConfig(device=args.device, distance="landmark", n_starts=args.n_starts or None,
                              n_anchors=args.n_anchors, precision=args.precision, **overrides)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"# {name}, torch {torch.__version__}, n_anchors={args.n_anchors}, n_starts={args.n_starts}, "
          f"precision={args.precision}" + "".join(f", {item}" for item in args.set))
    tick = time.perf_counter()
    # Tile shapes follow the problem size (gwalign.kernels.lse.launch_config): the warm-up runs
    # one size whose row tiles shrink and one whose tiles do not, so every variant is compiled.
    for n, k in ((2000, 2500), (10000, 12000)) if args.device.startswith("cuda") else ((2000, 2500),):
        run(n, k, args.device, config)
    print(f"# warm-up (kernel compilation) {time.perf_counter() - tick:.1f} s")
    print("| N × K | time (s) | graph | distances | Sinkhorn | peak GPU (GB) | GW iters | Sinkhorn steps (polish) | abs Spearman |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        k = PAIRS.get(n, n)
        row = run(n, k, args.device, config)
        st = row["stages"]
        print(f"| {n:,} × {k:,} | {row['time']:.2f} | {st['graph']:.2f} | {st['distances']:.2f} | "
              f"{st.get('solve_sinkhorn', 0) + st.get('solve_polish', 0):.2f} | {row['peak_gb']:.2f} | {row['iters']} | {row['sinkhorn']} ({row['polish']}) | "
              f"{row['spearman']:.4f} |", flush=True)
        print("<!-- stages " + json.dumps({key: round(value, 2) for key, value in st.items()}) + " -->", flush=True)
    if args.compare:
        import importlib.metadata as md

        print("\n| tool | N × K | time (s) | peak GPU (GB) | abs Spearman |")
        print("|---|---|---|---|---|")
        for tool in args.compare:
            try:
                label = f"{tool} {md.version(tool)}"
            except md.PackageNotFoundError:
                print(f"| {tool} | – | not installed | – | – |")
                continue
            for n in args.sizes:
                k = PAIRS.get(n, n)
                row = run_other(tool, n, k, args.device)
                if "error" in row:
                    print(f"| {label} | {n:,} × {k:,} | {row['error']} | – | – |", flush=True)
                else:
                    print(f"| {label} | {n:,} × {k:,} | {row['time']:.2f} | {row['peak_gb']:.2f} | "
                          f"{row['spearman']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
