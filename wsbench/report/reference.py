"""The supervised reference in the tables: the segmenter trained on the val split's GT masks
(``wsbench distill --supervised-reference``, :mod:`wsbench.distill.reference`).

A reference run sits in the comparison's row of the data set identity it was trained and scored on
(name, resolved root, options, content, foreground: :func:`~wsbench.report.selection.long_form`'s
``data``), as a column beside the all-foreground reference that is never ranked, and in the stages
table as a row of its own. Its cells are mean ± std over its seeds (the latest finished run of each
configuration). Read from the stored records only, like every table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ..runs import RunRecord, is_reference
from .model import Cell, _cell, _data_rows
from .selection import _data_identity

__all__ = ["REFERENCE_COLUMN", "References", "reference_rows"]

#: the column (comparison) and row (stages) of the supervised reference
REFERENCE_COLUMN = "supervised reference (val GT)"


def _latest(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The finished reference runs, the latest of each configuration (its hash holds the seed)."""
    kept: dict[str, RunRecord] = {}
    for record in sorted((r for r in records if r.finished and is_reference(r.config)), key=lambda r: r.run_id):
        kept[str(record.config.get("config_hash"))] = record
    return list(kept.values())


def _identity(record: RunRecord) -> str:
    """The run's data set identity as the comparison's ``data`` column holds it."""
    return json.dumps(_data_identity(record.config, record.result or {}, {}), sort_keys=True)


def _budget_text(records: Sequence[RunRecord]) -> str:
    """The labelling budget of the references of one row, in words (one per distinct budget)."""
    texts = []
    for budget in dict.fromkeys(json.dumps((r.result or {})["reference"]["budget"], sort_keys=True)
                                for r in records):
        b = json.loads(budget)
        texts.append(f"{b['before_frames']} GT-masked before frames and {b['after_frames']} after frames of "
                     f"{b['videos']} val videos")
    return " or ".join(texts)


class References:
    """The reference column of a comparison: its cells by data set identity and its footnotes.

    Args:
        records: run records (only finished reference runs are read).
        metric: the comparison's metric (a key of ``result.json``'s ``metrics``).
    """

    def __init__(self, records: Iterable[RunRecord], metric: str) -> None:
        self.runs = _latest(records)
        self.metric = metric
        self.notes: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.runs)

    @property
    def columns(self) -> list[str]:
        """``[REFERENCE_COLUMN]`` when there are reference runs, else nothing (old tables are unchanged)."""
        return [REFERENCE_COLUMN] if self.runs else []

    def caption(self) -> str:
        """The caption's sentence on the reference column (empty without reference runs)."""
        if not self.runs:
            return ""
        return (f" {REFERENCE_COLUMN}: a segmenter trained on the val split's GT masks, cut at the fixed threshold "
                "0.5, not on val (its training data); not ranked (see its footnote).")

    def cells(self, data: str, row: str) -> list[Cell]:
        """The reference cell of the row of data set identity ``data`` (none without reference runs).

        Args:
            data: the row's data set identity (``long_form``'s ``data``).
            row: the row's name, for the footnote.
        """
        if not self.runs:
            return []
        mine = [r for r in self.runs if _identity(r) == data]
        rows = pd.DataFrame([{"value": (r.result or {}).get("metrics", {}).get(self.metric), "collapse": "",
                              "seed": r.config.get("seed"), "split_seed": r.config.get("split_seed")} for r in mine],
                            columns=["value", "collapse", "seed", "split_seed"])
        if mine:
            self.notes.append(f"{REFERENCE_COLUMN}, {row}: the distill recipe's segmenter trained on the val split's "
                              f"GT masks ({_budget_text(mine)}; labels as the pseudo-labels', illegal inside the "
                              "foreground) instead of a CAM's pseudo-labels, scored on test at the fixed threshold "
                              "0.5 (val is its training data, so no threshold is chosen on it); what labelling the "
                              "val videos gives, not a weakly supervised method: not ranked.")
        return [_cell(rows)]


def reference_rows(references: Iterable[RunRecord], others: Iterable[RunRecord]) -> dict[str, dict[str, Any]]:
    """The stages table's rows of the reference runs: run id → its data row name, seed and test numbers.

    Args:
        references: run records (only finished reference runs are read).
        others: the records of the table's other rows (their data identities name the rows alike).

    Returns:
        ``{run_id: {"data", "seed", "segmenter" (test IoU ×100 or None), "segmenter_fps", "budget"}}``.
    """
    runs = _latest(references)
    identities = {r.run_id: _identity(r) for r in [*others, *runs]}
    names = _data_rows(pd.DataFrame({"data": list(identities.values())})) if identities else {}
    out = {}
    for r in runs:
        result = r.result or {}
        iou = (result.get("metrics") or {}).get("iou_illegal")
        out[r.run_id] = {"data": names[identities[r.run_id]], "seed": result.get("seed"),
                         "segmenter": None if iou is None else 100 * float(iou),
                         "segmenter_fps": (result.get("timings") or {}).get("maps_frames_per_second"),
                         "budget": _budget_text([r])}
    return out
