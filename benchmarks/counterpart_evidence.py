"""What counterpart evidence changes: transfer confidence and the coupled CCA's pair weights.

``gwalign.Alignment.counterpart_evidence`` (each cell's mass when its side's marginal is freed,
capped at 1) multiplies the label share behind each transferred label's confidence and weighs
the plan's pairs before the coupled CCA. This script scores both with and without it, on the
same alignment, for the real pairs and for cuts that remove one type from one side of a paired
pair (so its cells on the other side have no counterpart):

- ``snareseq-cut``: SNARE-seq without the ATAC K562 cells (RNA K562 unmatched; a cluster);
- ``scgem-cut``: scGEM without the methylation iPS cells (expression iPS unmatched; the end of a
  trajectory; Pamona's unbalanced scGEM test cuts the same stage).

Each case runs with defaults and with the unmatched side made the free target
(``--swap --semi-relaxed`` in ``real_data.py`` terms). Printed per run: label transfer on shared
types (CCA with / without the evidence weights), and the confidence of shared / one-sided cells
on each side that has one-sided cells (label share × evidence / share alone), with the mean
evidence of the one-sided cells.

    python benchmarks/counterpart_evidence.py
    python benchmarks/counterpart_evidence.py --cases pbmc snareseq-cut
"""

from __future__ import annotations

import argparse

import numpy as np

import gwalign
from gwalign.metrics import label_transfer_accuracy, shared_label_masks
from gwalign.results import coupled_cca, transfer
from real_data import load_pair

#: Cases: (data set, label removed from the target side or None).
CASES = {"pbmc": ("pbmc", None), "scnmt-met": ("scnmt-met", None), "scnmt-acc": ("scnmt-acc", None),
         "snareseq": ("snareseq", None), "scgem": ("scgem", None),
         "snareseq-cut": ("snareseq", 4), "scgem-cut": ("scgem", 5)}


class WithoutEvidence:
    """The alignment as it was read before counterpart evidence: every cell's evidence 1."""

    def __init__(self, alignment: gwalign.Alignment) -> None:
        self._alignment = alignment

    def counterpart_evidence(self) -> tuple[np.ndarray, np.ndarray]:
        n, k = self._alignment.shape
        return np.ones(n), np.ones(k)

    def __getattr__(self, name: str):
        return getattr(self._alignment, name)


def run(xs, ls, xt, lt, semi_relaxed: bool) -> str:
    result = gwalign.align(xs, xt, gwalign.GWConfig(device="cpu", semi_relaxed=semi_relaxed))
    keep_s, keep_t = shared_label_masks(ls, lt)
    accuracy = []
    for view in (result, WithoutEvidence(result)):
        emb_s, emb_t, _ = coupled_cca(view, xs, xt)
        accuracy.append(label_transfer_accuracy(emb_s, ls, emb_t, lt, keep_source=keep_s, keep_target=keep_t))
    parts = [f"{accuracy[0]:.3f} / {accuracy[1]:.3f}"]
    emb_s, emb_t, _ = coupled_cca(result, xs, xt)
    for to_target, keep, labels_from, (lab_emb, rec_emb), side in (
            (True, keep_t, ls, (emb_s, emb_t), "target"), (False, keep_s, lt, (emb_t, emb_s), "source")):
        if keep.all():
            continue
        evidence = result.counterpart_evidence()[1 if to_target else 0]
        conf = [transfer(view, labels_from, to_target, embedding_labelled=lab_emb, embedding_receiving=rec_emb)[1]
                for view in (result, WithoutEvidence(result))]
        parts.append(f"{side}: {conf[0][keep].mean():.3f} / {conf[0][~keep].mean():.3f} against "
                     f"{conf[1][keep].mean():.3f} / {conf[1][~keep].mean():.3f}, one-sided evidence "
                     f"{evidence[~keep].mean():.2f}")
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    print("| case | run | label transfer, CCA with / without evidence | confidence shared / one-sided, "
          "share × evidence against share alone |")
    print("|---|---|---|---|")
    for case in args.cases:
        name, dropped = CASES[case]
        xs, xt, ls, lt = load_pair(name)
        if dropped is not None:
            keep = lt != dropped
            xt, lt = xt[keep], lt[keep]
        for label, swap, semi in (("default", False, False), ("--swap --semi-relaxed", True, True)):
            if dropped is None and name != "pbmc" and swap:
                continue   # no one-sided cells: semi-relaxed has nothing to free
            a_x, a_l, b_x, b_l = (xt, lt, xs, ls) if swap else (xs, ls, xt, lt)
            row = run(a_x, a_l, b_x, b_l, semi).split(" | ")
            print(f"| {case} | {label} | {row[0]} | {'; '.join(row[1:]) or '–'} |", flush=True)


if __name__ == "__main__":
    main()
