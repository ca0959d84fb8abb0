"""The one-sided check: cells without counterpart found as groups, and the suggestion made."""

import numpy as np
import pytest

import gwalign
from gwalign.results.one_sided import LOW_MASS, OneSidedSide, one_sided_groups, suggestion
from gwalign.datasets.synthetic import blobs_with_extra

CPU = dict(device="cpu")


@pytest.fixture(scope="module")
def extra_blob():
    xs, ls, xt, lt = blobs_with_extra(seed=1)
    return xs, ls, xt, lt


@pytest.fixture(scope="module")
def blob_runs(extra_blob):
    """Alignments of the extra-blob pair that several tests read: balanced (the default),
    semi-relaxed, and balanced without the check, each made once."""
    xs, ls, xt, lt = extra_blob
    return {name: gwalign.align(xs, xt, gwalign.GWConfig(**CPU, **settings)) for name, settings in
            (("balanced", {}), ("relaxed", {"semi_relaxed": True}), ("off", {"one_sided_check": False}))}


@pytest.mark.parametrize("swapped", [False, True])
def test_extra_blob_is_the_flagged_group(extra_blob, blob_runs, swapped):
    xs, ls, xt, lt = extra_blob
    if swapped:   # the unmatched blob on the source side: found by freeing the source's marginal
        xs, ls, xt, lt = xt, lt, xs, ls
    check = one_sided_groups(gwalign.align(xs, xt, gwalign.GWConfig(**CPU)) if swapped else blob_runs["balanced"])
    extra_side, other_side = (check[0], check[1]) if swapped else (check[1], check[0])
    extra_labels = ls if swapped else lt
    extra = extra_labels == 3
    # Every flagged cell is in the extra blob, most of the blob is flagged, nothing on the other side.
    assert extra_side.n_flagged >= 0.7 * extra.sum(), extra_side.summary()
    assert not (extra_side.flagged & ~extra).any()
    assert other_side.n_flagged == 0, other_side.summary()
    # Matched cells keep about their balanced mass; the blob loses most of its own.
    assert np.median(extra_side.mass[~extra]) > 0.8
    assert np.median(extra_side.mass[extra]) < LOW_MASS


def test_no_group_when_every_cell_has_a_counterpart(extra_blob):
    xs, ls, xt, lt = extra_blob
    keep = lt != 3
    check = one_sided_groups(gwalign.align(xs, xt[keep], gwalign.GWConfig(**CPU)))
    assert check[0].n_flagged == 0 and check[1].n_flagged == 0, (check[0].summary(), check[1].summary())


def test_large_rho_keeps_the_balanced_mass(extra_blob):
    # The KL penalty's limit: with rho far above the cost scale, freeing a marginal changes nothing.
    xs, ls, xt, lt = extra_blob
    mass = gwalign.align(xs, xt, gwalign.GWConfig(rho=1e4, **CPU)).relaxed_mass()
    for side in mass:
        np.testing.assert_allclose(side, 1.0, atol=0.02)


def test_no_check_when_relaxed_or_switched_off(blob_runs):
    for result in (blob_runs["relaxed"], blob_runs["off"]):
        assert result.relaxed_mass() is None and one_sided_groups(result) is None


def test_automatic_check_at_every_size():
    config = gwalign.GWConfig()
    assert config.runs_one_sided_check(4_000, 50_000) and config.runs_one_sided_check(10**6, 10**6)
    assert gwalign.GWConfig(one_sided_check=True).runs_one_sided_check(10**6, 10**6)
    assert not gwalign.GWConfig(one_sided_check=False).runs_one_sided_check(100, 100)
    assert not gwalign.GWConfig(semi_relaxed=True, one_sided_check=True).runs_one_sided_check(100, 100)


def side(name, flagged):
    flagged = np.asarray(flagged, bool)
    return OneSidedSide(name, np.where(flagged, 0.2, 1.0), flagged, (int(flagged.sum()),) if flagged.any() else ())


def test_suggestion_names_the_file_and_the_remedy():
    none, some = [False] * 50, [True] * 5 + [False] * 45
    assert suggestion((side("source", none), side("target", none)), "rna.h5ad", "atac.h5ad") is None
    target = suggestion((side("source", none), side("target", some)), "rna.h5ad", "atac.h5ad")
    assert "5 cells of atac.h5ad (10.0%" in target and "try `--semi-relaxed`" in target
    source = suggestion((side("source", some), side("target", none)), "rna.h5ad", "atac.h5ad")
    # Semi-relaxed frees the target's marginal, so a source group needs the inputs swapped.
    assert "5 cells of rna.h5ad" in source and "gwalign run atac.h5ad rna.h5ad --semi-relaxed" in source


def test_a_much_smaller_side_gets_a_size_note():
    from gwalign.results.one_sided import size_note

    assert size_note((150, 600), ("a.h5ad", "b.h5ad")) is None
    note = size_note((600, 149), ("a.h5ad", "b.h5ad"))
    assert note.startswith("b.h5ad has 149 aligned cells against 600 in a.h5ad") and "--gene-activity" in note
    assert "gene_activity=True" in size_note((600, 149), ("a", "b"), python=True)
    # A fused run has its shared features already: the note says what happens, not what to add.
    assert "shared features" not in size_note((600, 149), ("a.h5ad", "b.h5ad"), fused=True)


def test_twenty_cells_of_one_type_against_every_type_are_flagged_by_size():
    from gwalign.datasets.example import make_example_pair
    from gwalign.errors import GWAlignWarning

    rna, atac = make_example_pair(n_cells=150)
    progenitor = np.flatnonzero((rna.obs["cell_type"] == "progenitor").to_numpy())[:22]
    small = rna[progenitor].copy()
    counts = small.X.toarray() if hasattr(small.X, "toarray") else np.array(small.X)
    counts[:2] = 0      # two cells without counts are not aligned, so not counted
    small.X = type(small.X)(counts) if hasattr(small.X, "toarray") else counts
    with pytest.warns(GWAlignWarning, match="adata_a has 20 aligned cells against 150 in adata_b"):
        gwalign.tl.align(small, atac, copy=True, n_starts=1, max_iter=5, k=5, **CPU)


def test_counterpart_evidence_lowers_the_confidence_of_the_extra_blob(extra_blob, blob_runs):
    from gwalign.results.transfer import transfer

    xs, ls, xt, lt = extra_blob
    extra = lt == 3
    balanced, relaxed, off = blob_runs["balanced"], blob_runs["relaxed"], blob_runs["off"]
    # Balanced: the one-sided probe's masses, capped at 1; semi-relaxed: the free target's own
    # masses over its weights (the enforced source: ones); nothing freed: ones.
    for got, want in zip(balanced.counterpart_evidence(), balanced.relaxed_mass()):
        np.testing.assert_allclose(got, np.minimum(1.0, want))
    source, target = relaxed.counterpart_evidence()
    np.testing.assert_array_equal(source, 1.0)
    np.testing.assert_allclose(target, np.minimum(1.0, relaxed.col_marginal() * len(lt)))
    for side in off.counterpart_evidence():
        np.testing.assert_array_equal(side, 1.0)
    # The confidence is the label share times the evidence: the blob sheds mass when allowed, so
    # its cells end well below the matched ones.
    for result in (balanced, relaxed):
        _, confidence = transfer(result, ls, to_target=True)
        assert confidence[extra].mean() < 0.5 * confidence[~extra].mean()
        assert np.all(confidence <= 1.0 + 1e-9) and np.all(confidence >= 0.0)


def test_probe_on_a_subsample_flags_the_same_cells(extra_blob, blob_runs):
    # Above probe_points the probes run on a subsample; every cell's mass follows from their
    # potentials and must tell the same story as the probe over every cell.
    xs, ls, xt, lt = extra_blob
    sampled = gwalign.align(xs, xt, gwalign.GWConfig(**CPU, probe_points=200))
    for side_sampled, side_full in zip(one_sided_groups(sampled), one_sided_groups(blob_runs["balanced"])):
        assert side_sampled.n_flagged == side_full.n_flagged, (side_sampled.summary(), side_full.summary())
        np.testing.assert_array_equal(side_sampled.flagged, side_full.flagged)
    extra = lt == 3
    mass = sampled.relaxed_mass()[1]
    assert np.median(mass[extra]) < LOW_MASS and np.median(mass[~extra]) > 0.8


def test_every_cell_mass_is_the_probed_cells_own_mass():
    # Carried to every cell by one c-transform, the probe's masses on its own cells are those of
    # its polished plan: the carrying adds no error of its own (polished tightly: at the default
    # tolerance the potentials themselves differ by ~1e-3 cost units, a few % of mass at ε = 0.03).
    import torch
    from gwalign.engine.lowrank import LowRankGW
    from gwalign.engine.one_sided_probe import PROBE_STEPS, _Side, _freed_mass
    from gwalign.geometry.factors import factor_dense

    xs, _, xt, _ = blobs_with_extra(seed=2, per_blob=40, extra=20)
    fs, ft = (factor_dense(torch.cdist(x, x) / torch.cdist(x, x).mean(), 12)
              for x in (torch.tensor(xs, dtype=torch.float64), torch.tensor(xt, dtype=torch.float64)))
    a = torch.full((len(xs),), 1.0 / len(xs), dtype=torch.float64)
    b = torch.full((len(xt),), 1.0 / len(xt), dtype=torch.float64)
    config = gwalign.GWConfig(**CPU, epsilon=0.03, final_tol=1e-9)
    balanced = LowRankGW(fs, ft, a, b, config)
    state = balanced.start(balanced.start_grams(3)[1])
    balanced.run([state], 15)
    relaxed = config.replace(semi_relaxed=True, epsilon_decay_iters=0, min_iter=0, max_iter=PROBE_STEPS)
    target = _Side(ft, b, None, rows=np.arange(len(xt)))
    probed, every = _freed_mass(_Side(fs, a, None), target, a, state.gram, relaxed)
    assert probed.min() < 0.5      # the extra blob lets go of its mass: a real test of the carrying
    np.testing.assert_allclose(every.numpy(), probed.numpy(), rtol=1e-5)
