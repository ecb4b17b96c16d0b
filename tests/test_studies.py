"""The studies in benchmarks/ that read stored runs: one default weight from several belts, and test-split size."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tccam_run(runs_dir: Path, belt: str | None, beta: float, seed: int, val: float, collapsed: bool = False) -> None:
    """A finished TC-CAM run on the built-in belt (``belt`` None) or a video-folder belt, as execute() records it."""
    from wsbench.files import config_hash
    from wsbench.methods import create_method, method_info
    from wsbench.runs import create_run, finish_run

    m = create_method("tccam", beta_max=beta)
    semantic = {"method": "tccam", "method_options": dataclasses.asdict(m.options),
                "dataset": "video-folder" if belt else "synthetic-belt", "data_root": belt, "split_seed": 0,
                "seed": seed, "recipe": {"epochs": 8}, "fusion": None}
    config = dict(semantic, config_hash=config_hash(semantic), label=None, dataset_info={"static_after": False},
                  classifier={"method": "tccam", "options": m.classifier()[1]}, method_info=method_info(m))
    record = create_run(runs_dir, config)
    metrics = {"iou_illegal": val - 0.01, "val_iou_illegal": val, "miou": val, "threshold": 0.3, "accuracy": 0.9}
    result = {"run_id": record.run_id, "method": "tccam", "dataset": config["dataset"], "seed": seed,
              "config_hash": config["config_hash"], "metrics": metrics,
              "baselines": {"all_foreground": {"iou_illegal": 0.2}}, "config": config}
    if collapsed:
        result["collapse"] = {"reasons": ["chance"], "accuracy": 0.5, "chance_bound": 0.55, "map_spread": 0.1,
                              "spread_tolerance": 0.02, "cause": "test"}
    finish_run(record, result)


def test_weights_across_belts_averages_validation_over_belts_and_skips_a_collapsed_point(tmp_path, monkeypatch,
                                                                                        capsys):
    """β = 12 is best on belt a alone and β = 4 on belt b; the mean over belts (each belt once, whatever
    its seeds) picks 8, unless one of 8's seeds collapsed, and then 4 (12's mean is lowest)."""
    vals = {None: {4.0: 0.30, 8.0: 0.34, 12.0: 0.36}, "/belts/b": {4.0: 0.40, 8.0: 0.39, 12.0: 0.30}}
    for collapsed_runs, chosen in ((False, "8"), (True, "4")):
        runs = tmp_path / f"runs-{collapsed_runs}"
        for belt, points in vals.items():
            for beta, val in points.items():
                for seed in (0, 1):
                    _tccam_run(runs, belt, beta, seed, val,
                               collapsed=collapsed_runs and beta == 8.0 and belt and seed == 1)
        monkeypatch.setattr(sys, "argv", ["weights_across_belts.py", str(runs)])
        _module("weights_across_belts").main()
        out = capsys.readouterr().out
        assert f"chosen: beta_max = {chosen} " in out, out
        assert "| 8 | 34.00 [2 seeds" in out and "video-folder:b" in out
    assert "35.00 ‡" not in out and "38.00‡" in out  # the collapsed seed's test IoU is marked


def test_split_size_counts_take_the_first_videos_and_frames():
    """The per-video sums a study hands to the bootstrap: first n videos (sorted), first k frames; hand-counted."""
    study = _module("test_split_size")
    counts = [{"before/v1": np.array([[1, 4], [2, 4], [9, 9]]), "before/v0": np.array([[0, 2], [1, 2], [5, 5]])}]
    runs = study._runs(counts, n=1, k=2)
    assert runs == [{"before/v0": {"intersection": 1.0, "union": 4.0}}]
    assert study._iou(study._runs(counts, n=2, k=2)[0]) == pytest.approx((1 + 3) / (4 + 8))
    assert study._block(counts[0], ["before/v1"]) == {"before/v1": {"intersection": 12.0, "union": 17.0}}
