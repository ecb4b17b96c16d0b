"""Tables from fake finished runs (no training): long form, the three tables, formats, figures."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.errors import UserError
from wsbench.files import config_hash
from wsbench.methods import create_method, method_info
from wsbench.recipes import MOVED_TO_METHODS
from wsbench.report import ablation, ablation_components, background, build_tables, comparison, long_form, render
from wsbench.runs import create_run, finish_run, iter_runs

from .conftest import CAM_AND_GRADCAM, smoke_suite


def fake_run(runs_dir, method, seed=0, iou=0.3, dataset="synthetic-belt", label=None, background_removal=True,
             static_after=False, accuracy=None, finished=True, legacy=False, recipe=None, all_foreground=0.2,
             **options):
    """Write config.json (+ result.json) of a run as execute() would, with made-up numbers.

    ``legacy``: as wsbench wrote it before config.json kept ``method_info``. ``recipe``: more recipe
    fields; ``all_foreground``: the reference's IoU.
    """
    m = create_method(method, **options)
    fusion = m.fusion()
    semantic = {"method": method, "method_options": dataclasses.asdict(m.options), "dataset": dataset,
                "data_root": None, "split_seed": 0, "seed": seed,
                "recipe": {"epochs": 8, "background_removal": background_removal, **(recipe or {})},
                "fusion": dataclasses.asdict(fusion) if fusion else None}
    if legacy:  # the loss weights were recipe fields then
        semantic["method_options"] = {k: v for k, v in semantic["method_options"].items() if k not in MOVED_TO_METHODS}
        semantic["recipe"].update(alpha_max=4.0, beta_max=4.0, weight_ramp="ramp")
    trainer, trainer_options = m.classifier()
    config = dict(semantic, config_hash=config_hash(semantic), label=label,
                  classifier={"method": trainer, "options": trainer_options},
                  dataset_info={"static_after": static_after}, environment={"git_commit": "abc123"})
    if not legacy:
        config["method_info"] = method_info(m)
    record = create_run(runs_dir, config)
    if not finished:
        return record
    accuracy = accuracy or {"original": {"train": 0.9, "val": 0.8}, "foreground": {"train": 0.95, "val": 0.85}}
    result = {"run_id": record.run_id, "method": method, "dataset": dataset, "seed": seed,
              "config_hash": config["config_hash"],
              "metrics": {"iou_illegal": iou, "miou": iou + 0.2, "threshold": 0.4, "threshold_source": "validation",
                          "val_iou_illegal": iou + 0.01, "oracle_iou_illegal": iou + 0.02, "oracle_threshold": 0.3,
                          "accuracy": accuracy["foreground" if background_removal else "original"]["val"]},
              "baselines": {"all_foreground": {"iou_illegal": all_foreground, "miou": 0.3},
                            "empty": {"iou_illegal": 0.0, "miou": 0.45}, "foreground_recall": 0.97},
              "accuracy_by_input": accuracy,
              "curves": {"thresholds": [k / 100 for k in range(100)],
                         "val_iou_illegal": [iou * (1 - abs(k - 40) / 100) for k in range(100)],
                         "test_iou_illegal": [iou] * 100},
              "classifier": {"path": str(runs_dir / "classifiers" / f"{trainer}-{background_removal}-{seed}")},
              "timings": {"total": 1.0}, "config": config}
    return finish_run(record, result)


@pytest.fixture
def runs(tmp_path):
    """The paper's runs on the belt, two seeds, plus one classifier trained with background."""
    runs_dir = tmp_path / "runs"
    for seed, shift in ((0, 0.0), (1, 0.02)):
        fake_run(runs_dir, "cam", seed, 0.20 + shift, label="CAM (None)")
        fake_run(runs_dir, "gradcam", seed, 0.22 + shift)
        fake_run(runs_dir, "f2f", seed, 0.28 + shift)
        fake_run(runs_dir, "puzzlecam", seed, 0.34 + shift)
        fake_run(runs_dir, "tccam", seed, 0.30 + shift, spatial=False)
        fake_run(runs_dir, "tccam", seed, 0.38 + shift)
        fake_run(runs_dir, "gradcam", seed, 0.10, background_removal=False, label="GradCAM with background",
                 accuracy={"original": {"train": 1.0, "val": 0.99}, "foreground": {"train": 0.7, "val": 0.6}})
    fake_run(runs_dir, "tccam", 2, 0.99, finished=False)  # half-written: must be ignored
    return runs_dir


def _cells(table):
    return {row: dict(zip(table.columns, cells, strict=True)) for row, cells in table.rows}


def test_long_form_columns_and_components(runs):
    df = long_form(iter_runs(runs))
    for column in ("run_id", "method", "label", "options", "dataset", "split", "seed", "metric", "value",
                   "config_hash", "commit", "spatial", "temporal"):
        assert column in df.columns
    assert df.run_id.nunique() == 14  # the unfinished run is not there
    iou = df[(df.metric == "iou_illegal") & (df.split == "test")]
    comps = {(r.method, r.options): (r.spatial, r.temporal) for r in iou.itertuples()}
    assert comps[("cam", "")] == ("✗", "✗")
    assert comps[("puzzlecam", "alpha_max=4.0 weight_ramp=ramp")] == ("✓", "✗")
    tccam = {o: c for (m, o), c in comps.items() if m == "tccam"}
    assert tccam[next(o for o in tccam if "spatial=False" in o)] == ("✗", "✓")
    assert tccam[next(o for o in tccam if "spatial=True" in o)] == ("✓", "✓")
    assert comps[("gradcam", "cam=gradcam")] == ("", "")
    assert set(df[df.metric == "accuracy:original"].split) == {"train", "val"}
    assert set(iou.label) >= {"CAM (None)", "GradCAM", "TC-CAM", "TC-CAM --no-spatial"}


def test_comparison_mean_std_order_and_marks(runs):
    table = comparison(iter_runs(runs))
    assert table.columns[:4] == ["GradCAM", "Frame-to-Frame", "PuzzleCAM", "TC-CAM"]
    assert table.columns[-2].startswith("all-foreground") and table.columns[-1].startswith("foreground recall")
    assert _cells(table)["synthetic-belt"]["foreground recall (ceiling)"].mean == pytest.approx(97.0)
    cells = _cells(table)["synthetic-belt"]
    tc = cells["TC-CAM"]
    assert tc.n == 2 and tc.mean == pytest.approx(39.0) and tc.std == pytest.approx(1.4142, abs=1e-3)
    assert tc.text == "39.00 ± 1.41" and tc.mark == "best" and cells["PuzzleCAM"].mark == "second"
    assert cells["all-foreground (reference)"].mark is None and cells["all-foreground (reference)"].mean == 20.0
    assert "2 seeds" in table.caption


def test_comparison_na_where_method_cannot_run(tmp_path):
    runs_dir = tmp_path / "runs"
    fake_run(runs_dir, "tccam", 0, 0.4)
    fake_run(runs_dir, "puzzlecam", 0, 0.3)
    fake_run(runs_dir, "puzzlecam", 0, 0.25, dataset="zerowaste-w", static_after=True)
    fake_run(runs_dir, "f2f", 0, 0.2, dataset="zerowaste-w", static_after=True)
    table = comparison(iter_runs(runs_dir))
    cells = _cells(table)
    assert cells["zerowaste-w"]["TC-CAM"].text == "n/a†"
    assert cells["synthetic-belt"]["Frame-to-Frame"].text == "–"  # could run, was not run
    assert len(table.footnotes) == 1 and table.footnotes[0].startswith("† TC-CAM: temporal training needs after videos")
    abl = _cells(ablation(iter_runs(runs_dir)))
    assert abl["zerowaste-w"]["Both"].text == "n/a†" and abl["zerowaste-w"]["Only spatial"].mean == 25.0


def test_ablation_and_background(runs):
    abl = _cells(ablation(iter_runs(runs)))
    assert list(abl) == ["synthetic-belt"]  # the with-background CAM alone ablates nothing: no row
    row = abl["synthetic-belt"]
    assert [row[c].mean for c in ("None", "Only temporal", "Only spatial", "Both")] == pytest.approx([21, 31, 35, 39])
    assert row["Both"].mark == "best" and row["Only spatial"].mark == "second"
    bg = background(iter_runs(runs))
    rows = dict(bg.rows)
    with_bg = rows["synthetic-belt: trained with background"]
    without = rows["synthetic-belt: trained without background"]
    assert [c.mean for c in with_bg] == pytest.approx([100, 99, 70, 60])
    assert [c.mean for c in without] == pytest.approx([90, 80, 95, 85])
    assert with_bg[0].mark == "best" and without[2].mark == "best" and with_bg[0].n == 2


def test_background_rows_only_from_runs_with_that_recipe(tmp_path):
    runs_dir = tmp_path / "runs"
    fake_run(runs_dir, "gradcam", 0, 0.2)
    fake_run(runs_dir, "f2f", 0, 0.2)  # explains gradcam's standard classifier: counted once
    fake_run(runs_dir, "cam", 0, 0.3)  # the CAM network: not the standard classifier of Table 3
    bg = background(iter_runs(runs_dir))
    assert [name for name, _ in bg.rows] == ["synthetic-belt: trained without background"]
    assert bg.rows[0][1][0].n == 1


def test_suite_label_names_the_column(runs):
    records = list(iter_runs(runs))
    relabelled = [dataclasses.replace(r, config={**r.config, "label": "Ours"}) if r.config["method"] == "tccam"
                  and r.config["method_options"]["spatial"] else r for r in records]
    assert "Ours" in comparison(relabelled).columns


def test_markdown_latex_csv_json(runs):
    tables = build_tables(iter_runs(runs))
    md = render(tables, "markdown")
    assert "| synthetic-belt" in md and "**39.00 ± 1.41**" in md and "<u>35.00 ± 1.41</u>" in md
    assert "↑" in md and "2 seeds" in md
    tex = render(tables, "latex")
    assert "\\textbf{39.00 $\\pm$ 1.41}" in tex and "\\underline{35.00 $\\pm$ 1.41}" in tex
    rows = list(csv.DictReader(io.StringIO(render(tables, "csv"))))
    assert {r["table"] for r in rows} == {"comparison", "ablation", "background"}
    both = next(r for r in rows if r["table"] == "ablation" and r["column"] == "Both")
    assert float(both["mean"]) == pytest.approx(39.0) and both["seeds"] == "2" and both["mark"] == "best"
    payload = json.loads(render(tables, "json"))
    assert [t["name"] for t in payload] == ["comparison", "ablation", "background"]


def _check_booktabs(tex: str) -> None:
    """The structure a LaTeX document needs: one tabular with booktabs rules, equal columns per row."""
    body = tex[tex.index("\\begin{tabular}"):tex.index("\\end{tabular}")]
    spec = re.match(r"\\begin\{tabular\}\{([lcr]+)\}", body).group(1)
    assert body.count("\\toprule") == 1 and body.count("\\midrule") == 1 and "\\bottomrule" in body
    assert body.index("\\toprule") < body.index("\\midrule") < body.index("\\bottomrule")
    rows = [line for line in body.splitlines() if line.rstrip().endswith("\\\\")]
    assert len(rows) >= 2
    for line in rows:
        spans = re.findall(r"\\multicolumn\{(\d+)\}", line)
        cells = line.count(" & ") + 1 + sum(int(s) - 1 for s in spans)
        assert cells == len(spec), line
    assert tex.count("{") - tex.count("\\{") == tex.count("}") - tex.count("\\}")


def test_leaderboard_latex_parses_and_compiles(runs, tmp_path):
    out = tmp_path / "table.tex"
    result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "comparison",
                                      "--format", "latex", "--out", str(out)])
    assert result.exit_code == 0, result.output
    tex = out.read_text()
    _check_booktabs(tex)
    bg = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "background", "--format", "latex"])
    _check_booktabs(bg.output)
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed: structure checked only")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs,amssymb}\\begin{document}\n"
                   + tex + bg.output + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_leaderboard_formats_and_figures(runs, tmp_path):
    runner = CliRunner()
    md = runner.invoke(cli, ["leaderboard", "--runs-dir", str(runs)])
    assert md.exit_code == 0 and "Ablation" in md.output and "Background" in md.output
    miou = runner.invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "ablation", "--metric", "miou",
                               "--format", "csv"])
    assert miou.exit_code == 0 and "59.0" in miou.output  # mIoU of Both: (0.38 + 0.2 + 0.40 + 0.2) / 2
    long = runner.invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--table", "long", "--format", "csv"])
    assert long.exit_code == 0 and long.output.startswith("run_id,method,label,options,dataset,split,seed,metric")
    figures = runner.invoke(cli, ["figures", "--runs-dir", str(runs), "--out", str(tmp_path / "fig"),
                                  "--format", "pdf", "--examples", "0"])
    assert figures.exit_code == 0, figures.output
    written = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert written == ["ablation.pdf", "threshold_sweep.pdf"]
    assert all((tmp_path / "fig" / name).read_bytes().startswith(b"%PDF") for name in written)


def test_empty_runs_dir(tmp_path):
    result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(tmp_path / "none")])
    assert result.exit_code == 0 and "no finished runs" in result.output


@pytest.mark.slow
def test_suite_reruns_nothing_and_draws_masks(tiny_belt, tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(smoke_suite(tiny_belt, CAM_AND_GRADCAM + """
[[runs]]
method = "gradcam"
recipe = { background_removal = false }
label = "GradCAM with background"
"""))
    runs = tmp_path / "runs"
    runner = CliRunner()
    first = runner.invoke(cli, ["suite", str(spec), "--runs-dir", str(runs), "-q"])
    assert first.exit_code == 0, first.output
    assert "Plain CAM" in first.output and "trained with background" in first.output
    assert "Ablation" not in first.output  # only the spec's tables
    before = sorted(p.name for p in runs.iterdir())
    classifiers = sorted(p.stat().st_mtime_ns for p in runs.glob("classifiers/*/final.pt"))
    assert len(before) == 4 and len(classifiers) == 3  # 3 runs + classifiers/; each trains its own
    second = runner.invoke(cli, ["suite", str(spec), "--runs-dir", str(runs), "-q"])
    assert second.exit_code == 0, second.output
    assert second.output.count("done before") == 3 and ": running" not in second.output
    assert sorted(p.name for p in runs.iterdir()) == before
    assert sorted(p.stat().st_mtime_ns for p in runs.glob("classifiers/*/final.pt")) == classifiers
    labels = {json.loads(p.read_text())["label"] for p in runs.glob("*/config.json")}
    assert labels == {"Plain CAM", None, "GradCAM with background"}  # recorded, outside the config hash
    figures = runner.invoke(cli, ["figures", "--runs-dir", str(runs), "--examples", "1"])
    assert figures.exit_code == 0, figures.output
    assert (runs / "figures" / "qualitative-video-folder.png").stat().st_size > 0


def test_paper_spec_covers_the_three_tables():
    from pathlib import Path

    from wsbench.recipes import Recipe
    from wsbench.suite import load_spec

    spec = load_spec(Path(__file__).parent.parent / "benchmarks" / "paper.toml")
    assert spec.tables == ["comparison", "ablation", "background"]
    fields = {f.name for f in dataclasses.fields(Recipe)}
    components = set()
    for run in spec.runs:
        create_method(run.method, **run.options)  # valid method and options
        assert set(run.recipe) <= fields
        comps = ablation_components({"method_info": method_info(create_method(run.method, **run.options))})
        if comps is not None and not run.recipe:
            components.add(comps)
    assert components == {(False, False), (False, True), (True, False), (True, True)}
    assert {r.method for r in spec.runs} >= {"gradcam", "f2f", "puzzlecam", "tccam"}
    assert any(r.recipe.get("background_removal") is False for r in spec.runs)


def test_spec_with_unknown_table_is_one_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('tables = ["leaderboard"]\n[[runs]]\nmethod = "cam"\n')
    result = CliRunner().invoke(cli, ["suite", str(spec), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "tables[0]: expected one of 'comparison'" in result.output
    assert "'leaderboard'" in result.output and "bad.toml" in result.output


def test_cli_metric_choices_match_report_metrics():
    from wsbench.cli.base import _METRIC_CHOICES
    from wsbench.report import METRICS

    assert sorted(_METRIC_CHOICES) == sorted(METRICS)


def test_fusion_chosen_by_a_methods_own_options_is_not_labelled_twice():
    from wsbench.report import column_label

    m = create_method("f2f", neighbours=4)
    config = {"method_options": dataclasses.asdict(m.options), "fusion": dataclasses.asdict(m.fusion()),
              "method_info": method_info(m)}
    assert column_label({"method": "f2f", "config": config}) == "Frame-to-Frame --neighbours 4"
    config["fusion"] = None
    assert column_label({"method": "f2f", "config": config}) == "Frame-to-Frame --neighbours 4 --no-fuse"


def test_stability_table_uses_the_stability_reference(tmp_path):
    runs_dir = tmp_path / "runs"
    record = fake_run(runs_dir, "cam", 0, 0.3)
    result = dict(record.result)
    result["metrics"] = dict(result["metrics"], stability=0.7)
    result["baselines"] = dict(result["baselines"], all_foreground={"iou_illegal": 0.2, "stability": 0.8})
    (record.path / "result.json").write_text(json.dumps(result))
    table = comparison(iter_runs(runs_dir), metric="stability")
    cells = _cells(table)["synthetic-belt"]
    assert cells["CAM"].mean == pytest.approx(70.0)
    assert cells["all-foreground (reference)"].mean == pytest.approx(80.0)


def test_latex_keeps_double_hyphens_and_json_notes_only_without_values(tmp_path):
    from wsbench.report import latex_escape

    assert latex_escape("GradCAM --cam layercam") == "GradCAM -{}-cam layercam"  # not an en dash
    assert latex_escape("a – b") == "a -- b"  # an en dash stays one
    runs_dir = tmp_path / "runs"
    fake_run(runs_dir, "cam", 0, 0.2)
    fake_run(runs_dir, "gradcam", 0, 0.3, cam="layercam")
    (table,) = json.loads(render(build_tables(iter_runs(runs_dir), ["comparison"]), "json"))
    cells = table["rows"][0]["cells"]
    assert all(c["note"] is None for c in cells if c["mean"] is not None)
    from wsbench.report import Cell
    from wsbench.report.render import _json_note

    assert _json_note(Cell(None, None, 0)) == "–" and _json_note(Cell(30.0, None, 1)) is None
    tex = render(build_tables(iter_runs(runs_dir), ["comparison"]), "latex")
    assert "-{}-cam" in tex and "--cam" not in tex


def test_background_table_marks_only_the_best_per_column(tmp_path):
    runs_dir = tmp_path / "runs"
    for i, dataset in enumerate(("a", "b")):  # four rows: a second best would exist in every column
        for removal in (True, False):
            acc = 0.5 + 0.1 * i + 0.05 * removal
            fake_run(runs_dir, "gradcam", i, dataset=dataset, background_removal=removal,  # seed i: own classifier
                     accuracy={"original": {"train": acc, "val": acc}, "foreground": {"train": acc, "val": acc}})
    table = background(iter_runs(runs_dir))
    assert len(table.rows) == 4
    marks = [c.mark for _, cells in table.rows for c in cells]
    assert marks.count("best") == 4 and "second" not in marks


def test_long_table_help_says_no_latex():
    help_text = CliRunner().invoke(cli, ["leaderboard", "--help"]).output
    assert "not latex" in " ".join(help_text.split())
    result = CliRunner().invoke(cli, ["leaderboard", "--table", "long", "--format", "latex"])
    assert result.exit_code in (0, 1)  # no runs: "no finished runs"; with runs: a one-line error


# -- tables are pure readers ----------------------------------------------------------------------
def _more_runs(runs_dir, legacy=False):
    """The ``runs`` fixture's kind of runs plus a data set whose after class is still images (n/a cells)."""
    for seed, shift in ((0, 0.0), (1, 0.02)):
        fake_run(runs_dir, "cam", seed, 0.20 + shift, legacy=legacy, label="CAM (None)")
        fake_run(runs_dir, "gradcam", seed, 0.22 + shift, legacy=legacy)
        fake_run(runs_dir, "f2f", seed, 0.28 + shift, legacy=legacy, neighbours=3)
        fake_run(runs_dir, "puzzlecam", seed, 0.34 + shift, legacy=legacy)
        fake_run(runs_dir, "tccam", seed, 0.30 + shift, legacy=legacy, spatial=False)
        fake_run(runs_dir, "tccam", seed, 0.38 + shift, legacy=legacy)
        fake_run(runs_dir, "cam", seed, 0.25, dataset="stills", static_after=True, legacy=legacy)
        fake_run(runs_dir, "puzzlecam", seed, 0.26, dataset="stills", static_after=True, legacy=legacy)
    return runs_dir


def test_tables_import_no_method_trainer_or_torch(tmp_path):
    """Every table, in every format, from stored runs alone: report reads method_info from config.json."""
    import sys

    runs_dir = _more_runs(tmp_path / "runs")
    script = f"""
import sys
from wsbench.report import TABLES, build_tables, long_form, render
from wsbench.runs import iter_runs
records = list(iter_runs({str(runs_dir)!r}))
tables = build_tables(records, TABLES, ci=True)
for fmt in ("markdown", "latex", "csv", "json"):
    text = render(tables, fmt)
assert len(long_form(records)) > 0
comparison, ablation, background = tables
print(comparison.columns)
print(sorted(comparison.footnotes))
print([row for row, _ in ablation.rows])
heavy = sorted(m for m in ("torch", "timm", "wsbench.train", "wsbench.pipeline", "wsbench.methods",
                           "wsbench.evaluate") if m in sys.modules)
print("heavy:", heavy)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "heavy: []", lines
    assert "TC-CAM" in lines[0] and "Frame-to-Frame --neighbours 3" in lines[0] and "PuzzleCAM" in lines[0]
    assert "temporal training needs after videos; stills has only static after frames" in lines[1]
    assert "stills" in lines[2] and "synthetic-belt" in lines[2]


def test_runs_recorded_before_method_info_are_still_read_by_the_leaderboard(tmp_path):
    """Old config.json (no method_info): the leaderboard fills it in from the registry, the tables are the same;
    a record whose method is not installed is refused in one line."""
    runner = CliRunner()
    new, old = _more_runs(tmp_path / "new"), _more_runs(tmp_path / "old", legacy=True)
    assert all("method_info" not in r.config for r in iter_runs(old))
    tables = {}
    for name, runs_dir in (("new", new), ("old", old)):
        result = runner.invoke(cli, ["leaderboard", "--runs-dir", str(runs_dir)])
        assert result.exit_code == 0, result.output
        tables[name] = result.output
    # the same lines (the order of rows follows the run folders' names, i.e. the second they were made in)
    assert sorted(tables["old"].splitlines()) == sorted(tables["new"].splitlines()) and "n/a" in tables["new"]
    # old and new runs of one configuration in one directory: one column, the old run a re-run of the new
    for record in iter_runs(old):
        shutil.copytree(record.path, new / record.run_id)
    alone = runner.invoke(cli, ["leaderboard", "--runs-dir", str(old), "--table", "comparison"]).output
    both = runner.invoke(cli, ["leaderboard", "--runs-dir", str(new), "--table", "comparison"])
    assert both.exit_code == 0, both.output
    table = lambda text: sorted(line for line in text.splitlines() if line.startswith("|"))  # noqa: E731
    assert table(both.output) == table(alone)  # the same columns and values
    assert "re-run" in both.output and "[" not in both.output.splitlines()[2]  # no recipe variant in brackets
    with pytest.raises(UserError, match="recorded before config.json kept method_info"):
        build_tables(iter_runs(old))  # the tables alone never guess
    # an old record of a method that is not installed: one line that says why
    record = fake_run(old, "cam", 5, 0.2, legacy=True)
    for name in ("config.json", "result.json"):
        doc = json.loads((record.path / name).read_text())
        (doc.get("config", doc))["method"] = doc["method"] = "gone"
        (record.path / name).write_text(json.dumps(doc))
    result = runner.invoke(cli, ["leaderboard", "--runs-dir", str(old)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "'gone'" in result.output and "method_info" in result.output


def test_a_recorded_method_needs_no_installed_plugin(tmp_path):
    """A run of a plugin method that is no longer installed still has its column: its record names it."""
    runs_dir = tmp_path / "runs"
    record = fake_run(runs_dir, "cam", 0, 0.42)
    for name in ("config.json", "result.json"):
        doc = json.loads((record.path / name).read_text())
        config = doc.get("config", doc)
        config["method"] = doc["method"] = "plugin-cam"
        config["method_info"] = dict(config["method_info"], display_name="Plugin CAM")
        (record.path / name).write_text(json.dumps(doc))
    cells = _cells(comparison(iter_runs(runs_dir)))["synthetic-belt"]
    assert cells["Plugin CAM"].mean == pytest.approx(42.0)


def test_runs_under_another_background_rule_are_their_own_comparison_row(tmp_path):
    """Their foreground differs, so do their all-foreground reference and recall: never pooled with the paper rule's."""
    runs_dir = tmp_path / "runs"
    for method, iou in (("cam", 0.30), ("puzzlecam", 0.35)):
        fake_run(runs_dir, method, iou=iou)
        fake_run(runs_dir, method, iou=iou + 0.1, recipe={"bg_rule": "lab", "bg_lab_threshold": 10.0},
                 all_foreground=0.25)
    table = comparison(iter_runs(runs_dir))
    rows = {name: [c.text for c in cells] for name, cells in table.rows}
    assert table.columns == ["PuzzleCAM", "CAM", "all-foreground (reference)", "foreground recall (ceiling)"]
    assert rows == {"synthetic-belt [background=gray > 22]": ["35.00", "30.00", "20.00", "97.00"],
                    "synthetic-belt [background=lab > 10]": ["45.00", "40.00", "25.00", "97.00"]}
    # one rule alone: the row keeps its plain name
    only = comparison(r for r in iter_runs(runs_dir) if "bg_rule" not in r.config["recipe"])
    assert [name for name, _ in only.rows] == ["synthetic-belt"]
