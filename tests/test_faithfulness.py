"""ROAD faithfulness (pytorch-grad-cam's implementation) at the end of every run, and the explanations table."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from wsbench.evaluate.faithfulness import ProbabilityOf, road_scores, sample_frames, sample_maps
from wsbench.model import build_model
from wsbench.recipes import named_recipe
from wsbench.runs import RecordError, RunRecord, check_record


@pytest.fixture(scope="module")
def opened(tiny_run):
    """The tiny run's producer (its classifier on the CPU) and its prepared data."""
    from wsbench.inference import load_run, open_data

    trained = load_run(tiny_run.run_dir, device="cpu")
    return trained.producer, open_data(trained, tiny_run.cache)


def test_every_run_stores_road_scores_of_the_sanity_sample(tiny_run):
    result = json.loads((tiny_run.run_dir / "result.json").read_text())
    road = result["explanations"]
    assert road["frames"] == result["sanity"]["sample_frames"]  # the same fixed sample as the duplicate check
    assert road["percentiles"] == [10, 20, 30, 40, 50, 60, 70, 80, 90]  # the library's defaults
    assert road["target"] == "before"
    for key in ("morf", "lerf", "combined"):
        assert len(road["per_frame"][key]) == len(road["frames"])
        assert road[key] == pytest.approx(np.mean(road["per_frame"][key]), abs=1e-5)
        assert -1 <= road[key] <= 1


def test_scores_are_the_librarys_road_combined(opened):
    """The stored combined score is what pytorch-grad-cam's ROADCombined returns for the same frames, maps, model
    and noise seed (its source: ``(lerf - morf) / 2`` with the LeRF averager run first)."""
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    producer, data = opened
    scores = road_scores(producer, data, seed=3)
    assert scores is not None
    rows = [data.slices[pos].start + index for _, pos, index in sample_frames(data)]
    frames, fg = np.asarray(data.frames[rows]), np.asarray(data.fg[rows])
    h, w = frames.shape[1:3]
    cams = np.stack([cv2.resize(m.numpy(), (w, h), interpolation=cv2.INTER_LINEAR) for m in producer.batch(frames, fg)])
    foreground = frames * (fg[..., None] > 0)  # the run trains on background-removed frames
    x = producer.model.normalize(torch.from_numpy(foreground).permute(0, 3, 1, 2))
    targets = [ClassifierOutputTarget(producer.model.classes.index("before"))] * len(rows)
    torch.manual_seed(3)
    expected = ROADCombined()(x, cams.astype(np.float32), targets, ProbabilityOf(producer.model))
    np.testing.assert_allclose(scores["per_frame"]["combined"], expected, atol=2e-6)
    np.testing.assert_allclose(np.array(scores["per_frame"]["combined"]),
                               (np.array(scores["per_frame"]["lerf"]) - np.array(scores["per_frame"]["morf"])) / 2,
                               atol=2e-6)


def test_the_maps_are_the_scored_maps_fused_or_not(opened):
    """ROAD explains the maps the evaluator scores: without fusion the sampled frames' batch equals their videos'
    maps; with fusion at inference (Frame-to-Frame's kind) each is its fused video's frame, not the per-frame map."""
    from wsbench.methods import Fusion

    producer, data = opened
    chosen = sample_frames(data)
    unfused = sample_maps(producer, data, chosen)
    torch.testing.assert_close(unfused, torch.stack([producer.video(data, pos)[i] for _, pos, i in chosen]))
    fused_producer = dataclasses.replace(producer, fusion=Fusion(2, "max", warp=False))
    fused = sample_maps(fused_producer, data, chosen)
    torch.testing.assert_close(fused, torch.stack([fused_producer.video(data, pos)[i] for _, pos, i in chosen]))
    assert (fused >= unfused - 1e-6).all() and not torch.allclose(fused, unfused)  # a max over neighbours


def test_a_classifier_that_ignores_its_input_scores_zero(opened):
    """Hand-counted: a head of zeros gives every image the probability sigmoid(0) = 1/2, so no imputation changes it."""
    producer, data = opened
    model = build_model(named_recipe("smoke").recipe(), producer.model.classes)
    torch.nn.init.zeros_(model.head.weight)
    scores = road_scores(dataclasses.replace(producer, model=model.eval()), data)
    assert scores is not None
    assert scores["morf"] == scores["lerf"] == scores["combined"] == 0.0


def test_a_score_that_is_not_finite_is_stored_as_none(opened, monkeypatch):
    """A singular imputation system gives NaN: the run keeps a valid result.json (no NaN in JSON, the schema holds)."""
    from pytorch_grad_cam.metrics.perturbation_confidence import AveragerAcrossThresholds

    producer, data = opened
    real = AveragerAcrossThresholds.__call__

    def first_frame_nan(self, *args, **kwargs):
        scores = real(self, *args, **kwargs)
        scores[0] = np.nan
        return scores

    monkeypatch.setattr(AveragerAcrossThresholds, "__call__", first_frame_nan)
    scores = road_scores(producer, data)
    assert scores is not None
    assert scores["morf"] is None and scores["per_frame"]["morf"][0] is None
    assert all(v is not None for v in scores["per_frame"]["morf"][1:])
    json.dumps(scores, allow_nan=False)


def test_gradcam_side_effects_do_not_leak(opened):
    """GradCAM's maps run backward passes and put the model in eval mode: mode, requires_grad, .grad and the
    global RNG are as they were."""
    from wsbench.methods import create_method

    producer, data = opened
    torch.manual_seed(0)
    model = build_model(named_recipe("smoke").recipe(), producer.model.classes, head="linear")
    model.train()
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    norm.eval()  # a frozen BatchNorm: its mode is restored per module
    frozen = next(iter(model.backbone.parameters()))
    frozen.requires_grad_(False)
    rng = torch.get_rng_state()
    gradcam = dataclasses.replace(producer, method=create_method("gradcam"), model=model, needs_grad=True)
    scores = road_scores(gradcam, data)
    assert scores is not None and np.isfinite(scores["combined"])
    assert model.training and not norm.training and all(m.training for m in model.modules() if m is not norm)
    assert not frozen.requires_grad
    assert all(p.requires_grad for p in model.parameters() if p is not frozen)
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert road_scores(gradcam, data)["per_frame"] == scores["per_frame"]  # a fixed noise seed: reproducible


def test_a_score_out_of_range_is_refused_in_one_line(tiny_run):
    record = RunRecord.load(tiny_run.run_dir)
    result = json.loads(json.dumps(record.result))
    result["explanations"]["morf"] = 5.0
    with pytest.raises(RecordError) as err:
        check_record(record.config, result, tiny_run.run_dir)
    assert "explanations" in str(err.value) and "\n" not in str(err.value)


def test_explanations_table_in_every_format(tiny_run, tmp_path):
    from wsbench import api
    from wsbench.leaderboard import tables_text

    road = json.loads((tiny_run.run_dir / "result.json").read_text())["explanations"]
    frame = api.table("explanations", tiny_run.runs)
    assert list(frame.columns) == ["CAM"]
    assert list(frame.index) == [f"video-folder: ROAD {k} ×100 {a}" for k, a in
                                 (("MoRF", "↓"), ("LeRF", "↑"), ("combined", "↑"))]
    assert frame["CAM"].tolist() == pytest.approx([100 * road[k] for k in ("morf", "lerf", "combined")])
    assert "each method is scored with the classifier it explains" in frame.attrs["caption"].lower()
    assert any("the one cam trains" in note for note in frame.attrs["footnotes"])
    runs = [RunRecord.load(tiny_run.run_dir)]
    for fmt, marker in (("markdown", "ROAD combined"), ("latex", r"\toprule"), ("csv", "explanations,"),
                        ("json", '"name": "explanations"')):
        text = tables_text(runs, ["explanations"], fmt)
        assert text is not None and marker in text

    old = tiny_run.copy(tmp_path)  # a run recorded before ROAD: "–" and a footnote, not a crash
    path = old.run_dir / "result.json"
    result = json.loads(path.read_text())
    del result["explanations"]
    path.write_text(json.dumps(result))
    frame = api.table("explanations", old.runs)
    assert frame["CAM"].isna().all()
    assert any("without ROAD scores" in note for note in frame.attrs["footnotes"])


def test_a_suite_spec_may_list_the_explanations_table(tiny_run, tmp_path):
    from wsbench.orchestrate import suite_tables
    from wsbench.suite.spec import load_spec

    path = tmp_path / "s.toml"
    path.write_text('name = "s"\ndatasets = ["video-folder"]\nseeds = [0]\ntables = ["comparison", "explanations"]\n'
                    '[[runs]]\nmethod = "cam"\n')
    spec = load_spec(path)
    text = suite_tables([RunRecord.load(tiny_run.run_dir)], spec.tables)
    assert "**Comparison" in text and "ROAD combined ×100 ↑" in text
