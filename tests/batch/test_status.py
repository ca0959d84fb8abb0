"""status.json bookkeeping: when a pair counts as done, the status table and resubmission ids."""

import json

from gwalign.batch.status import done_reason, input_record, parameters_hash, result_summary, write_json_atomic
from gwalign.batch.table import failed_task_ids, status_rows, write_batch_file
from gwalign.batch.manifest import read_manifest
from gwalign.batch.lock import PairLock


def _done_pair(tmp_path):
    files = [tmp_path / "a.h5ad", tmp_path / "b.h5ad"]
    for file, text in zip(files, ("source", "target")):
        file.write_text(text)
    folder = tmp_path / "out" / "p1"
    folder.mkdir(parents=True)
    (folder / "a.gwalign.h5ad").write_text("output")
    settings = parameters_hash({"k": 15})
    write_json_atomic(folder / "status.json", {
        "status": "ok", "parameters_sha256": settings, "outputs": ["a.gwalign.h5ad"],
        "inputs": {"source": input_record(files[0]), "target": input_record(files[1])}})
    return folder, files, settings


def test_a_pair_is_done_only_for_the_same_inputs_settings_and_outputs(tmp_path):
    folder, files, settings = _done_pair(tmp_path)
    assert done_reason(folder, files, settings) == (True, "done")
    assert done_reason(folder, files, parameters_hash({"k": 9})) == (False, "settings changed")
    files[1].write_text("target, edited")
    assert done_reason(folder, files, settings) == (False, "target file changed")
    files[1].write_text("target")
    assert done_reason(folder, files, settings)[0]          # same bytes again, though touched
    (folder / "a.gwalign.h5ad").unlink()
    assert done_reason(folder, files, settings) == (False, "output a.gwalign.h5ad missing")


def test_an_unchanged_file_is_not_read_again(tmp_path):
    file = tmp_path / "a.h5ad"
    file.write_text("data")
    record = input_record(file)
    assert input_record(file, {**record, "sha256": "remembered"})["sha256"] == "remembered"
    file.write_text("other data")
    assert input_record(file, {**record, "sha256": "remembered"})["sha256"] != "remembered"


def test_failed_ids_are_compressed_ranges_without_done_or_running_pairs():
    rows = [{"task_id": t, "status": s} for t, s in
            [(1, "ok"), (2, "failed"), (3, "pending"), (4, "retryable"), (5, "running (align)"), (6, "terminated"),
             (7, "ok"), (8, "stale lock")]]
    assert failed_task_ids(rows) == "2-4,6,8"
    assert failed_task_ids([{"task_id": 1, "status": "ok"}]) == ""


def test_status_rows_list_every_manifest_pair(tmp_path):
    folder, files, _ = _done_pair(tmp_path)
    status = json.loads((folder / "status.json").read_text())
    report = {"gw_objective": 0.1, "converged": True, "runner_up": {"objective_gap": 0.2},
              "one_sided": {"source": {"groups": [12]}, "target": {"groups": []}},
              "label_transfer": {"a->source": {"mean_confidence": 0.8}, "a->target": {"mean_confidence": 0.6}}}
    status.update(wall_time_s=3.0, peak_memory_gb={"host_rss": 1.5}, result=result_summary(report))
    write_json_atomic(folder / "status.json", status)
    manifest = tmp_path / "pairs.tsv"
    manifest.write_text("pair_id\tsource\ttarget\np1\ta.h5ad\tb.h5ad\np2\ta.h5ad\tb.h5ad\np3\ta.h5ad\tb.h5ad\n")
    write_batch_file(tmp_path / "out", manifest, read_manifest(manifest), tasks_per_job=2)
    with PairLock(tmp_path / "out" / "p3") as lock:
        lock.set_stage("preprocess")
        rows = status_rows(tmp_path / "out")
    assert [(r["pair_id"], r["task_id"], r["status"]) for r in rows] == [
        ("p1", 1, "ok"), ("p2", 1, "pending"), ("p3", 2, "running (preprocess)")]
    first = rows[0]
    assert first["one_sided_groups"] == 1 and abs(first["confidence"] - 0.7) < 1e-12
    assert first["runner_up_gap"] == 0.2 and first["host_gb"] == 1.5 and first["time_s"] == 3.0
