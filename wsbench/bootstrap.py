"""Bootstrap over test videos: how much a table cell's illegal IoU depends on which videos were tested.

Every finished run stores, per test video, the intersection and union pixel counts of the illegal
class at its val-chosen threshold (``result.json`` → ``counts.test_videos``); their sums give the
run's accumulated test IoU, Σ intersection / Σ union over all test frames.
:func:`iou_interval` resamples those videos with replacement and recomputes that ratio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["CI_LEVEL", "RESAMPLES", "SEED", "iou_interval"]

#: resamples of the bootstrap, the seed of its generator and the interval's coverage
RESAMPLES = 1000
SEED = 0
CI_LEVEL = 0.95


def iou_interval(runs: Sequence[Mapping[str, Mapping[str, int]]], resamples: int = RESAMPLES, seed: int = SEED,
                 level: float = CI_LEVEL) -> tuple[float, float] | None:
    """Percentile bootstrap interval over test videos of the mean accumulated IoU of some runs.

    Exactly what is done: the runs are grouped by their set of test videos (runs on the same
    split share one group; runs on other splits, e.g. other split seeds, form their own). A
    generator ``numpy.random.default_rng(seed)`` draws, group by group in the order of their
    sorted video keys, a ``(resamples, n)`` matrix of video indices uniformly with replacement from
    the group's ``n`` videos (in sorted key order), so every run of a group is scored on the same
    draw and the interval does not depend on the order of the runs. In resample *b* each run's IoU
    is Σ intersection / Σ union over its drawn videos (a video drawn twice counts twice), and the
    resample's value is the mean of the runs' IoUs. The interval is numpy's (linear) percentiles
    ``(1 − level)/2`` and ``(1 + level)/2`` of the resample values; resamples in which a run's
    union is empty (NaN) are left out. It reflects the choice of test videos only, not training
    seeds or which videos a split put in test.

    Args:
        runs: per run, ``{video key: {"intersection": I, "union": U}}`` (``counts.test_videos``).
        resamples: bootstrap resamples.
        seed: seed of the generator (the same for every call, so a cell's interval does not depend
            on the other cells).
        level: coverage of the interval.

    Returns:
        ``(low, high)`` as IoU fractions, or ``None`` when there are no runs, a run has no test
        videos or every resample is NaN.
    """
    if not runs or any(not r for r in runs):
        return None
    groups: dict[tuple[str, ...], list[Mapping[str, Mapping[str, int]]]] = {}
    for run in runs:
        groups.setdefault(tuple(sorted(run)), []).append(run)
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for keys, members in sorted(groups.items()):
        draw = rng.integers(0, len(keys), size=(resamples, len(keys)))
        for run in members:
            inter = np.array([run[k]["intersection"] for k in keys], np.float64)
            union = np.array([run[k]["union"] for k in keys], np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                total += inter[draw].sum(axis=1) / union[draw].sum(axis=1)
    values = total / len(runs)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)
