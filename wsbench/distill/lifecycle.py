"""A distilled run from start to record, on the run lifecycle of :mod:`wsbench.runs` (as a CAM run's)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..files import check_outside, config_hash
from ..runs import RunRecord, environment, finish_run, is_distilled, latest_run, run_result, start_run
from .labels import IGNORE, ignore_band_warning, pseudo_labels
from .loading import distilled_record
from .recipe import DistillRecipe, check_recipe
from .segmenter import SegmenterMaps, SegmenterNet
from .training import save_state, train_segmenter

__all__ = ["distill", "distill_hash", "distill_once", "finished_distilled"]


def _environment() -> dict[str, Any]:
    """:func:`wsbench.runs.environment` plus the segmentation_models_pytorch version."""
    import importlib.metadata as md

    env = environment()
    try:
        env["packages"]["segmentation-models-pytorch"] = md.version("segmentation-models-pytorch")
    except md.PackageNotFoundError:
        env["packages"]["segmentation-models-pytorch"] = None
    return env


def distill_hash(source: RunRecord, recipe: DistillRecipe, seed: int) -> str:
    """The configuration hash of distilling ``source`` with ``recipe`` and ``seed`` (the source run's id
    and configuration hash, the recipe with its image size resolved, the seed)."""
    size = recipe.image_size or tuple(source.config["recipe"]["image_size"])
    return config_hash({"source_run": source.run_id, "source_config_hash": (source.result or {}).get("config_hash"),
                        "recipe": dict(recipe.as_config(), image_size=list(size)), "seed": seed})


def finished_distilled(source: RunRecord, runs_dir: str | Path, recipe: DistillRecipe, seed: int) -> RunRecord | None:
    """The latest finished run in ``runs_dir`` that distilled ``source`` with ``recipe`` and ``seed``, or ``None``."""
    wanted = distill_hash(source, recipe, seed)
    return latest_run(runs_dir, lambda r: is_distilled(r.config) and r.config.get("config_hash") == wanted)


def distill_once(source: RunRecord, runs_dir: str | Path, recipe: DistillRecipe, seed: int = 0,
                 device: str = "auto", cache_dir: str | Path | None = None) -> tuple[RunRecord, bool]:
    """:func:`distill` unless a finished distilled run of the same configuration exists (suites).

    Returns:
        ``(record, ran)``: the finished record and whether it was made now (an interrupted one is resumed).
    """
    done = finished_distilled(source, runs_dir, recipe, seed)
    if done is not None:
        return done, False
    return distill(source.path, runs_dir, recipe, seed, device, resume=True, cache_dir=cache_dir), True


def distill(run: str | Path, runs_dir: str | Path, recipe: DistillRecipe, seed: int = 0, device: str = "auto",
            resume: bool = False, cache_dir: str | Path | None = None) -> RunRecord:
    """Train a segmenter on a finished run's train-split pseudo-labels, score it and record the run.

    Args:
        run: the source run (id in ``runs_dir`` or a run directory).
        runs_dir: where the new run goes.
        recipe: the segmenter and its training.
        seed: training seed.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: continue the latest unfinished distilled run with the same configuration.
        cache_dir: cache root of the frame, foreground and flow caches.

    Returns:
        The finished record.

    Raises:
        UserError: the source run is unfinished or itself distilled, the source's data set has no
            train frames, or a bad recipe.
    """
    from ..evaluate import evaluate_maps, split_iou
    from ..maps import MapProducer

    started = time.perf_counter()
    check_recipe(recipe)
    runs_dir = Path(runs_dir)
    trained, data, size_data = _source(run, runs_dir, recipe, device, cache_dir)
    size = tuple(recipe.image_size or data.image_size)
    config = _config(trained, recipe, seed, size)
    record = start_run(runs_dir, config, resume)

    t0 = time.perf_counter()
    index, labels, train_maps = pseudo_labels(trained, data, size_data, recipe.ignore_band)
    label_seconds = time.perf_counter() - t0
    train_quality = split_iou(data, train_maps, trained.threshold)  # an evaluation: never feeds training
    del train_maps

    torch_device = trained.device
    torch.manual_seed(seed)
    net = SegmenterNet(recipe)
    if recipe.pretrained is not None:
        net.load_encoder(recipe.pretrained)
    net.to(torch_device)
    frames = np.asarray(size_data.frames[index])
    train_seconds = train_segmenter(net, frames, labels, recipe, seed, torch_device, record.path / "checkpoint.pt",
                                    resume=resume)
    net.eval()
    save_state(record.path / "segmenter.pt", net.state_dict())

    rec = trained.recipe
    segmenter = MapProducer(SegmenterMaps(config["method"]), net, torch_device, background_removal=False,
                            flow=rec.flow, flow_options=rec.flow_options())
    evaluation = evaluate_maps(segmenter, size_data)
    info = _source_info(trained, config)
    pixels = np.bincount(labels.ravel(), minlength=IGNORE + 1)
    info.update({"pseudo_labels_train": train_quality, "train_frames": len(index),
                 "label_pixels": {"background": int(pixels[0]), "legal": int(pixels[1]), "illegal": int(pixels[2]),
                                  "ignored": int(pixels[IGNORE])},
                 "image_size": list(size)})
    result = run_result(record, evaluation, size_data.timings, started,
                        {"pseudo_labels": round(label_seconds, 3), "train": round(train_seconds, 3)}, distill=info)
    return finish_run(record, result)


def _source(run: str | Path, runs_dir: Path, recipe: DistillRecipe, device: str,
            cache_dir: str | Path | None) -> tuple[Any, Any, Any]:
    """The source run, checked, with its prepared data at its own resolution and at the segmenter's.

    Raises:
        UserError: the source is distilled, has no threshold, its resolution does not fit the segmenter,
            ``--pretrained`` is missing, or the runs or cache folder lies inside its data.
    """
    from ..data.cache import prepare, resolve_cache_dir
    from ..inference import load_run, open_data

    source = distilled_record(run, runs_dir)
    if source is not None:
        raise UserError(f"{source.path}: is a distilled run; distill from a CAM run")
    trained = load_run(run, runs_dir, device)
    src_config, src_result = trained.record.config, trained.record.result or {}
    if src_result.get("metrics", {}).get("threshold") is None or not np.isfinite(trained.threshold):
        raise UserError(f"{trained.record.path}: the run has no threshold (no GT masks to choose it), "
                        "so it has no pseudo-labels to distill")
    if recipe.pretrained is not None and not Path(recipe.pretrained).is_file():
        raise UserError(f"--pretrained {recipe.pretrained}: file not found")
    check_outside(runs_dir, "--runs-dir", [src_config.get("data_root")])
    check_outside(resolve_cache_dir(cache_dir), "--cache-dir", [src_config.get("data_root")])
    band_warning = ignore_band_warning(recipe.ignore_band, trained.threshold)
    if band_warning:
        warnings.warn(band_warning, stacklevel=3)
    data = open_data(trained, cache_dir)
    size = tuple(recipe.image_size or data.image_size)
    stride = 2 ** recipe.encoder_depth
    if size[0] % stride or size[1] % stride:
        raise UserError(f"the source run's resolution {size[0]}x{size[1]} is not a multiple of {stride} "
                        "(2^encoder_depth); give --image-size")
    size_data = data if size == tuple(data.image_size) else prepare(data.index, size, cache_dir,
                                                                     background=trained.recipe)
    return trained, data, size_data


def _config(trained: Any, recipe: DistillRecipe, seed: int, size: tuple[int, ...]) -> dict[str, Any]:
    """A distilled run's ``config.json``: the recipe at its resolution, the source run, the source's data."""
    from ..report import SOURCE_KEYS

    src_config, src_result = trained.record.config, trained.record.result or {}
    source_method = src_result.get("method", src_config["method"])
    config = {
        "method": f"{source_method}-distill", "method_options": {}, "dataset": src_config["dataset"],
        "data_root": src_config.get("data_root"), "split_seed": src_config.get("split_seed", 0), "seed": seed,
        "recipe": dict(recipe.as_config(), image_size=list(size)), "fusion": None,
        "distill": {"source_run": trained.run_id, "source_config_hash": src_result.get("config_hash"),
                    "source_method": source_method, "source_threshold": trained.threshold,
                    # what the stages table groups by, as the comparison does (wsbench.report.latest_runs)
                    "source_config": {k: src_config[k] for k in SOURCE_KEYS if k in src_config}},
        "config_hash": distill_hash(trained.record, recipe, seed),
        "data_fingerprint": src_config.get("data_fingerprint"),
        "environment": _environment(),
    }
    for key in ("dataset_options", "resplit", "dataset_info", "data_content", "data_parts"):  # as the source
        # recorded them (tables group by them, a reopened run checks them)
        if key in src_config:
            config[key] = src_config[key]
    return config


def _source_info(trained: Any, config: dict[str, Any]) -> dict[str, Any]:
    """What ``result.json`` → ``distill`` copies of the source run."""
    src_result = trained.record.result or {}
    src_metrics = src_result.get("metrics", {})
    return {"source_run": trained.run_id, "source_method": config["distill"]["source_method"],
            "source_seed": src_result.get("seed"), "source_config_hash": src_result.get("config_hash"),
            "source_iou_illegal": src_metrics.get("iou_illegal"), "source_miou": src_metrics.get("miou"),
            "source_maps_frames_per_second": (src_result.get("timings") or {}).get("maps_frames_per_second"),
            "source_collapse": src_result.get("collapse")}  # a collapsed source gives trivial pseudo-labels
