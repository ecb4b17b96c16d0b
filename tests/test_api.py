"""The public Python API (wsbench.api): list, run, open a finished run, tables as DataFrames."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import wsbench.api as wb


def test_listing_imports_no_torch():
    code = ("import sys, wsbench.api as wb; m = wb.list_methods(); d = wb.list_datasets(); f = wb.list_flows(); "
            "r = wb.list_recipes(); assert 'tccam' in m and 'synthetic-belt' in d and 'dis' in f and 'cpu' in r, "
            "(m, d, f, r); assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_list_patterns_filter():
    assert wb.list_methods("*cam") == [m for m in wb.list_methods() if m.endswith("cam")]
    assert "cam" in wb.list_methods("*cam") and "f2f" not in wb.list_methods("*cam")


@pytest.mark.slow
def test_run_open_maps_masks_and_table(tiny_belt, tmp_path):
    """One run through the API; its masks of the test videos give back the run's own test IoU."""
    import cv2

    runs, cache = tmp_path / "runs", tmp_path / "cache"
    record = wb.run("cam", "video-folder", data_root=str(tiny_belt), runs_dir=runs, recipe="smoke",
                    dataset_options={})
    assert record.result is not None
    iou = record.result["metrics"]["iou_illegal"]
    assert [r.run_id for r in wb.runs(runs)] == [record.run_id]

    finished = wb.open_run(record.path, cache_dir=cache)
    assert finished.threshold == record.result["metrics"]["threshold"]
    test_before = [v.key for v in finished.data.index.videos if v.split == "test" and v.label == "before"]
    assert test_before and set(test_before) <= set(finished.videos)
    inter = union = 0
    for video in test_before:
        maps, masks = finished.maps(video), finished.masks(video)
        assert maps is not None and maps.shape == masks.shape and masks.dtype == np.uint8
        assert 0.0 <= maps.min() and maps.max() <= 1.0 and set(np.unique(masks)) <= {0, 1, 2}
        names = finished.data.index.videos[finished._position(video)].frames.names
        for i, name in enumerate(names):
            gt = cv2.imread(str(tiny_belt / "masks" / video / f"{name}.png"), cv2.IMREAD_GRAYSCALE) >= 128
            pred = masks[i] == 2
            inter += int((gt & pred).sum())
            union += int((gt | pred).sum())
    assert union > 0 and inter / union == pytest.approx(iou, abs=2e-3)
    after = next(v.key for v in finished.data.index.videos if v.label == "after")
    assert finished.maps(after) is None and 2 not in finished.masks(after)
    with pytest.raises(Exception, match="no video 'nope'"):
        finished.maps("nope")

    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
              for p in sorted((tiny_belt / test_before[0]).iterdir())]
    segmented = list(finished.segment(frames))
    assert [s.index for s in segmented] == list(range(len(frames)))
    assert segmented[0].mask.shape == frames[0].shape[:2]

    frame = wb.table("comparison", runs_dir=runs)
    assert frame.loc[frame.index[0]].notna().any()
    column = next(c for c in frame.columns if frame[c].notna().any())
    assert frame[column].dropna().iloc[0] == pytest.approx(100 * iou, abs=0.01)
    assert "caption" in frame.attrs and frame.attrs["std"].shape == frame.shape


@pytest.mark.slow
def test_table_of_a_runs_dir_that_holds_a_distilled_run(tiny_belt, tmp_path):
    """``table()`` leaves a distilled run to the two-stage table, as ``wsbench leaderboard`` does, instead of
    refusing the whole runs directory ("'cam-distill' is not an installed method")."""
    from wsbench.distill import distill, distill_recipe
    from wsbench.runs import is_distilled

    runs, cache = tmp_path / "runs", tmp_path / "cache"
    record = wb.run("cam", "video-folder", data_root=str(tiny_belt), runs_dir=runs, recipe="smoke")
    distilled = distill(record.path, runs, distill_recipe("smoke"), cache_dir=cache)
    assert is_distilled(distilled.config) and not is_distilled(record.config)
    assert "method_info" not in distilled.config  # what made the method registry refuse it

    frame = wb.table("comparison", runs_dir=runs)
    (column,) = [c for c in frame.columns if frame[c].notna().any() and "reference" not in c
                 and "ceiling" not in c]
    assert frame[column].dropna().tolist() == pytest.approx([100 * record.result["metrics"]["iou_illegal"]],
                                                            abs=0.01)


def test_suite_checks_the_launcher_options_before_any_run(tmp_path):
    """``suite()`` is what ``wsbench suite`` calls: options of another launcher are one-line errors, nothing runs."""
    from wsbench.errors import UserError

    spec = tmp_path / "one.toml"
    spec.write_text('[[runs]]\nmethod = "cam"\n')
    runs = tmp_path / "runs"
    with pytest.raises(UserError, match="--status and --no-wait go with --launcher slurm"):
        wb.suite(spec, runs_dir=runs, status=True)
    with pytest.raises(UserError, match="--jobs and --threads are for --launcher local"):
        wb.suite(spec, runs_dir=runs, launcher="submitit-local", jobs=2)
    with pytest.raises(UserError, match="launcher 'ssh': choose from local, slurm, submitit-local"):
        wb.suite(spec, runs_dir=runs, launcher="ssh")
    assert not runs.exists()
