"""The biologist's command end to end at atlas sizes: the example pair at N cells per side (what ``gwalign
example --cells N`` writes, uncompressed), ``gwalign run`` on the two count files (RNA: scanpy PCA; ATAC: LSI; every default, figures included), ``gwalign evaluate``.

Each step runs as its own process, as a user or a batch job would run it. Prints, per size: the wall
time of each command, the run's stage times (report.json ``timings_s``: read, preprocess, the engine's
stages, write = embedding, labels, one-sided summary, files and figures), the peak memory it reports
(``peak_memory_gb``: host RSS, GPU allocated), the output sizes and the scores against the simulation's
truth (FOSCTTM through ``obs["true_cell"]``, kNN label transfer of ``cell_type``).

    python benchmarks/cli_scale.py --sizes 2000 10000 --device cpu
    python benchmarks/cli_scale.py --sizes 50000 200000 --device cuda

The example pair is the bundled simulation (an asymmetric branching trajectory; 800 genes, 2000 peaks),
so the scores say that nothing breaks at size, not how well real data align.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = [sys.executable, "-c", "from gwalign.cli import app; app()"]


def timed(args: list[str]) -> tuple[float, str]:
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
    from gwalign.example import make_example_pair

    tick = time.perf_counter()
    folder.mkdir(parents=True)
    for adata, name in zip(make_example_pair(n_cells=cells), ("rna.h5ad", "atac.h5ad")):
        adata.write_h5ad(folder / name)
    return time.perf_counter() - tick


def one_size(cells: int, device: str, folder: Path, figures: bool, evaluate: bool) -> dict:
    data, out = folder / f"data-{cells}", folder / f"out-{cells}"
    make_s = write_pair(cells, data)
    run_s, stdout = timed(["run", str(data / "rna.h5ad"), str(data / "atac.h5ad"), "-o", str(out), "--device", device,
                           "--transfer-labels", "cell_type", "--json", "--overwrite",
                           *([] if figures else ["--no-figures"])])
    report = json.loads(stdout)
    eval_s, scored = timed(["evaluate", str(out / "rna.gwalign.h5ad"), str(out / "atac.gwalign.h5ad"),
                            "--truth-key", "true_cell", "--label-key", "cell_type", "--json"]) if evaluate else (
        float("nan"), "{}")
    sizes = {path.name: path.stat().st_size / 2**20 for path in out.iterdir() if path.is_file()}
    return {"cells": cells, "example_s": make_s, "run_s": run_s, "evaluate_s": eval_s, "report": report,
            "scores": json.loads(scored), "output_mb": sizes,
            "input_mb": {p.name: p.stat().st_size / 2**20 for p in data.iterdir()}}


def print_row(row: dict) -> None:
    report, scores = row["report"], row["scores"]
    t = report["timings_s"]
    # The engine's stages, without their parts (``solve_sinkhorn`` is part of ``solve``).
    engine = {k: v for k, v in t.items() if k not in ("read", "preprocess", "write", "total")
              and not any(k.startswith(other + "_") for other in t)}
    print(f"\n{row['cells']:,} cells per side on {report['device']}: writing the pair {row['example_s']:.1f} s, "
          f"run {row['run_s']:.1f} s (process), evaluate {row['evaluate_s']:.1f} s")
    print(f"  stages: read {t['read']:.1f} s, preprocess {t['preprocess']:.1f} s, "
          + ", ".join(f"{k} {v:.1f} s" for k, v in engine.items())
          + f", write {t['write']:.1f} s (" + ", ".join(f"{k[6:]} {v:.1f}" for k, v in t.items() if k.startswith("write_"))
          + f"), total {t['total']:.1f} s")
    memory = report.get("peak_memory_gb", {})
    print("  peak memory: " + ", ".join(f"{k} {v:.2f} GB" for k, v in memory.items()))
    print("  inputs: " + ", ".join(f"{k} {v:.0f} MB" for k, v in row["input_mb"].items())
          + "; outputs: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(row["output_mb"].items())))
    scored = (f"FOSCTTM {scores['foscttm']:.3f}, label transfer {scores['label_transfer']:.3f}, "
              f"labels written {scores.get('labels_written', float('nan')):.3f}" if scores else "not evaluated")
    print(f"  {scored}; GW iterations {report['iterations']}, converged {report['converged']}, "
          f"figures {report.get('figures', 'off')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-figures", action="store_true", help="Pass --no-figures to gwalign run.")
    parser.add_argument("--evaluate-max", type=int, default=100_000,
                        help="Score with gwalign evaluate up to this many cells per side (its kNN scores grow as n^2).")
    parser.add_argument("--json", type=Path, help="Also write every row (reports included) to this file.")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gwalign-cli-scale-") as tmp:
        for cells in args.sizes:
            rows.append(one_size(cells, args.device, Path(tmp), not args.no_figures, cells <= args.evaluate_max))
            print_row(rows[-1])
            sys.stdout.flush()
            if args.json:   # after every size, so that a run stopped by a time limit keeps what it did
                args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
