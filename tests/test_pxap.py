"""PxAP (issue 27): the threshold-free pixel average precision, its per-video histograms and their bootstrap.

References: scikit-learn's ``average_precision_score`` on the same (binned) foreground pixels, hand
counts, and the bootstrap restated with sklearn's weighted AP on the same draws.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsbench.bootstrap import average_precision, difference_interval, iou_interval
from wsbench.evaluate import BINS, IoUSweep, score_bins

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _frame(rng, h=9, w=11):
    scores = rng.random((h, w))
    scores[0, :3] = [0.0, 1.0, 0.5]  # the grid's edges and a bin boundary
    foreground = rng.random((h, w)) < 0.7
    gt = rng.random((h, w)) < 0.3 + 0.5 * scores  # illegal pixels tend to score higher
    return scores, foreground, gt


def test_pxap_equals_sklearn_average_precision_on_the_binned_foreground_pixels():
    rng = np.random.default_rng(3)
    frames = [_frame(rng) for _ in range(5)]
    sweep, halves = IoUSweep(), (IoUSweep(), IoUSweep())
    for i, frame in enumerate(frames):
        sweep.add(*frame)
        halves[i % 2].add(*frame)
    halves[0].merge(halves[1])
    truth = np.concatenate([gt[fg] for _, fg, gt in frames])
    binned = np.concatenate([score_bins(s)[fg] for s, fg, _ in frames])
    expected = sklearn_metrics.average_precision_score(truth, binned)
    assert sweep.pxap() == pytest.approx(expected, abs=1e-12)
    assert halves[0].pxap() == pytest.approx(expected, abs=1e-12)  # streaming: frames merge exactly
    # the binning is what the equality needs: on the raw scores sklearn gives another number
    raw = np.concatenate([s[fg] for s, fg, _ in frames])
    assert sklearn_metrics.average_precision_score(truth, raw) != pytest.approx(expected, abs=1e-6)


def test_pxap_hand_count():
    """Foreground pixels: 2 illegal + 1 other in bin 90, 1 illegal in bin 50, 2 others in bin 20; one
    illegal pixel outside the foreground (not among PxAP's pixels). Threshold 90: precision 2/3,
    recall 2/3; threshold 50: precision 3/4, recall 1; threshold 20 adds no recall. AP = 2/3 · 2/3 +
    1/3 · 3/4 = 25/36."""
    scores = np.array([[0.901, 0.905, 0.909, 0.50, 0.201, 0.205, 0.99]])
    foreground = np.array([[True, True, True, True, True, True, False]])
    gt = np.array([[True, True, False, True, False, False, True]])
    sweep = IoUSweep()
    sweep.add(scores, foreground, gt)
    assert sweep.pxap() == pytest.approx(25 / 36, abs=1e-12)
    pos, neg = np.zeros(BINS), np.zeros(BINS)
    pos[[90, 50]], neg[[90, 20]] = [2, 1], [1, 2]
    assert average_precision(pos, neg) == pytest.approx(25 / 36, abs=1e-12)
    # a constant map: every pixel in one bin, AP = the share of positives (the all-foreground reference)
    assert average_precision([3], [3]) == pytest.approx(0.5)
    assert np.isnan(average_precision(np.zeros(4), np.ones(4)))  # no positive pixel: undefined
    with pytest.raises(ValueError, match="one shape"):
        average_precision(np.ones(3), np.ones(4))


def _histograms(rng, keys, shift=0):
    out = {}
    for key in keys:
        pos, neg = rng.integers(0, 30, BINS), rng.integers(0, 30, BINS)
        if shift:
            neg[-shift:] //= 4  # a better map: fewer other pixels at high map values
        out[key] = {"frames": 2, "intersection": 1, "union": 2, "pxap_pos": pos.tolist(), "pxap_neg": neg.tolist()}
    return out


def _restated(runs_a, runs_b=None, resamples=200, seed=0, level=0.95):
    """The bootstrap of PxAP restated: the same draw matrix, each resample's AP from sklearn's weighted AP."""
    keys = sorted(runs_a[0])
    draw = np.random.default_rng(seed).integers(0, len(keys), size=(resamples, len(keys)))
    labels = np.r_[np.ones(BINS), np.zeros(BINS)]
    scores = np.r_[np.arange(BINS), np.arange(BINS)]

    def cell(runs):
        values = np.zeros(resamples)
        for run in runs:
            for b, row in enumerate(draw):
                pos = sum(np.array(run[keys[i]]["pxap_pos"], float) for i in row)
                neg = sum(np.array(run[keys[i]]["pxap_neg"], float) for i in row)
                values[b] += sklearn_metrics.average_precision_score(labels, scores, sample_weight=np.r_[pos, neg])
        return values / len(runs)

    values = cell(runs_a) - (cell(runs_b) if runs_b else 0)
    return tuple(np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2]))


def test_pxap_bootstrap_matches_a_restatement_with_the_same_draws():
    rng = np.random.default_rng(5)
    keys = [f"before/v{i}" for i in range(6)]
    a = [_histograms(rng, keys, 20), _histograms(rng, keys, 20)]
    b = [_histograms(rng, keys)]
    assert iou_interval(a, resamples=200, metric="pxap") == pytest.approx(_restated(a), abs=1e-12)
    assert difference_interval(a, b, resamples=200, metric="pxap") == pytest.approx(_restated(a, b), abs=1e-12)
    assert difference_interval(a, a, metric="pxap") == (0.0, 0.0)
    without = [{k: {kk: vv for kk, vv in v.items() if not kk.startswith("pxap")} for k, v in a[0].items()}]
    assert iou_interval(without, metric="pxap") is None  # older records: no histograms, no interval


def test_pxap_bootstrap_by_hand():
    """v0: 2 illegal pixels in the top bin (AP 1); v1: an other pixel above an illegal one (AP 1/2); v0+v1:
    precision 2/3 at the top bin (recall 2/3), 3/4 below it: AP 25/36. A resample is v0v0, v0v1 or v1v1
    (1/4, 1/2, 1/4 of the time), so the interval is exactly [1/2, 1]. B's videos are alike (AP 1/2 on any
    draw), so the paired interval of A − B is [0, 1/2]."""
    a = {"before/v0": {"pxap_pos": [0, 2], "pxap_neg": [0, 0]}, "before/v1": {"pxap_pos": [1, 0], "pxap_neg": [0, 1]}}
    b = {key: {"pxap_pos": [1, 1], "pxap_neg": [1, 1]} for key in a}
    assert iou_interval([a], metric="pxap") == pytest.approx((0.5, 1.0))
    assert iou_interval([b], metric="pxap") == pytest.approx((0.5, 0.5))
    assert difference_interval([a], [b], metric="pxap") == pytest.approx((0.0, 0.5))
    merged = {"pxap_pos": [1, 2], "pxap_neg": [0, 1]}
    assert average_precision(merged["pxap_pos"], merged["pxap_neg"]) == pytest.approx(25 / 36)


def _fake_pxap_run(runs_dir, method, seed, videos):
    """A finished run whose PxAP and all-foreground reference are made from its per-video histograms."""
    from tests.test_fidelity import _fake_run

    pos = np.sum([v["pxap_pos"] for v in videos.values()], axis=0)
    neg = np.sum([v["pxap_neg"] for v in videos.values()], axis=0)
    return _fake_run(runs_dir, method, seed, videos,
                     metrics={"iou_illegal": 0.5, "miou": 0.5, "threshold": 0.5,
                              "pxap": float(average_precision(pos, neg))},
                     baselines={"all_foreground": {"iou_illegal": 0.2, "pxap": float(pos.sum() / (pos + neg).sum())}})


@pytest.fixture
def pxap_runs(tmp_path):
    rng = np.random.default_rng(8)
    keys = [f"before/v{i:02d}" for i in range(8)]
    made = {}
    for seed in range(2):
        for method, shift in (("tccam", 40), ("cam", 0)):
            made.setdefault(method, []).append(
                _fake_pxap_run(tmp_path / "runs", method, seed, _histograms(rng, keys, shift)))
    return tmp_path / "runs", made


def test_leaderboard_metric_pxap_with_intervals(pxap_runs):
    from click.testing import CliRunner

    from wsbench.cli import cli
    from wsbench.report import METRIC_FORMS

    runs_dir, made = pxap_runs
    counts = {m: [r.result["counts"]["test_videos"] for r in rs] for m, rs in made.items()}

    def board(*args):
        result = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs_dir), "--format", "json",
                                          "--metric", "pxap", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    table = board("--table", "comparison", "--ci")[0]
    assert METRIC_FORMS["pxap"] in table["caption"] and "no threshold (all thresholds)" in table["caption"]
    assert "its PxAP (the AP of the summed per-video map-value histograms)" in table["caption"]
    cells = dict(zip(table["columns"], table["rows"][0]["cells"], strict=True))
    for method, column in (("tccam", "TC-CAM"), ("cam", "CAM")):
        ap = [r.result["metrics"]["pxap"] for r in made[method]]
        assert cells[column]["mean"] == pytest.approx(100 * np.mean(ap))
        low, high = iou_interval(counts[method], metric="pxap")
        assert (cells[column]["ci_low"], cells[column]["ci_high"]) == pytest.approx((100 * low, 100 * high))
    reference = cells["all-foreground (reference)"]
    expected_ref = np.mean([r.result["baselines"]["all_foreground"]["pxap"] for r in made["cam"] + made["tccam"]])
    assert reference["mean"] == pytest.approx(100 * expected_ref)
    pairs = board("--table", "pairs")[0]
    (diff, wins), = [r["cells"] for r in pairs["rows"]]
    low, high = difference_interval(counts["tccam"], counts["cam"], metric="pxap")
    assert (diff["ci_low"], diff["ci_high"]) == pytest.approx((100 * low, 100 * high))
    assert low > 0 and diff["text"].endswith("§") and wins["text"] == "2/2"
    assert not any("No interval" in note for note in pairs["footnotes"])


def test_a_record_with_a_broken_histogram_is_refused_in_one_line(pxap_runs):
    from wsbench.runs import RecordError, check_record

    _, made = pxap_runs
    record = made["cam"][0]
    result = json.loads(json.dumps(record.result))
    key = sorted(result["counts"]["test_videos"])[0]
    result["counts"]["test_videos"][key]["pxap_neg"] = [1, 2, 3]
    with pytest.raises(RecordError, match=r"result\.json.*pxap_neg.*100 items") as err:
        check_record(record.config, result, record.path)
    assert "\n" not in str(err.value)
    result["counts"]["test_videos"][key]["pxap_neg"] = [-1] * BINS
    with pytest.raises(RecordError, match=r"pxap_neg\[0\]"):
        check_record(record.config, result, record.path)
    result["metrics"]["pxap"] = 1.5
    with pytest.raises(RecordError, match="pxap"):
        check_record(record.config, result, record.path)


@pytest.mark.slow
def test_a_run_records_pxap_and_its_per_video_histograms(tiny_run):
    """End to end: a finished run's PxAP is the AP of its test videos' summed histograms, which count
    the foreground pixels of every masked test frame; the reference is the share of illegal ones."""
    from wsbench.runs import RunRecord, check_record

    record = RunRecord.load(tiny_run.run_dir)
    result = record.result
    videos = result["counts"]["test_videos"]
    pos = np.sum([v["pxap_pos"] for v in videos.values()], axis=0)
    neg = np.sum([v["pxap_neg"] for v in videos.values()], axis=0)
    assert pos.shape == (BINS,) and pos.sum() > 0 and neg.sum() > 0
    assert result["metrics"]["pxap"] == pytest.approx(float(average_precision(pos, neg)), abs=1e-6)
    assert result["baselines"]["all_foreground"]["pxap"] == pytest.approx(pos.sum() / (pos + neg).sum(), abs=1e-6)
    # the pooled IoU at the chosen threshold is made of the same counts: TP = illegal pixels in bins ≥ k
    k = round(result["metrics"]["threshold"] * BINS)
    assert pos[k:].sum() == sum(v["intersection"] for v in videos.values())
    check_record(record.config, result, record.path)


def test_suite_tables_take_the_metric(pxap_runs, capsys):
    from click.testing import CliRunner

    from wsbench.cli import cli
    from wsbench.orchestrate import suite_tables
    from wsbench.runs import iter_runs

    runs_dir, _ = pxap_runs
    text = suite_tables(list(iter_runs(runs_dir)), ["comparison"], metric="pxap")
    assert "**Comparison: PxAP (illegal-class pixel average precision" in text
    assert "--metric [iou_illegal|" in CliRunner().invoke(cli, ["suite", "--help"]).output
