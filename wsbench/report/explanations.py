"""The explanations table: ROAD faithfulness of each column's maps to the classifier it explains.

Every number is a run's ``result.json`` → ``explanations`` (:mod:`wsbench.evaluate.faithfulness`,
pytorch-grad-cam's ROAD); rows and columns are the comparison's (:func:`~wsbench.report.grouped`).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..runs import RunRecord
from .model import PAPER_ORDER, Cell, Table, _cell, _collapse_notes, _highlight, _seeds_text, grouped

__all__ = ["ROAD_ROWS", "explanations"]

#: ``result.json`` key → (row label, higher is better)
ROAD_ROWS = {"morf": ("ROAD MoRF ×100 ↓", False), "lerf": ("ROAD LeRF ×100 ↑", True),
             "combined": ("ROAD combined ×100 ↑", True)}


def explanations(records: Iterable[RunRecord]) -> Table:
    """ROAD scores ×100 per data set (three rows: MoRF, LeRF, combined) × method column, mean ± std over seeds.

    Args:
        records: finished runs (unfinished ones are ignored; a configuration and seed counts once, as
            in the comparison).

    Returns:
        The table; the best and second best cell of each row are marked in the direction the row
        header's arrow gives. A column whose runs were recorded without ROAD scores shows ``–``
        and a footnote says so.
    """
    records = list(records)
    frame, notes = grouped(records)
    table = Table("explanations", "", "", [], [])
    if frame.empty:
        return table
    by_id = {r.run_id: r for r in records}
    scores = pd.DataFrame([_scores(by_id[run_id], row, column)
                           for run_id, row, column in zip(frame.run_id, frame.row, frame.column, strict=True)])
    rank = {m: i for i, m in enumerate(PAPER_ORDER)}
    firsts = scores.drop_duplicates("column")
    table.columns = [c for _, _, c in sorted((rank.get(m, len(rank)), i, c) for i, (m, c)
                                             in enumerate(zip(firsts.method, firsts.column, strict=True)))]
    for row in dict.fromkeys(frame.row):
        for key, (label, higher) in ROAD_ROWS.items():
            cells = [_cell(scores[(scores.row == row) & (scores.column == column)].rename(columns={key: "value"}))
                     for column in table.columns]
            _highlight(cells, higher)
            table.rows.append((f"{row}: {label}", cells))
    table.caption = _caption(table, sorted({int(n) for n in scores.frames if n}))
    missing = sorted(set(scores[scores.frames == 0].column))
    table.footnotes = _collapse_notes(table) + notes + _trainers(scores, table.columns) + (
        [f"– {', '.join(missing)}: run(s) recorded without ROAD scores (before they were computed at the end of "
         "every run); run them again to fill the cell."] if missing else [])
    return table


def _scores(record: RunRecord, row: str, column: str) -> dict[str, object]:
    """One run's ROAD scores (``None`` where it has none) with what :func:`_cell` groups by."""
    result = record.result or {}
    road = result.get("explanations") or {}
    collapse = result.get("collapse") or {}
    classifier = record.config.get("classifier") or {}
    return {"row": row, "column": column, "method": record.config.get("method"), "seed": record.config.get("seed"),
            "split_seed": record.config.get("split_seed"), "collapse": ",".join(collapse.get("reasons", [])),
            "trained_by": classifier.get("method", record.config.get("method")),
            "frames": len(road.get("frames", [])), **{k: road.get(k) for k in ROAD_ROWS}}


def _caption(table: Table, frames: list[int]) -> str:
    cells: list[Cell] = [c for _, cs in table.rows for c in cs]
    count = "no" if not frames else str(frames[0]) if len(frames) == 1 else f"{frames[0]}–{frames[-1]}"

    return ("Faithfulness: pytorch-grad-cam's ROAD (noisy linear imputation of the pixels a map ranks most (MoRF) or "
            "least (LeRF) relevant, averaged over its default percentiles 10–90; combined = (LeRF - MoRF) / 2), the "
            f"change ×100 of the classifier's before-class probability on a fixed sample of {count} test frames per "
            "data set (the middle frame of each of the first test before videos by key, the same for every run) "
            "with the run's scored before maps (fused where the method fuses). "
            "Each method is scored with the classifier it explains: CAM-network methods their own CAM network, "
            "GradCAM and Frame-to-Frame the standard classifier GradCAM trains (see the footnote); MoRF lower is "
            f"better, LeRF and combined higher; {_seeds_text(cells)}. Best per row in bold, second underlined.")


def _trainers(scores: pd.DataFrame, columns: list[str]) -> list[str]:
    """Which classifier each column's maps (and so its ROAD scores) explain."""
    trainer = dict(zip(scores.column, scores.trained_by, strict=True))
    return ["Classifier explained: " + "; ".join(f"{c}, the one {trainer[c]} trains" for c in columns) + "."]
