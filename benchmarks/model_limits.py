"""What bounds the accuracy on paired data: the GW model, the plan, or the joint embedding?

For a paired data set (row i of both sides is one cell; SNARE-seq by default), with the default run:

- the GW objective (normalised geodesics, as the engine compares them) of the plan found, of the
  true pairing ``T = I/n``, and of the type-block plan (uniform within each cell type): if the found
  plan is *below* the truth, no solver of this model returns the true pairing;
- the plan's own FOSCTTM (rank of a cell's true partner in its row and column of ``T``);
- FOSCTTM of the coupled-CCA embedding on the found plan and on the true pairing, and the
  expected FOSCTTM of a perfect cell-type match with a random order within each type;
- a *supervised ceiling*: embeddings learned from the true pairs of 80% of the cells and scored on
  the held-out 20% (5 folds): coupled CCA on those pairs, scikit-learn CCA with 2 to 10
  components, and k-nearest-neighbour regression of one side's representation from the other's
  (nonlinear). No unsupervised method is expected to beat what these learn from the answer.

For every data set (paired or not), ``--separability`` asks how well each side's *own*
representation separates its own labels (supervised, 5-fold cross-validation: kNN with the
benchmark's k = 5, LDA then kNN, logistic regression, a random forest), next to the default run's
label transfer scored on that side's cells (the classifier trained on the other side). Label
transfer into a side is a classifier of that side's representation (a cell's place in the joint
embedding is a function of it) that never saw the side's labels: the best classifier of the
representation bounds it, and the supervised learners estimate that bound.

``--powers`` also aligns every data set (paired or not) on transformed geodesics ``d^p`` (given as
user distance matrices, defaults otherwise) and scores them as ``benchmarks/real_data.py`` does;
with ``--euclidean`` the matrices are the representations' plain Euclidean distances (no graph).

    python benchmarks/model_limits.py
    python benchmarks/model_limits.py --separability
    python benchmarks/model_limits.py --powers 0.5 1 1.5 --datasets all
    python benchmarks/model_limits.py --paired --powers 1 --euclidean
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from scipy.sparse.csgraph import dijkstra
from scipy.spatial.distance import cdist

import gwalign
from gwalign.distances import PrecomputedDistances
from gwalign.graph import KNNGraph
from gwalign.metrics import foscttm, label_transfer_by_direction, shared_label_masks
from gwalign.results import coupled_cca
from sklearn.cross_decomposition import CCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from real_data import DATASETS, load_pair, score


class DensePlan:
    """A dense coupling with what :func:`gwalign.results.coupled_cca` uses (``graphs``: the two
    kNN graphs its plan diffusion walks on; ``None`` for none; ``evidence``: the cells'
    counterpart evidence, ones by default)."""

    def __init__(self, plan: np.ndarray, graphs=None, evidence=None) -> None:
        self.plan = plan
        self.graphs = graphs
        self.evidence = evidence or (np.ones(plan.shape[0]), np.ones(plan.shape[1]))

    def apply(self, z: np.ndarray) -> np.ndarray:
        return self.plan @ z

    def apply_t(self, z: np.ndarray) -> np.ndarray:
        return self.plan.T @ z

    def col_marginal(self) -> np.ndarray:
        return self.plan.sum(axis=0)

    def counterpart_evidence(self) -> tuple[np.ndarray, np.ndarray]:
        return self.evidence


def normalised_geodesics(graph: KNNGraph) -> np.ndarray:
    """The graph's all-pairs geodesics over their mean, as the engine compares them."""
    return PrecomputedDistances.from_graph(graph, torch.device("cpu"), torch.float64).dense().numpy()


def gw_objective(plan: np.ndarray, d_source: np.ndarray, d_target: np.ndarray) -> float:
    """``Σ (D_s[i,k] − D_t[j,l])² T_ij T_kl`` for a dense plan."""
    r, c = plan.sum(axis=1), plan.sum(axis=0)
    return float(r @ (d_source ** 2) @ r + c @ (d_target ** 2) @ c
                 - 2.0 * np.sum((d_source @ plan @ d_target) * plan))


def plan_foscttm(plan: np.ndarray) -> float:
    """FOSCTTM read from the plan itself: the fraction of entries of a cell's row (column) larger
    than its true partner's, both directions averaged."""
    n = plan.shape[0]
    true = np.diag(plan)
    rows = (plan > true[:, None]).sum(axis=1).mean()
    cols = (plan > true[None, :]).sum(axis=0).mean()
    return float((rows + cols) / (2.0 * (n - 1)))


def paired_limits(name: str, root: Optional[Path]) -> None:
    xs, xt, labels, _ = load_pair(name, root)
    result = gwalign.align(xs, xt, gwalign.GWConfig(device="cpu"))
    d_source, d_target = (normalised_geodesics(graph) for graph in result.graphs)
    n = len(xs)
    found = np.asarray(result.to_dense(), dtype=np.float64)
    truth = np.eye(n) / n
    block = (labels[:, None] == labels[None, :]).astype(np.float64)
    block /= block.sum(axis=1, keepdims=True) * n
    print(f"# {name}: paired, {n} cells, kNN k = {result.knn_k}")
    print("| plan | GW objective | FOSCTTM of the plan | FOSCTTM, coupled CCA |")
    print("|---|---|---|---|")
    for label, plan in (("found (default run)", found), ("true pairing I/n", truth), ("type blocks", block)):
        # The found plan is embedded exactly as the default run embeds it (with its evidence).
        evidence = result.counterpart_evidence() if label.startswith("found") else None
        emb_s, emb_t, _ = coupled_cca(DensePlan(plan, result.graphs, evidence), xs, xt)
        fos_plan = f"{plan_foscttm(plan):.3f}" if label != "type blocks" else "–"
        print(f"| {label} | {gw_objective(plan, d_source, d_target):.4f} | {fos_plan} | {foscttm(emb_s, emb_t):.3f} |")
    shares = np.bincount(labels)[np.unique(labels)] / n
    print(f"# expected FOSCTTM of a perfect type match with random order within types: {(shares ** 2).sum() / 2:.3f}")
    supervised_ceiling(xs, xt)


def held_out_foscttm(xs: np.ndarray, xt: np.ndarray, embed, folds: int = 5) -> float:
    """Mean FOSCTTM over held-out folds of an embedding fitted on the other folds' true pairs.

    ``embed(train, test)`` returns the two sides' rows of the test cells in a joint space.
    """
    splits = KFold(folds, shuffle=True, random_state=0).split(xs)
    return float(np.mean([foscttm(*embed(train, test)) for train, test in splits]))


def supervised_ceiling(xs: np.ndarray, xt: np.ndarray) -> None:
    """FOSCTTM of embeddings that learn from the true pairing, scored on cells they did not see."""
    n = len(xs)

    def coupled(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Held-out cells carry no plan mass, so they do not shape the directions, only get projected.
        plan = np.zeros((n, n))
        plan[train, train] = 1.0 / len(train)
        emb_s, emb_t, _ = coupled_cca(DensePlan(plan), xs, xt)
        return emb_s[test], emb_t[test]

    def linear(components: int):
        def fit(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            model = CCA(n_components=components, max_iter=2000).fit(xs[train], xt[train])
            return model.transform(xs[test], xt[test])
        return fit

    def regression(source_to_target: bool):
        def fit(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            known, predicted = (xs, xt) if source_to_target else (xt, xs)
            guess = KNeighborsRegressor(n_neighbors=10).fit(known[train], predicted[train]).predict(known[test])
            return guess, predicted[test]
        return fit

    print("# supervised ceiling: fitted on the true pairs of 4/5 of the cells, FOSCTTM on the other 1/5 (5 folds)")
    print("| embedding learned from the true pairs | held-out FOSCTTM |")
    print("|---|---|")
    print(f"| coupled CCA (as the default embedding) | {held_out_foscttm(xs, xt, coupled):.3f} |")
    for components in (2, 3, 4, 6, 10):
        print(f"| CCA, {components} components | {held_out_foscttm(xs, xt, linear(components)):.3f} |")
    print(f"| kNN regression (10), source -> target | {held_out_foscttm(xs, xt, regression(True)):.3f} |")
    print(f"| kNN regression (10), target -> source | {held_out_foscttm(xs, xt, regression(False)):.3f} |")


def separability(names: list[str], root: Optional[Path]) -> None:
    """Each side's own label separability (supervised, 5-fold CV) next to the label transfer into it."""
    classifiers = {
        "kNN (5)": lambda: KNeighborsClassifier(5),
        "LDA + kNN (5)": lambda: make_pipeline(LinearDiscriminantAnalysis(), KNeighborsClassifier(5)),
        "logistic regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "random forest (300)": lambda: RandomForestClassifier(300, random_state=0),
    }
    print("# separability: supervised classifiers on one side's own representation and labels (5-fold CV, every "
          "cell), and the default run's label transfer scored on that side's cells (of shared types; kNN k = 5 "
          "trained on the other side, in X_gw)")
    print("| data | side | cells | " + " | ".join(classifiers) + " | label transfer into this side |")
    print("|---|---|---|" + "---|" * len(classifiers) + "---|")
    for name in names:
        data = DATASETS[name]
        xs, xt, ls, lt = load_pair(name, root)
        emb_s, emb_t, _ = coupled_cca(gwalign.align(xs, xt, gwalign.GWConfig(device="cpu")), xs, xt)
        keep_s, keep_t = shared_label_masks(ls, lt)
        into_t, into_s = label_transfer_by_direction(emb_s, ls, emb_t, lt, keep_source=keep_s, keep_target=keep_t)
        for side, x, labels, into in ((data.source, xs, ls, into_s), (data.target, xt, lt, into_t)):
            folds = StratifiedKFold(5, shuffle=True, random_state=0)
            own = [cross_val_score(make(), x, labels, cv=folds).mean() for make in classifiers.values()]
            print(f"| {name} | {side} | {len(x)} | " + " | ".join(f"{a:.3f}" for a in own) + f" | {into:.3f} |",
                  flush=True)


def power_sweep(names: list[str], powers: list[float], root: Optional[Path], euclidean: bool = False) -> None:
    """Align on ``d^p`` for each power: kNN geodesics, or with ``euclidean`` the representation's own
    Euclidean distances (no graph)."""
    print("| data | distances | p | FOSCTTM | label transfer | confidence shared / unshared | GW objective |")
    print("|---|---|---|---|---|---|---|")
    kind = "Euclidean, no graph" if euclidean else "kNN geodesics"
    for name in names:
        data = DATASETS[name]
        xs, xt, ls, lt = load_pair(name, root)
        config = gwalign.GWConfig(device="cpu")
        if euclidean:
            lengths = [cdist(xs, xs), cdist(xt, xt)]
        else:
            base = gwalign.align(xs, xt, config)
            lengths = [dijkstra(graph.matrix, directed=True) for graph in base.graphs]
        for power in powers:
            result = gwalign.align(xs, xt, config, d_source=lengths[0] ** power, d_target=lengths[1] ** power)
            s = score(data, result, xs, xt, ls, lt)
            conf = f"{s['confidence_shared']:.3f}" + (f" / {s['confidence_unshared']:.3f}"
                                                      if "confidence_unshared" in s else "")
            fos = f"{s['foscttm']:.3f}" if "foscttm" in s else "–"
            print(f"| {name} | {kind} | {power:g} | {fos} | {s['label_transfer']:.3f} | {conf} | {result.gw_objective:.4f} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paired", nargs="*", default=["snareseq"],
                        choices=[name for name, data in DATASETS.items() if data.paired])
    parser.add_argument("--powers", type=float, nargs="*", default=[],
                        help="also align on geodesics raised to these powers")
    parser.add_argument("--euclidean", action="store_true",
                        help="--powers on the representations' Euclidean distances instead (no kNN graph)")
    parser.add_argument("--datasets", nargs="+", default=["all"], choices=[*DATASETS, "all"],
                        help="data sets of --separability and the --powers sweep")
    parser.add_argument("--separability", action="store_true",
                        help="each side's own label separability against the label transfer into it (--datasets)")
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args()
    names = list(DATASETS) if "all" in args.datasets else args.datasets
    for name in args.paired:
        paired_limits(name, args.data_root)
    if args.separability:
        separability(names, args.data_root)
    if args.powers:
        power_sweep(names, args.powers, args.data_root, args.euclidean)


if __name__ == "__main__":
    main()
