"""Wording shared by the evaluator, the pipeline and the tables (a leaf module: standard library only).

The tables (:mod:`wsbench.report`) read stored runs without importing the evaluator or the
pipeline, so the sentences they share with those live here.
"""

from __future__ import annotations

__all__ = ["BINS", "static_after_refusal", "threshold_text"]

#: map-value bins of the evaluator's threshold grid (0, 1/BINS, …) and of the stored PxAP histograms
BINS = 100


def threshold_text(source: str | None, threshold: float | None = None) -> str:
    """Where a run's threshold came from, in words (summary lines and table captions).

    Args:
        source: ``metrics.threshold_source`` of a result: ``"val"`` (the best validation IoU) or
            ``"fixed"`` (the validation split had no masks); the older spellings ``"validation"``
            and ``"fixed 0.5 (...)"`` are read too.
        threshold: the run's threshold (``metrics.threshold``), shown when given.

    Returns:
        e.g. ``"threshold 0.37 chosen on val"``, ``"threshold chosen on val"`` or
        ``"fixed threshold 0.50 (no val masks)"``.
    """
    if source is not None and source.startswith("fixed"):
        return f"fixed threshold{'' if threshold is None else f' {threshold:.2f}'} (no val masks)"
    return "threshold chosen on val" if threshold is None else f"threshold {threshold:.2f} chosen on val"


def static_after_refusal(dataset: str) -> str:
    """Why a method that trains on clips cannot run on ``dataset``, whose after class is still images."""
    return f"temporal training needs after videos; {dataset} has only static after frames"
