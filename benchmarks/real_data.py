"""Alignment quality on the real multi-omics pairs, through the public API, with default settings.

Measures, for each pair: FOSCTTM (paired data; both directions, as SCOT scores it), label
transfer on the cell types found on both sides, the labels ``gwalign run --transfer-labels``
writes, their confidence, the GW objective of the chosen plan and of every start, and the time.

Pairs (``tests/data/<folder>``; ``--data-root`` reads another folder of the same layout). Every
pair's ``role`` says how it was used: the first five were used to choose the defaults; the
others are "validation only", added after the defaults to check them (no choice was measured on them).

- ``snareseq``: paired RNA/ATAC, 1047 cells (SNARE-seq, as distributed with SCOT). FOSCTTM and
  label transfer. Published: SCOT 0.1496 (tuned k = 110, ε = 1e-3), Pamona 0.168.
- ``pbmc``: unpaired RNA/ATAC (PBMC, as used by Pamona); cell types 0–3 on both sides, others
  on one side only. Label transfer on the types found on both sides, and the mean transfer
  confidence and plan mass of target cells of those types and of the others. Published: Pamona 0.990.
- ``scnmt-met``, ``scnmt-acc``: scNMT-seq RNA vs methylation / accessibility (as distributed
  with Pamona), stage labels. Published label transfer: UnionCom 0.861, Pamona 0.722.
- ``scgem``: paired expression / binary methylation, 177 reprogramming cells (scGEM, as
  distributed with SCOT). Published FOSCTTM: SCOT 0.216 with its tuned scGEM recipe
  (``python benchmarks/compare_real.py --datasets scgem --tools scot --scot-tuned``).
- Validation only: ``pbmc68k-genes`` and ``pbmc68k-cells`` (RNA against RNA on disjoint halves of
  the genes of scanpy's PBMC subset; paired, and different cells); ``bmmc-multiome`` (paired
  RNA/ATAC) and ``bmmc-cite`` (paired RNA/protein), 2,000 bone-marrow cells each from the NeurIPS
  2021 data; ``pbmc-cite`` (paired RNA/protein, 800 PBMCs). See each folder's README.md.

The joint embedding is what ``gwalign run`` writes as ``obsm["X_gw"]`` (coupled CCA by default;
``--embedding`` scores the others on the same plan), from representations whose rows are scaled
as the CLI default does (``--normalise``). Label transfer is a kNN (k = 5) classifier trained on
one side and scored on the other, both directions averaged (SCOT's metric). Where the published
figure's scoring script is public (Pamona's notebooks: one direction, a larger k), a summary line
also scores the same embedding that way, so the two can be compared like for like. "Labels
written" scores, the same way, the labels ``gwalign run --transfer-labels`` writes (kNN with
``gwalign.config.TRANSFER_K`` neighbours in ``X_gw``); the confidences are theirs.

Prints a Markdown table (one row per pair, seed and embedding, plus one row per pair for the
command line), then summary lines starting with ``#``: the runner-up matching, the one-sided
check, per-cell distortion, mean and spread over seeds next to the published figure, and the
published figure's own scoring.

    python benchmarks/real_data.py --datasets all
    python benchmarks/real_data.py --datasets all --device cuda
    python benchmarks/real_data.py --datasets snareseq --seeds 0 8 16 24 32
    python benchmarks/real_data.py --datasets scgem scnmt-met --no-cli
    python benchmarks/real_data.py --datasets all --write-docs
    python benchmarks/real_data.py --datasets scgem snareseq --baseline --no-cli

Every pair is also aligned once through the command line (``gwalign run`` on .h5ad files, scored
by ``gwalign evaluate``, which scores label transfer on the labels found on both sides; ``--no-cli``
skips it). SNARE-seq runs five seeds unless ``--seeds`` is given. ``--write-docs`` replaces the
block between the real-data markers of docs/accuracy.md with the run's table.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.neighbors import KNeighborsClassifier

import gwalign
from gwalign.metrics import foscttm, label_transfer_accuracy, shared_label_masks
from gwalign.preprocess.row_scaling import scale_pair
from gwalign.config import CCA_DIFFUSION_STEPS, TRANSFER_K
from gwalign.results.one_sided import LOW_MASS, MIN_GROUP_SHARE, one_sided_groups
from gwalign.results.embedding import CCA_RIDGE, coupled_cca, joint_embedding
from gwalign.results.report import runner_up
from gwalign.results.transfer import transfer

REPO = Path(__file__).resolve().parents[1]
#: The pairs' folders (vendored in the repository; see each folder's README.md).
DATA_ROOT = REPO / "tests" / "data"
DOCS = REPO / "docs" / "accuracy.md"
BEGIN_MARK, END_MARK = "<!-- real_data.py:begin -->", "<!-- real_data.py:end -->"
#: Five seeds on SNARE-seq show the spread of FOSCTTM over seeds; one seed elsewhere.
DEFAULT_SEEDS = {"snareseq": [0, 1, 2, 3, 4]}

#: How a pair was used. "used to choose defaults": defaults were measured and chosen on it;
#: "validation only": no default was chosen on it, it only checks them.
DEFAULTS_ROLE, VALIDATION_ROLE = "used to choose defaults", "validation only"
ROLES = (DEFAULTS_ROLE, VALIDATION_ROLE)


@dataclass(frozen=True)
class Dataset:
    """One benchmark pair: files, labels, and how it is scored."""

    folder: str
    source: str
    target: str
    source_labels: str
    target_labels: str
    paired: bool
    role: str
    published: str = ""
    # The published figure's own scoring, where its code is public: a kNN classifier trained on
    # every cell of this side ("source"/"target"), scoring the other side's cells (of shared types).
    protocol_trained_on: Optional[str] = None
    protocol_note: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")


DATASETS = {
    "snareseq": Dataset("snareseq", "rna", "atac", "rna_labels", "atac_labels", True, DEFAULTS_ROLE,
                        published="FOSCTTM: SCOT 0.1496, Pamona 0.168"),
    "pbmc": Dataset("pbmc", "rna", "atac", "rna_labels", "atac_labels", False, DEFAULTS_ROLE,
                    published="label transfer: Pamona 0.990",
                    protocol_trained_on="source",
                    protocol_note="Pamona's example/PBMC.ipynb: trained on every RNA cell, scoring ATAC cells of "
                                  "shared types; Pamona 0.990 there, from a run given the cell-type labels as a prior "
                                  "(its M halves the linearised cost of same-type pairs) and a shared-cell count set by hand "
                                  "(n_shared = 1649)"),
    "scnmt-met": Dataset("scnmt", "rna", "met", "rna_stage", "met_stage", False, DEFAULTS_ROLE,
                         published="label transfer: UnionCom 0.861, Pamona 0.722",
                         protocol_trained_on="target",
                         protocol_note="Pamona's example/scNMT-three-datasets.ipynb: trained on methylation, scoring "
                                       "RNA; Pamona 0.722 there (three modalities at once, k = 40, Lambda = 10)"),
    "scnmt-acc": Dataset("scnmt", "rna", "acc", "rna_stage", "acc_stage", False, DEFAULTS_ROLE,
                         published="label transfer: UnionCom 0.861, Pamona 0.722",
                         protocol_trained_on="target",
                         protocol_note="the same scoring as scnmt-met's (trained on accessibility, scoring RNA); "
                                       "Pamona's notebook reports no accessibility figure"),
    "scgem": Dataset("scgem", "rna", "met", "rna_labels", "met_labels", True, DEFAULTS_ROLE,
                     published="FOSCTTM: SCOT 0.216 (its scGEM recipe, tuned k=35, ε=5e-3, z-scored, measured "
                               "with benchmarks/compare_real.py --scot-tuned; 0.198 projected the other way)"),
    # RNA against RNA on disjoint halves of the genes (tests/data/pbmc68k/README.md): no default was
    # chosen on them.
    "pbmc68k-genes": Dataset("pbmc68k", "genes_a", "genes_b", "labels", "labels", True, VALIDATION_ROLE),
    "pbmc68k-cells": Dataset("pbmc68k", "cells_a", "cells_b", "cells_a_labels", "cells_b_labels", False,
                             VALIDATION_ROLE),
    # Paired RNA/ATAC and RNA/protein cells (tests/data/bmmc/README.md, tests/data/pbmc-cite/README.md):
    # no default was chosen on them.
    "bmmc-multiome": Dataset("bmmc", "multiome_rna", "multiome_atac", "multiome_labels", "multiome_labels", True,
                             VALIDATION_ROLE),
    "bmmc-cite": Dataset("bmmc", "cite_rna", "cite_adt", "cite_labels", "cite_labels", True, VALIDATION_ROLE),
    "pbmc-cite": Dataset("pbmc-cite", "rna", "adt", "labels", "labels", True, VALIDATION_ROLE),
}


def parse_overrides(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as GWConfig fields (values parsed as Python literals)."""
    return {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in items)}


def published_protocol_accuracy(x_train: np.ndarray, labels_train: np.ndarray, x_scored: np.ndarray,
                                labels_scored: np.ndarray) -> tuple[float, int]:
    """Label transfer as Pamona's ``eval.py`` (``test_transfer_accuracy``) scores it: one direction,
    a kNN classifier with k = max(10, int(1% of the cells involved)) trained on ``x_train``.

    Returns the accuracy on ``x_scored`` and the k used.
    """
    k = int(max(10, 0.01 * (len(x_train) + len(x_scored))))
    return float(KNeighborsClassifier(n_neighbors=k).fit(x_train, labels_train).score(x_scored, labels_scored)), k


def data_folder(name: str, root: Optional[Path]) -> Path:
    """The pair's folder under ``root`` (default: tests/data)."""
    return (root if root is not None else DATA_ROOT) / DATASETS[name].folder


def load_pair(name: str, root: Optional[Path] = None, normalise: str = "auto"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A pair's representations (rows scaled as ``gwalign run --normalise``) and labels."""
    data = DATASETS[name]
    folder = data_folder(name, root)
    xs, xt, _ = scale_pair(np.load(folder / f"{data.source}.npy"), np.load(folder / f"{data.target}.npy"), normalise)
    return xs, xt, *load_labels(data, folder)


def load_labels(data: Dataset, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Source and target labels; a paired pair may have one label file (paired cells share their
    labels)."""
    ls = np.load(folder / f"{data.source_labels}.npy")
    target_labels = folder / f"{data.target_labels}.npy"
    return ls, ls if data.paired and not target_labels.exists() else np.load(target_labels)


def score(data: Dataset, result: gwalign.Alignment, xs: np.ndarray, xt: np.ndarray, ls: np.ndarray,
          lt: np.ndarray, embedding: str = "cca", cca_ridge: float = CCA_RIDGE,
          cca_diffusion: int = CCA_DIFFUSION_STEPS, transfer_method: str = "knn",
          transfer_k: int = TRANSFER_K, swapped: bool = False,
          partner: Optional[np.ndarray] = None) -> dict[str, float]:
    """FOSCTTM (paired), label transfer on shared types, transfer confidence by shared/unshared,
    all on the joint embedding ``gwalign run`` writes as ``obsm["X_gw"]``, and the published
    figure's own scoring where known. ``swapped``: the pair was aligned target → source;
    ``partner``: the target row of each source cell's partner (paired data; default: row i)."""
    if embedding == "cca":
        emb_s, emb_t, _ = coupled_cca(result, xs, xt, cca_ridge, cca_diffusion)
    else:
        emb_s, emb_t = joint_embedding(result, xs, xt, embedding)
    scores: dict[str, float] = {}
    if data.paired:
        scores["foscttm"] = foscttm(emb_s, emb_t if partner is None else emb_t[partner])
    keep_s, keep_t = shared_label_masks(ls, lt)   # cell types found on both sides (PBMC: 0-3)
    # Classifiers see every cell; only cells of shared types can be scored.
    scores["label_transfer"] = label_transfer_accuracy(emb_s, ls, emb_t, lt, keep_source=keep_s,
                                                       keep_target=keep_t)
    if data.protocol_trained_on is not None:
        on_source = (data.protocol_trained_on == "source") != swapped
        sides = ((emb_s, ls), (emb_t[keep_t], lt[keep_t])) if on_source else ((emb_t, lt), (emb_s[keep_s], ls[keep_s]))
        scores["published_protocol"], scores["published_protocol_k"] = published_protocol_accuracy(*sides[0], *sides[1])
    # The labels `gwalign run --transfer-labels` writes (kNN in X_gw, or by plan mass), scored on
    # shared types in both directions, and their confidences on the target.
    knn = transfer_method == "knn"
    to_target, confidence = transfer(result, ls, to_target=True, embedding_labelled=emb_s if knn else None,
                                     embedding_receiving=emb_t if knn else None, k=transfer_k)
    to_source, _ = transfer(result, lt, to_target=False, embedding_labelled=emb_t if knn else None,
                            embedding_receiving=emb_s if knn else None, k=transfer_k)
    scores["labels_written"] = float((np.mean(to_target[keep_t] == lt[keep_t].astype(str))
                                      + np.mean(to_source[keep_s] == ls[keep_s].astype(str))) / 2)
    scores["confidence_shared"] = float(confidence[keep_t].mean())
    if not keep_t.all():
        scores["confidence_unshared"] = float(confidence[~keep_t].mean())
        mass = result.col_marginal() * len(lt)
        scores["mass_shared"] = float(mass[keep_t].mean())
        scores["mass_unshared"] = float(mass[~keep_t].mean())
    distortion = result.cell_distortion()
    if distortion is not None:
        # Median per-cell distortion of shared and unshared types, relative to the side's median.
        for side, values, keep in (("source", distortion[0], keep_s), ("target", distortion[1], keep_t)):
            if not keep.all():
                median = np.median(values)
                scores[f"distortion_{side}"] = (float(np.median(values[keep]) / median),
                                                float(np.median(values[~keep]) / median))
    return scores


def run_cli(data: Dataset, folder: Path, device: str) -> dict[str, float]:
    """The pair through the command line: ``gwalign run`` on two .h5ad files holding the
    representations in ``obsm["X_rep"]``, then ``gwalign evaluate`` on its outputs (FOSCTTM through
    ``obs["cell"]`` for paired data, label transfer on the labels found on both sides)."""
    import anndata as ad
    import pandas as pd

    command = [sys.executable, "-c", "from gwalign.cli import main; main()"]
    with tempfile.TemporaryDirectory(prefix="gwalign-real-") as tmp:
        files = []
        for side, labels in zip((data.source, data.target), load_labels(data, folder)):
            x = np.load(folder / f"{side}.npy")
            names = [f"cell{i}" for i in range(len(x))]
            adata = ad.AnnData(X=x, obs=pd.DataFrame({"label": labels.astype(str), "cell": names}, index=names))
            adata.obsm["X_rep"] = x
            files.append(Path(tmp) / f"{side}.h5ad")
            adata.write_h5ad(files[-1])
        out = Path(tmp) / "out"
        subprocess.run(command + ["run", *map(str, files), "-o", str(out), "--rep-source", "X_rep",
                                  "--rep-target", "X_rep", "--device", device, "--no-figures", "--quiet",
                                  "--transfer-labels", "label"], check=True)
        outputs = [str(out / f"{side}.gwalign.h5ad") for side in (data.source, data.target)]
        truth = ["--truth-key", "cell"] if data.paired else []
        scored = subprocess.run(command + ["evaluate", *outputs, *truth, "--label-key", "label", "--json"],
                                check=True, capture_output=True, text=True)
        return json.loads(scored.stdout)


def hardware(device: str) -> str:
    """The hardware a run used, in words (stated with every figure written to the docs)."""
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return f"one {torch.cuda.get_device_name()}"
    threads = os.environ.get("OMP_NUM_THREADS")
    return f"CPU, {os.cpu_count()} cores" + (f", OMP_NUM_THREADS={threads}" if threads else "")


def write_docs(lines: list[str], command: str, machine: str, path: Path = DOCS) -> None:
    """Replace the block between the real-data markers of docs/accuracy.md with this run's table."""
    text = path.read_text()
    if BEGIN_MARK not in text or END_MARK not in text:
        raise SystemExit(f"{path} has no {BEGIN_MARK} / {END_MARK} markers to write between")
    begin, end = text.index(BEGIN_MARK), text.index(END_MARK)
    # Summary lines start with "# " on the terminal; in Markdown that would be a heading.
    table = [line for line in lines if not line.startswith("# ")]
    body = table + [""] + [f"- {line[2:]}" for line in lines if line.startswith("# ")]
    block = "\n".join([BEGIN_MARK, f"`{command}` ({machine}; written by the script):", "", *body, ""])
    path.write_text(text[:begin] + block + text[end:])


def baseline_row(name: str, data: Dataset, xs: np.ndarray, xt: np.ndarray, ls: np.ndarray, lt: np.ndarray) -> str:
    """The table row of ``benchmarks/baseline.py``'s recipe on this pair (its own row scaling: L2)."""
    from baseline import baseline_scores

    s = baseline_scores(xs, xt, ls, lt, data.paired)
    fos = f"{s['foscttm']:.3f}" if "foscttm" in s else "–"
    return (f"| {name} | {data.role} | – | baseline: L2 rows, kNN geodesics, POT entropic GW | {fos} "
            f"| {s['label_transfer']:.3f} | – | – | – | – | – | {s['time']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["snareseq"], choices=[*DATASETS, "all"])
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding the pairs' folders, laid out as tests/data (default: tests/data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds run on every data set (default: 0-4 on snareseq, to show the spread over "
                             "seeds; 0 elsewhere)")
    parser.add_argument("--gradient", default="auto", choices=["auto", "lowrank", "sampled"])
    parser.add_argument("--n-anchors", type=int, default=None)
    parser.add_argument("--n-starts", type=int, default=None)
    parser.add_argument("--normalise", default="auto", choices=["auto", "l2", "none"],
                        help="row scaling of the representations, decided once for the pair (gwalign.preprocess.row_scaling.scale_pair)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--epsilon", type=float, default=None, help="relative ε (default: GWConfig's)")
    parser.add_argument("--k", type=int, default=None, help="kNN neighbours (default: GWConfig's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other GWConfig fields, e.g. --set rank=64 start_signs=4 (values parsed as Python literals)")
    parser.add_argument("--embedding", nargs="+", default=["cca"], choices=["cca", "target", "source", "spectral"],
                        help="joint embeddings scored, each on the same alignment (gwalign.joint_embedding)")
    parser.add_argument("--cca-diffusion", type=int, nargs="+", default=[CCA_DIFFUSION_STEPS],
                        help="plan diffusion steps scored for the cca embedding (gwalign.coupled_cca)")
    parser.add_argument("--cca-ridge", type=float, nargs="+", default=[CCA_RIDGE],
                        help="covariance ridges scored for the cca embedding (gwalign.coupled_cca)")
    parser.add_argument("--semi-relaxed", action="store_true", help="semi-relaxed GW (target marginal free)")
    parser.add_argument("--euclidean", action="store_true",
                        help="give the engine each side's Euclidean distances between the representations "
                             "instead of its kNN geodesics (with finish='entropic', the default's own finish)")
    parser.add_argument("--swap", action="store_true",
                        help="align the pair's target as the source (what the one-sided check suggests when the "
                             "source holds the unmatched group)")
    parser.add_argument("--transfer", default="knn", choices=["knn", "plan"],
                        help="how the 'labels written' are carried (RunConfig.transfer)")
    parser.add_argument("--transfer-k", type=int, default=TRANSFER_K, help="neighbours of the kNN label transfer")
    parser.add_argument("--cli", action=argparse.BooleanOptionalAction, default=True,
                        help="also align each data set once through `gwalign run` and score it with "
                             "`gwalign evaluate`")
    parser.add_argument("--baseline", action="store_true",
                        help="also run the simple recipe of benchmarks/baseline.py (L2 rows, kNN geodesics, POT's "
                             "entropic GW at one relative ε) on every pair and print its row beside gwalign's")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the table into docs/accuracy.md (between its real_data.py markers)")
    args = parser.parse_args()
    args.cli = args.cli and not args.euclidean      # `gwalign run` has no Euclidean mode
    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    names = list(DATASETS) if "all" in args.datasets else args.datasets

    variants = [(e, r, t) for e in args.embedding for r in (args.cca_ridge if e == "cca" else [None])
                for t in (args.cca_diffusion if e == "cca" else [None])]
    machine = hardware(args.device)
    print(f"# {machine}")
    emit("| data | role | seed | embedding | FOSCTTM | label transfer | labels written "
         "| confidence shared / unshared | mass shared / unshared | GW objective | start objectives | time (s) |")
    emit("|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for name in names:
        data = DATASETS[name]
        folder = data_folder(name, args.data_root)
        xs, xt, ls, lt = load_pair(name, args.data_root, args.normalise)
        if args.swap:
            xs, xt, ls, lt = xt, xs, lt, ls
        values: dict[str, list[dict[str, float]]] = {}
        for seed in args.seeds if args.seeds is not None else (DEFAULT_SEEDS.get(name, [0])):
            overrides = {key: value for key, value in (("epsilon", args.epsilon), ("k", args.k)) if value is not None}
            overrides.update(parse_overrides(args.set))
            config = gwalign.GWConfig(device=args.device, seed=seed, gradient=args.gradient, n_anchors=args.n_anchors,
                                      n_starts=args.n_starts, semi_relaxed=args.semi_relaxed, **overrides)
            start = time.perf_counter()
            if args.euclidean:
                result = gwalign.align(None, None, config.replace(finish="entropic"), d_source=cdist(xs, xs),
                                       d_target=cdist(xt, xt))
            else:
                result = gwalign.align(xs, xt, config)
            elapsed = time.perf_counter() - start
            starts = ", ".join(f"{v:.4f}" for v in result.solve.start_objectives)
            for embedding, ridge, steps in variants:
                label = embedding if ridge is None else f"cca (ridge {ridge:g}, {steps} walk steps)"
                s = score(data, result, xs, xt, ls, lt, embedding, CCA_RIDGE if ridge is None else ridge,
                          CCA_DIFFUSION_STEPS if steps is None else steps,
                          args.transfer, args.transfer_k, swapped=args.swap)
                values.setdefault(label, []).append(s)
                conf = f"{s['confidence_shared']:.3f}" + (f" / {s['confidence_unshared']:.3f}"
                                                          if "confidence_unshared" in s else "")
                mass = f"{s['mass_shared']:.2f} / {s['mass_unshared']:.2f}" if "mass_shared" in s else "–"
                fos = f"{s['foscttm']:.3f}" if "foscttm" in s else "–"
                emit(f"| {name} | {data.role} | {seed} | {label} | {fos} | {s['label_transfer']:.3f} "
                     f"| {s['labels_written']:.3f} | {conf} | {mass} | {result.gw_objective:.4f} | {starts} "
                     f"| {elapsed:.1f} |")
        if args.cli and not args.swap:
            start = time.perf_counter()
            cli = run_cli(data, folder, args.device)
            fos = f"{cli['foscttm']:.3f}" if "foscttm" in cli else "–"
            conf = (f"{cli['confidence_shared_target']:.3f} / {cli['confidence_one_sided_target']:.3f}"
                    if "confidence_one_sided_target" in cli else "–")
            emit(f"| {name} | {data.role} | CLI | `gwalign run` + `gwalign evaluate` | {fos} "
                 f"| {cli['label_transfer']:.3f} | {cli['labels_written']:.3f} | {conf} | – | – | – "
                 f"| {time.perf_counter() - start:.1f} |")
        if args.baseline:
            emit(baseline_row(name, data, xs, xt, ls, lt))
        rival = runner_up(result.solve.finalists)   # the last API run's, as uns["gwalign"]["runner_up"]
        summary.append(f"# {name} runner-up matching: " + ("none among the finalists" if rival is None else
                       f"GW objective +{100 * rival['objective_gap']:.1f}% (mean over the run's and the coarser graph), "
                       f"{100 * rival['shared_mass']:.0f}% of its mass in common with the chosen plan"))
        check = one_sided_groups(result)   # the last API run's
        if check is not None:
            found = [f"{side.side} {side.n_flagged} cells in groups {list(side.group_sizes)} (labels "
                     + ", ".join(f"{label}: {count}" for label, count in
                                 zip(*np.unique(labels[side.flagged], return_counts=True))) + ")"
                     for side, labels in zip(check, (ls, lt)) if side.n_flagged]
            summary.append(f"# {name} one-sided check (cells keeping under {LOW_MASS:g} of their mass when their "
                           f"side's marginal is freed, in groups of >= {MIN_GROUP_SHARE:.0%} of the side; "
                           f"{result.timings['one_sided_check']:.1f} s): {'; '.join(found) or 'none'}")
        for side in ("source", "target"):
            key = f"distortion_{side}"
            if key in s:   # the last API run's scores
                summary.append(f"# {name} {side} per-cell distortion, median of shared / unshared types over the "
                               f"side's median: {s[key][0]:.2f} / {s[key][1]:.2f}")
        for label, rows in values.items():
            for key in ("foscttm", "label_transfer"):
                if key in rows[0]:
                    col = np.array([v[key] for v in rows])
                    # Paired data are published by FOSCTTM, unpaired by label transfer.
                    shown = data.published and (key == "foscttm") == data.paired
                    published = f"; published {data.published}" if shown else ""
                    summary.append(f"# {name} {label} {key}: mean {col.mean():.3f}, spread (max - min) "
                                   f"{np.ptp(col):.3f} over {len(col)} seeds{published}")
            if "published_protocol" in rows[0]:
                col = np.array([v["published_protocol"] for v in rows])
                summary.append(f"# {name} {label} label transfer scored as the published figure (below): "
                               f"mean {col.mean():.3f}")
        if data.protocol_trained_on is not None:
            summary.append(f"# {name} published figure's scoring: one direction, kNN with k = max(10, 1% of the "
                           f"cells) = {s['published_protocol_k']} (Pamona's eval.py), {data.protocol_note}")
    for line in summary:
        emit(line)
    if args.write_docs:
        write_docs(lines, "python benchmarks/real_data.py " + " ".join(sys.argv[1:]), machine)


if __name__ == "__main__":
    main()
