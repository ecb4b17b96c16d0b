"""The counts that give a metric at every threshold of the grid in one pass: IoU (:class:`IoUSweep`) and
temporal stability (:class:`StabilitySweep`), accumulated over frames; how they are used is
:mod:`wsbench.evaluate`'s docstring."""

from __future__ import annotations

import numpy as np
import torch

from ..bootstrap import average_precision
from ..flow import resize_flow, warp
from ..masks import BINS, score_bins

__all__ = ["IoUSweep", "StabilitySweep", "frame_iou"]


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of one frame's boolean masks; 1.0 when both are empty (the authors' code's rule)."""
    union = int(np.logical_or(pred, gt).sum())
    return 1.0 if union == 0 else int(np.logical_and(pred, gt).sum()) / union


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
