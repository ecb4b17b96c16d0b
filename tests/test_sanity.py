"""The model-parameter randomisation test (issue 27, Adebayo et al. 2018): maps that do not change when the
classifier is re-initialised fail it, and the tables say so."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_spearman_restated():
    """Against scipy and pandas on random samples with ties, and a hand-counted case."""
    import pandas as pd
    from scipy.stats import spearmanr

    from wsbench.sanity import spearman

    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.integers(0, 6, 200).astype(float)  # many ties, as ReLU maps have (zeros)
        b = a + rng.normal(0, 2, 200)
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
        assert spearman(a, b) == pytest.approx(pd.Series(a).corr(pd.Series(b), method="spearman"), abs=1e-12)
    # ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): Σ dx·dy = 4.5, Σ dx² = 4.5, Σ dy² = 5
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 3, 2, 4])) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    assert spearman(np.arange(5), np.exp(np.arange(5))) == pytest.approx(1.0)  # ranks only
    assert spearman(np.zeros(4), np.zeros(4)) == 1.0  # a constant map that stays: unchanged
    assert spearman(np.zeros(4), np.arange(4)) == 0.0


def test_the_cascade_covers_the_whole_classifier_once():
    import torch

    from wsbench.model import CamNet
    from wsbench.sanity import cascade, reinitialise

    model = CamNet("wsbench_resnet_tiny", output_stride=8)
    steps = cascade(model)
    names = [name for name, _ in steps]
    assert names[0] == "head" and names[-1] == "rest" and names[1:-1] == ["layer4", "layer3", "layer2", "layer1"]
    owned = [id(p) for _, modules in steps for top in modules for m in top.modules() for p in m.parameters(False)]
    assert sorted(owned) == sorted(id(p) for p in model.parameters())  # every parameter, exactly once
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    for _, modules in steps:
        reinitialise(modules)
    assert all(not torch.all(p == 7.0) for p in model.parameters())


def _sobel_method():
    """A method whose maps are edges of the input frame: Sobel of the grey frame, the network never asked."""
    import torch
    import torch.nn.functional as F

    from wsbench.methods import register_method
    from wsbench.methods.cam import Cam

    @register_method("sobel", display_name="Sobel edges")
    class Sobel(Cam):
        def classifier(self):
            return "cam", {}

        def raw_maps(self, model, images):
            grey = images.float().mean(dim=1, keepdim=True)
            kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=images.device)
            kernels = torch.stack([kx, kx.T])[:, None]
            gx, gy = F.conv2d(grey, kernels, padding=1).unbind(1)
            return (gx**2 + gy**2).sqrt()

        def maps(self, model, images):
            raw = self.raw_maps(model, images)
            return raw / (raw.flatten(1).amax(dim=1).view(-1, 1, 1) + 1e-5)

    return Sobel


@pytest.mark.slow
def test_a_model_independent_map_fails_and_cam_gradcam_drop(tiny_run, tmp_path, monkeypatch):
    """The edge detector keeps its maps under any classifier: correlation 1 at every step, FAIL, marked in the
    sanity and comparison tables. The tiny smoke classifiers of CAM and GradCAM are at chance, so all this
    asserts of them is that their maps depend on the weights: the correlation after the whole cascade is below
    the bound in absolute value (measured: about 0.25 and 0.16) and they pass."""
    import wsbench.api as wb
    from wsbench.methods import METHODS
    from wsbench.report import build_tables, render
    from wsbench.runs import RunRecord, iter_runs
    from wsbench.sanity import BOUND, DRAWS

    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    _sobel_method()
    copy = tiny_run.copy(tmp_path)
    made = {"cam": RunRecord.load(copy.run_dir)} | {
        method: wb.run(method, "video-folder", data_root=str(copy.data), runs_dir=copy.runs, recipe="smoke",
                       dataset_options={}) for method in ("sobel", "gradcam")}
    sanity = {m: json.loads((r.path / "result.json").read_text())["sanity"] for m, r in made.items()}
    for method, record in sanity.items():
        steps = record["randomisation"]
        assert [s["reset"] for s in steps][0] == "head" and steps[-1]["reset"] == "rest", method
        assert record["randomisation_pixels"] == "foreground" and record["randomisation_bound"] == BOUND
        # each step: the mean absolute correlation over DRAWS independent re-initialisations, the signed ones kept
        assert record["randomisation_draws"] == DRAWS and all(len(s["draws"]) == DRAWS for s in steps), method
        for s in steps:
            assert s["spearman"] == pytest.approx(np.mean(np.abs(s["draws"])), abs=1e-6), method
        assert method == "sobel" or len(set(steps[-1]["draws"])) > 1, method  # the draws differ
    assert all(s["spearman"] == pytest.approx(1.0) for s in sanity["sobel"]["randomisation"])
    assert sanity["sobel"]["randomisation_passed"] is False
    for method in ("cam", "gradcam"):
        last = sanity[method]["randomisation"][-1]["spearman"]
        assert abs(last) < BOUND and sanity[method]["randomisation_passed"] is True, (method, last)

    records = list(iter_runs(copy.runs))
    sanity_table, comparison = build_tables(records, ["sanity", "comparison"])
    rows = dict(sanity_table.rows)
    verdict = sanity_table.columns.index("randomisation test")
    assert rows["video-folder: Sobel edges"][verdict].note.startswith("FAIL")
    assert rows["video-folder: CAM"][verdict].note == "pass"
    (cells,) = [c for name, c in comparison.rows if name == "video-folder"]
    sobel = cells[comparison.columns.index("Sobel edges")]
    assert sobel.text.endswith("¶") and sobel.mark is None
    assert any(n.startswith("¶ video-folder, Sobel edges: 1 of 1 run(s) failed the randomisation test")
               for n in comparison.footnotes)
    for fmt in ("markdown", "latex", "csv", "json"):
        assert "Sobel edges" in render([sanity_table], fmt)


def _fake_tested_run(runs, method, seed, maps, correlations):
    """A finished fake run with a stored sample and, unless ``correlations`` is None, a randomisation test."""
    from tests.test_pxap import _fake_pxap_run, _histograms
    from wsbench.runs import finish_run, save_sample_maps

    keys = [f"before/v{i:02d}" for i in range(len(maps))]
    record = _fake_pxap_run(runs, method, seed, _histograms(np.random.default_rng(seed), keys))
    sanity = save_sample_maps(record, [f"{k}#4" for k in keys], maps)
    if correlations is not None:
        sanity |= {"randomisation": [{"reset": step, "spearman": r}
                                     for step, r in zip(("head", "layer4", "rest"), correlations, strict=True)],
                   "randomisation_bound": 0.5, "randomisation_passed": abs(correlations[-1]) <= 0.5}
    return finish_run(record, dict(record.result, sanity=sanity))


def test_sanity_table_and_the_comparison_mark(tmp_path):
    """CAM passes, GradCAM (whose maps repeat CAM's) fails, TC-CAM was recorded before the test: its cells show –.
    The failing column is marked ¶ in the comparison and not ranked although its value ties the best."""
    from click.testing import CliRunner

    import wsbench.api as wb
    from wsbench.cli import cli
    from wsbench.report import build_tables
    from wsbench.runs import iter_runs

    runs = tmp_path / "runs"
    rng = np.random.default_rng(1)
    for seed in range(2):
        cam = rng.random((3, 32, 32))
        _fake_tested_run(runs, "cam", seed, cam, (0.2, 0.1, 0.0 + 0.1 * seed))
        _fake_tested_run(runs, "gradcam", seed, cam, (1.0, 0.9, 0.8))
        _fake_tested_run(runs, "tccam", seed, rng.random((3, 32, 32)), None)
    table, comparison = build_tables(iter_runs(runs), ["sanity", "comparison"])
    assert table.columns == ["head", "layer4", "rest", "randomisation test", "same maps as"]
    rows = {name: [c.text for c in cells] for name, cells in table.rows}
    assert rows["synthetic-belt: CAM"] == ["0.20 ± 0.00", "0.10 ± 0.00", "0.05 ± 0.07", "pass", "GradCAM"]
    assert rows["synthetic-belt: GradCAM"] == ["1.00 ± 0.00", "0.90 ± 0.00", "0.80 ± 0.00", "FAIL¶", "CAM"]
    assert rows["synthetic-belt: TC-CAM"] == ["–", "–", "–", "–", "none"]
    assert any(n.startswith("¶ synthetic-belt, GradCAM: 2 of 2 run(s) failed: |Spearman| 0.80")
               for n in table.footnotes)
    (cells,) = [c for name, c in comparison.rows if name == "synthetic-belt"]
    by_column = dict(zip(comparison.columns, cells, strict=True))
    assert by_column["GradCAM"].text == "50.00 ± 0.00¶" and by_column["GradCAM"].mark is None
    assert by_column["CAM"].mark == "best" and not by_column["CAM"].text.endswith("¶")
    assert [n for n in comparison.footnotes if n.startswith("¶")] == [
        "¶ synthetic-belt, GradCAM: 2 of 2 run(s) failed the randomisation test: its maps barely change when the "
        "classifier is re-initialised, so they do not explain it; not ranked (wsbench leaderboard --table sanity)"]
    for fmt, expect in (("markdown", "FAIL¶"), ("latex", r"FAIL\P{}"), ("csv", "FAIL¶"), ("json", "FAIL¶")):
        result = CliRunner().invoke(cli, ["leaderboard", "--table", "sanity", "--format", fmt, "--runs-dir", str(runs)])
        assert result.exit_code == 0 and expect in result.output and "randomisation test" in result.output, fmt
    frame = wb.table("sanity", runs)
    assert frame.loc["synthetic-belt: GradCAM", "rest"] == pytest.approx(0.8)
    assert np.isnan(frame.loc["synthetic-belt: TC-CAM", "rest"])
