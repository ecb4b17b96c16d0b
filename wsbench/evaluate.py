"""The evaluator, the same for every method: maps → masks → IoU, with the threshold chosen on val.

The maps come from :mod:`wsbench.maps` (the method's maps, multi-scale/flip, fusion over
neighbours); this module only scores them. For every *before* frame with a GT mask in the
validation and test splits:

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
``"fixed"``; :func:`threshold_text` words it for summaries and captions). The best test IoU over
the sweep is reported too, marked ``oracle``, for
comparison with papers that tune on test. GT masks are opened here and nowhere else. Each test
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

import copy
import dataclasses
import time
from typing import Any

import cv2
import numpy as np
import torch

from .bootstrap import average_precision
from .data.cache import PreparedData
from .data.io import read_mask
from .data.torch_data import FOREGROUND, ORIGINAL, make_input
from .device import autocast, to_device
from .flow import resize_flow, warp
from .maps import fused_video_maps
from .methods import Fusion, Method
from .model import CamNet
from .progress import show_progress
from .texts import BINS, threshold_text

__all__ = ["BINS", "FIXED_THRESHOLD", "IoUSweep", "SAMPLE_SIZE", "SAMPLE_VIDEOS", "StabilitySweep", "WSWS_CLASS_ORDER",
           "classification_accuracy",
           "evaluate_maps", "frame_iou", "predict_mask", "score_bins", "split_iou", "threshold_text",
           "wsws_mask"]

#: the threshold used when the validation split has no before frame with a GT mask
FIXED_THRESHOLD = 0.5

#: the fixed sample of test maps every run keeps for the duplicate-column check: the middle frame of each of
#: the first SAMPLE_VIDEOS test before videos (by key), resized to SAMPLE_SIZE (w, h)
SAMPLE_VIDEOS = 8
SAMPLE_SIZE = (32, 32)


def score_bins(scores: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin of each score: ⌊score × bins⌋ clipped to [0, bins − 1]; threshold k/bins keeps bins ≥ k."""
    return np.clip((np.asarray(scores) * bins).astype(np.int64), 0, bins - 1)


def predict_mask(scores: np.ndarray, foreground: np.ndarray, threshold: float) -> np.ndarray:
    """The predicted *illegal* mask at ``threshold``, exactly as the evaluator counts it.

    Args:
        scores: (H, W) maps in [0, 1] at frame size.
        foreground: (H, W) boolean foreground (illegal objects can only be objects).
        threshold: a threshold of the grid, e.g. ``result["metrics"]["threshold"]``.

    Returns:
        (H, W) boolean mask: score bin ≥ threshold's bin and foreground.
    """
    return (score_bins(scores) >= int(round(threshold * BINS))) & foreground


class IoUSweep:
    """Counts that give IoU at every threshold k/BINS, accumulated over frames.

    Pixel scores are binned (bin = ⌊score × BINS⌋, clipped to BINS − 1); a pixel is predicted
    illegal at threshold k when its bin ≥ k and it is foreground. Threshold 0 predicts every
    foreground pixel, i.e. the ``all-foreground`` baseline.
    """

    def __init__(self, bins: int = BINS) -> None:
        self.bins = bins
        self.pos = np.zeros(bins, np.int64)  # GT illegal ∧ foreground, per score bin
        self.neg = np.zeros(bins, np.int64)  # not illegal ∧ foreground, per score bin
        self.gt = 0  # GT illegal pixels (also outside the foreground: always missed)
        self.total = 0
        self.frames = 0
        self.frame_iou_sum = np.zeros(bins, np.float64)  # Σ over frames of each frame's own IoU, per threshold

    def add(self, scores: np.ndarray, foreground: np.ndarray, gt: np.ndarray) -> None:
        """Add one frame: scores (H, W) in [0, 1], foreground and GT boolean (H, W)."""
        b = score_bins(scores, self.bins)
        pos = np.bincount(b[foreground & gt], minlength=self.bins)
        neg = np.bincount(b[foreground & ~gt], minlength=self.bins)
        self.pos += pos
        self.neg += neg
        gt_count = int(gt.sum())
        self.gt += gt_count
        self.total += gt.size
        self.frames += 1
        tp = pos[::-1].cumsum()[::-1].astype(np.float64)
        union = tp + neg[::-1].cumsum()[::-1] + (gt_count - tp)
        # an empty union (nothing illegal, nothing predicted) counts 1.0, the authors' code's rule
        self.frame_iou_sum += np.divide(tp, union, out=np.ones(self.bins), where=union > 0)

    def merge(self, other: IoUSweep) -> None:
        """Add the frames of another sweep (same bins) to this one."""
        self.pos += other.pos
        self.neg += other.neg
        self.gt += other.gt
        self.total += other.total
        self.frames += other.frames
        self.frame_iou_sum += other.frame_iou_sum

    def at(self, k: int) -> tuple[int, int]:
        """(intersection, union) pixel counts of the illegal class at threshold ``k / bins``."""
        tp, fp, fn, _ = self._counts()
        return int(tp[k]), int(tp[k] + fp[k] + fn[k])

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        tp = self.pos[::-1].cumsum()[::-1].astype(np.float64)
        fp = self.neg[::-1].cumsum()[::-1].astype(np.float64)
        fn = self.gt - tp
        tn = self.total - tp - fp - fn
        return tp, fp, fn, tn

    def iou(self) -> np.ndarray:
        """Illegal-class IoU at each threshold (NaN where GT and prediction are both empty)."""
        tp, fp, fn, _ = self._counts()
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / (tp + fp + fn)

    def per_frame_iou(self) -> np.ndarray:
        """Mean over frames of each frame's illegal-class IoU, at each threshold (NaN without frames)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.frame_iou_sum / self.frames

    def miou(self) -> np.ndarray:
        """Two-class mIoU at each threshold: the mean of the pooled illegal-class and rest-class IoU."""
        tp, fp, fn, tn = self._counts()
        with np.errstate(invalid="ignore", divide="ignore"):
            return 0.5 * (tp / (tp + fp + fn) + tn / (tn + fp + fn))

    def spread(self) -> float:
        """Standard deviation of the map values (bin centres) over every foreground pixel added (NaN if none).

        A measure of map content that needs no GT (the histogram of all foreground pixels): 0 for
        maps that are constant over the split's foreground (see :mod:`wsbench.collapse`).
        """
        counts = (self.pos + self.neg).astype(np.float64)
        if not counts.sum():
            return float("nan")
        centres = (np.arange(self.bins) + 0.5) / self.bins
        mean = float((counts * centres).sum() / counts.sum())
        return float(np.sqrt((counts * (centres - mean) ** 2).sum() / counts.sum()))

    def pxap(self) -> float:
        """Average precision of the illegal class over the foreground pixels, from the per-bin counts
        (NaN without an illegal foreground pixel)."""
        return float(average_precision(self.pos, self.neg))

    def foreground_recall(self) -> float:
        """Share of GT illegal pixels inside the foreground: the ceiling of every method's recall."""
        return float(self.pos.sum()) / self.gt if self.gt else float("nan")

    def empty_mask(self) -> tuple[float, float]:
        """(IoU, mIoU) of predicting nothing illegal."""
        if self.total == 0:
            return float("nan"), float("nan")
        rest = (self.total - self.gt) / self.total
        return (0.0 if self.gt else float("nan")), 0.5 * ((0.0 if self.gt else 1.0) + rest)


class StabilitySweep:
    """Temporal stability at every threshold k/BINS, accumulated over consecutive frame pairs.

    For frames t and t+1 of one video, the mask of t+1 at threshold k (score bin ≥ k ∧ foreground)
    is warped into t with nearest-neighbour sampling of the flow t → t+1; over the pixels whose
    sample point lies inside frame t+1, the intersection and union with t's own mask are counted.
    Since nearest-neighbour warping commutes with thresholding, warping the bin map once gives
    every threshold: a pixel is in the intersection at k when min(bin_t, warped bin) ≥ k and in
    the union when the max is. Stability = Σ intersection / Σ union (NaN where no mask at all).
    """

    def __init__(self, bins: int = BINS) -> None:
        self.bins = bins
        self.inter = np.zeros(bins, np.int64)  # per min-bin of the pair
        self.union = np.zeros(bins, np.int64)  # per max-bin of the pair
        self.pairs = 0
        # Σ x, Σ y, Σ x², Σ y², Σ xy, n over foreground pixel pairs (x: a frame's map, y: its warped successor's)
        self.moments = np.zeros(6, np.float64)

    def add_video(self, scores: torch.Tensor, foreground: torch.Tensor, to_next: torch.Tensor) -> None:
        """Add the consecutive pairs of one video.

        Args:
            scores: (T, h, w) maps in [0, 1].
            foreground: (T, h, w) boolean (or 0/1) foreground at the same resolution.
            to_next: (T, 2, h', w') flow from each frame to the next, in pixels of h' × w' (any
                resolution: it is resized to h × w); the last frame's is ignored.
        """
        t, h, w = scores.shape
        if t < 2:
            return
        bins = torch.from_numpy(score_bins(scores.float().numpy(), self.bins)).float()
        bins[~foreground.bool()] = -1  # never in a mask, at any threshold
        bins = bins[:, None]
        flow = resize_flow(to_next[:-1].float(), (h, w))
        warped, valid = warp(bins[1:], flow, mode="nearest")
        inside = valid[:, 0] > 0
        own = bins[:-1, 0][inside].long()
        other = warped[:, 0][inside].round().long()
        lo, hi = torch.minimum(own, other), torch.maximum(own, other)
        self.inter += np.bincount(lo[lo >= 0].numpy(), minlength=self.bins)
        self.union += np.bincount(hi[hi >= 0].numpy(), minlength=self.bins)
        self.pairs += t - 1
        both = (own >= 0) & (other >= 0)  # foreground in the frame and in its warped successor
        x, y = own[both].double() / self.bins, other[both].double() / self.bins
        self.moments += np.array([float(x.sum()), float(y.sum()), float((x * x).sum()), float((y * y).sum()),
                                  float((x * y).sum()), float(both.sum())])

    def map_stability(self) -> float:
        """Pearson correlation of each map and its flow-warped successor over their common foreground pixels.

        The maps' binned values (bin / BINS) are compared, pooled over all pairs, and a negative
        correlation counts as 0 (no consistency). Unlike the mask stability, content is needed to
        score: maps that are constant over the foreground (or empty) have no variance and score 0,
        so they rank last (tied with maps unrelated from frame to frame); maps that move exactly
        with the belt score 1. NaN without any pixel pair.
        """
        sx, sy, sxx, syy, sxy, n = self.moments
        if not n:
            return float("nan")
        vx, vy = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
        if vx <= 1e-12 or vy <= 1e-12:
            return 0.0
        return max(0.0, float((sxy / n - sx * sy / n ** 2) / np.sqrt(vx * vy)))

    def stability(self) -> np.ndarray:
        """Intersection over union of each mask and its warped successor, at each threshold."""
        inter = self.inter[::-1].cumsum()[::-1].astype(np.float64)
        union = self.union[::-1].cumsum()[::-1].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return inter / union


def _stability_scores(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps (T, h, w) upsampled bilinearly to ``size`` = (w, h)."""
    w, h = size
    if maps.shape[-2:] == (h, w):
        return maps.float()
    return torch.nn.functional.interpolate(maps.float()[:, None], size=(h, w), mode="bilinear",
                                           align_corners=False)[:, 0]


@dataclasses.dataclass
class _Split:
    sweep: IoUSweep
    seconds: float = 0.0
    frames: int = 0


def evaluate_maps(method: Method, model: CamNet, data: PreparedData, device: torch.device,
                  background_removal: bool = True, fusion: Fusion | None = None, flow: str = "dis",
                  batch_size: int = 32, flow_options: dict[str, Any] | None = None,
                  cam_scales: tuple[float, ...] = (1.0,), cam_flip: bool = False,
                  cam_combine: str = "normalised") -> dict[str, Any]:
    """Score a method's maps on the validation and test *before* frames that have GT masks.

    Args:
        method: the method (its maps; its fusion unless ``fusion`` is given).
        model: its trained classifier, in eval mode.
        data: prepared data.
        device: where to compute maps.
        background_removal: feed background-removed frames (as in training) or originals.
        fusion: temporal fusion at inference; ``None`` uses ``method.fusion()``.
        flow: flow estimator whose cached flows fusion uses.
        batch_size: frames per forward pass.
        flow_options: options of the flow estimator (e.g. ``root`` of the ``files`` estimator).
        cam_scales: input scales of multi-scale inference (``(1.0,)``: single scale).
        cam_flip: also average the maps of the mirrored frames.
        cam_combine: how the scales are combined (:func:`wsbench.maps.multiscale_maps`).

    Returns:
        ``{"metrics": {...}, "baselines": {...}, "curves": {...}, "counts": {...}, "timings": {...}}``
        with the stable keys documented in the README; ``metrics.iou_illegal_wsws`` is the authors'
        code's protocol (see the module docstring); ``metrics.stability`` is the temporal
        stability of the test masks (see the module docstring). ``sample`` (not for ``result.json``:
        :func:`wsbench.runs.save_sample_maps` stores it) holds ``frames`` and the (N, h, w) ``maps`` of
        the fixed sample of test maps (:data:`SAMPLE_VIDEOS`, :data:`SAMPLE_SIZE`).
    """
    from tqdm.auto import tqdm

    fusion = fusion if fusion is not None else method.fusion()
    flows = data.flows(flow, **(flow_options or {}))  # fusion and the stability metric
    wsws: list[float] = []
    splits = {"val": _Split(IoUSweep()), "test": _Split(IoUSweep())}
    test_videos: dict[str, IoUSweep] = {}  # per test video, for the bootstrap over videos
    stability = StabilitySweep()
    sampled = sorted(v.key for v in data.index.videos if v.label == "before" and v.split == "test")[:SAMPLE_VIDEOS]
    sample: dict[str, tuple[str, np.ndarray]] = {}
    # every test before video feeds the stability metric; IoU needs GT masks
    todo = [(pos, v) for pos, v in enumerate(data.index.videos)
            if v.label == "before" and v.split in splits and (v.has_masks or v.split == "test")]
    model.eval()
    for pos, video in tqdm(todo, desc=f"{method.name} maps", unit="video", leave=False,
                           disable=not show_progress()):
        split = splits[video.split]
        started = time.perf_counter()
        maps = fused_video_maps(method, model, data, pos, device, background_removal, fusion, flows, batch_size,
                                cam_scales, cam_flip, cam_combine)
        if video.split == "test" and video.has_masks:
            wsws += _wsws_video(method, model, data, pos, video, maps, device, background_removal, fusion, flows,
                                batch_size, cam_scales, cam_flip, cam_combine)
        split.seconds += time.perf_counter() - started
        split.frames += len(maps)
        s = data.slices[pos]
        if video.key in sampled and len(maps):
            mid = len(maps) // 2
            sample[video.key] = (f"{video.key}#{mid}", cv2.resize(maps[mid].float().numpy(), SAMPLE_SIZE,
                                                                  interpolation=cv2.INTER_AREA))
        if video.split == "test":
            stability.add_video(_stability_scores(maps, data.image_size),
                                torch.from_numpy(np.asarray(data.fg[s.start:s.stop]) > 0),
                                torch.from_numpy(np.asarray(flows[s.start:s.stop, 0], dtype=np.float32)))
        if not video.has_masks:
            continue
        w, h = data.slices[pos].frame_size
        sweep = IoUSweep()
        for i, mask_path in enumerate(video.masks or []):
            if mask_path is None:
                continue
            scores = cv2.resize(maps[i].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            sweep.add(scores, data.fg_full(pos, i), read_mask(mask_path, (w, h)))
        split.sweep.merge(sweep)
        if video.split == "test":
            test_videos[video.key] = sweep
    result = _summarise(splits, fusion, stability, test_videos)
    result["metrics"]["iou_illegal_wsws"] = round(float(np.mean(wsws)), 6) if wsws else None
    result["counts"]["wsws_frames"] = len(wsws)
    chosen = [sample[key] for key in sampled if key in sample]
    result["sample"] = {"frames": [name for name, _ in chosen],
                        "maps": np.stack([m for _, m in chosen]) if chosen else np.zeros((0, *SAMPLE_SIZE[::-1]))}
    return result


#: class order of the authors' code (its sorted class folders); its mask is ``argmax == 1``, *before*
WSWS_CLASS_ORDER = ("after", "before", "background")


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


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of one frame's boolean masks; 1.0 when both are empty (the authors' code's rule)."""
    union = int(np.logical_or(pred, gt).sum())
    return 1.0 if union == 0 else int(np.logical_and(pred, gt).sum()) / union


def _wsws_video(method: Method, model: CamNet, data: PreparedData, pos: int, video: Any, maps: torch.Tensor,
                device: torch.device, background_removal: bool, fusion: Fusion | None, flows: Any, batch_size: int,
                scales: tuple[float, ...], flip: bool, combine: str = "normalised") -> list[float]:
    """Per-frame IoU of the authors' protocol for one test video (frames with both neighbours)."""
    frames = [i for i, m in enumerate(video.masks or []) if m is not None and 0 < i < len(video) - 1]
    if not frames:
        return []
    per_class = {method.target: maps}
    for name in model.classes:
        if name != method.target:
            other = copy.copy(method)
            other.target = name  # the same method's maps of another class
            per_class[name] = fused_video_maps(other, model, data, pos, device, background_removal, fusion, flows,
                                               batch_size, scales, flip, combine)
    w, h = data.slices[pos].frame_size
    out = []
    for i in frames:
        up = {c: cv2.resize(m[i].numpy(), (w, h), interpolation=cv2.INTER_LINEAR) for c, m in per_class.items()}
        out.append(frame_iou(wsws_mask(up), read_mask(video.masks[i], (w, h))))
    return out


def _summarise(splits: dict[str, _Split], fusion: Fusion | None, stability: StabilitySweep,
               test_videos: dict[str, IoUSweep]) -> dict[str, Any]:
    val, test = splits["val"].sweep, splits["test"].sweep
    val_iou, test_iou = val.iou(), test.iou()
    if val.frames and np.isfinite(val_iou).any():
        k = int(np.nanargmax(val_iou))
        source = "val"
    else:
        k = int(round(FIXED_THRESHOLD * BINS))
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
                images = make_input(data.frames[idx], data.fg[idx], variant)
                x = model.normalize(to_device(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2),
                                              device)).contiguous(memory_format=torch.channels_last)
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
    for pos, video_maps_ in maps.items():
        video = data.index.videos[pos]
        w, h = data.slices[pos].frame_size
        for i, mask_path in enumerate(video.masks or []):
            if mask_path is None:
                continue
            scores = cv2.resize(video_maps_[i].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            sweep.add(scores, data.fg_full(pos, i), read_mask(mask_path, (w, h)))
    k = int(round(threshold * BINS))
    num = lambda x: None if not np.isfinite(x) else round(float(x), 6)  # noqa: E731
    return {"iou_illegal": num(sweep.iou()[k]) if sweep.frames else None,
            "miou": num(sweep.miou()[k]) if sweep.frames else None,
            "frames": sweep.frames, "threshold": threshold}
