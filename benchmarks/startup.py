"""What a user waits for: ``gwalign --help``, the imports of a run, and the README's example command
(``gwalign run`` on the example pair at every default, with ``--transfer-labels cell_type``), or
``gwalign run`` on SNARE-seq given its representations (``--pair snareseq``: the arrays of
``tests/data/snareseq`` in ``obsm["X_rep"]``, ``--rep-source X_rep --rep-target X_rep
--transfer-labels label``, figures on).

    python benchmarks/startup.py --repeats 3
    python benchmarks/startup.py --repeats 3 --pair snareseq
    python benchmarks/startup.py --repeats 3 --fresh-numba-cache
    python benchmarks/startup.py --repeats 3 --code . --code ../other-checkout   # A, B, A, B

Every command runs in a new process. Prints the load average, then one row per run: the wall time
of ``gwalign --help`` and of ``gwalign run``, the run's own stages from ``report.json``
(``timings_s``: preprocess, graph, solve, write_figures, total), the seconds outside them (the
interpreter's start, the imports before the first stage, the exit), the garbage collector's full
collections until the exit handlers ran (count and seconds) and the seconds after them (the
interpreter's shutdown); then the import time of each heavy library in a new process.

``--fresh-numba-cache`` gives every run an empty numba cache folder (``NUMBA_CACHE_DIR``): the first
run after installation, when numba compiles and caches what scanpy (and umap-learn) use; pip has
already compiled Python's bytecode at installation. ``--code`` runs the command line of another
source tree (its ``gwalign`` package first on ``PYTHONPATH``), alternating with the others run by
run, so that load that comes and goes on shared cores falls on each alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Runs ``python -m gwalign.cli`` of whichever code is first on the path, counting the garbage
#: collector's full collections; at exit it writes them, and the seconds since its start, to the
#: file ``$GWALIGN_PROBE_OUT``.
PROBE = """
import atexit, gc, json, os, runpy, sys, time
start, full = time.perf_counter(), [0, 0.0, 0.0]
def watch(phase, info):
    if info["generation"] == 2:
        if phase == "start":
            full[2] = time.perf_counter()
        else:
            full[0] += 1
            full[1] += time.perf_counter() - full[2]
def report():
    with open(os.environ["GWALIGN_PROBE_OUT"], "w") as out:
        json.dump({"collections": full[0], "collections_s": full[1], "handlers_at_s": time.perf_counter() - start}, out)
gc.callbacks.append(watch)
atexit.register(report)
runpy.run_module("gwalign.cli", run_name="__main__")
"""
LIBRARIES = ("torch", "anndata", "scanpy", "sklearn.neighbors", "matplotlib.pyplot", "numba", "umap")
STAGES = ("preprocess", "graph", "solve", "write_figures", "total")


def environment(code: Path, numba_cache: Path | None) -> dict[str, str]:
    """The environment of a command run from the source tree ``code``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    return env


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one command (which must succeed), run in ``cwd`` (not a source tree: ``python
    -m`` puts its working directory first on the path)."""
    tick = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - tick


def probed(arguments: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict]:
    """Wall seconds of ``gwalign ARGUMENTS`` run through :data:`PROBE`, and what the probe wrote."""
    out = cwd / "probe.json"
    seconds = timed([sys.executable, "-c", PROBE, *arguments], {**env, "GWALIGN_PROBE_OUT": str(out)}, cwd)
    return seconds, json.loads(out.read_text())


def snareseq_files(folder: Path) -> tuple[Path, Path]:
    """SNARE-seq's arrays written as two .h5ad files, each in ``obsm["X_rep"]`` (and ``X``), with
    the cell lines in ``obs["label"]``."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    data = REPO / "tests" / "data" / "snareseq"
    labels = np.load(data / "rna_labels.npy").astype(str)
    files = []
    for side in ("rna", "atac"):
        x = np.load(data / f"{side}.npy")
        names = [f"cell{i}" for i in range(len(x))]
        adata = ad.AnnData(X=x, obs=pd.DataFrame({"label": labels}, index=names))
        adata.obsm["X_rep"] = x
        files.append(folder / f"{side}.h5ad")
        adata.write_h5ad(files[-1])
    return files[0], files[1]


def one_run(code: Path, pair: tuple[Path, Path], out: Path, fresh_cache: bool, options: list[str]) -> dict:
    """``gwalign --help`` and ``gwalign run`` on ``pair`` with ``options``, from ``code``."""
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = environment(code, Path(cache) if fresh_cache else None)
        help_s = timed([sys.executable, "-m", "gwalign.cli", "--help"], env, Path(cache))
        run_s, probe = probed(["run", str(pair[0].resolve()), str(pair[1].resolve()), "--out-dir", str(out),
                               "--overwrite", "--quiet", *options], env, Path(cache))
    report = json.loads((out / "report.json").read_text())
    stages = {key: float(report["timings_s"].get(key, float("nan"))) for key in STAGES}
    return {"help_s": help_s, "run_s": run_s, **stages, "outside_s": run_s - stages["total"],
            "collections": probe["collections"], "collections_s": probe["collections_s"],
            "shutdown_s": run_s - probe["handlers_at_s"]}


def import_seconds(library: str) -> float:
    """Seconds of ``import library`` in a new process (beyond the interpreter's own start)."""
    probe = f"import time; t = time.perf_counter(); import {library}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code", type=Path, action="append", help="source trees to run (default: this one)")
    parser.add_argument("--fresh-numba-cache", action="store_true", help="an empty numba cache for every run")
    parser.add_argument("--source", type=Path, default=REPO / "example_data" / "rna.h5ad")
    parser.add_argument("--target", type=Path, default=REPO / "example_data" / "atac.h5ad")
    parser.add_argument("--pair", choices=("example", "snareseq"), default="example",
                        help="the example command (--source, --target) or SNARE-seq given its representations")
    args = parser.parse_args()
    codes = [path.resolve() for path in (args.code or [REPO])]
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"numba cache: {'empty for every run' if args.fresh_numba_cache else 'as installed'}")
    print("| code | repeat | `gwalign --help` (s) | `gwalign run` (s) | "
          + " | ".join(f"{stage} (s)" for stage in STAGES)
          + " | outside the stages (s) | full collections | their time (s) | shutdown (s) |")
    print("|---|---|---|---|" + "---|" * len(STAGES) + "---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="gwalign-startup-") as folder:
        if args.pair == "snareseq":
            pair = snareseq_files(Path(folder))
            options = ["--rep-source", "X_rep", "--rep-target", "X_rep", "--transfer-labels", "label"]
        else:
            pair, options = (args.source, args.target), ["--transfer-labels", "cell_type"]
        for repeat in range(args.repeats):
            for code in codes:
                row = one_run(code, pair, Path(folder) / "out", args.fresh_numba_cache, options)
                print(f"| {code.name} | {repeat + 1} | {row['help_s']:.2f} | {row['run_s']:.2f} | "
                      + " | ".join(f"{row[stage]:.2f}" for stage in STAGES)
                      + f" | {row['outside_s']:.2f} | {row['collections']} | {row['collections_s']:.2f} "
                      f"| {row['shutdown_s']:.2f} |",
                      flush=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print("| library | import in a new process (s) |")
    print("|---|---|")
    for library in LIBRARIES:
        print(f"| {library} | {import_seconds(library):.2f} |", flush=True)


if __name__ == "__main__":
    main()
