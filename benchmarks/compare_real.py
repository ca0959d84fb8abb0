"""gwalign and other single-cell GW tools on the real pairs, each at its own defaults, scored alike.

Tools: gwalign, SCOT, TorchGW, Pamona, UnionCom, moscot.

Published figures come from runs tuned per data set with the truth (SCOT's k = 110, ε = 1e-3 on
SNARE-seq) or given the labels (Pamona on PBMC). This script runs each tool as a user would first
run it, on the same pairs (``tests/data``, as ``benchmarks/real_data.py`` reads them), and scores
every output the same way. ``--scot-tuned`` adds SCOT with its own tuned recipe where it has one.

- ``gwalign``: :func:`gwalign.align` with every default on the representations ``gwalign run``
  uses (rows scaled by :func:`gwalign.preprocess.row_scaling.scale_pair`, ``auto``), scored in its joint
  embedding ``X_gw`` (coupled CCA), as ``benchmarks/real_data.py`` scores it.
- ``scot``: SCOT v1's defaults as its ``align()`` sets them (Demetci et al. 2022, J Comput Biol
  29:3; github rsinghlab/SCOT): rows L2-normalised, a kNN graph with hop weights on correlation
  distance, k = min(50, 20% of the smaller side), ε = 1e-3, POT's entropic GW; the second
  modality projected into the first's space by the plan (barycentric), as SCOT's scripts do.
- ``scot`` tuned (``--scot-tuned``; SNARE-seq and scGEM): SCOT's own per-pair settings, tuned there
  with the truth: SNARE-seq rows L2-normalised, k = 110, ε = 1e-3 (SCOT's replication notebook;
  0.1496 published); scGEM columns z-scored, k = 35, ε = 5e-3 (SCOT's scGEM scripts). The same
  computation as ``scot``, the second modality projected into the first's space; the note gives
  the scores projected the other way.
- ``torchgw``: TorchGW 0.4.2, ``torchgw.sampled_gw`` with its defaults (geodesics on its k = 30
  graph, M = 50 anchors, ε = 1e-3), on the same representations gwalign gets, the target
  projected into the source's space by the plan; three seeds (its anchors are random).
- ``pamona``: Pamona 0.1.0 (Cao, Hong, Wan 2022, Bioinformatics 38:1; github caokai1073/Pamona),
  ``Pamona().run_Pamona`` with its defaults (k = 10 geodesics, ε = 1e-3, partial GW with the
  number of cells in common set to the smaller side, 30 output dimensions), on the representations
  gwalign gets, scored in its own joint embedding.
- ``unioncom``: UnionCom 0.4.0 (Cao, Bai, Hong, Wan 2020, Bioinformatics 36:i48; github
  caokai1073/UnionCom), ``UnionCom().fit_transform`` with its defaults (k ≤ 40 geodesics on min-max
  scaled data, 2000 prime-dual epochs, t-SNE-guided projection to 32 dimensions; on the GPU when there
  is one), on the same representations, scored in its own joint embedding. Two shims let the 2021
  release run on today's stack, neither touching its computation: NumPy's removed ``np.int`` alias is
  restored as the builtin ``int``, and ``torchvision``, which its model file imports but never uses,
  is stood in for by an empty module where it is not installed.
- ``moscot``: moscot 0.5.2 (Klein et al. 2025, Nature 638; OTT-JAX 0.6.0 underneath),
  ``TranslationProblem(...).prepare(src_attr, tgt_attr).solve()`` with its defaults (squared
  Euclidean costs on the representations, scaled by their mean, ε = 1e-2, full-rank entropic GW),
  on the same representations, the source translated into the target's space by ``translate``
  (barycentric). JAX runs where it is installed (on the CPU where JAX has no GPU build), and its
  time includes JAX's compilation.

Prints a Markdown table, one row per pair, tool and seed: FOSCTTM (paired pairs; both directions,
as SCOT), label transfer (kNN k = 5, both directions, scored on the cell types found on both
sides), time of the alignment call (on a GPU after one untimed warm-up run per tool), and a note:
the warnings the call raised, SCOT's k, or why a run gave no scores. POT runs on the CPU (NumPy),
so does Pamona; gwalign, TorchGW and UnionCom on ``--device`` (UnionCom picks the GPU itself when
there is one).

Besides gwalign's test extras (POT): ``pip install torchgw==0.4.2 pamona==0.1.0 unioncom==0.4.0``
(the last two declare no dependencies; they use NumPy, SciPy, scikit-learn, POT, torch, matplotlib);
``pip install moscot==0.5.2`` (JAX) in an environment of its own with gwalign beside it.

    python benchmarks/compare_real.py
    python benchmarks/compare_real.py --device cuda
    python benchmarks/compare_real.py --device cuda --tools gwalign scot torchgw
    python benchmarks/compare_real.py --datasets snareseq scgem --tools scot --scot-tuned
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import ot
import torch
from scipy.sparse.csgraph import shortest_path
from sklearn.neighbors import kneighbors_graph

import gwalign
from gwalign.metrics import foscttm, label_transfer_accuracy, shared_label_masks
from real_data import DATASETS, data_folder, load_labels, load_pair, score

TOOLS = ("gwalign", "scot", "torchgw", "pamona", "unioncom", "moscot")

#: TorchGW's anchors are drawn at random: its figure is given per seed.
TORCHGW_SEEDS = (0, 1, 2)

#: SCOT's own tuned settings per pair (``--scot-tuned``): normalisation (``l2``: rows, ``zscore``:
#: columns), k, ε.
SCOT_TUNED = {"snareseq": ("l2", 110, 1e-3), "scgem": ("zscore", 35, 5e-3)}


def normalised(x: np.ndarray, mode: str) -> np.ndarray:
    """SCOT's normalisation: ``l2`` scales each row to unit length, ``zscore`` standardises each column."""
    if mode == "l2":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    scale = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def graph_distances(x: np.ndarray, k: int) -> np.ndarray:
    """SCOT's distances: hop-count shortest paths on the kNN graph (correlation distance), scaled
    to a maximum of 1; a disconnected pair gets the largest finite distance."""
    graph = kneighbors_graph(x, k, mode="connectivity", metric="correlation", include_self=True)
    dist = shortest_path(graph, directed=False)
    finite = np.isfinite(dist)
    dist[~finite] = dist[finite].max()
    return dist / dist.max()


def scot_plan(x: np.ndarray, y: np.ndarray, k: int, epsilon: float) -> np.ndarray:
    """SCOT's coupling of ``x``'s cells (rows) with ``y``'s (columns): POT's entropic GW, square
    loss, uniform marginals."""
    cx, cy = graph_distances(x, k), graph_distances(y, k)
    px, py = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    return ot.gromov.entropic_gromov_wasserstein(cx, cy, px, py, "square_loss", epsilon=epsilon, max_iter=1000)


def barycentres(plan: np.ndarray, x_columns: np.ndarray) -> np.ndarray:
    """Each row cell of ``plan`` at the plan-weighted mean of the column cells' ``x_columns``
    (SCOT's projection; ``plan.T`` projects the columns)."""
    return (plan / np.maximum(plan.sum(axis=1, keepdims=True), 1e-300)) @ x_columns


def scot_default_k(n_source: int, n_target: int) -> int:
    """SCOT v1's ``align(k=None)``: 20% of the smaller side, at most 50."""
    return min(int(0.2 * n_source), int(0.2 * n_target), 50)


def legacy_stack_shims() -> None:
    """Let UnionCom 0.4.0 (2021) import and run on today's stack without changing what it computes:
    ``np.int`` (removed in NumPy 1.24) is the builtin ``int`` it aliased, and ``torchvision``, whose
    ``models`` its Model.py imports and never uses, is an empty module where it is not installed
    (PyPI's torchvision may not install beside a CPU-only torch wheel)."""
    if not hasattr(np, "int"):
        np.int = int
    try:
        import torchvision  # noqa: F401
    except Exception:
        stand_in = types.ModuleType("torchvision")
        stand_in.models = types.ModuleType("torchvision.models")
        sys.modules["torchvision"] = stand_in
        sys.modules["torchvision.models"] = stand_in.models


def quietly(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with its standard output swallowed (Pamona and UnionCom print every epoch)."""
    def run() -> object:
        with contextlib.redirect_stdout(io.StringIO()):
            return call()
    return run


def moscot_translation(xs: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, bool]:
    """moscot's ``TranslationProblem`` at its defaults: the source cells translated into the
    target's representation (each the plan's barycentre of its partners), and whether its solver
    converged."""
    import anndata as ad
    import pandas as pd
    from moscot.problems.cross_modality import TranslationProblem

    def side(x: np.ndarray) -> ad.AnnData:
        # moscot refuses an AnnData without variables: the representation is X too.
        return ad.AnnData(x, obs=pd.DataFrame(index=[str(i) for i in range(len(x))]), obsm={"rep": x})

    problem = TranslationProblem(adata_src=side(xs), adata_tgt=side(xt)).prepare(src_attr="rep", tgt_attr="rep")
    problem = problem.solve()
    converged = bool(problem.solutions[("src", "tgt")].converged)
    return np.asarray(problem.translate(source="src", target="tgt", forward=True), dtype=np.float64), converged


def projection_scores(x_source: np.ndarray, target_in_source: np.ndarray, ls: np.ndarray, lt: np.ndarray,
                      paired: bool) -> dict[str, float]:
    """FOSCTTM and shared-type label transfer with both sides in one space: the source's (SCOT,
    TorchGW), the target's (moscot; then the first argument is the translated source) or a tool's
    joint embedding (Pamona, UnionCom)."""
    keep_s, keep_t = shared_label_masks(ls, lt)
    scores = {"label_transfer": label_transfer_accuracy(x_source, ls, target_in_source, lt,
                                                        keep_source=keep_s, keep_target=keep_t)}
    if paired:
        scores["foscttm"] = foscttm(x_source, target_in_source)
    return scores


def timed(call: Callable[[], object], device: str) -> tuple[object, float, list[str]]:
    """``call()``, its wall time, and the distinct warnings it raised (e.g. POT's "Sinkhorn did
    not converge": part of what a user of the tool sees)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        out = call()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    # API deprecation notices (POT's, raised as UserWarning to Pamona) say nothing of the result.
    seen = sorted({str(w.message).split(". ")[0].splitlines()[0][:60] for w in caught
                   if not issubclass(w.category, DeprecationWarning) and "deprecated" not in str(w.message)})
    return out, elapsed, seen


def error_row(error: Exception | str, seed: object = "–", elapsed: float = float("nan")) -> dict:
    """The row of a run that raised (the exception, in one line) or gave an unusable output (the
    reason given)."""
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
    return {"seed": seed, "time": elapsed, "error": reason}


def run_tool(tool: str, name: str, root: Optional[Path], device: str, pamona_zscore: bool = False) -> list[dict]:
    """Rows (one per seed) of one tool on one pair; a failure is a row, not a crash.
    ``pamona_zscore``: Pamona gets z-scored features, as its own PBMC example prepares them."""
    data = DATASETS[name]
    folder = data_folder(name, root)
    ls, lt = load_labels(data, folder)
    rows = []
    if tool == "gwalign":
        xs, xt, _, _ = load_pair(name, root)
        result, elapsed, seen = timed(lambda: gwalign.align(xs, xt, gwalign.GWConfig(device=device)), device)
        scores = score(data, result, xs, xt, ls, lt)
        return [{"seed": "–", "time": elapsed, "note": "; ".join(seen), **scores}]
    if tool == "scot-tuned":
        mode, k, epsilon = SCOT_TUNED[name]
        xs = normalised(np.load(folder / f"{data.source}.npy"), mode)
        xt = normalised(np.load(folder / f"{data.target}.npy"), mode)
        # As SCOT's scripts: the second modality's cells (rows) coupled with the first's.
        plan, elapsed, seen = timed(lambda: scot_plan(xt, xs, k, epsilon), "cpu")
        if not np.isfinite(plan).all() or plan.sum() <= 0:
            return [error_row("non-finite plan", elapsed=elapsed)]
        other = projection_scores(barycentres(plan.T, xt), xt, ls, lt, data.paired)
        other_way = (f"FOSCTTM {other['foscttm']:.3f}, " if "foscttm" in other else "") + \
            f"label transfer {other['label_transfer']:.3f}"
        return [{"seed": "–", "time": elapsed,
                 "note": "; ".join([f"{mode}, k = {k}, ε = {epsilon:g}", f"projected the other way: {other_way}",
                                    *seen]),
                 **projection_scores(xs, barycentres(plan, xs), ls, lt, data.paired)}]
    if tool == "scot":
        xs = normalised(np.load(folder / f"{data.source}.npy"), "l2")
        xt = normalised(np.load(folder / f"{data.target}.npy"), "l2")
        k = scot_default_k(len(xs), len(xt))
        plan, elapsed, seen = timed(lambda: scot_plan(xs, xt, k, 1e-3), "cpu")
        if not np.isfinite(plan).all() or plan.sum() <= 0:
            return [error_row("non-finite plan", elapsed=elapsed)]
        return [{"seed": "–", "time": elapsed, "note": "; ".join([f"k = {k}", *seen]),
                 **projection_scores(xs, barycentres(plan.T, xs), ls, lt, data.paired)}]
    xs, xt, _, _ = load_pair(name, root)
    if tool == "moscot":
        try:
            (translated, converged), elapsed, seen = timed(quietly(lambda: moscot_translation(xs, xt)), "cpu")
            seen = seen if converged else [*seen, "did not converge"]
        except Exception as error:   # a benchmark row, not a crash
            return [error_row(error)]
        if not np.isfinite(translated).all():
            return [error_row("non-finite translation", elapsed=elapsed)]
        return [{"seed": "–", "time": elapsed, "note": "; ".join(seen),
                 **projection_scores(translated, xt, ls, lt, data.paired)}]
    if tool in ("pamona", "unioncom"):
        try:
            if tool == "pamona":
                from pamona import Pamona
                from pamona.utils import zscore_standardize
                inputs = [zscore_standardize(x.copy()) if pamona_zscore else x.copy() for x in (xs, xt)]
                call = lambda: Pamona.Pamona(verbose=False).run_Pamona(inputs)[0]
            else:
                legacy_stack_shims()
                from unioncom import UnionCom
                call = lambda: UnionCom.UnionCom().fit_transform(dataset=[xs.copy(), xt.copy()])
            # Pamona is NumPy on the CPU; UnionCom moves itself to the GPU when there is one.
            (emb_s, emb_t), elapsed, seen = timed(quietly(call), device if tool == "unioncom" else "cpu")
        except Exception as error:   # a benchmark row, not a crash
            return [error_row(error)]
        # Pamona's embedding comes from np.linalg.eig of symmetric matrices, complex-typed on some
        # NumPy builds with zero or rounding-level imaginary parts: the real part is the embedding.
        imaginary = max(float(np.abs(np.imag(e)).max()) for e in (emb_s, emb_t))
        if imaginary > 1e-8:
            seen = [*seen, f"imaginary parts up to {imaginary:.1e} dropped"]
        emb_s, emb_t = (np.asarray(np.real(e), dtype=np.float64) for e in (emb_s, emb_t))
        if not (np.isfinite(emb_s).all() and np.isfinite(emb_t).all()):
            return [error_row("non-finite embedding", elapsed=elapsed)]
        return [{"seed": "–", "time": elapsed, "note": "; ".join(seen),
                 **projection_scores(emb_s, emb_t, ls, lt, data.paired)}]
    import torchgw

    for seed in TORCHGW_SEEDS:
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            plan, elapsed, seen = timed(lambda: torchgw.sampled_gw(X_source=xs, X_target=xt,
                                                                   device=torch.device(device)), device)
        except Exception as error:   # a benchmark row, not a crash
            rows.append(error_row(error, seed))
            continue
        plan = torch.as_tensor(plan).double().cpu().numpy()
        if not np.isfinite(plan).all() or plan.sum() <= 0:
            rows.append(error_row("non-finite plan", seed, elapsed))
            continue
        rows.append({"seed": seed, "time": elapsed, "note": "; ".join(seen),
                     **projection_scores(xs, barycentres(plan.T, xs), ls, lt, data.paired)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding the pairs' folders, laid out as tests/data (default: tests/data)")
    parser.add_argument("--device", default="cpu", help="gwalign's and TorchGW's device (POT: always the CPU)")
    parser.add_argument("--pamona-zscore", action="store_true",
                        help="give Pamona z-scored features (its own PBMC example's preparation)")
    parser.add_argument("--scot-tuned", action="store_true",
                        help="also run SCOT with its own tuned recipe on the pairs that have one "
                             f"({', '.join(SCOT_TUNED)})")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        # Kernel compilation and library set-up are not what the table compares: each GPU tool
        # aligns the smallest pair once, untimed, first.
        for tool in set(args.tools) & {"gwalign", "torchgw", "unioncom"}:
            run_tool(tool, "scgem", args.data_root, args.device)
    print("| data | tool | seed | FOSCTTM | label transfer | time (s) | note |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets:
        tools = [*args.tools, *(["scot-tuned"] if args.scot_tuned and name in SCOT_TUNED else [])]
        for tool in tools:
            for row in run_tool(tool, name, args.data_root, args.device, args.pamona_zscore):
                fos = f"{row['foscttm']:.3f}" if "foscttm" in row else "–"
                lt = f"{row['label_transfer']:.3f}" if "label_transfer" in row else "–"
                note = row.get("error", row.get("note", ""))
                label = "scot, tuned" if tool == "scot-tuned" else tool
                print(f"| {name} | {label} | {row['seed']} | {fos} | {lt} | {row['time']:.1f} | {note} |", flush=True)


if __name__ == "__main__":
    main()
