"""A supervised reference: the second stage's segmenter trained on the validation split's GT masks.

It answers "would labelling the validation videos beat every weakly supervised column?"
(wsolevaluation's finding on images). The segmenter, its recipe, its training loop
(:func:`~wsbench.distill.training.train_segmenter`) and its scoring
(:func:`wsbench.evaluate.evaluate_maps` through a :class:`~wsbench.maps.MapProducer` of
:class:`~wsbench.distill.SegmenterMaps`) are a distilled run's; only the labels differ:

- **Labels** (the labelling budget of the validation videos): every *before* frame of the val
  split that has a GT mask gets its GT *illegal* pixels and the foreground as *legal*, every
  *after* frame of the val split the foreground as *legal*, the rest *background* — the three-label
  domain of the pseudo-labels exactly (:func:`wsbench.masks.label_mask` with the GT mask as the
  map: illegal only inside the foreground). Before frames without a GT mask are not trained on.
- **Threshold**: the val split is now training data, so no threshold is chosen on it: the
  evaluator scores the test split only and cuts the probability of *illegal* at the fixed
  :data:`wsbench.evaluate.FIXED_THRESHOLD` (0.5; ``metrics.threshold_source`` is ``fixed``). No
  test mask is read before the segmenter is trained and scored.

The run is a run like any other (:mod:`wsbench.runs`: resume, configuration hash, ``result.json``);
``config.json`` and ``result.json`` carry ``reference`` (:func:`wsbench.runs.is_reference`), and
``recipe`` is the data recipe (background removal, resolution) as a CAM run records it, so the
tables put it in the row of the CAM runs scored on the same data and foreground.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..files import check_outside, config_hash
from ..runs import RunRecord, finish_run, run_result, start_run
from .recipe import DistillRecipe, check_recipe

__all__ = ["REFERENCE_KIND", "ReferenceData", "reference_labels", "supervised_reference"]

#: ``reference.kind`` of a supervised reference run
REFERENCE_KIND = "supervised (val GT)"


@dataclasses.dataclass(frozen=True)
class ReferenceData:
    """The data set a reference is trained and scored on, as ``wsbench run`` names one.

    Attributes:
        dataset: registered data set name.
        data_root: its folder (``None`` for generated data sets).
        split_seed: split seed (``None``: the data set's default split).
        cam_recipe: the named recipe whose background removal and resolution are used (``None``: the
            data set's default, as ``wsbench run`` chooses it).
    """

    dataset: str
    data_root: str | None = None
    split_seed: int | None = None
    cam_recipe: str | None = None


def reference_labels(data: Any) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The val split's GT labels in the three-label domain at the prepared data's resolution.

    Args:
        data: prepared data (:class:`~wsbench.data.cache.PreparedData`) at the segmenter's resolution.

    Returns:
        ``(frame indices into data.frames, (N, h, w) uint8 labels, labelling budget)``; the budget
        counts ``before_frames`` (GT masks read), ``after_frames`` and ``videos``.

    Raises:
        UserError: the val split has no before frame with a GT mask.
    """
    from ..data.io import read_mask
    from ..masks import label_mask

    size = tuple(data.image_size)
    index, labels = [], []
    budget = {"before_frames": 0, "after_frames": 0, "videos": 0}
    for pos, video in enumerate(data.index.videos):
        if video.split != "val":
            continue
        budget["videos"] += 1
        start = data.slices[pos].start
        for i in range(len(video)):
            mask_path = video.masks[i] if video.masks else None
            gt = None  # an after frame: legal + background, as its pseudo-labels
            if video.label == "before":
                if mask_path is None:
                    continue  # no GT: not labelled, not trained on
                gt = _resized(read_mask(mask_path, data.slices[pos].frame_size), size)
            fg = np.asarray(data.fg[start + i]) > 0
            labels.append(label_mask(gt, fg, 0.5))
            index.append(start + i)
            budget["before_frames" if gt is not None else "after_frames"] += 1
    if not budget["before_frames"]:
        raise UserError(f"data set {data.index.name!r}: its val split has no before frame with a GT mask to train "
                        "a supervised reference on")
    return np.asarray(index, np.int64), np.stack(labels), budget


def _resized(mask: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """A GT mask at the segmenter's ``(w, h)`` as 0/1 floats, shrunk as the foreground cache shrinks its masks
    (area average, then half)."""
    import cv2

    small = cv2.resize(mask.astype(np.uint8) * 255, (int(size[0]), int(size[1])), interpolation=cv2.INTER_AREA)
    return (small > 127).astype(np.float32)


def _open(spec: ReferenceData, recipe: DistillRecipe, cache_dir: str | Path | None,
          device_type: str) -> tuple[Any, Any, dict[str, Any]]:
    """The data prepared at the segmenter's resolution, its recipe, and what ``config.json`` records of it."""
    from ..data import DATASETS, create_dataset
    from ..data.cache import prepare, resolve_cache_dir
    from ..inference import data_fingerprint, data_parts
    from ..recipes import choose_recipe, recipe_record

    entry = DATASETS.entry(spec.dataset)
    cam_recipe, recipe_name, _ = choose_recipe(spec.cam_recipe, entry.meta.recipe, {}, device_type)
    index = create_dataset(spec.dataset, root=spec.data_root, split_seed=spec.split_seed, cache_dir=cache_dir)
    check_outside(resolve_cache_dir(cache_dir), "--cache-dir", [index.root])
    size = recipe.image_size or cam_recipe.image_size
    stride = 2 ** recipe.encoder_depth
    if size[0] % stride or size[1] % stride:
        raise UserError(f"recipe {recipe_name!r}'s resolution {size[0]}x{size[1]} is not a multiple of {stride} "
                        "(2^encoder_depth); give --image-size")
    data = prepare(index, size, cache_dir, background=cam_recipe)
    config = {"dataset": spec.dataset,
              "data_root": str(Path(spec.data_root).expanduser().resolve()) if spec.data_root else None,
              "split_seed": 0 if spec.split_seed is None else spec.split_seed,
              "recipe": recipe_record(cam_recipe), "recipe_name": recipe_name,
              "data_fingerprint": data_fingerprint(index, cam_recipe),
              "data_content": data_fingerprint(index, cam_recipe, splits=False),
              "data_parts": data_parts(index, cam_recipe),
              "dataset_info": dict(index.info, static_after=index.static_after)}
    if index.info.get("resplit"):
        config["resplit"] = True
    return data, cam_recipe, config


def _scored_view(data: Any) -> Any:
    """``data`` with the val split's GT masks hidden, so the evaluator scores test only and chooses no threshold
    on the reference's training data (it falls back to its fixed threshold)."""
    view = copy.copy(data)
    view.index = dataclasses.replace(data.index, videos=[dataclasses.replace(v, masks=None) if v.split == "val" else v
                                                         for v in data.index.videos])
    return view


def supervised_reference(spec: ReferenceData, runs_dir: str | Path, recipe: DistillRecipe, seed: int = 0,
                         device: str = "auto", resume: bool = False, cache_dir: str | Path | None = None) -> RunRecord:
    """Train the distill recipe's segmenter on the val split's GT labels, score it on test and record the run.

    Args:
        spec: the data set (and the recipe of its background removal and resolution).
        runs_dir: where the run goes.
        recipe: the segmenter and its training (``ignore_band`` must be unset: GT has no uncertain pixels).
        seed: training seed.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: continue the latest unfinished reference run with the same configuration.
        cache_dir: cache root of the frame and foreground caches.

    Returns:
        The finished record.

    Raises:
        UserError: a bad recipe or data set, no GT masks on val, or a runs/cache folder inside the data.
    """
    from ..checkpoint import save_state
    from ..device import resolve_device
    from ..evaluate import evaluate_maps
    from ..maps import MapProducer
    from .lifecycle import _environment
    from .segmenter import SegmenterMaps, SegmenterNet
    from .training import train_segmenter

    started = time.perf_counter()
    check_recipe(recipe)
    if recipe.ignore_band is not None:
        raise UserError("--ignore-band: a supervised reference trains on GT masks, which have no uncertain pixels")
    torch_device = resolve_device(device)
    data, cam_recipe, data_config = _open(spec, recipe, cache_dir, torch_device.type)
    check_outside(runs_dir, "--runs-dir", [data_config["data_root"]])
    segmenter = dict(recipe.as_config(), image_size=list(data.image_size))
    semantic = {"method": "supervised-reference", "seed": seed, "reference": {"kind": REFERENCE_KIND,
                                                                              "segmenter": segmenter},
                **{k: data_config[k] for k in ("dataset", "data_root", "split_seed", "recipe")}}
    config = {**data_config, **semantic, "config_hash": config_hash(semantic), "fusion": None,
              "method_options": {}, "environment": _environment()}
    record = start_run(Path(runs_dir), config, resume)

    index, labels, budget = reference_labels(data)
    torch.manual_seed(seed)
    net = SegmenterNet(recipe)
    if recipe.pretrained is not None:
        net.load_encoder(recipe.pretrained)
    net.to(torch_device)
    train_seconds = train_segmenter(net, np.asarray(data.frames[index]), labels, recipe, seed, torch_device,
                                    record.path / "checkpoint.pt", resume=resume)
    net.eval()
    save_state(record.path / "segmenter.pt", net.state_dict())

    producer = MapProducer(SegmenterMaps(config["method"]), net, torch_device, background_removal=False,
                           flow=cam_recipe.flow, flow_options=cam_recipe.flow_options())  # flow: stability only
    evaluation = evaluate_maps(producer, _scored_view(data))  # the first time a test mask is read
    pixels = np.bincount(labels.ravel(), minlength=3)
    info = {"kind": REFERENCE_KIND, "labels": "val split GT masks", "budget": budget, "image_size":
            list(data.image_size), "label_pixels": {"background": int(pixels[0]), "legal": int(pixels[1]),
                                                    "illegal": int(pixels[2])}}
    result = run_result(record, evaluation, data.timings, started, {"train": round(train_seconds, 3)},
                        reference=info)
    return finish_run(record, result)
