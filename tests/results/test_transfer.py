"""Label transfer across the coupling against scikit-learn and a dense plan."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from gwalign.geometry.knn import blocked_topk, nearest_between
from gwalign.results.transfer import transfer

from reference_plan import DensePlan


def random_problem(rng, n: int = 120, m: int = 90):
    plan = rng.random((n, m)) ** 4
    plan /= plan.sum()
    labels = rng.choice(["B", "T", "mono", "NK"], size=n)
    return DensePlan(plan), labels, rng.normal(size=(n, 5)), rng.normal(size=(m, 5))


@pytest.mark.parametrize("k", [1, 5, 15])
def test_knn_labels_match_scikit_learn_and_confidence_is_the_plan_share(rng, k):
    plan, labels, emb_s, emb_t = random_problem(rng)
    got, confidence = transfer(plan, labels, to_target=True, embedding_labelled=emb_s,
                               embedding_receiving=emb_t, k=k)
    expected = KNeighborsClassifier(n_neighbors=k).fit(emb_s, labels).predict(emb_t)
    np.testing.assert_array_equal(got, expected)
    onehot = (labels[:, None] == np.unique(labels)[None, :]).astype(float)
    share = plan.plan.T @ onehot / plan.plan.sum(axis=0)[:, None]
    np.testing.assert_allclose(confidence, share[np.arange(len(got)), np.searchsorted(np.unique(labels), got)])


def test_knn_transfer_towards_the_source_uses_rows_of_the_plan(rng):
    plan, _, emb_s, emb_t = random_problem(rng)
    labels_t = rng.choice(["x", "y"], size=emb_t.shape[0])
    got, confidence = transfer(plan, labels_t, to_target=False, embedding_labelled=emb_t,
                               embedding_receiving=emb_s, k=5)
    np.testing.assert_array_equal(got, KNeighborsClassifier(n_neighbors=5).fit(emb_t, labels_t).predict(emb_s))
    mass_x = plan.plan[:, labels_t == "x"].sum(axis=1) / plan.plan.sum(axis=1)
    np.testing.assert_allclose(confidence, np.where(got == "x", mass_x, 1.0 - mass_x))


def test_plan_transfer_takes_the_label_with_most_mass(rng):
    plan, labels, _, _ = random_problem(rng)
    got, confidence = transfer(plan, labels, to_target=True)
    categories = np.unique(labels)
    mass = np.stack([plan.plan[labels == c].sum(axis=0) for c in categories], axis=1)
    np.testing.assert_array_equal(got, categories[mass.argmax(axis=1)])
    np.testing.assert_allclose(confidence, mass.max(axis=1) / mass.sum(axis=1))


def test_knn_transfer_needs_both_embeddings(rng):
    plan, labels, emb_s, _ = random_problem(rng)
    with pytest.raises(ValueError, match="both sides' embeddings"):
        transfer(plan, labels, to_target=True, embedding_labelled=emb_s)


def test_blocked_gpu_search_finds_the_tree_search_neighbours(rng):
    """The GPU branch (blocked cdist + topk), run on the CPU with small blocks, against the tree search."""
    train = torch.as_tensor(rng.normal(size=(300, 7)))
    query = torch.as_tensor(rng.normal(size=(130, 7)))
    expected = nearest_between(train, query, 6)
    np.testing.assert_array_equal(blocked_topk(train, query, 6, block_rows=64)[1], expected)


@pytest.mark.parametrize("method", ["knn", "plan"])
def test_unlabelled_cells_neither_vote_nor_count(rng, method):
    """A partly annotated column: the missing labels are never written, and the result equals the
    transfer from the labelled cells alone (their rows of the plan and the embedding)."""
    plan, labels, emb_s, emb_t = random_problem(rng)
    partial = labels.astype(object)
    missing = rng.random(len(labels)) < 0.3
    partial[missing] = np.nan
    embeddings = {"embedding_labelled": emb_s, "embedding_receiving": emb_t} if method == "knn" else {}
    got, confidence = transfer(plan, partial, to_target=True, k=5, **embeddings)
    assert "nan" not in set(got)
    kept = DensePlan(plan.plan[~missing])
    if method == "knn":
        embeddings["embedding_labelled"] = emb_s[~missing]
    expected, _ = transfer(kept, labels[~missing], to_target=True, k=5, **embeddings)
    np.testing.assert_array_equal(got, expected)
    share = np.stack([plan.plan[~missing & (labels == c)].sum(axis=0) for c in np.unique(labels)], axis=1)
    share /= share.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(confidence, share[np.arange(len(got)), np.searchsorted(np.unique(labels), got)])


def test_all_labels_missing_is_an_error(rng):
    plan, labels, _, _ = random_problem(rng)
    with pytest.raises(ValueError, match="no labelled cells"):
        transfer(plan, np.full(len(labels), np.nan, dtype=object), to_target=True)


def test_joint_file_takes_own_labels_and_fills_the_rest_with_carried_ones():
    import anndata as ad
    import pandas as pd

    from gwalign.results.anndata_keys import joint_anndata

    source = ad.AnnData(obs=pd.DataFrame({"cell_type": ["B", np.nan, "T"], "cell_type_gw": ["T", "NK", "T"]},
                                         index=["a", "b", "c"]))
    target = ad.AnnData(obs=pd.DataFrame({"cell_type_gw": ["B", "T"]}, index=["x", "y"]))
    source.obsm["X_gw"], target.obsm["X_gw"] = np.zeros((3, 2)), np.ones((2, 2))
    joint = joint_anndata(source, target, ("rna", "atac"), ["cell_type"])
    assert list(joint.obs["cell_type"].astype(str)) == ["B", "NK", "T", "B", "T"]
    assert list(joint.obs_names) == ["rna:a", "rna:b", "rna:c", "atac:x", "atac:y"]


def test_confidence_is_the_share_times_the_counterpart_evidence(rng):
    plan, labels, emb_s, emb_t = random_problem(rng)
    evidence = (rng.random(plan.plan.shape[0]), rng.random(plan.plan.shape[1]))
    with_evidence = DensePlan(plan.plan, evidence=evidence)
    labels_t = rng.choice(["x", "y", "z"], size=plan.plan.shape[1])
    for to_target, side, lab, emb in ((True, 1, labels, (emb_s, emb_t)), (False, 0, labels_t, (emb_t, emb_s))):
        got, share = transfer(plan, lab, to_target, embedding_labelled=emb[0], embedding_receiving=emb[1], k=5)
        got_e, confidence = transfer(with_evidence, lab, to_target, embedding_labelled=emb[0],
                                     embedding_receiving=emb[1], k=5)
        np.testing.assert_array_equal(got, got_e)   # the labels do not change, only their confidence
        np.testing.assert_allclose(confidence, share * evidence[side])
