"""The duplicate-column check (issue 27): every run stores a fixed sample of its test maps; the comparison
footnotes two columns of a row whose samples correlate above 0.99."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_pxap import _fake_pxap_run, _histograms


def _with_sample(record, frames, maps):
    """Give a finished fake run a stored sample (as the pipeline does before result.json)."""
    from wsbench.runs import finish_run, save_sample_maps

    result = dict(record.result, sanity=save_sample_maps(record, frames, maps))
    return finish_run(record, result)


def test_sample_correlation_restated():
    from wsbench.report.marks import _sample_correlation

    rng = np.random.default_rng(2)
    a, b = rng.random((3, 8, 8)), rng.random((3, 8, 8))
    x, y = a.ravel(), b.ravel()
    dx, dy = x - x.mean(), y - y.mean()
    pearson = (dx * dy).sum() / np.sqrt((dx**2).sum() * (dy**2).sum())
    assert _sample_correlation(a, b) == pytest.approx(pearson, abs=1e-12)
    assert _sample_correlation(a, 0.5 * a + 0.1) == pytest.approx(1.0)  # a rescaled map is the same map
    # constant maps (e.g. the old GradCAM's 5e-7 everywhere): equal ones are the same, unequal ones not
    assert _sample_correlation(np.full(4, 5e-7), np.zeros(4)) == 1.0
    assert _sample_correlation(np.full(4, 0.5), np.zeros(4)) == 0.0
    assert _sample_correlation(np.full(4, 0.5), a.ravel()[:4]) == 0.0


def test_comparison_footnotes_columns_with_the_same_maps(tmp_path):
    from wsbench.report import comparison
    from wsbench.runs import iter_runs

    rng = np.random.default_rng(4)
    keys = [f"before/v{i:02d}" for i in range(4)]
    frames = [f"{k}#4" for k in keys]
    runs = tmp_path / "runs"
    for seed in range(2):
        cam = rng.random((4, 32, 32))
        noise = 0.01 * rng.random((4, 32, 32))
        for method, maps in (("cam", cam), ("gradcam", 0.8 * cam + noise), ("tccam", rng.random((4, 32, 32)))):
            _with_sample(_fake_pxap_run(runs, method, seed, _histograms(rng, keys)), frames, maps)
    table = comparison(iter_runs(runs))
    same = [n for n in table.footnotes if n.startswith("Same maps")]
    assert len(same) == 1 and same[0].startswith("Same maps: GradCAM and CAM on synthetic-belt (Pearson correlation")
    assert "over 2 run(s) paired by seed" in same[0]


def test_runs_without_a_sample_or_with_a_broken_one(tmp_path):
    from wsbench.report import comparison
    from wsbench.runs import SAMPLE_MAPS_FILE, iter_runs

    rng = np.random.default_rng(6)
    keys = [f"before/v{i:02d}" for i in range(3)]
    runs = tmp_path / "runs"
    maps = rng.random((3, 32, 32))
    old = _fake_pxap_run(runs, "cam", 0, _histograms(rng, keys))  # recorded before samples: not checked
    broken = _with_sample(_fake_pxap_run(runs, "gradcam", 0, _histograms(rng, keys)), [f"{k}#1" for k in keys], maps)
    _with_sample(_fake_pxap_run(runs, "tccam", 0, _histograms(rng, keys)), [f"{k}#2" for k in keys], maps)
    assert not any("Same maps" in n for n in comparison(iter_runs(runs)).footnotes)  # other frames: not compared
    (broken.path / SAMPLE_MAPS_FILE).write_bytes(b"not an array")
    notes = comparison(iter_runs(runs)).footnotes
    (note,) = [n for n in notes if n.startswith("No duplicate check")]
    assert broken.run_id in note and SAMPLE_MAPS_FILE in note and "\n" not in note
    assert old.result.get("sanity") is None


@pytest.mark.slow
def test_a_column_that_repeats_another_is_footnoted(tiny_run, tmp_path, monkeypatch):
    """A duplicate column on purpose, the shape of the old GradCAM bug (a column that computed another
    column's maps under its own name): CAM's classifier and maps registered again as a new method. Its
    stored samples equal CAM's and the comparison footnotes the pair; GradCAM (another classifier) is
    not flagged."""
    import wsbench.api as wb
    from wsbench.methods import METHODS, register_method
    from wsbench.methods.cam import Cam
    from wsbench.report import comparison
    from wsbench.runs import RunRecord, iter_runs, load_sample_maps

    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))  # the registration ends with the test

    @register_method("cam_again", display_name="CAM again")
    class CamAgain(Cam):
        def classifier(self):
            return "cam", {}

    copy = tiny_run.copy(tmp_path)  # the session's cam run; cam_again and gradcam are added beside it
    runs = copy.runs
    made = [RunRecord.load(copy.run_dir)] + [
        wb.run(method, "video-folder", data_root=str(copy.data), runs_dir=runs, recipe="smoke", dataset_options={})
        for method in ("cam_again", "gradcam")]
    samples = [load_sample_maps(r) for r in made]
    assert all(s is not None and s[0] == samples[0][0] and s[1].shape[1:] == (32, 32) for s in samples)
    frames = samples[0][0]
    tests = sorted(v.key for v in wb.open_run(made[0].path, cache_dir=tmp_path / "cache").data.index.videos
                   if v.split == "test" and v.label == "before")
    assert [f.split("#")[0] for f in frames] == tests[:8]  # the middle frame of each test video, by key
    assert json.loads((made[0].path / "result.json").read_text())["sanity"]["sample_frames"] == frames
    assert np.array_equal(samples[0][1], samples[1][1])
    notes = [n for n in comparison(iter_runs(runs)).footnotes if n.startswith("Same maps")]
    assert notes == [notes[0]] and notes[0].startswith("Same maps: CAM and CAM again on video-folder")
