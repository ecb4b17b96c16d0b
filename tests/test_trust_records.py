"""Trust, third round: a reopened run proves its data, every record is checked, bounds come before work.

- a finished run reopened on changed data (``distill``, ``export``, ``figures``, ``api.open_run``)
  refuses in one line naming what changed;
- ``--table stages`` groups like the comparison (configuration, data identity, one sample per
  configuration and seed, footnotes);
- records are checked for completeness and finiteness: a bad one is skipped with a warning naming it
  and never stops a table, and commands that open it give one line;
- property-based fuzzing (hypothesis) of the record and suite spec schemas: a result or one line;
- bounds of map scales and of the distill image size before any work.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsbench.cli import cli
from wsbench.errors import UserError
from wsbench.registry import RegistryError

from .conftest import write_video_folder
from .test_distill import _fake as fake_distilled
from .test_report import fake_run

SPLITS = {"train": ["vid0"], "val": ["vid1"], "test": ["vid2"]}
TINY = ["--recipe", "smoke", "-q"]


def _invoke(args: list[Any]):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        return CliRunner().invoke(cli, [str(a) for a in args], prog_name="wsbench")


def _frames(folder: Path) -> Path:
    """A folder of two frames for ``wsbench segment``."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for n in range(2):
        cv2.imwrite(str(folder / f"f{n}.png"), np.full((32, 32, 3), 90, np.uint8))
    return folder


def _one_line_error(result, expect: str) -> None:
    """Exit ≠ 0 with exactly one ``Error:`` line on stderr naming ``expect``; no traceback."""
    lines = [line for line in result.stderr.splitlines() if line and not line.startswith("warning: ")]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expect in lines[0] and "Traceback" not in result.output, lines[0]


# -- a reopened run compares its data with its recorded fingerprint ----------------------------------
def _opened(data: Path):
    from wsbench.data import create_dataset
    from wsbench.recipes import Recipe

    return create_dataset("video-folder", root=data), Recipe(image_size=(32, 32))


def _recorded(tmp_path: Path, data: Path, parts: bool = True):
    from wsbench.inference import data_fingerprint, data_parts
    from wsbench.runs import RunRecord

    index, recipe = _opened(data)
    config = {"data_fingerprint": data_fingerprint(index, recipe),
              "data_content": data_fingerprint(index, recipe, splits=False)}
    if parts:
        config["data_parts"] = data_parts(index, recipe)
    return RunRecord(tmp_path / "run", config)


@pytest.mark.parametrize("parts", [True, False], ids=["data_parts", "recorded before data_parts"])
def test_check_data_names_what_changed(tmp_path, parts):
    import os

    from wsbench.inference import check_data

    data = write_video_folder(tmp_path / "data", splits=SPLITS)
    record = _recorded(tmp_path, data, parts)
    check_data(record, *_opened(data))  # unchanged: no error
    (data / "splits.json").write_text(json.dumps({"train": ["vid2"], "val": ["vid1"], "test": ["vid0"]}))
    with pytest.raises(UserError, match=r"run: the data changed since the run was made: which split each video is "
                                        rf"in \({data}/splits.json\) \(data fingerprint \w+ recorded, \w+ now\)"):
        check_data(record, *_opened(data))
    (data / "splits.json").write_text(json.dumps(SPLITS))
    check_data(record, *_opened(data))
    os.utime(data / "masks" / "before" / "vid1" / "frame_0002.png", ns=(7, 7))  # a mask edited in place
    with pytest.raises(UserError, match="its GT masks under" if parts else "its frames, GT masks or flow files") as err:
        check_data(record, *_opened(data))
    assert "\n" not in str(err.value)
    os.utime(data / "before" / "vid1" / "frame_0002.png", ns=(7, 7))
    with pytest.raises(UserError, match="its frames under" if parts else "its frames, GT masks or flow files"):
        check_data(record, *_opened(data))


def test_a_record_without_a_fingerprint_warns_that_it_cannot_be_checked(tmp_path):
    from wsbench.inference import check_data
    from wsbench.runs import RunRecord

    data = write_video_folder(tmp_path / "data", splits=SPLITS)
    with pytest.warns(UserWarning, match="records no data fingerprint"):
        check_data(RunRecord(tmp_path / "old", {}), *_opened(data))


@pytest.mark.slow
def test_a_reopened_run_refuses_swapped_splits(tmp_path):
    """Train and test swapped in splits.json after the run: every command that reads the run's data set refuses."""
    from wsbench.api import open_run

    data = write_video_folder(tmp_path / "data", splits=SPLITS)
    runs = tmp_path / "runs"
    trained = _invoke(["run", "-m", "cam", "-d", "video-folder", "--data-root", data, "--runs-dir", runs, *TINY])
    assert trained.exit_code == 0, trained.output
    (run,) = [p for p in runs.iterdir() if (p / "result.json").is_file()]
    assert _invoke(["export", "--run", run, "--out", tmp_path / "ok", "-q"]).exit_code == 0  # unchanged data
    (data / "splits.json").write_text(json.dumps({"train": ["vid2"], "val": ["vid1"], "test": ["vid0"]}))
    changed = f"the data changed since the run was made: which split each video is in ({data}/splits.json)"
    _one_line_error(_invoke(["distill", "--run", run, "--recipe", "smoke", "--runs-dir", runs, "-q"]), changed)
    _one_line_error(_invoke(["export", "--run", run, "--out", tmp_path / "x", "-q"]), changed)
    _one_line_error(_invoke(["figures", "--runs-dir", runs, "--out", tmp_path / "fig", "-q"]), changed)
    segmented = _invoke(["segment", "--run", run, _frames(tmp_path / "new"), "--out", tmp_path / "seg", "-q"])
    assert segmented.exit_code == 0 and "new frames" in segmented.output, segmented.output  # new data is the point
    info = json.loads((tmp_path / "seg" / "segment.json").read_text())
    recorded = json.loads((run / "config.json").read_text())["data_fingerprint"]
    assert info["input_is_new_data"] is True and info["run_data_fingerprint"] == recorded
    opened = open_run(run)  # opening works (segmenting new frames needs no data set) ...
    with pytest.raises(UserError, match=r"which split each video is in"):
        _ = opened.data  # ... reading the run's data set does not
    assert not any(p.name.endswith("distill") for p in runs.iterdir())  # nothing half-made


# -- the stages table groups like the comparison ---------------------------------------------------
def _stage_rows(runs: Path) -> dict[tuple[str, str], int]:
    from wsbench.runs import iter_runs
    from wsbench.stages import stages_frame

    df, _ = stages_frame(iter_runs(runs))
    return {key: len(group) for key, group in df.groupby(["data", "method"])}


def _set(record, **values) -> None:
    from wsbench.files import atomic_write_json

    for name in ("config.json", "result.json"):
        doc = json.loads((record.path / name).read_text())
        doc.get("config", doc).update(values)
        atomic_write_json(record.path / name, doc)
    record.config.update(values)


def test_stages_table_counts_a_rerun_once_with_a_footnote(tmp_path):
    from wsbench.runs import iter_runs
    from wsbench.stages import stages_table

    runs = tmp_path / "runs"
    source = fake_run(runs, "cam", 0, 0.3)
    fake_distilled(runs, 0, 0.3, 0.4, 0.5, source=source)
    fake_distilled(runs, 0, 0.3, 0.4, 0.7, source=source)  # the same distillation again
    again = fake_run(runs, "cam", 0, 0.3)  # the source configuration and seed run again, then distilled
    fake_distilled(runs, 0, 0.3, 0.4, 0.9, source=again)
    fake_distilled(runs, 1, 0.3, 0.4, 0.6, source=source)  # another distill seed: another sample
    assert _stage_rows(runs) == {("synthetic-belt", "CAM"): 2}
    text = stages_table(iter_runs(runs))
    assert "2 re-run(s) of a configuration and seed" in text


def test_stages_table_keeps_data_roots_and_options_apart(tmp_path):
    runs = tmp_path / "runs"
    for root in ("/data/a", "/data/b"):
        source = fake_run(runs, "cam", 0, 0.3, dataset="video-folder")
        _set(source, data_root=root)
        fake_distilled(runs, 0, 0.3, 0.4, 0.5, source=source)
    fake_distilled(runs, 0, 0.2, 0.3, 0.4, method="tccam")
    fake_distilled(runs, 0, 0.1, 0.2, 0.3, method="tccam", spatial=False)
    assert _stage_rows(runs) == {("video-folder [data_root=/data/a]", "CAM"): 1,
                                 ("video-folder [data_root=/data/b]", "CAM"): 1,
                                 ("synthetic-belt", "TC-CAM"): 1, ("synthetic-belt", "TC-CAM --no-spatial"): 1}


def test_stages_table_names_other_segmenters(tmp_path):
    from wsbench.files import atomic_write_json

    runs = tmp_path / "runs"
    source = fake_run(runs, "cam", 0, 0.3)
    fake_distilled(runs, 0, 0.3, 0.4, 0.5, source=source)
    fake_distilled(runs, 1, 0.3, 0.4, 0.5, source=source)
    fake_distilled(runs, 0, 0.3, 0.4, 0.5, method="tccam")  # Unet: the data set's usual segmenter
    other = fake_distilled(runs, 0, 0.3, 0.4, 0.6, source=source)
    for name in ("config.json", "result.json"):
        doc = json.loads((other.path / name).read_text())
        doc.get("config", doc)["recipe"]["architecture"] = "FPN"
        atomic_write_json(other.path / name, doc)
    assert _stage_rows(runs) == {("synthetic-belt", "CAM"): 2, ("synthetic-belt", "TC-CAM"): 1,
                                 ("synthetic-belt", "CAM [segmenter.architecture=FPN]"): 1}


# -- records: completeness and finiteness ------------------------------------------------------------
def _tamper(doc_name: str, change):
    def apply(record) -> None:
        path = record.path / doc_name
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))  # allow_nan: what a foreign tool may write
    return apply


def _metric(key, value):
    return _tamper("result.json", lambda d: d["metrics"].__setitem__(key, value))


def _config(key, value):
    return _tamper("config.json", lambda d: d.__setitem__(key, value))


def _drop(doc_name, *keys):
    def change(doc):
        for key in keys[:-1]:
            doc = doc[key]
        del doc[keys[-1]]
    return _tamper(doc_name, change)


def _recipe(key, value):
    return _tamper("config.json", lambda d: d["recipe"].__setitem__(key, value))


def _foreign(record) -> None:
    (record.path / "config.json").write_text(json.dumps({"method": "cam", "dataset": "belt"}))


TAMPERED = [
    ("NaN IoU", _metric("iou_illegal", float("nan")), "result.json: metrics.iou_illegal: expected a number in 0..1"),
    ("inf IoU", _metric("iou_illegal", float("inf")), "metrics.iou_illegal: expected a number in 0..1"),
    ("-inf mIoU", _metric("miou", -float("inf")), "metrics.miou: expected a number in 0..1"),
    ("IoU 1e308", _metric("iou_illegal", 1e308), "metrics.iou_illegal: expected a number in 0..1"),
    ("no IoU", _drop("result.json", "metrics", "iou_illegal"), "metrics: missing key 'iou_illegal'"),
    ("no metrics", _drop("result.json", "metrics"), "result.json: missing key 'metrics'"),
    ("foreign config of two keys", _foreign, "config.json: missing key 'seed'"),
    ("null threshold", _metric("threshold", None), "metrics.threshold: expected a number in 0..1, got null"),
    ("NaN threshold", _metric("threshold", float("nan")), "metrics.threshold: expected a number in 0..1"),
    ("fusion with an extra key", _config("fusion", {"neighbours": 2, "mode": "max", "x": 1}), "fusion.x: unknown key"),
    ("fusion with negative neighbours", _config("fusion", {"neighbours": -2, "mode": "max"}),
     "fusion.neighbours: expected an integer >= 0"),
    ("unknown recipe key", _recipe("turbo", True), "recipe.turbo: unknown key"),
    ("string image size", _recipe("image_size", "32"), "recipe.image_size: expected a list of 2 items"),
    ("no recipe", _drop("config.json", "recipe"), "config.json: missing key 'recipe'"),
    ("no method", _drop("config.json", "method"), "config.json: missing key 'method'"),
    ("malformed counts", _tamper("result.json", lambda d: d.__setitem__("counts", {"test_videos": {"v": [1, 2]}})),
     "counts.test_videos.v: expected a table/object"),
    ("method_info of the wrong type", _config("method_info", ["CAM"]), "method_info: expected a table/object"),
    ("method_info.modules of the wrong type", _tamper("config.json", lambda d: d["method_info"].__setitem__(
        "modules", "yes")), "method_info.modules: expected a list of 2 items"),
]


@pytest.mark.parametrize(("damage", "expect"), [(d, e) for _, d, e in TAMPERED], ids=[n for n, _, _ in TAMPERED])
def test_a_tampered_record_is_skipped_with_a_warning_and_never_stops_a_table(tmp_path, damage, expect):
    from wsbench.report import build_tables
    from wsbench.runs import iter_runs

    runs = tmp_path / "runs"
    good = fake_run(runs, "gradcam", 0, 0.3)
    bad = fake_run(runs, "cam", 1, 0.4)
    damage(bad)
    with pytest.warns(UserWarning, match=expect) as caught:
        records = list(iter_runs(runs))
    assert [r.run_id for r in records] == [good.run_id]
    assert str(bad.path) in str(caught[0].message) and "run skipped" in str(caught[0].message)
    assert not build_tables(records, ci=True)[0].empty
    for args in (["leaderboard", "--ci"], ["leaderboard", "--table", "stages"], ["leaderboard", "--table", "long"]):
        result = _invoke([*args, "--runs-dir", runs])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        assert expect in result.stderr and result.stderr.startswith("warning: ")
    for args in (["export", "--run", bad.path, "--out", tmp_path / "x"], ["distill", "--run", bad.path],
                 ["segment", "--run", bad.path, _frames(tmp_path / "frames"), "--out", tmp_path / "y"]):
        _one_line_error(_invoke([*args, "--runs-dir", runs]), expect)


def test_a_distilled_result_without_distill_is_skipped(tmp_path):
    from wsbench.runs import iter_runs

    runs = tmp_path / "runs"
    record = fake_distilled(runs, 0, 0.3, 0.4, 0.5)
    _drop("result.json", "distill")(record)
    with pytest.warns(UserWarning, match="result.json: missing key 'distill'"):
        assert [r for r in iter_runs(runs) if "distill" in r.config] == []
    result = _invoke(["leaderboard", "--table", "stages", "--runs-dir", runs])
    assert result.exit_code == 0 and "no finished distilled runs" in result.output
    _one_line_error(_invoke(["segment", "--run", record.path, _frames(tmp_path / "frames"), "--out", tmp_path / "y"]),
                    "missing key 'distill'")


def test_a_distilled_recipe_of_the_wrong_type_is_one_line(tmp_path):
    from wsbench.distill import distilled_record, load_distilled

    runs = tmp_path / "runs"
    record = fake_distilled(runs, 0, 0.3, 0.4, 0.5)
    _tamper("config.json", lambda d: d["recipe"].__setitem__("encoder_depth", "3"))(record)
    with pytest.raises(UserError, match=r"config.json: recipe: encoder_depth: expected an integer"):
        load_distilled(distilled_record(record.path, runs), "cpu")


# -- property-based fuzzing of the record and suite spec schemas -------------------------------------
#: values a tampered or foreign file may hold
NASTY = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=4), st.lists(st.integers(-3, 3), max_size=3),
                  st.dictionaries(st.sampled_from(["x", "neighbours", "mode", "path"]), st.integers(-3, 3), max_size=2))


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (lists by index)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:3]):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(doc: Any, path: tuple, op: str, value: Any) -> None:
    """Delete the value at ``path``, replace it with ``value``, or give its table an extra key."""
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = value
    elif isinstance(parent[last], dict):
        parent[last]["extra_key"] = value


def _mutations(base: Any):
    paths = _paths(base)
    return st.lists(st.tuples(st.sampled_from(paths), st.sampled_from(["delete", "replace", "extra"]), NASTY),
                    min_size=1, max_size=3)


def _apply(base: Any, mutations) -> Any:
    doc = copy.deepcopy(base)
    for path, op, value in mutations:
        try:
            _mutate(doc, path, op, value)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced the path
            continue
    return doc


def _one_line(err: BaseException) -> None:
    assert "\n" not in str(err) and str(err), repr(err)


def _base_records() -> dict[str, tuple[dict, dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        out = {}
        for name, record in (("cam", fake_run(runs, "cam", 0, 0.3)),
                             ("tccam", fake_run(runs, "tccam", 1, 0.4, spatial=False)),
                             ("distilled", fake_distilled(runs, 0, 0.3, 0.4, 0.5)),
                             ("good", fake_run(runs, "gradcam", 0, 0.3))):
            result = dict(record.result)
            result["counts"] = {"val_frames": 4, "test_frames": 6, "stability_pairs": 2,
                                "test_videos": {"before/v0": {"frames": 3, "intersection": 5, "union": 9}}}
            out[name] = (record.config, result)
        return out


BASES = _base_records()
GOOD = BASES.pop("good")  # a valid run beside every fuzzed one


@st.composite
def _records(draw):
    name = draw(st.sampled_from(sorted(BASES)))
    config, result = BASES[name]
    which = draw(st.sampled_from(["config", "result", "both"]))
    if which in ("config", "both"):
        config = _apply(config, draw(_mutations(config)))
    if which in ("result", "both"):
        result = _apply(result, draw(_mutations(result)))
    return config, result


def _exercise_record(runs: Path, config: Any, result: Any) -> None:
    """Everything that reads a record: loading, every table (with intervals), the stages table, the long form,
    and opening it for inference (its weights do not exist, so that ends in a one-line error at the latest)."""
    from wsbench.distill import distilled_record, load_distilled
    from wsbench.inference import load_run
    from wsbench.methods import complete_method_info
    from wsbench.report import TABLES, build_tables, long_form, render
    from wsbench.runs import iter_runs
    from wsbench.stages import stages_table

    for name, docs in (("good", GOOD), ("fuzzed", (config, result))):
        (runs / name).mkdir()
        (runs / name / "config.json").write_text(json.dumps(docs[0]))
        (runs / name / "result.json").write_text(json.dumps(docs[1]))
    run = runs / "fuzzed"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(iter_runs(runs))
    assert all("\n" not in str(w.message) for w in caught)
    assert "good" in {r.run_id for r in records}  # a bad record never hides a good one
    try:
        plain = complete_method_info(r for r in records if "distill" not in r.config)
        tables = build_tables(plain, TABLES, ci=True)
        for fmt in ("markdown", "json"):
            render(tables, fmt)
        long_form(plain)
    except (UserError, RegistryError) as err:  # e.g. a method_info-less record of a method not installed
        _one_line(err)
    try:
        stages_table(records)
    except UserError as err:
        _one_line(err)
    try:
        distilled = distilled_record(run, runs)
        load_distilled(distilled, "cpu") if distilled else load_run(run, runs, "cpu")
    except (UserError, RegistryError) as err:
        _one_line(err)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_records())
def test_fuzzed_records_give_a_table_or_one_line(record):
    config, result = record
    with tempfile.TemporaryDirectory() as tmp:
        _exercise_record(Path(tmp), config, result)


BASE_SPEC = {"name": "t", "datasets": ["video-folder"], "seeds": [0, 1], "split_seeds": [0],
             "recipe": {"name": "smoke", "epochs": 1, "image_size": [32, 32], "lr": 0.01},
             "runs": [{"method": "cam"},
                      {"method": "tccam", "options": {"spatial": False}, "fuse_neighbours": 2, "fuse_mode": "max",
                       "recipe": {"batch_size": 4}, "distill": {"epochs": 2, "image_size": [32, 32]}}],
             "evaluation": {"cam_scales": [1.0, 2.0], "cam_flip": True},
             "distill": {"recipe": "smoke", "ignore_band": [0.3, 0.7]}, "tables": ["comparison", "stages"],
             "datasets_options": {"video-folder": {"data_root": "/x"}}}


def _exercise_spec(raw: Any) -> None:
    """Load the spec, then build every run's recipe and map scales as planning does (no data set is read)."""
    from wsbench.maps import parse_scales
    from wsbench.recipes import choose_recipe
    from wsbench.suite import _specs, parse_spec

    try:
        spec = parse_spec(raw, "spec.toml")
        for _, run_spec in _specs(spec, spec.seeds, {}):
            choose_recipe(run_spec.recipe_name, "cpu", dict(run_spec.recipe))
            parse_scales(run_spec.cam_scales)
    except UserError as err:
        _one_line(err)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_mutations(BASE_SPEC))
def test_fuzzed_specs_give_a_spec_or_one_line(mutations):
    _exercise_spec(_apply(BASE_SPEC, mutations))


def test_the_fuzzers_reach_both_outcomes(tmp_path):
    """The fuzzers are not vacuous: the bases pass, and a known bad mutation is refused in one line."""
    from wsbench.runs import RecordError, check_record
    from wsbench.suite import parse_spec

    for config, result in BASES.values():
        check_record(config, result, tmp_path)
    assert parse_spec(copy.deepcopy(BASE_SPEC), "spec.toml").runs[1].method == "tccam"
    with pytest.raises(RecordError, match="metrics.iou_illegal"):
        check_record(BASES["cam"][0], _apply(BASES["cam"][1], [(("metrics", "iou_illegal"), "replace", math.inf)]),
                     tmp_path)


# -- bounds before any work ---------------------------------------------------------------------------
def test_cam_scales_beyond_the_limit_are_one_line_before_any_work(tmp_path):
    data = write_video_folder(tmp_path / "data")
    runs = tmp_path / "runs"
    result = _invoke(["run", "-m", "cam", "-d", "video-folder", "--data-root", data, "--runs-dir", runs,
                      "--cam-scales", "1,1e9", *TINY])
    _one_line_error(result, "--cam-scales 1,1e9: each scale must be at most 8")
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(("spec", "expect"), [
    ('[evaluation]\ncam_scales = [1.0, 1e9]\n', "evaluation.cam_scales[1]: expected a number in 1e-06..8"),
    ('[distill]\nimage_size = [32, 32, 7]\n', "distill.image_size: expected a list of 2 items"),
    ('[distill]\nimage_size = [36, 32]\n', "distill stage of runs[0]: --image-size 36x32: both sides must be"),
    ('[distill]\nrecipe = "smoke"\ndecoder_channels = [8]\n', "decoder_channels needs one width per encoder stage"),
])
def test_spec_bounds_are_one_line_before_any_work(tmp_path, spec, expect):
    path = tmp_path / "spec.toml"
    path.write_text(spec + '[[runs]]\nmethod = "cam"\n')
    runs = tmp_path / "runs"
    _one_line_error(_invoke(["suite", path, "--runs-dir", runs, "-q"]), expect)
    assert not runs.exists() or not any(runs.iterdir())
