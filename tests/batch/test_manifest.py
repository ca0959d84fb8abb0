"""The batch manifest: columns, relative paths, per-row settings, and the errors it reports."""

import pytest
from batch_helpers import write_manifest

from gwalign.batch.manifest import read_manifest, rows_of_task, task_of
from gwalign.io.h5ad import InputError


@pytest.fixture
def files(tmp_path):
    for name in ("a.h5ad", "b.h5ad"):
        (tmp_path / name).write_text("x")
    return tmp_path


def test_rows_resolve_paths_and_settings_in_order_of_strength(files):
    (files / "row.toml").write_text("k = 9\nepsilon = 0.05\n")
    manifest = files / "pairs.tsv"
    manifest.write_text("# pairs of the study\npair_id\tsource\ttarget\tconfig\ttransfer-labels\tepsilon\n"
                        "p1\ta.h5ad\tb.h5ad\trow.toml\tcell_type, batch\t0.02\n\n"
                        f"p2\t{files / 'b.h5ad'}\ta.h5ad\t\t\t\n")
    pairs = read_manifest(manifest, base={"k": 5, "seed": 7}, overrides={"epsilon": 0.04, "k": 11})
    first, second = pairs
    assert [p.pair_id for p in pairs] == ["p1", "p2"] and [p.number for p in pairs] == [1, 2]
    assert first.source == files / "a.h5ad" and second.source == files / "b.h5ad"
    assert first.error is None and second.error is None
    settings = first.config.to_dict()
    # --set (11) beats the row's config (9) which beats --config (5); the row's column beats --set.
    assert settings["k"] == 11 and settings["epsilon"] == 0.02 and settings["seed"] == 7
    assert settings["transfer_labels"] == ["cell_type", "batch"]
    assert second.config.to_dict()["epsilon"] == 0.04 and second.config.to_dict()["k"] == 11


@pytest.mark.parametrize("text, message", [
    ("pair_id\tsource\n", r"header lacks column\(s\) target"),
    ("pair_id\tsource\ttarget\n", "no pairs"),
    ("pair_id\tsource\ttarget\np1\ta.h5ad\tb.h5ad\np1\tb.h5ad\ta.h5ad\n", "also on line 2"),
    ("pair_id\tsource\ttarget\n../up\ta.h5ad\tb.h5ad\n", "not a folder name"),
    ("pair_id\tsource\ttarget\np1\ta.h5ad\tb.h5ad\textra\n", "4 cells, the header has 3"),
])
def test_a_manifest_that_cannot_be_used_is_refused_whole(files, text, message):
    manifest = files / "pairs.tsv"
    manifest.write_text(text)
    with pytest.raises(InputError, match=message) as caught:
        read_manifest(manifest)
    assert str(manifest) in str(caught.value)


def test_missing_manifest_is_named(tmp_path):
    with pytest.raises(InputError, match="no such manifest"):
        read_manifest(tmp_path / "absent.tsv")


@pytest.mark.parametrize("column, value, message", [
    ("bogus", "1", "unknown config key 'bogus'"),
    ("k", "0", "k"),
    ("source", "missing.h5ad", "no such file"),
    ("config", "absent.toml", "config file not found"),
])
def test_a_bad_row_is_that_rows_error_only(files, column, value, message):
    good = {"pair_id": "good", "source": "a.h5ad", "target": "b.h5ad"}
    bad = {**good, "pair_id": "bad", column: value}
    good_pair, bad_pair = read_manifest(write_manifest(files / "pairs.tsv", [good, bad]))
    assert good_pair.error is None
    assert bad_pair.config is None or column == "source"
    assert message in bad_pair.error and "line 3" in bad_pair.error


def test_task_ids_map_to_consecutive_rows():
    assert list(rows_of_task(7, 1)) == [1] and list(rows_of_task(7, 7)) == [7]
    assert list(rows_of_task(7, 2, tasks_per_job=3)) == [4, 5, 6]
    assert list(rows_of_task(7, 3, tasks_per_job=3)) == [7]
    assert [task_of(n, 3) for n in range(1, 8)] == [1, 1, 1, 2, 2, 2, 3]
    with pytest.raises(InputError, match="past the manifest's 7 pair"):
        rows_of_task(7, 4, tasks_per_job=3)
    with pytest.raises(InputError):
        rows_of_task(7, 0)
