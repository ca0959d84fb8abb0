"""Speed at scale on synthetic data: the engine, or with --cli the command line end to end.

The engine runs on a spiral (2-D) → Swiss roll (3-D) pair, or with ``--pair helix`` on a helix
(8-D) → S-curve (3-D) pair; ``--cli`` runs ``gwalign run`` and
``gwalign evaluate`` on the bundled example pair.

Engine mode (default): :func:`gwalign.align` on a spiral of N points and a Swiss roll of K
(``PAIRS``), landmark distances, on one GPU or the CPU. Prints, per size: end-to-end time and per
stage (graph, distances, Sinkhorn), peak GPU memory, GW iterations, Sinkhorn steps and the
|Spearman| of the barycentric match; an HTML comment after each row holds every stage's time,
including the default joint embedding (``joint_embedding``, not part of the end-to-end time), the
Sinkhorn iterations of each full-size step (the last is the polish) and the GW objective.
Kernels are compiled by an untimed warm-up run first. The first line names the device.

    python benchmarks/scale.py --device cuda --sizes 4000 10000 20000 45000
    python benchmarks/scale.py --device cuda --sizes 4000 10000 20000 45000 --compare torchgw pot
    python benchmarks/scale.py --device cpu --sizes 2000 5000

``--compare`` also runs, on the same data and GPU, TorchGW 0.4.2 (``torchgw.sampled_gw`` with its
fast settings: landmark distances, mixed precision, M = 80, ε = 0.005) and POT's entropic GW on
exact graph geodesics (all-pairs Dijkstra on the CPU, then ``ot.gromov.entropic_gromov_wasserstein``
on the GPU; sizes up to ``POT_MAX``), when they are installed (``pip install torchgw==0.4.2 pot``).

Distributed mode: the same engine run launched as several processes (``torchrun
--nproc-per-node P`` or ``srun``; :mod:`gwalign.distributed`), one alignment split over all of
them. Rank 0 prints, per size: the time, the speedup over a one-process time given with
``--baseline N=SECONDS`` (measured by the plain mode on the same machine), the Sinkhorn time,
the time rank 0 spent in collectives (waits for slower ranks included), every rank's CPU seconds
in the alignment (how the work divides, even on shared cores) and every rank's peak memory (GPU
allocated on CUDA, host RSS on the CPU). The plain mode's HTML comment gives the one-process CPU
seconds (``cpu``). ``GWALIGN_DIST_MIN_ENTRIES=0`` splits sizes
below the default threshold too.

    torchrun --standalone --nproc-per-node 4 benchmarks/scale.py --device cuda --sizes 45000 100000 \
        --baseline 45000=20.1 100000=80.3
    OMP_NUM_THREADS=1 GWALIGN_DIST_MIN_ENTRIES=0 torchrun --standalone --nproc-per-node 2 \
        benchmarks/scale.py --device cpu --sizes 4000 --set threads=1

CLI mode (``--cli``): what a user runs, each step as its own process: the example pair at N cells
per side (what ``gwalign example --cells N`` writes, uncompressed), ``gwalign run`` on the two count
files (RNA: PCA; ATAC: LSI; every default, figures included unless ``--no-figures``), then
``gwalign evaluate``. Prints, per size: the wall time of each command, the run's stage times
(report.json ``timings_s``), the peak memory it reports (host RSS, GPU allocated), the input and
output sizes, and the scores against the simulation's truth (FOSCTTM through
``obs["true_cell"]``, kNN label transfer of ``cell_type``). The example pair is a simulation (an
asymmetric branching trajectory; 800 genes, 2000 peaks), so the scores say that nothing breaks at
size, not how well real data align.

    python benchmarks/scale.py --cli --device cpu --sizes 2000 10000
    python benchmarks/scale.py --cli --device cuda --sizes 50000 200000 --evaluate-max 200000
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import gwalign
from gwalign.datasets.synthetic import helix_and_s_curve, spiral_and_roll

#: Largest side POT's dense entropic GW is asked to handle (N² distances on the CPU, N·K plans on the GPU).
POT_MAX = 5000

#: The manifold pairs ``--pair`` picks from: each returns (x_source, t_source, x_target, t_target).
SHAPES = {"spiral": spiral_and_roll, "helix": helix_and_s_curve}

PAIRS = {4000: 5000, 10000: 12000, 20000: 25000, 45000: 45000, 100000: 100000, 250000: 250000,
         1000000: 1000000}


def run(n: int, k: int, device: str, config: gwalign.GWConfig, shape: str = "spiral") -> dict:
    xs, ts, xt, tt = SHAPES[shape](n, k, seed=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, cpu = time.perf_counter(), time.process_time()
    result = gwalign.align(xs, xt, config)
    result.timings["cpu"] = time.process_time() - cpu   # this process's CPU seconds in the alignment
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
            "sinkhorn": int(np.sum(result.solve.sinkhorn_iters)), "polish": result.solve.sinkhorn_iters[-1],
            "steps": [int(iters) for iters in result.solve.sinkhorn_iters], "objective": result.solve.objective}


def barycentric_spearman(plan: torch.Tensor, ts: np.ndarray, tt: np.ndarray) -> float:
    """|Spearman| between source positions and the barycentre of their coupled target positions."""
    plan = plan.double()
    proj = (plan @ torch.as_tensor(tt, dtype=torch.float64, device=plan.device)) / plan.sum(1).clamp_min(1e-300)
    return abs(spearmanr(ts, proj.cpu().numpy())[0])


def run_other(tool: str, n: int, k: int, device: str, shape: str = "spiral") -> dict:
    """Time another tool end to end on the same pair; ``error`` says why a size failed."""
    xs, ts, xt, tt = SHAPES[shape](n, k, seed=0)
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

            from gwalign.geometry.knn import knn_graph

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


# CLI mode (--cli): gwalign's commands on the example pair, each as its own process.

COMMAND = [sys.executable, "-c", "from gwalign.cli import main; main()"]


def timed_command(args: list[str]) -> tuple[float, str]:
    """Run one gwalign command; its wall time and stdout. A failure prints its stderr and stops."""
    tick = time.perf_counter()
    done = subprocess.run(COMMAND + args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"gwalign {args[0]} failed with exit code {done.returncode}")
    return time.perf_counter() - tick, done.stdout


def write_pair(cells: int, folder: Path) -> float:
    """The example pair of ``cells`` cells per side, written without compression (``gwalign example
    --cells`` gzips, which at 10^5 cells costs more than the alignment); seconds taken."""
    from gwalign.datasets.example import make_example_pair

    tick = time.perf_counter()
    folder.mkdir(parents=True)
    for adata, name in zip(make_example_pair(n_cells=cells), ("rna.h5ad", "atac.h5ad")):
        adata.write_h5ad(folder / name)
    return time.perf_counter() - tick


def cli_size(cells: int, device: str, folder: Path, figures: bool, evaluate: bool) -> dict:
    """``gwalign run`` and (if ``evaluate``) ``gwalign evaluate`` on the example pair of ``cells``
    cells per side: times, the run's report, scores and file sizes."""
    data, out = folder / f"data-{cells}", folder / f"out-{cells}"
    make_s = write_pair(cells, data)
    run_s, stdout = timed_command(["run", str(data / "rna.h5ad"), str(data / "atac.h5ad"), "-o", str(out),
                                   "--device", device, "--transfer-labels", "cell_type", "--json", "--overwrite",
                                   *([] if figures else ["--no-figures"])])
    report = json.loads(stdout)
    eval_s, scored = timed_command(["evaluate", str(out / "rna.gwalign.h5ad"), str(out / "atac.gwalign.h5ad"),
                                    "--truth-key", "true_cell", "--label-key", "cell_type", "--json"]) \
        if evaluate else (float("nan"), "{}")
    sizes = {path.name: path.stat().st_size / 2**20 for path in out.iterdir() if path.is_file()}
    return {"cells": cells, "example_s": make_s, "run_s": run_s, "evaluate_s": eval_s, "report": report,
            "scores": json.loads(scored), "output_mb": sizes,
            "input_mb": {p.name: p.stat().st_size / 2**20 for p in data.iterdir()}}


def print_cli_row(row: dict) -> None:
    report, scores = row["report"], row["scores"]
    t = report["timings_s"]
    # The engine's stages, without their parts (``solve_sinkhorn`` is part of ``solve``).
    engine = {k: v for k, v in t.items() if k not in ("read", "preprocess", "write", "total")
              and not any(k.startswith(other + "_") for other in t)}
    print(f"\n{row['cells']:,} cells per side on {report['device']}: writing the pair {row['example_s']:.1f} s, "
          f"run {row['run_s']:.1f} s (process), evaluate {row['evaluate_s']:.1f} s")
    print(f"  stages: read {t['read']:.1f} s, preprocess {t['preprocess']:.1f} s, "
          + ", ".join(f"{k} {v:.1f} s" for k, v in engine.items())
          + f", write {t['write']:.1f} s ("
          + ", ".join(f"{k[6:]} {v:.1f}" for k, v in t.items() if k.startswith("write_"))
          + f"), total {t['total']:.1f} s")
    memory = report.get("peak_memory_gb", {})
    print("  peak memory: " + ", ".join(f"{k} {v:.2f} GB" for k, v in memory.items()))
    print("  inputs: " + ", ".join(f"{k} {v:.0f} MB" for k, v in row["input_mb"].items())
          + "; outputs: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(row["output_mb"].items())))
    scored = (f"FOSCTTM {scores['foscttm']:.3f}, label transfer {scores['label_transfer']:.3f}, "
              f"labels written {scores.get('labels_written', float('nan')):.3f}" if scores else "not evaluated")
    print(f"  {scored}; GW iterations {report['iterations']}, converged {report['converged']}, "
          f"figures {report.get('figures', 'off')}")


def run_cli_mode(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="gwalign-cli-scale-") as tmp:
        for cells in args.sizes or [2000, 10000]:
            rows.append(cli_size(cells, args.device, Path(tmp), not args.no_figures, cells <= args.evaluate_max))
            print_cli_row(rows[-1])
            sys.stdout.flush()
            if args.json:   # after every size, so that a run stopped by a time limit keeps what it did
                args.json.write_text(json.dumps(rows, indent=1))


def peak_gb(device: str) -> float:
    """This process's peak memory in GB: GPU memory allocated by torch on CUDA, else host RSS."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rank_stats(group, device: str, collectives: float, cpu: float) -> list[dict]:
    """Every rank's peak memory, seconds in collectives and CPU seconds, gathered on every rank."""
    stats = [None] * group.world_size
    torch.distributed.all_gather_object(stats, {"peak_gb": peak_gb(device), "collectives": collectives, "cpu": cpu},
                                        group=group.control)
    return stats


def run_distributed_mode(args: argparse.Namespace, config: gwalign.GWConfig) -> None:
    """One alignment per size over every launched process; rank 0 prints (see the module docstring)."""
    from gwalign.align_arrays import align_call
    from gwalign.distributed.launch import launched, serve

    baseline = {int(n): float(t) for n, t in (item.split("=", 1) for item in args.baseline)}
    with launched(args.device) as group:
        if group.rank > 0:
            def take_part(call: dict) -> None:
                before, cpu = group.collective_seconds, time.process_time()
                align_call(call, group)
                rank_stats(group, args.device, group.collective_seconds - before, time.process_time() - cpu)

            serve(group, take_part)
            return
        print(f"# {group.world_size} processes ({group.backend}), device {args.device}, torch {torch.__version__}, "
              f"split above {group.min_entries:,} plan entries" + "".join(f", {item}" for item in args.set))
        print("| N × K | processes | time (s) | speedup | Sinkhorn (s) | collectives, rank 0 (s) | CPU per rank (s) "
              "| peak memory per rank (GB) |")
        print("|---|---|---|---|---|---|---|---|")
        for n in args.sizes:
            k = PAIRS.get(n, n)
            row = run(n, k, args.device, config)
            st = row["stages"]
            stats = rank_stats(group, args.device, st["collectives"], st["cpu"]) if "collectives" in st \
                else [{"peak_gb": peak_gb(args.device), "collectives": 0.0, "cpu": st["cpu"]}]
            speedup = f"{baseline[n] / row['time']:.2f}×" if n in baseline else "–"
            print(f"| {n:,} × {k:,} | {len(stats)} | {row['time']:.2f} | {speedup} | "
                  f"{st.get('solve_sinkhorn', 0) + st.get('solve_polish', 0):.2f} | {stats[0]['collectives']:.2f} | "
                  + " / ".join(f"{s['cpu']:.1f}" for s in stats) + " | "
                  + " / ".join(f"{s['peak_gb']:.2f}" for s in stats) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="source sizes N (engine mode; default 4000 10000 20000 45000) or cells per side "
                             "(--cli; default 2000 10000)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pair", default="spiral", choices=sorted(SHAPES),
                        help="spiral: 2-D spiral → 3-D Swiss roll; helix: 8-D helix → 3-D S-curve")
    parser.add_argument("--n-starts", type=int, default=1, help="starts (0: GWConfig's default)")
    parser.add_argument("--n-anchors", type=int, default=80)
    parser.add_argument("--precision", default="mixed", choices=["mixed", "tf32", "tf32x3", "ieee"])
    parser.add_argument("--compare", nargs="*", default=[], choices=["torchgw", "pot"],
                        help="also run these tools on the same pairs (GPU only)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other GWConfig fields, e.g. --set sinkhorn_max_iter=10 (Python literals)")
    parser.add_argument("--baseline", nargs="*", default=[], metavar="N=SECONDS",
                        help="distributed mode: one-process times, for the speedup column")
    cli = parser.add_argument_group("CLI mode")
    cli.add_argument("--cli", action="store_true",
                     help="time `gwalign run` and `gwalign evaluate` on the example pair instead of the engine")
    cli.add_argument("--no-figures", action="store_true", help="pass --no-figures to gwalign run")
    cli.add_argument("--evaluate-max", type=int, default=100_000,
                     help="score with gwalign evaluate up to this many cells per side (its kNN scores grow as n^2)")
    cli.add_argument("--json", type=Path, help="also write every row (reports included) to this file")
    args = parser.parse_args()
    if args.cli:
        run_cli_mode(args)
        return
    args.sizes = args.sizes or [4000, 10000, 20000, 45000]
    overrides = {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in args.set)}
    config = gwalign.GWConfig(device=args.device, distance="landmark", n_starts=args.n_starts or None,
                              n_anchors=args.n_anchors, precision=args.precision, **overrides)
    from gwalign.distributed.launch import launch_environment

    if launch_environment() is not None:
        run_distributed_mode(args, config)
        return
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"# {name}, torch {torch.__version__}, n_anchors={args.n_anchors}, n_starts={args.n_starts}, "
          f"precision={args.precision}, pair={args.pair}" + "".join(f", {item}" for item in args.set))
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
        row = run(n, k, args.device, config, args.pair)
        st = row["stages"]
        print(f"| {n:,} × {k:,} | {row['time']:.2f} | {st['graph']:.2f} | {st['distances']:.2f} | "
              f"{st.get('solve_sinkhorn', 0) + st.get('solve_polish', 0):.2f} | {row['peak_gb']:.2f} | {row['iters']} | {row['sinkhorn']} ({row['polish']}) | "
              f"{row['spearman']:.4f} |", flush=True)
        print("<!-- stages " + json.dumps({key: round(value, 2) for key, value in st.items()})
              + f" Sinkhorn iterations per step of the returned run: {row['steps']}, GW objective {row['objective']:.7f} -->",
              flush=True)
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
                row = run_other(tool, n, k, args.device, args.pair)
                if "error" in row:
                    print(f"| {label} | {n:,} × {k:,} | {row['error']} | – | – |", flush=True)
                else:
                    print(f"| {label} | {n:,} × {k:,} | {row['time']:.2f} | {row['peak_gb']:.2f} | "
                          f"{row['spearman']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
