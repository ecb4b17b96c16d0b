"""The ``sanity`` table: is each column what its name says? Per data set and column, the model-parameter
randomisation test (:mod:`wsbench.sanity`, read from ``result.json`` → ``sanity``) and the columns with the same
maps (the comparison's duplicate check); and the ``¶`` mark of a comparison cell whose runs failed the test."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..runs import RunRecord
from .marks import SAME_MAPS, _SameMaps
from .model import _INSANE, Cell, Table, _column_names, _data_rows
from .selection import _BACKGROUND, _reruns_note, latest_runs, long_form

__all__ = ["failed_runs", "insane_notes", "sanity"]

VERDICT = "randomisation test"
SAME = "same maps as"


def _tested(record: RunRecord) -> dict[str, Any] | None:
    """A run's randomisation test (``result.json`` → ``sanity``), ``None`` for a run recorded before it existed."""
    sanity = (record.result or {}).get("sanity") or {}
    return sanity if sanity.get("randomisation") else None


def failed_runs(run_ids: Iterable[str], records: dict[str, RunRecord]) -> int:
    """How many of the runs failed the randomisation test (runs without it count as not failed).

    Args:
        run_ids: the runs of a cell.
        records: run id → record.

    Returns:
        The number of runs whose ``sanity.randomisation_passed`` is false.
    """
    return sum(1 for i in run_ids if (_tested(records[i]) or {}).get("randomisation_passed") is False)


def insane_notes(table: Table) -> list[str]:
    """One footnote per cell with a run that failed the randomisation test: where and how many runs."""
    return [f"{_INSANE} {name}, {column}: {cell.failed_sanity} of {cell.n} run(s) failed the randomisation test: its "
            "maps barely change when the classifier is re-initialised, so they do not explain it; not ranked "
            "(wsbench leaderboard --table sanity)"
            for name, cells in table.rows for column, cell in zip(table.columns, cells, strict=False)
            if cell.failed_sanity]


def _mean_cell(values: list[float], seeds: int, split_seeds: int) -> Cell:
    if not values:
        return Cell()
    std = float(pd.Series(values).std(ddof=1)) if len(values) > 1 else None
    return Cell(mean=float(sum(values) / len(values)), std=std, n=len(values), seeds=seeds, split_seeds=split_seeds)


def _row(runs: pd.DataFrame, records: dict[str, RunRecord], steps: list[str],
         same: list[str], sampled: bool) -> tuple[list[Cell], list[float]]:
    """A column's cells on one data set (its runs: ``runs``) and the last step's correlation of each run that
    failed."""
    tested = [(t, seed, split) for i, seed, split in zip(runs.run_id, runs.seed, runs.split_seed, strict=True)
              if (t := _tested(records[i])) is not None]
    seeds, splits = len({s for _, s, _ in tested}), len({s for _, _, s in tested})
    cells = [_mean_cell([s["spearman"] for t, _, _ in tested for s in t["randomisation"] if s["reset"] == step],
                        seeds, splits) for step in steps]
    failed = [t["randomisation"][-1]["spearman"] for t, _, _ in tested if not t["randomisation_passed"]]
    verdict = Cell(n=len(tested), seeds=seeds, split_seeds=splits)
    if tested:
        verdict.note = "pass" if not failed else f"FAIL{_INSANE}" + (f" ({len(failed)} of {len(tested)})"
                                                                     if len(failed) < len(tested) else "")
    cells.append(verdict)
    cells.append(Cell(note=", ".join(same) if same else ("none" if sampled else "–")))
    return cells, failed


def sanity(records: Iterable[RunRecord]) -> Table:
    """Per data set and comparison column: the Spearman correlation after each step of the randomisation
    cascade (mean ± std over runs), the test's verdict, and the columns whose stored maps are the same.

    Args:
        records: finished runs (unfinished ones are ignored; the latest run of each configuration and seed).

    Returns:
        The table; runs recorded before the test existed show ``–``.
    """
    records, ignored = latest_runs(list(records))
    df = long_form(records)
    table = Table("sanity", "", "data set: column", [], [])
    if df.empty:
        return table
    by_id = {r.run_id: r for r in records}
    names = _column_names(df, ignore=("data_root", "split_seed", *_BACKGROUND))  # the comparison's columns
    columns, rows = list(dict.fromkeys(names.values())), _data_rows(df)
    runs = df.drop_duplicates("run_id")
    steps = list(dict.fromkeys(s["reset"] for r in records if (t := _tested(r)) for s in t["randomisation"]))
    bounds = sorted({t["randomisation_bound"] for r in records if (t := _tested(r)) and "randomisation_bound" in t})
    same_maps, notes = _SameMaps(records), []
    for data in dict.fromkeys(df.data):
        selections = [runs[(runs.data == data) & runs.variant.isin([v for v, n in names.items() if n == column])]
                      for column in columns]
        pairs = same_maps.same(columns, selections)
        for column, sel in zip(columns, selections, strict=True):
            if sel.empty:
                continue
            same = [b if a == column else a for a, b, _, _ in pairs if column in (a, b)]
            sampled = any(same_maps.sample(i) is not None for i in sel.run_id)
            cells, failed = _row(sel, by_id, steps, same, sampled)
            table.rows.append((f"{rows[data]}: {column}", cells))
            if failed:
                notes.append(f"{_INSANE} {rows[data]}, {column}: {len(failed)} of {cells[-2].n} run(s) failed: "
                             f"|Spearman| {sum(failed) / len(failed):.2f} after the whole classifier was "
                             "re-initialised; its maps do not depend on the model (marked in the comparison, never "
                             "ranked).")
    table.columns = steps + [VERDICT, SAME]
    bound = " or ".join(f"{b:g}" for b in bounds) or "the recorded bound"
    tested = [t for t in map(_tested, records) if t is not None]
    draws = " or ".join(str(d) for d in sorted({int(t.get("randomisation_draws", 1)) for t in tested})) \
        or "the recorded number of"
    table.caption = (
        "Sanity: the model-parameter randomisation test (Adebayo et al., NeurIPS 2018). Each step column is the "
        "absolute Spearman rank correlation, over the sampled foreground pixels, between a column's maps of its fixed "
        "sample of test frames from the trained classifier and from a copy re-initialised in cascade from the top "
        "(cumulative: head, then the backbone's stages from the last, rest: the stem and whatever is left), averaged "
        f"over {draws} independent re-initialisations per run (one draw: the signed correlation of a run recorded "
        "before the draws); mean ± std over runs. Maps that explain the classifier fall towards 0; a column fails when "
        f"that correlation after the whole cascade is above {bound}. Same maps as: the columns whose stored samples "
        "correlate above "
        f"{SAME_MAPS} (Pearson) on every run paired by seed. –: runs recorded before the test (or the sample).")
    table.footnotes = notes + same_maps.notes + _reruns_note(ignored)
    return table
