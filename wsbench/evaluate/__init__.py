"""The evaluator, the same for every method: maps → masks → IoU, with the threshold chosen on val.

:func:`evaluate_maps` takes a run's :class:`~wsbench.maps.MapProducer` (its method's maps,
multi-scale/flip, fusion over neighbours) and the prepared data, asks the producer for each
validation and test *before* video's maps once, and scores them; the counts live in
:mod:`wsbench.evaluate.sweeps`, the mask rule in :mod:`wsbench.masks`. For every *before* frame
with a GT mask in the validation and test splits:

1. the method's map (optionally fused over neighbouring frames with the cached flow) is upsampled
   bilinearly to the frame's original size;
2. a pixel is predicted *illegal* when its map value reaches the threshold **and** it is
   foreground (background removal): illegal objects can only be objects. The same foreground
   mask gives the ``all-foreground`` reference row, so every method and baseline is limited alike;
3. intersections and unions are accumulated over all frames of a split for every threshold of a
   grid of 100 (0.00, 0.01, …, 0.99), so one pass gives the whole sweep.

Two forms of the illegal-class IoU are reported at the same (val-chosen) threshold:
``metrics.iou_illegal`` **pools** intersections and unions over all test frames (Σ I / Σ U, the
headline; frames with more illegal pixels weigh more), ``metrics.iou_illegal_per_frame`` is the
**mean of every test frame's own IoU**, a frame whose union is empty (no GT illegal pixel and none
predicted) counting 1.0 as in the authors' code. ``metrics.miou`` is a two-class mean: the mean of
the pooled illegal-class IoU and the pooled IoU of the rest (every other pixel), not the paper's
mIoU over its classes.

The threshold is the one with the best IoU on **validation**; the test IoU at that threshold is the
reported number. A data set whose validation split has no masked before frame gets the fixed
threshold 0.5 instead, and its result says so (``metrics.threshold_source``: ``"val"`` or
``"fixed"``; :func:`wsbench.texts.threshold_text` words it for summaries and captions). The best
test IoU over the sweep is reported too, marked ``oracle``, for comparison with papers that tune on
test. GT masks are opened here and nowhere else. Each test
video's own intersection and union pixel counts at the chosen threshold are kept as well
(``counts.test_videos``; their sums give the test IoU), so tables can bootstrap over test videos.

**PxAP** (``metrics.pxap``, threshold-free; wsolevaluation, Choe et al., CVPR 2020) is the area under
the pixel precision–recall curve of the illegal class over the test frames' **foreground** pixels:
the average precision Σ_k (R_k − R_{k+1}) · P_k over the thresholds k/BINS of the same binned maps
(:func:`wsbench.bootstrap.average_precision`), computed from the sweep's per-bin counts of illegal-GT
and other foreground pixels, so no pixel array is kept. GT illegal pixels outside the foreground are
not among its pixels (``baselines.foreground_recall`` is that share). Each test video keeps its two
histograms (``counts.test_videos.*.pxap_pos`` / ``pxap_neg``), whose sums give ``metrics.pxap``;
``baselines.all_foreground.pxap`` is the AP of a constant map, the share of illegal pixels in the
foreground.

**Temporal stability** (no GT involved) is measured on every *before* video of the test split, at
the training resolution: the (fused) maps are upsampled bilinearly to it, and each frame's mask
(map ≥ threshold ∧ foreground) is compared with the next frame's mask brought into it by the
cached flow (:class:`StabilitySweep`). The neighbour's mask is warped with nearest-neighbour
sampling, so warping and thresholding commute and one pass gives the whole threshold sweep;
pixels whose flow leaves the frame are excluded. Intersections and unions are accumulated over
all consecutive pairs of the split, and the value at the val-chosen threshold is reported
(``metrics.stability``, 1 = masks that move exactly with the belt). A constant map wins that
(its val-chosen threshold is 0 and its mask the steady foreground), so two measures of map
content stand beside it: ``metrics.map_stability``, the correlation of each map with its
flow-warped successor over the foreground (:meth:`StabilitySweep.map_stability`; 0 for a
constant or empty map), and ``metrics.map_spread`` / ``val_map_spread``, the standard deviation
of the maps over the scored test / validation foreground (:meth:`IoUSweep.spread`), which
:mod:`wsbench.collapse` reads to flag flat maps.

Beside it, the protocol of the authors' benchmark code (andreamarelli99/WS-WS-Dataset) is scored
on the same test maps (``metrics.iou_illegal_wsws``): the maps of every class of the classifier,
each divided by its per-frame maximum, the pixel's class is the ``argmax`` (ties go to the class
first in the order after, before, background, as in the code's sorted folders), the mask is class
*before* with no threshold and no foreground gate; IoU per frame (a frame whose union is empty
counts 1.0), averaged over the test *before* frames whose previous and next frames exist (the code
scores the centres of frame triplets). The code's multi-scale + flip maps are ``--cam-scales
0.2,0.5,1,2,4,6 --cam-flip``, which apply to both protocols.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import cv2
import numpy as np
import torch

from ..bootstrap import average_precision
from ..data.cache import PreparedData
from ..data.io import read_mask
from ..data.torch_data import FOREGROUND, ORIGINAL
from ..device import autocast
from ..maps import MapProducer, network_input, upsample
from ..masks import BINS, predict_mask, score_bins, threshold_bin
from ..methods import Fusion
from ..model import CamNet
from ..progress import show_progress
from .sweeps import IoUSweep, StabilitySweep, frame_iou

__all__ = ["BINS", "FIXED_THRESHOLD", "IoUSweep", "SAMPLE_SIZE", "SAMPLE_VIDEOS", "StabilitySweep", "WSWS_CLASS_ORDER",
           "classification_accuracy", "evaluate_maps", "frame_iou", "predict_mask", "score_bins", "split_iou",
           "wsws_mask"]

#: the threshold used when the validation split has no before frame with a GT mask
FIXED_THRESHOLD = 0.5

#: the fixed sample of test maps every run keeps for the duplicate-column check: the middle frame of each of
#: the first SAMPLE_VIDEOS test before videos (by key), resized to SAMPLE_SIZE (w, h)
SAMPLE_VIDEOS = 8
SAMPLE_SIZE = (32, 32)
#: class order of the authors' code (its sorted class folders); its mask is ``argmax == 1``, *before*
WSWS_CLASS_ORDER = ("after", "before", "background")


@dataclasses.dataclass
class _Split:
    sweep: IoUSweep
    seconds: float = 0.0
    frames: int = 0


@dataclasses.dataclass
class _Tally:
    """What one pass over the videos accumulates."""

    splits: dict[str, _Split]
    stability: StabilitySweep
    test_videos: dict[str, IoUSweep]  # per test video, for the bootstrap over videos
    sampled: list[str]  # keys of the videos whose middle map is kept
    sample: dict[str, tuple[str, np.ndarray]]
    wsws: list[float]


def evaluate_maps(producer: MapProducer, data: PreparedData) -> dict[str, Any]:
    """Score a run's maps on the validation and test *before* frames that have GT masks.

    Each video's maps are computed once: a test video with GT masks gets every class's maps from
    the same pass (the authors' protocol needs them all).

    Args:
        producer: the run's maps (method, classifier, input, multi-scale/flip, fusion, flow).
        data: prepared data.

    Returns:
        ``{"metrics": {...}, "baselines": {...}, "curves": {...}, "counts": {...}, "timings": {...}}``
        with the stable keys documented in the README; ``metrics.iou_illegal_wsws`` is the authors'
        code's protocol (see the module docstring); ``metrics.stability`` is the temporal
        stability of the test masks (see the module docstring). ``sample`` (not for ``result.json``:
        :func:`wsbench.runs.save_sample_maps` stores it) holds ``frames`` and the (N, h, w) ``maps`` of
        the fixed sample of test maps (:data:`SAMPLE_VIDEOS`, :data:`SAMPLE_SIZE`).
    """
    from tqdm.auto import tqdm

    flows = producer.flows(data)  # fusion and the stability metric
    before = [v for v in data.index.videos if v.label == "before"]
    tally = _Tally(splits={"val": _Split(IoUSweep()), "test": _Split(IoUSweep())}, stability=StabilitySweep(),
                   test_videos={}, sampled=sorted(v.key for v in before if v.split == "test")[:SAMPLE_VIDEOS],
                   sample={}, wsws=[])
    # every test before video feeds the stability metric; IoU needs GT masks
    todo = [(pos, v) for pos, v in enumerate(data.index.videos)
            if v.label == "before" and v.split in tally.splits and (v.has_masks or v.split == "test")]
    producer.model.eval()
    for pos, video in tqdm(todo, desc=f"{producer.method.name} maps", unit="video", leave=False,
                           disable=not show_progress()):
        split = tally.splits[video.split]
        started = time.perf_counter()
        maps = _scored_maps(producer, data, pos, flows, tally.wsws)
        split.seconds += time.perf_counter() - started
        split.frames += len(maps)
        _add_video(tally, data, pos, maps, flows)
    result = _summarise(tally.splits, producer.fusion, tally.stability, tally.test_videos)
    result["metrics"]["iou_illegal_wsws"] = round(float(np.mean(tally.wsws)), 6) if tally.wsws else None
    result["counts"]["wsws_frames"] = len(tally.wsws)
    chosen = [tally.sample[key] for key in tally.sampled if key in tally.sample]
    result["sample"] = {"frames": [name for name, _ in chosen],
                        "maps": np.stack([m for _, m in chosen]) if chosen else np.zeros((0, *SAMPLE_SIZE[::-1]))}
    return result


def _scored_maps(producer: MapProducer, data: PreparedData, pos: int, flows: np.ndarray,
                 wsws: list[float]) -> torch.Tensor:
    """Video ``pos``'s scored maps; for a test video with GT masks, every class's maps in the same pass, whose
    per-frame IoUs under the authors' protocol are appended to ``wsws``."""
    video = data.index.videos[pos]
    frames = [(i, m) for i, m in enumerate(video.masks or []) if m is not None and 0 < i < len(video) - 1]
    if video.split != "test" or not video.has_masks or not frames:
        return producer.video(data, pos, flows)
    per_class = producer.classes(data, pos, flows)
    size = data.slices[pos].frame_size
    for i, mask_path in frames:
        mask = wsws_mask({c: upsample(m[i], size) for c, m in per_class.items()})
        wsws.append(frame_iou(mask, read_mask(mask_path, size)))
    return per_class[producer.method.target]


def _add_video(tally: _Tally, data: PreparedData, pos: int, maps: torch.Tensor, flows: np.ndarray) -> None:
    """Score one video's maps: the sample, the stability sweep (test) and the IoU sweep (frames with GT)."""
    video, s = data.index.videos[pos], data.slices[pos]
    if video.key in tally.sampled and len(maps):
        mid = len(maps) // 2
        tally.sample[video.key] = (f"{video.key}#{mid}", cv2.resize(maps[mid].float().numpy(), SAMPLE_SIZE,
                                                                    interpolation=cv2.INTER_AREA))
    if video.split == "test":
        tally.stability.add_video(_stability_scores(maps, data.image_size),
                                  torch.from_numpy(np.asarray(data.fg[s.start:s.stop]) > 0),
                                  torch.from_numpy(np.asarray(flows[s.start:s.stop, 0], dtype=np.float32)))
    if not video.has_masks:
        return
    sweep = _video_sweep(data, pos, maps)
    tally.splits[video.split].sweep.merge(sweep)
    if video.split == "test":
        tally.test_videos[video.key] = sweep


def _video_sweep(data: PreparedData, pos: int, maps: torch.Tensor) -> IoUSweep:
    """The IoU sweep of one video's frames that have GT masks."""
    video = data.index.videos[pos]
    size = data.slices[pos].frame_size
    sweep = IoUSweep()
    for i, mask_path in enumerate(video.masks or []):
        if mask_path is not None:
            sweep.add(upsample(maps[i], size), data.fg_full(pos, i), read_mask(mask_path, size))
    return sweep


def _stability_scores(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps (T, h, w) upsampled bilinearly to ``size`` = (w, h)."""
    w, h = size
    if maps.shape[-2:] == (h, w):
        return maps.float()
    return torch.nn.functional.interpolate(maps.float()[:, None], size=(h, w), mode="bilinear",
                                           align_corners=False)[:, 0]


def wsws_mask(class_maps: dict[str, np.ndarray]) -> np.ndarray:
    """The authors' code's mask: pixels whose ``argmax`` over the class maps is *before*.

    Args:
        class_maps: ``{class name: (H, W) map}`` for every class of the classifier; each map is
            divided by its maximum first (a map that is 0 everywhere stays 0).

    Returns:
        Boolean (H, W) mask; ties go to the class first in :data:`WSWS_CLASS_ORDER`.
    """
    names = [c for c in WSWS_CLASS_ORDER if c in class_maps] + [c for c in class_maps if c not in WSWS_CLASS_ORDER]
    stack = np.stack([class_maps[c] / (float(class_maps[c].max()) + 1e-5) for c in names])
    return stack.argmax(axis=0) == names.index("before")


def _summarise(splits: dict[str, _Split], fusion: Fusion | None, stability: StabilitySweep,
               test_videos: dict[str, IoUSweep]) -> dict[str, Any]:
    val, test = splits["val"].sweep, splits["test"].sweep
    val_iou, test_iou = val.iou(), test.iou()
    if val.frames and np.isfinite(val_iou).any():
        k = int(np.nanargmax(val_iou))
        source = "val"
    else:
        k = threshold_bin(FIXED_THRESHOLD)
        source = "fixed"
    threshold = k / BINS
    num = lambda x: None if x is None or not np.isfinite(x) else round(float(x), 6)  # noqa: E731
    metrics: dict[str, Any] = {
        "iou_illegal": num(test_iou[k]) if test.frames else None,
        "iou_illegal_per_frame": num(test.per_frame_iou()[k]) if test.frames else None,
        "miou": num(test.miou()[k]) if test.frames else None,
        "threshold": threshold,
        "threshold_source": source,
        "val_iou_illegal": num(val_iou[k]) if val.frames else None,
        "oracle_iou_illegal": num(np.nanmax(test_iou)) if test.frames and np.isfinite(test_iou).any() else None,
        "oracle_threshold": ((int(np.nanargmax(test_iou)) / BINS) if test.frames and np.isfinite(test_iou).any()
                             else None),
        "stability": num(stability.stability()[k]) if stability.pairs else None,
        # beside the mask stability, which constant maps win: the maps' content and their own stability
        "map_stability": num(stability.map_stability()) if stability.pairs else None,
        "map_spread": num(test.spread()) if test.frames else None,
        "val_map_spread": num(val.spread()) if val.frames else None,
        "pxap": num(test.pxap()) if test.frames else None,
    }
    baselines = {}
    if test.frames:
        empty = test.empty_mask()
        baselines = {"all_foreground": {"iou_illegal": num(test_iou[0]),
                                        "iou_illegal_per_frame": num(test.per_frame_iou()[0]),
                                        "miou": num(test.miou()[0]),
                                        "stability": num(stability.stability()[0]) if stability.pairs else None,
                                        # a constant map: one bin holds every foreground pixel
                                        "pxap": num(average_precision(test.pos.sum(keepdims=True),
                                                                      test.neg.sum(keepdims=True)))},
                     "empty": {"iou_illegal": num(empty[0]), "miou": num(empty[1])},
                     "foreground_recall": num(test.foreground_recall())}
    frames = splits["val"].frames + splits["test"].frames
    seconds = splits["val"].seconds + splits["test"].seconds
    return {
        "metrics": metrics,
        "baselines": baselines,
        "curves": {"thresholds": [k / BINS for k in range(BINS)],
                   "val_iou_illegal": [num(x) for x in val_iou] if val.frames else [],
                   "test_iou_illegal": [num(x) for x in test_iou] if test.frames else [],
                   "test_stability": [num(x) for x in stability.stability()] if stability.pairs else []},
        "counts": {"val_frames": val.frames, "test_frames": test.frames, "stability_pairs": stability.pairs,
                   "test_videos": {key: dict(zip(("frames", "intersection", "union"), (v.frames, *v.at(k)),
                                                 strict=True), iou_frame_sum=round(float(v.frame_iou_sum[k]), 6),
                                        pxap_pos=v.pos.tolist(), pxap_neg=v.neg.tolist())
                                   for key, v in test_videos.items()}},
        "fusion": fusion.as_config() if fusion else None,
        "timings": {"maps": round(seconds, 3),
                    "maps_frames_per_second": round(frames / seconds, 2) if seconds else None},
    }


def classification_accuracy(model: CamNet, data: PreparedData, device: torch.device, batch_size: int = 64,
                            max_train_frames: int = 1024) -> dict[str, dict[str, float | None]]:
    """Before/after accuracy on train and val, with original and background-removed inputs.

    The prediction is the larger of the *before* and *after* logits (a background logit, if any,
    is ignored: every tested image is a before or after frame). The paper's background-bias
    table (Table 3) is this matrix for classifiers trained with and without background. The train
    split is subsampled evenly to at most ``max_train_frames`` frames.

    Returns:
        ``{"original": {"train": acc, "val": acc}, "foreground": {...}}`` (``None`` where a split
        has no frames).
    """
    model.eval()
    ib, ia = model.class_index("before"), model.class_index("after")
    frames = {split: [(pos, n, v.label) for pos, v in enumerate(data.index.videos) if v.split == split
                      for n in range(data.slices[pos].start, data.slices[pos].stop)] for split in ("train", "val")}
    step = max(1, len(frames["train"]) // max_train_frames)
    frames["train"] = frames["train"][::step]
    out: dict[str, dict[str, float | None]] = {}
    for name, variant in (("original", ORIGINAL), ("foreground", FOREGROUND)):
        out[name] = {}
        for split, items in frames.items():
            correct = 0
            for start in range(0, len(items), batch_size):
                chunk = items[start:start + batch_size]
                idx = [n for _, n, _ in chunk]
                x = network_input(model, data.frames[idx], data.fg[idx], variant, device)
                with torch.inference_mode(), autocast(device):
                    logits = model.pool(model(x)).float().cpu()
                pred_before = logits[:, ib] >= logits[:, ia]
                truth = torch.tensor([label == "before" for _, _, label in chunk])
                correct += int((pred_before == truth).sum())
            out[name][split] = round(correct / len(items), 6) if items else None
    return out


def split_iou(data: PreparedData, maps: dict[int, torch.Tensor], threshold: float) -> dict[str, Any]:
    """IoU of given maps cut at a fixed threshold, over the frames of the given videos that have GT masks.

    What ``wsbench distill`` records as the quality of its pseudo-labels on the train split: the
    source run's maps (as :func:`wsbench.inference.label_mask` cuts them into pseudo-labels) scored
    like the test split, so an evaluation only; the result never feeds training.

    Args:
        data: prepared data.
        maps: ``{position in data.index.videos: (T, h, w) maps in [0, 1]}`` of *before* videos.
        threshold: the threshold (a grid value, e.g. the run's val-chosen one).

    Returns:
        ``{"iou_illegal", "miou", "frames", "threshold"}``; IoU and mIoU are ``None`` without masked frames.
    """
    sweep = IoUSweep()
    for pos, video_maps in maps.items():
        sweep.merge(_video_sweep(data, pos, video_maps))
    k = threshold_bin(threshold)
    num = lambda x: None if not np.isfinite(x) else round(float(x), 6)  # noqa: E731
    return {"iou_illegal": num(sweep.iou()[k]) if sweep.frames else None,
            "miou": num(sweep.miou()[k]) if sweep.frames else None,
            "frames": sweep.frames, "threshold": threshold}
