"""The run record: identity hashing, atomic writes, the metrics log."""

import json
import os

import pytest

from scaling import results


def test_run_id_is_stable_and_ignores_where_and_how_a_run_is_launched():
    cfg = {"sweep": "s", "seed": 0, "model": {"d_model": 64}, "train": {"log_every": 10}}
    rid = results.run_id(cfg)
    assert len(rid) == 12 and int(rid, 16) >= 0
    # key order does not matter
    assert results.run_id(dict(reversed(list(cfg.items())))) == rid
    # output location, logging and launcher settings do not change the identity
    moved = {
        **cfg,
        "results_dir": "elsewhere",
        "hydra": {"launcher": "slurm"},
        "train": {"log_every": 1},
    }
    assert results.run_id(moved) == rid
    # anything that changes what is computed does
    assert results.run_id({**cfg, "seed": 1}) != rid
    assert results.run_id({**cfg, "model": {"d_model": 65}}) != rid


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "f.json"
    results.write_json(path, {"x": 1})
    results.write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert os.listdir(path.parent) == ["f.json"]


def test_atomic_write_keeps_old_content_when_serialisation_fails(tmp_path):
    path = tmp_path / "s.json"
    results.write_json(path, {"ok": True})

    class Boom:
        def __str__(self):
            raise RuntimeError("cannot serialise")

    with pytest.raises(RuntimeError):
        results.write_json(path, {"bad": Boom()})
    assert json.loads(path.read_text()) == {"ok": True}
    assert os.listdir(tmp_path) == ["s.json"]


def test_summary_has_schema_and_time_and_rejects_unknown_status(tmp_path):
    s = results.write_summary(tmp_path, {"run_id": "r", "status": "completed"})
    assert s["schema"] == results.SCHEMA and s["updated_at"]
    assert results.read_summary(tmp_path)["status"] == "completed"
    with pytest.raises(ValueError, match="status"):
        results.write_summary(tmp_path, {"status": "done"})


def test_corrupt_summary_error_names_the_file(tmp_path):
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="summary.json"):
        results.read_summary(tmp_path)


def test_metrics_log_truncates_to_checkpoint_offset_on_resume(tmp_path):
    log = results.MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"step": 1})
    offset = log.tell()
    log.append({"step": 2})  # written after the checkpoint, lost with the process
    log.close()
    resumed = results.MetricsLog(tmp_path / "metrics.jsonl", truncate_to=offset)
    resumed.append({"step": 2, "again": True})
    resumed.close()
    assert results.read_metrics(tmp_path) == [{"step": 1}, {"step": 2, "again": True}]


def test_fresh_metrics_log_starts_empty(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 9}\n')
    log = results.MetricsLog(tmp_path / "metrics.jsonl")
    log.close()
    assert results.read_metrics(tmp_path) == []


def test_bad_metrics_line_error_names_file_and_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": \n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2"):
        results.read_metrics(tmp_path)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"status": "comp', "not valid JSON"),  # cut short by a full disk
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'{"status": "\xff\xfe"}', "not UTF-8 text"),
        (b'["completed"]', "holds an array, not a JSON object"),
        (b"3", "holds a number, not a JSON object"),
    ],
)
def test_unreadable_summary_is_one_line_naming_the_file_and_the_fix(tmp_path, content, says):
    (tmp_path / "summary.json").write_bytes(content)
    with pytest.raises(results.RecordError) as err:
        results.read_summary(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "summary.json")) and says in message
    assert "delete it to retrain this run" in message and "\n" not in message


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_every_record_file_gets_the_permissions_of_the_umask(tmp_path, umask):
    before = os.umask(umask)
    try:
        results.write_summary(tmp_path, {"status": "completed"})
        results.atomic_write_text(tmp_path / "config.yaml", "seed: 0\n")
        log = results.MetricsLog(tmp_path / "metrics.jsonl")
        log.close()
    finally:
        os.umask(before)
    expected = 0o666 & ~umask  # what open() gives any new file under this umask
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["summary.json", "config.yaml", "metrics.jsonl"], expected)


def test_atomic_write_that_fails_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text("old")

    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "replace", no_replace)
    with pytest.raises(OSError, match="No space left"):
        results.atomic_write_text(path, "new")
    assert os.listdir(tmp_path) == ["summary.json"] and path.read_text() == "old"
