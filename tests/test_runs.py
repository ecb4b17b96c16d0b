"""Run records: atomic writes, hashing, listing that ignores half-written runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wsbench import files, runs


def test_atomic_write_json_replaces_whole_file(tmp_path):
    path = tmp_path / "a" / "x.json"
    files.atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    files.atomic_write_json(path, {"c": 3})
    assert json.loads(path.read_text()) == {"c": 3}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temp files left


def test_failed_write_keeps_old_content(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    files.atomic_write_json(path, {"ok": True})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        files.atomic_write_json(path, {"ok": False})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_unserialisable_object_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        files.atomic_write_json(tmp_path / "x.json", {"f": object()})
    assert list(tmp_path.iterdir()) == []


def test_config_hash_ignores_key_order():
    assert files.config_hash({"a": 1, "b": {"c": 2, "d": 3}}) == files.config_hash({"b": {"d": 3, "c": 2}, "a": 1})
    assert files.config_hash({"a": 1}) != files.config_hash({"a": 2})


def test_run_ids_are_unique():
    ids = {runs.new_run_id("cam", "synthetic-belt") for _ in range(200)}
    assert len(ids) == 200


def test_create_finish_and_iterate(tmp_path):
    rec = runs.create_run(tmp_path, {"method": "cam", "dataset": "d", "seed": 0, "recipe": {}})
    assert rec.path.parent == tmp_path and not rec.finished
    assert [r.run_id for r in runs.iter_runs(tmp_path)] == []
    assert [r.run_id for r in runs.iter_runs(tmp_path, finished=False)] == [rec.run_id]
    done = {"method": "cam", "dataset": "d", "seed": 0, "metrics": {"iou_illegal": 0.5, "threshold": 0.4}}
    runs.finish_run(rec, done)
    (found,) = runs.iter_runs(tmp_path)
    assert found.result == done
    assert found.config["method"] == "cam"


def test_finished_result_refuses_an_unfinished_run(tmp_path):
    rec = runs.create_run(tmp_path, {"method": "cam", "dataset": "d", "seed": 0, "recipe": {}})
    with pytest.raises(ValueError, match="unfinished run"):
        _ = rec.finished_result
    done = {"method": "cam", "dataset": "d", "seed": 0, "metrics": {"iou_illegal": None, "threshold": 0.5}}
    runs.finish_run(rec, done)
    assert runs.RunRecord.load(rec.path).finished_result == done


def test_half_written_and_foreign_dirs_are_ignored(tmp_path):
    good = runs.create_run(tmp_path, {"method": "cam", "dataset": "d", "seed": 0, "recipe": {}})
    runs.finish_run(good, {"method": "cam", "dataset": "d", "seed": 0,
                           "metrics": {"iou_illegal": 0.5, "threshold": 0.4}})
    (tmp_path / "classifiers").mkdir()
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "config.json").write_text('{"method": "ca')  # torn write from a foreign tool
    half = runs.create_run(tmp_path, {"method": "cam", "dataset": "d", "seed": 0, "recipe": {}})
    (half.path / "result.json").write_text("{")  # corrupt result: not listed as finished
    assert [r.run_id for r in runs.iter_runs(tmp_path)] == [good.run_id]


def test_resolve_runs_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("WSBENCH_RUNS_DIR", raising=False)
    assert str(runs.resolve_runs_dir()) == "runs"
    monkeypatch.setenv("WSBENCH_RUNS_DIR", str(tmp_path))
    assert runs.resolve_runs_dir() == tmp_path
    # an explicit path wins over the environment variable, and is taken as given (a str or a Path)
    assert runs.resolve_runs_dir("x") == Path("x")
    assert runs.resolve_runs_dir(tmp_path / "own") == tmp_path / "own"


def test_environment_records_versions():
    env = runs.environment()
    assert env["packages"]["torch"] and env["python"]
