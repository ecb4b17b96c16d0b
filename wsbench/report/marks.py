"""What a cell says beyond its mean: bootstrap intervals over test videos (``--ci``) and the same-maps check
of the comparison."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..bootstrap import COUNT_KEYS, HISTOGRAMS, RESAMPLES, SEED, difference_interval, iou_interval
from ..runs import RecordError, RunRecord, load_sample_maps
from .model import _BELOW, Cell

__all__ = ["SAME_MAPS"]


#: two columns whose stored test-map samples correlate above this on every paired run give "the same maps"
SAME_MAPS = 0.99


class _Intervals:
    """Bootstrap intervals of a table's cells (``--ci``) and what the caption and footnotes say about them."""

    def __init__(self, records: list[RunRecord], metric: str) -> None:
        self.metric = metric
        self.videos = {r.run_id: ((r.result or {}).get("counts") or {}).get("test_videos") for r in records}
        self.missing: list[str] = []

    def counts(self, rows: pd.DataFrame) -> list[Any] | None:
        """The per-test-video counts of the runs in ``rows`` (one per run), ``None`` if a run lacks them."""
        counts = [self.videos.get(run_id) for run_id in rows[rows.value.notna()].run_id]
        need = COUNT_KEYS.get(self.metric, ("", ""))
        usable = [c for c in counts if c and all(need[0] in v and need[1] in v for v in c.values())]
        return usable if usable and len(usable) == len(counts) else None

    def fill(self, cell: Cell, rows: pd.DataFrame, column: str) -> None:
        """Give ``cell`` the interval of its runs (``rows``, one per run), or note why it has none."""
        if cell.mean is None or self.metric not in COUNT_KEYS:
            return
        present = self.counts(rows)
        interval = iou_interval(present, metric=self.metric) if present else None
        if interval is None:
            self.missing.append(column)
            return
        cell.ci_low, cell.ci_high = interval[0] * 100, interval[1] * 100

    def mark_below_best(self, cells: list[Cell], selections: list[pd.DataFrame]) -> None:
        """Mark (``below_best``) each cell whose paired interval of best − cell excludes 0 (higher is better)."""
        if self.metric not in COUNT_KEYS:
            return
        numeric = [i for i, c in enumerate(cells) if c.mean is not None]
        if len(numeric) < 2:
            return
        best = max(numeric, key=lambda i: cells[i].mean or 0.0)
        best_runs = self.counts(selections[best])
        for i in numeric:
            runs = self.counts(selections[i])
            if i == best or best_runs is None or runs is None:
                continue
            interval = difference_interval(best_runs, runs, metric=self.metric)
            cells[i].below_best = interval is not None and (interval[0] > 0 or interval[1] < 0)

    def caption(self) -> str:
        """The sentence that says what the brackets are."""
        if self.metric not in COUNT_KEYS:
            return ""
        ratio = {"iou_illegal": "its accumulated IoU (summed intersections / summed unions)",
                 "iou_illegal_per_frame": "its per-frame mean IoU (summed frame IoUs / frames)",
                 "pxap": "its PxAP (the AP of the summed per-video map-value histograms)"}[self.metric]
        return (f" In brackets: 95 % percentile bootstrap interval over test videos ({RESAMPLES} resamples, seed "
                f"{SEED}): a run's test videos are drawn with replacement (runs on the same split share each draw), "
                f"{ratio} is recomputed, and the cell's runs are "
                "averaged; it reflects which test videos were drawn, not training seeds or splits. The reference "
                f"has none. {_BELOW}: the paired interval of the row's best minus this cell, on the same resampled "
                "test videos, excludes 0 (wsbench leaderboard --table pairs lists every pair).")

    def footnotes(self) -> list[str]:
        """Why some cells have no interval."""
        if self.metric not in COUNT_KEYS:
            return [f"No intervals: the bootstrap over test videos is for the illegal IoU and PxAP only (--metric "
                    f"{' or '.join(COUNT_KEYS)}), not {self.metric}."]
        if not self.missing:
            return []
        return [f"No interval for {', '.join(dict.fromkeys(self.missing))}: a result.json without per-test-video "
                "counts (counts.test_videos, written since split seeds exist"
                + ("; its pxap_pos / pxap_neg, written since PxAP exists" if self.metric in HISTOGRAMS else "")
                + ")."]


def _sample_correlation(a: Any, b: Any) -> float:
    """Pearson correlation of two map samples (1 for two equal constant samples, 0 for unequal ones)."""
    import numpy as np

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.std() < 1e-6 or b.std() < 1e-6:  # a constant map has no correlation; equal ones are still the same
        return 1.0 if np.allclose(a, b, atol=1e-3) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


class _SameMaps:
    """The duplicate-column check of the comparison: pairs of columns of a row whose maps are the same.

    Every run stores the same fixed sample of its test maps (``result.json`` → ``sanity``, see
    :data:`wsbench.evaluate.SAMPLE_VIDEOS`); two columns of a row are flagged when their runs, paired
    by seed and split seed, have samples of the same frames that correlate above :data:`SAME_MAPS` in
    every pair.
    """

    def __init__(self, records: list[RunRecord]) -> None:
        self.records = {r.run_id: r for r in records}
        self.samples: dict[str, tuple[list[str], Any] | None] = {}
        self.notes: list[str] = []

    def sample(self, run_id: str) -> tuple[list[str], Any] | None:
        """A run's stored sample ``(frames, maps)`` (read once), ``None`` if it has none or it cannot be read."""
        if run_id not in self.samples:
            try:
                self.samples[run_id] = load_sample_maps(self.records[run_id])
            except RecordError as err:
                self.samples[run_id] = None
                self.notes.append(f"No duplicate check for run {run_id}: {err}.")
        return self.samples[run_id]

    def same(self, columns: list[str], selections: list[pd.DataFrame]) -> list[tuple[str, str, float, int]]:
        """The pairs of ``columns`` (their runs: ``selections``) with the same maps: ``(a, b, least correlation,
        runs paired)``."""
        found = []
        for i, a in enumerate(columns):
            for j in range(i + 1, len(columns)):
                both = selections[i].merge(selections[j], on=["seed", "split_seed"], suffixes=("_a", "_b"))
                values = []
                for run_a, run_b in zip(both.run_id_a, both.run_id_b, strict=True):
                    sa, sb = self.sample(run_a), self.sample(run_b)
                    if sa is not None and sb is not None and sa[0] == sb[0]:
                        values.append(_sample_correlation(sa[1], sb[1]))
                if values and min(values) > SAME_MAPS:
                    found.append((a, columns[j], min(values), len(values)))
        return found

    def check(self, row: str, columns: list[str], selections: list[pd.DataFrame]) -> None:
        """Add a footnote for every pair of the row's ``columns`` (their runs: ``selections``) with the same maps."""
        for a, b, least, runs in self.same(columns, selections):
            self.notes.append(
                f"Same maps: {a} and {b} on {row} (Pearson correlation of their stored test-map "
                f"samples at least {least:.4f} over {runs} run(s) paired by seed): one column "
                "repeats the other, so one is not what its name says.")
