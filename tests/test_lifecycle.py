"""The run lifecycle of ``wsbench.runs`` (start or resume, the scored result, "is distilled"), the progress rule
(no ``progress`` argument below ``execute``/``run_suite``) and the segmenter's maps as an honest map source."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from wsbench import runs
from wsbench.progress import PROGRESS_ENV, no_bars_unless, progress_bars, show_messages

PACKAGE = Path(__file__).resolve().parent.parent / "wsbench"


def _config(config_hash: str = "h1", fingerprint: str | None = "f1", distilled: bool = False) -> dict:
    config = {"method": "cam", "dataset": "d", "seed": 0, "recipe": {}, "config_hash": config_hash,
              "data_fingerprint": fingerprint}
    if distilled:
        config.update(method="cam-distill", distill={"source_run": "src", "source_method": "cam"},
                      recipe={"architecture": "Unet", "encoder": "tu-resnet10t", "image_size": [32, 32]})
    return config


def test_is_distilled_reads_the_config_only():
    assert runs.is_distilled(_config(distilled=True))
    assert not runs.is_distilled(_config())
    assert not runs.is_distilled({"distill": None}) and not runs.is_distilled({"distill": "src"})


def test_start_run_resumes_the_latest_unfinished_run_of_the_same_configuration(tmp_path):
    first = runs.start_run(tmp_path, _config())
    time.sleep(0.01)
    second = runs.start_run(tmp_path, _config())
    assert first.run_id != second.run_id
    resumed = runs.start_run(tmp_path, _config(), resume=True)
    assert resumed.run_id == max(first.run_id, second.run_id)  # the latest by id
    # without resume, or for another hash, fingerprint or kind of run: a new run
    assert runs.start_run(tmp_path, _config()).run_id not in (first.run_id, second.run_id)
    others = [runs.start_run(tmp_path, _config(config_hash="h2"), resume=True),
              runs.start_run(tmp_path, _config(fingerprint="f2"), resume=True)]
    assert {r.run_id for r in others}.isdisjoint({first.run_id, second.run_id})
    distilled = runs.start_run(tmp_path, _config(distilled=True), resume=True)
    assert distilled.run_id not in {first.run_id, second.run_id} | {r.run_id for r in others}
    assert runs.start_run(tmp_path, _config(distilled=True), resume=True).run_id == distilled.run_id
    # a finished run is never resumed
    for record in runs.iter_runs(tmp_path, finished=False):
        if runs.same_run(record, _config()):
            runs.finish_run(record, {"method": "cam", "dataset": "d", "seed": 0,
                                     "metrics": {"iou_illegal": 0.5, "threshold": 0.5}})
    fresh = runs.start_run(tmp_path, _config(), resume=True)
    assert not runs.RunRecord.load(fresh.path).finished
    assert runs.latest_run(tmp_path, lambda r: runs.same_run(r, _config()), finished=False).run_id == fresh.run_id


def test_run_result_names_the_run_by_its_config_and_adds_the_timings(tmp_path):
    record = runs.start_run(tmp_path, _config())
    evaluation = {"metrics": {"iou_illegal": 0.25, "threshold": 0.5}, "baselines": {"b": 1}, "curves": {"c": 2},
                  "counts": {"test_frames": 3}, "fusion": None,
                  "timings": {"maps": 1.5, "maps_frames_per_second": 2.0}, "sample": "not recorded"}
    started = time.perf_counter()
    result = runs.run_result(record, evaluation, {"frames": 0.12345, "flow": 2.00049}, started, {"train": 4.0},
                             metrics={"iou_illegal": 0.25, "threshold": 0.5, "accuracy": 1.0}, extra={"x": 1})
    assert list(result) == ["run_id", "method", "dataset", "seed", "config_hash", "metrics", "baselines", "curves",
                            "counts", "fusion", "extra", "timings", "config"]
    assert (result["run_id"], result["method"], result["config_hash"]) == (record.run_id, "cam", "h1")
    assert result["metrics"]["accuracy"] == 1.0 and result["config"] == record.config and "sample" not in result
    timings = result["timings"]
    assert list(timings) == ["train", "cache", "flow", "maps", "maps_frames_per_second", "total"]
    assert (timings["cache"], timings["flow"], timings["maps"]) == (0.123, 2.0, 1.5)
    assert 0 <= timings["total"] < 60


def test_run_messages_follow_only_the_progress_argument_of_the_called_function(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert show_messages()  # $WSBENCH_PROGRESS is about bars
    with progress_bars(False):
        assert show_messages()
    with no_bars_unless(True):
        assert show_messages()
    with no_bars_unless(False):
        assert not show_messages()
        with no_bars_unless(True):
            assert not show_messages()  # True never turns them on again
    assert show_messages()
    with pytest.raises(RuntimeError), no_bars_unless(False):
        raise RuntimeError("boom")
    assert show_messages()


#: the functions a caller calls with ``progress=``: CONTRIBUTING's "library functions take no progress argument"
TOP_LEVEL_PROGRESS = {"wsbench.api.run", "wsbench.api.suite", "wsbench.pipeline.execute", "wsbench.suite.run.run_suite",
                      "wsbench.orchestrate.launch_suite", "wsbench.runner.run_logged"}


def test_no_library_function_takes_a_progress_switch():
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(a.arg == "progress" and ast.unparse(a.annotation or ast.Constant(None)) == "bool"
                       for a in args):
                    found.add(f"{module}.{node.name}")
    if "wsbench.cli" in {name.rsplit(".", 1)[0] for name in found}:  # click commands take -q, not progress
        found = {name for name in found if not name.startswith("wsbench.cli.")}
    assert found <= TOP_LEVEL_PROGRESS, sorted(found - TOP_LEVEL_PROGRESS)
    assert "wsbench.pipeline.execute" in found  # the scan sees the functions it should


def test_segmenter_maps_are_a_map_source_not_a_registered_method():
    import torch

    from wsbench.distill import DISTILL_RECIPES, SegmenterMaps, SegmenterNet
    from wsbench.maps import MapProducer
    from wsbench.methods import METHODS, Method, create_method

    source = SegmenterMaps("nothing-registered-distill")
    assert not isinstance(source, Method) and source.needs_grad is False
    assert create_method("gradcam").needs_grad is METHODS.entry("gradcam").meta.needs_grad is True
    assert create_method("cam").needs_grad is False
    net = SegmenterNet(DISTILL_RECIPES["smoke"]).eval()
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8).numpy()
    producer = MapProducer(source, net, torch.device("cpu"), background_removal=False)
    maps = producer.batch(frames, frames[..., 0] > 0)
    assert maps.shape == (2, 32, 32) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    with torch.no_grad():
        expected = torch.softmax(net(net.normalize(torch.from_numpy(frames).permute(0, 3, 1, 2))), dim=1)[:, 2]
    assert torch.allclose(maps, expected, atol=1e-5)  # the probability of illegal (target before)
