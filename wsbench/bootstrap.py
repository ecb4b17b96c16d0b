"""Bootstrap over test videos: how much a table cell's illegal IoU depends on which videos were tested.

Every finished run stores, per test video, the intersection and union pixel counts of the illegal
class at its val-chosen threshold (``result.json`` → ``counts.test_videos``); their sums give the
run's accumulated test IoU, Σ intersection / Σ union over all test frames, and the sums of
``iou_frame_sum`` and ``frames`` its per-frame mean IoU. :func:`iou_interval` resamples those
videos with replacement and recomputes that ratio; :func:`difference_interval` does the same for
two cells on the **same** draws and gives the interval of their difference (paired bootstrap).

PxAP (``metrics.pxap``) is not a ratio of two sums but a function of two summed histograms: each
test video stores, per map-value bin, its illegal-GT and other foreground pixels (``pxap_pos`` /
``pxap_neg``); a resample sums the drawn videos' histograms and :func:`average_precision` turns
them into the average precision, so the bootstrap over videos is exact for it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["CI_LEVEL", "COUNT_KEYS", "HISTOGRAMS", "RATIOS", "RESAMPLES", "SEED", "average_precision",
           "difference_interval", "iou_interval"]

#: resamples of the bootstrap, the seed of its generator and the interval's coverage
RESAMPLES = 1000
SEED = 0
CI_LEVEL = 0.95
#: metric → the (numerator, denominator) keys of ``counts.test_videos`` whose sums give it
RATIOS = {"iou_illegal": ("intersection", "union"), "iou_illegal_per_frame": ("iou_frame_sum", "frames")}
#: metric → the (illegal-GT, other) per-bin pixel histograms of ``counts.test_videos`` whose sums give it
HISTOGRAMS = {"pxap": ("pxap_pos", "pxap_neg")}
#: every metric with an interval → the per-video count keys it needs
COUNT_KEYS: dict[str, tuple[str, str]] = {**RATIOS, **HISTOGRAMS}

Runs = Sequence[Mapping[str, Mapping[str, float]]]


def _draws(runs: Runs, resamples: int, seed: int) -> dict[tuple[str, ...], np.ndarray]:
    """One ``(resamples, n)`` matrix of video indices per set of test videos, drawn in sorted order."""
    rng = np.random.default_rng(seed)
    return {keys: rng.integers(0, len(keys), size=(resamples, len(keys)))
            for keys in sorted({tuple(sorted(run)) for run in runs})}


def average_precision(pos: ArrayLike, neg: ArrayLike) -> np.ndarray:
    """Average precision from per-bin pixel counts, along the last axis (bins in increasing map value).

    Threshold bin k predicts every pixel of bins ≥ k; at k, precision is TP_k / (TP_k + FP_k) and
    recall TP_k / Σ pos, with TP_k = Σ_{j ≥ k} pos_j and FP_k likewise of ``neg``. AP is
    Σ_k (R_k − R_{k+1}) · P_k = Σ_k pos_k · P_k / Σ pos: scikit-learn's ``average_precision_score``
    of the binned scores (a bin without positives adds nothing).

    Args:
        pos: (..., bins) counts of positive (illegal-GT) pixels per bin.
        neg: (..., bins) counts of negative pixels per bin, same shape.

    Returns:
        AP over the leading axes (a 0-d array for 1-d input); NaN where there is no positive pixel.
    """
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if pos.shape != neg.shape or pos.ndim == 0:
        raise ValueError(f"positive and negative histograms must have one shape with a bin axis, got {pos.shape} "
                         f"and {neg.shape}")
    tp = np.flip(np.cumsum(np.flip(pos, -1), -1), -1)
    predicted = tp + np.flip(np.cumsum(np.flip(neg, -1), -1), -1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * precision).sum(-1) / pos.sum(-1)


def _resampled(runs: Runs, draws: dict[tuple[str, ...], np.ndarray], metric: str) -> np.ndarray:
    """Per resample, the mean over ``runs`` of the metric of each run's drawn videos: Σ numerator /
    Σ denominator (:data:`RATIOS`) or the AP of the summed histograms (:data:`HISTOGRAMS`)."""
    total: float | np.ndarray = 0.0
    for run in runs:
        keys = tuple(sorted(run))
        draw = draws[keys]
        first, second = COUNT_KEYS[metric]
        if metric in HISTOGRAMS:
            n = len(keys)
            # times each video is drawn in each resample, so a resample's histogram is one matrix product
            times = np.bincount((draw + n * np.arange(len(draw))[:, None]).ravel(),
                                minlength=draw.size).reshape(draw.shape).astype(np.float64)
            hist = [np.array([run[k][key] for k in keys], np.float64) for key in (first, second)]
            total = total + average_precision(times @ hist[0], times @ hist[1])
            continue
        num = np.array([run[k][first] for k in keys], np.float64)
        den = np.array([run[k][second] for k in keys], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total + num[draw].sum(axis=1) / den[draw].sum(axis=1)
    return np.asarray(total) / len(runs)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _usable(runs: Runs, metric: str) -> bool:
    need = COUNT_KEYS[metric]
    return bool(runs) and all(run and all(need[0] in v and need[1] in v for v in run.values()) for run in runs)


def iou_interval(runs: Runs, resamples: int = RESAMPLES, seed: int = SEED, level: float = CI_LEVEL,
                 metric: str = "iou_illegal") -> tuple[float, float] | None:
    """Percentile bootstrap interval over test videos of the mean accumulated IoU of some runs.

    Exactly what is done: the runs are grouped by their set of test videos (runs on the same
    split share one group; runs on other splits, e.g. other split seeds, form their own). A
    generator ``numpy.random.default_rng(seed)`` draws, group by group in the order of their
    sorted video keys, a ``(resamples, n)`` matrix of video indices uniformly with replacement from
    the group's ``n`` videos (in sorted key order), so every run of a group is scored on the same
    draw and the interval does not depend on the order of the runs. In resample *b* each run's IoU
    is Σ intersection / Σ union over its drawn videos (a video drawn twice counts twice; for
    ``iou_illegal_per_frame`` Σ iou_frame_sum / Σ frames; for ``pxap`` the :func:`average_precision`
    of the summed ``pxap_pos`` / ``pxap_neg`` histograms), and the resample's value is the mean of
    the runs' IoUs. The interval is numpy's (linear) percentiles ``(1 − level)/2`` and
    ``(1 + level)/2`` of the resample values; resamples in which a run's union is empty (NaN) are
    left out. It reflects the choice of test videos only, not training seeds or which videos a
    split put in test.

    Args:
        runs: per run, ``{video key: {"intersection": I, "union": U, ...}}`` (``counts.test_videos``).
        resamples: bootstrap resamples.
        seed: seed of the generator (the same for every call, so a cell's interval does not depend
            on the other cells).
        level: coverage of the interval.
        metric: a key of :data:`COUNT_KEYS`: which statistic of the per-video counts is resampled.

    Returns:
        ``(low, high)`` as IoU fractions, or ``None`` when there are no runs, a run has no test
        videos (or not the counts ``metric`` needs) or every resample is NaN.
    """
    if not _usable(runs, metric):
        return None
    return _percentiles(_resampled(runs, _draws(runs, resamples, seed), metric), level)


def difference_interval(runs_a: Runs, runs_b: Runs, resamples: int = RESAMPLES, seed: int = SEED,
                        level: float = CI_LEVEL, metric: str = "iou_illegal") -> tuple[float, float] | None:
    """Paired percentile bootstrap interval of cell A − cell B over the same resampled test videos.

    The draws are those of :func:`iou_interval` over the runs of both cells together: one matrix
    per set of test videos, so runs of A and B on the same split are scored on the same resampled
    videos in every resample (with A and B on one split, exactly the draws each cell's own interval
    uses). In resample *b* the value is (mean over A's runs) − (mean over B's runs) of the ratio
    :func:`iou_interval` describes; the interval is the percentiles of those differences. An
    interval that excludes 0 says the difference holds whichever test videos are drawn; it says
    nothing about training seeds.

    Args:
        runs_a, runs_b: the two cells' runs, as in :func:`iou_interval`.
        resamples, seed, level, metric: as in :func:`iou_interval`.

    Returns:
        ``(low, high)`` of A − B as IoU fractions, or ``None`` when either cell has no usable runs.
    """
    if not _usable(runs_a, metric) or not _usable(runs_b, metric):
        return None
    draws = _draws([*runs_a, *runs_b], resamples, seed)
    return _percentiles(_resampled(runs_a, draws, metric) - _resampled(runs_b, draws, metric), level)
