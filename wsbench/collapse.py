"""Collapse: a classifier that stopped learning, or maps that say nothing, is flagged instead of scored.

A run *collapses* when its CAMs come from a trivial solution (e.g. a temporal loss whose weight
drove every map to a constant: constant maps are perfectly consistent over time). Its IoU is then
the all-foreground reference's and its mask stability the best of any table, so the numbers must
not stand as ordinary results. Two checks on a finished run (:func:`judge`, recorded as
``result.json``'s ``collapse``):

- **chance**: the before/after accuracy on the validation frames is no better than always
  answering the majority class, within a one-sided 99 % binomial margin: accuracy ≤ m + z·√(m(1−m)/n)
  with m the majority class's share of the n validation frames and z = 2.326 (not checked when the
  validation frames are all of one class). Frames of one video
  are correlated, so the margin is a lower bound of the real uncertainty: the rule flags a
  classifier at chance, not one that is merely weak.
- **flat_maps**: the standard deviation of the map values over the foreground pixels of the
  scored validation *before* frames is below :data:`SPREAD_TOLERANCE` (maps are normalised per
  frame to [0, 1]; a classifier that locates anything spreads them far more).

During training, :func:`stall` reads the per-epoch means of the logged loss terms: from the second
epoch on, a classification loss that is stuck (at or above :data:`STALL_SHARE` of its chance level,
the loss of a predictor that tells background images from object images but not before from after,
see :func:`chance_loss`, and no longer falling: above :data:`FLAT_SHARE` of the previous epoch's)
while another weighted term fell to :data:`FALL_SHARE` of its first epoch's mean is a stall; the
trainer warns when it happens, and :func:`likely_cause` names the term, its weight and the epoch
for a collapsed run's record and warning.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CHANCE_Z", "CollapseWarning", "FALL_SHARE", "FLAT_SHARE", "REASONS", "SPREAD_TOLERANCE", "STALL_SHARE",
           "Stall", "chance_bound", "chance_loss", "epoch_means", "judge", "likely_cause", "stall", "warning_text"]

#: one-sided 99 % normal quantile of the binomial margin above the majority rate
CHANCE_Z = 2.326
#: maps whose standard deviation over the validation foreground is below this are flat
SPREAD_TOLERANCE = 0.02
#: a classification loss at or above this share of its chance level is stuck
STALL_SHARE = 0.9
#: a classification loss above this share of the previous epoch's is no longer falling
FLAT_SHARE = 0.95
#: another term whose epoch mean fell to this share of its first epoch's is falling
FALL_SHARE = 0.5
#: reason key → what failed, as tables' footnotes and warnings say it
REASONS = {"chance": "classifier at chance on validation", "flat_maps": "maps flat over the validation foreground"}
#: columns of a training log row that are not loss terms
_NOT_TERMS = ("epoch", "step", "lr", "total")


class CollapseWarning(UserWarning):
    """A run that collapsed, or a training whose classification loss stalled at chance."""


def chance_bound(majority: float, frames: int, z: float = CHANCE_Z) -> float:
    """The highest accuracy still at chance: ``majority + z·sqrt(majority·(1 − majority) / frames)``.

    Args:
        majority: share of the majority class among the validation frames (0.5 when balanced).
        frames: number of validation frames (at least 1).
        z: the normal quantile of the one-sided margin.

    Returns:
        The bound (an accuracy in [0, 1] or slightly above 1 for tiny splits).
    """
    if frames < 1 or not 0 <= majority <= 1:
        raise ValueError(f"chance_bound needs frames >= 1 and a majority share in [0, 1], got {frames}, {majority}")
    return majority + z * math.sqrt(majority * (1 - majority) / frames)


def _entropy(p: float) -> float:
    """Binary entropy in nats (0 at 0 and 1)."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def chance_loss(counts: Mapping[str, int], classes: Iterable[str]) -> float:
    """Multi-label soft-margin loss of the best predictor that cannot tell *before* from *after*.

    It knows which images are background (blacked-out objects: learnt in the first steps), so on
    a background image it is exact, and on an object image it gives *before* and *after* each
    their share r among object images: each of the two columns costs the binary entropy H(r),
    the background column nothing. Averaged over the C classes and all images:
    ``q · 2·H(r) / C`` with q the share of object images.

    Args:
        counts: training images per class name (``before``, ``after``, optionally ``background``).
        classes: the classifier's classes (C = their number).

    Returns:
        The loss in nats (``ln 2 ≈ 0.693`` for two balanced classes without background).
    """
    classes = tuple(classes)
    total = sum(counts.get(c, 0) for c in classes)
    objects = counts.get("before", 0) + counts.get("after", 0)
    if not total or not objects:
        return 0.0
    share = counts.get("before", 0) / objects
    return objects / total * 2 * _entropy(share) / len(classes)


def epoch_means(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, float]]:
    """Per epoch (in order), the mean of each loss term and of each weight (``weight:<term>``) over its steps.

    Args:
        rows: rows of a training log (``log.csv``: ``epoch``, ``step``, ``lr``, ``total``, the
            terms and their weights), as dicts of numbers or of the strings ``csv`` reads.

    Returns:
        One dict per epoch: ``{"epoch": e, <term>: mean, "weight:<term>": mean, ...}``.
    """
    sums: dict[int, dict[str, float]] = {}
    steps: dict[int, int] = {}
    for row in rows:
        epoch = int(float(row["epoch"]))
        acc = sums.setdefault(epoch, {})
        steps[epoch] = steps.get(epoch, 0) + 1
        for key, value in row.items():
            if key in _NOT_TERMS or value in (None, ""):
                continue
            acc[key] = acc.get(key, 0.0) + float(value)
    return [{"epoch": float(e), **{k: v / steps[e] for k, v in sums[e].items()}} for e in sorted(sums)]


@dataclasses.dataclass(frozen=True)
class Stall:
    """The classification loss stuck near chance while another term fell.

    Attributes:
        epoch: the epoch (0-based) where it is first seen.
        term: the falling term (its ``log.csv`` column).
        weight: the term's mean weight in that epoch.
        before: the term's mean in the first epoch.
        after: its mean in ``epoch``.
        cls: the classification loss's mean in ``epoch``.
        chance: its chance level.
    """

    epoch: int
    term: str
    weight: float
    before: float
    after: float
    cls: float
    chance: float

    def text(self) -> str:
        """One sentence naming the term, its weight and the epoch."""
        return (f"classification loss stuck near or above chance at epoch {self.epoch + 1} ({self.cls:.3f}, "
                f"chance {self.chance:.3f}, no longer falling) while the {self.term} term fell from {self.before:.3g} "
                f"to {self.after:.3g} with weight {self.weight:.3g}: that weight likely drove the maps to a trivial "
                "solution")


def _is_classification(term: str) -> bool:
    return term == "cls" or term.endswith("cls")  # PuzzleCAM's tiles: p-cls


def stall(epochs: list[dict[str, float]], chance: float | None) -> Stall | None:
    """The first epoch (from the second on) where the classification loss is stuck and another term falls.

    Stuck: at or above :data:`STALL_SHARE` × ``chance`` and above :data:`FLAT_SHARE` × the previous
    epoch's (a healthy temporal training may stay near chance for a few epochs while still falling).

    Args:
        epochs: :func:`epoch_means` of a training log so far.
        chance: :func:`chance_loss` of the training images (``None`` or 0: unknown, no stall).

    Returns:
        The stall, or ``None``; among several falling terms, the one with the largest weighted mean.
    """
    if not chance or not epochs or "cls" not in epochs[0]:
        return None
    first = epochs[0]
    others = [k for k in first if k not in ("epoch", "cls") and not k.startswith("weight:")
              and not _is_classification(k)]
    for previous, means in zip(epochs, epochs[1:], strict=False):
        cls = means.get("cls", 0.0)
        if cls < STALL_SHARE * chance or cls <= FLAT_SHARE * previous.get("cls", 0.0):
            continue
        falling = [k for k in others if means.get(f"weight:{k}", 1.0) > 0 and first[k] > 0
                   and means.get(k, first[k]) <= FALL_SHARE * first[k]]
        if falling:
            term = max(falling, key=lambda k: means[k] * means.get(f"weight:{k}", 1.0))
            return Stall(epoch=int(means["epoch"]), term=term, weight=means.get(f"weight:{term}", 1.0),
                         before=first[term], after=means[term], cls=means["cls"], chance=chance)
    return None


def likely_cause(epochs: list[dict[str, float]], chance: float | None) -> str:
    """What the training log says about a collapsed run, in one sentence.

    Args:
        epochs: :func:`epoch_means` of the classifier's training log (empty: no log).
        chance: the chance level of its classification loss (``None``: not recorded).

    Returns:
        The stall (:meth:`Stall.text`) if there is one; else the largest weighted term other than
        classification in the last epoch with its (non-zero) weight; else what the classification
        loss did.
    """
    if not epochs:
        return "no training log to tell the cause"
    found = stall(epochs, chance)
    if found:
        return found.text()
    last = epochs[-1]
    weighted = {k: last[k] * last.get(f"weight:{k}", 1.0) for k in last
                if k not in ("epoch", "cls") and not k.startswith("weight:") and not _is_classification(k)
                and last.get(f"weight:{k}", 1.0) > 0}
    cls = f"classification loss {epochs[0].get('cls', math.nan):.3f} → {last.get('cls', math.nan):.3f}"
    level = f" (chance {chance:.3f})" if chance else ""
    if weighted:
        term = max(weighted, key=lambda k: weighted[k])
        return (f"{cls}{level} over {len(epochs)} epoch(s); the largest other term in the last epoch was {term} "
                f"(weight {last.get(f'weight:{term}', 1.0):.3g}, weighted {weighted[term]:.3g}): lower its weight or "
                "lengthen its ramp, or train longer")
    return (f"{cls}{level} over {len(epochs)} epoch(s) with no other weighted loss term: the classifier did not "
            "learn before from after (train longer, or check the data)")


def judge(accuracy: float | None, majority: float | None, frames: int, spread: float | None) -> dict[str, Any] | None:
    """Whether a finished run collapsed, and why.

    Args:
        accuracy: before/after accuracy on the validation frames (``None``: not measured).
        majority: the majority class's share of those frames.
        frames: their number.
        spread: standard deviation of the maps over the validation foreground (``None``: no
            scored validation frame).

    Returns:
        ``None`` if neither check fails, else ``{"reasons": [keys of REASONS], "accuracy",
        "chance_bound", "map_spread", "spread_tolerance"}`` (``cause`` is added by the caller,
        who has the training log).
    """
    reasons = []
    # a validation split of one class cannot show chance (always answering it is right)
    bound = chance_bound(majority, frames) if majority is not None and majority < 1 and frames else None
    if accuracy is not None and bound is not None and accuracy <= bound:
        reasons.append("chance")
    if spread is not None and spread < SPREAD_TOLERANCE:
        reasons.append("flat_maps")
    if not reasons:
        return None
    return {"reasons": reasons, "accuracy": accuracy, "chance_bound": None if bound is None else round(bound, 6),
            "map_spread": spread, "spread_tolerance": SPREAD_TOLERANCE}


def warning_text(name: str, collapse: Mapping[str, Any]) -> str:
    """The one-line warning about a collapsed run.

    Args:
        name: how to name the run (``tccam on synthetic-belt (seed 0)``).
        collapse: its ``result.json`` ``collapse`` record.
    """
    what = "; ".join(REASONS[r] for r in collapse["reasons"])
    numbers = []
    if "chance" in collapse["reasons"]:
        numbers.append(f"val accuracy {collapse['accuracy']:.3f} <= {collapse['chance_bound']:.3f}")
    if "flat_maps" in collapse["reasons"]:
        numbers.append(f"map spread {collapse['map_spread']:.4f} < {collapse['spread_tolerance']}")
    return (f"{name} COLLAPSED ({what}: {', '.join(numbers)}); its numbers are a trivial output's, not a result. "
            f"Likely cause: {collapse.get('cause', 'unknown')}")
