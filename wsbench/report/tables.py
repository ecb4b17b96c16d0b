"""The tables: comparison (paper Table 1), ablation (Table 2), background (Table 3) and pairs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..bootstrap import COUNT_KEYS, HISTOGRAMS, RESAMPLES, SEED, difference_interval
from ..runs import RunRecord
from ..texts import static_after_refusal, threshold_text
from .explanations import explanations
from .marks import _Intervals, _SameMaps
from .model import (
    _BELOW,
    METRIC_FORMS,
    Cell,
    Table,
    _cell,
    _collapse_notes,
    _column_names,
    _data_rows,
    _footnotes,
    _highlight,
    _metric_header,
    _recipe_tags,
    _seeds_text,
)
from .reference import References
from .sanity_table import failed_runs, insane_notes, sanity
from .selection import _BACKGROUND, _is_default, _reruns_note, latest_runs, long_form

__all__ = ["ABLATION_COLUMNS", "TABLES", "ablation", "background", "build_tables", "comparison", "pairs"]


#: columns of the ablation: (spatial module, temporal module) → header
ABLATION_COLUMNS = {(False, False): "None", (False, True): "Only temporal", (True, False): "Only spatial",
                    (True, True): "Both"}
TABLES = ("comparison", "ablation", "background")


def comparison(records: Iterable[RunRecord], metric: str = "iou_illegal", ci: bool = False,
               references: Iterable[RunRecord] = ()) -> Table:
    """Paper Table 1: rows data sets, columns method variants plus the all-foreground reference.

    Args:
        records: finished runs (unfinished ones are ignored).
        metric: a key of :data:`METRICS` (measured on test, threshold chosen on val).
        ci: add each method cell's 95 % bootstrap interval over test videos (illegal IoU only; see
            :func:`wsbench.bootstrap.iou_interval`).
        references: supervised reference runs (:mod:`wsbench.report.reference`); with any, a column
            beside the all-foreground reference, not ranked and footnoted.

    Returns:
        The table; best and second best method per row are marked (the reference is not ranked).
    """
    records = list(records)
    header, higher = _metric_header(metric)
    records, ignored = latest_runs(records)
    intervals = _Intervals(records, metric) if ci else None
    df = long_form(records)
    table = Table("comparison", "", f"{header} ×100 {'↑' if higher else '↓'}", [], [])
    if df.empty:
        return table
    names = _column_names(df, ignore=("data_root", "split_seed", *_BACKGROUND))  # rows tell data sets (and
    # the foregrounds they are scored in) apart
    columns = list(dict.fromkeys(names.values()))
    values = df[(df.metric == metric) & (df.split == "test")]
    # the references are not the runs' own outputs: a collapsed run does not mark them
    ref = df[(df.metric == f"all_foreground:{metric}") & (df.split == "test")].assign(collapse="")
    recall = df[(df.metric == "foreground_recall") & (df.split == "test")].assign(collapse="")
    reasons: dict[str, list[str]] = {}
    rows = _data_rows(df)
    same_maps = _SameMaps(records)
    supervised = References(references, metric)
    by_id = {r.run_id: r for r in records}
    for data, group in df.groupby("data", sort=False):
        dataset = group.dataset.iloc[0]
        static_after = bool(group.static_after.any())
        cells, selections = [], []
        for column in columns:
            variants = [v for v, n in names.items() if n == column]
            sel = values[(values.data == data) & values.variant.isin(variants)].drop_duplicates("run_id")
            selections.append(sel)
            cell = _cell(sel)
            cell.failed_sanity = failed_runs(sel[sel.value.notna()].run_id, by_id)
            if intervals:
                intervals.fill(cell, sel, column)
            if cell.mean is None and not (group.variant.isin(variants)).any():
                row = df[df.variant == variants[0]].iloc[0]
                _not_applicable(cell, static_after_refusal(dataset) if static_after and row.trains_on_clips else None,
                                column, reasons)
            cells.append(cell)
        _highlight(cells, higher)
        if intervals:
            intervals.mark_below_best(cells, selections)
        same_maps.check(rows[data], columns, selections)
        # the references depend on the data set's test split only: one value per seed and split seed
        cells.append(_cell(ref[ref.data == data].drop_duplicates(["seed", "split_seed", "value"])))
        cells += supervised.cells(data, rows[data])
        cells.append(_cell(recall[recall.data == data].drop_duplicates(["seed", "split_seed", "value"])))
        table.rows.append((rows[data], cells))
        if metric == "stability":  # constant maps win the mask stability: never show it without their content
            spread = df[(df.metric == "map_spread") & (df.split == "test") & (df.data == data)]
            table.rows.append((f"{rows[data]}: map spread ×100",
                               [_cell(spread[spread.variant.isin([v for v, n in names.items() if n == column])]
                                      .drop_duplicates("run_id")) for column in columns]
                               + [Cell()] * (2 + len(supervised.columns))))
    table.columns = columns + ["all-foreground (reference)", *supervised.columns, "foreground recall (ceiling)"]
    table.caption = _comparison_caption(table, df, names, metric) + supervised.caption()
    table = _with_notes(table, reasons, ignored, intervals)
    table.footnotes += same_maps.notes + supervised.notes + insane_notes(table)
    return table


def _comparison_caption(table: Table, df: pd.DataFrame, names: dict[str, str], metric: str) -> str:
    """What the comparison's cells are, how they were cut and ranked, and which columns explain another classifier."""
    header, higher = _metric_header(metric)
    caption = (f"Comparison: {header} ×100 on test, {_threshold_caption(df, metric)} "
               f"({'higher' if higher else 'lower'} "
               f"is better); {_seeds_text(c for _, cs in table.rows for c in cs)}. Best in bold, second "
               f"underlined; all-foreground calls every foreground pixel illegal (not ranked); foreground recall "
               f"is the share of test GT illegal pixels inside the background-removal foreground, the "
               f"ceiling of every method's recall (not ranked). {METRIC_FORMS[metric]}"
               + (" Beside it, the map spread (std of the map values over the test foreground): a constant map "
                  "has the most stable masks and a spread of 0; see also --metric map_stability, which a "
                  "constant map cannot win." if metric == "stability" else ""))
    explained = sorted({name for variant, name in names.items()
                        if (df[df.variant == variant].trained_by == "gradcam").any()})
    if explained:
        caption += (f" {', '.join(explained)} explain{'s' if len(explained) == 1 else ''} a standard "
                    "classifier (global average pooling + linear head) trained apart from the CAM network, as "
                    "in the paper, so a difference to CAM compares two classifiers, not two ways of reading "
                    "one.")
    return caption


def _with_notes(table: Table, reasons: dict[str, list[str]], ignored: int, intervals: Any) -> Table:
    """The footnotes of a table of IoU cells: why a cell is n/a, ignored re-runs, and the intervals."""
    table.footnotes = _footnotes(reasons) + _collapse_notes(table) + _reruns_note(ignored)
    if intervals:
        table.caption += intervals.caption()
        table.footnotes += intervals.footnotes()
    return table


def _threshold_caption(df: pd.DataFrame, metric: str) -> str:
    """How the table's masks were cut: the runs' stored threshold sources, in words."""
    if metric == "iou_illegal_wsws":
        return "argmax, no threshold"
    if metric == "oracle_iou_illegal":
        return "threshold chosen on test (oracle)"
    if metric == "pxap":
        return "no threshold (all thresholds)"
    runs = df.drop_duplicates("run_id")
    fixed = runs.threshold_source.str.startswith("fixed")
    if not fixed.any():
        return threshold_text("val")
    # the fixed threshold the runs recorded (the evaluator's, wsbench.evaluate.FIXED_THRESHOLD)
    recorded = set(df[(df.metric == "threshold") & df.run_id.isin(runs[fixed].run_id)].value.dropna())
    fixed_text = threshold_text("fixed", recorded.pop() if len(recorded) == 1 else None)
    if fixed.all():
        return fixed_text
    datasets = ", ".join(dict.fromkeys(runs[fixed].dataset))
    return f"{threshold_text('val')}, except {fixed_text} for {datasets}"


def _not_applicable(cell: Cell, why: str | None, column: str, reasons: dict[str, list[str]]) -> None:
    """Mark an empty cell ``n/a`` when its method cannot run on the data set (``why``), for the footnote."""
    if why:
        cell.note = "n/a"
        reasons.setdefault(why, []).append(column)


def ablation(records: Iterable[RunRecord], metric: str = "iou_illegal", ci: bool = False) -> Table:
    """Paper Table 2: rows data sets, columns None / Only temporal / Only spatial / Both.

    Uses the runs of ``cam``, ``puzzlecam`` and ``tccam`` whose other options and fusion are the
    defaults. A data set with runs under several recipes gets one row for its most common recipe
    and one for each other recipe that has runs with at least two module settings.

    Args:
        records: finished runs.
        metric: a key of :data:`METRICS`.
        ci: add each cell's 95 % bootstrap interval over test videos (as in :func:`comparison`).

    Returns:
        The table; best and second best per row are marked.
    """
    records, ignored = latest_runs(records)
    header, higher = _metric_header(metric)
    intervals = _Intervals(records, metric) if ci else None
    df = long_form(records)
    table = Table("ablation", "", f"{header} ×100 {'↑' if higher else '↓'}", list(ABLATION_COLUMNS.values()), [])
    if df.empty:
        return table
    df = df[df.spatial != ""]
    # an ablation run: its options other than spatial/temporal and its fusion are the defaults
    plain = [fusion and _is_default({k: v for k, v in json.loads(o).items() if k not in ("spatial", "temporal")},
                                    {"default_options": json.loads(d)})
             for o, d, fusion in zip(df.options_json, df.defaults_json, df.default_fusion, strict=True)]
    df = df[plain]
    if df.empty:
        return table
    tags = _recipe_tags(df)
    df = df.assign(row=[d + (f" [{tags[v]}]" if tags.get(v) else "")
                        for d, v in zip(df.dataset, df.variant, strict=True)],
                   main=[not tags.get(v) for v in df.variant])
    df = df.sort_values("main", ascending=False, kind="stable")  # the data set's usual recipe first
    values = df[(df.metric == metric) & (df.split == "test")]
    reasons: dict[str, list[str]] = {}
    for row_name, group in df.groupby("row", sort=False):
        if not group.main.iloc[0] and group.spatial.astype(str).add(group.temporal).nunique() < 2:
            continue  # a side recipe with a single module setting (e.g. a classifier for Table 3) ablates nothing
        cells, selections = [], []
        for (spatial, temporal), column in ABLATION_COLUMNS.items():
            sel = values[(values.row == row_name) & (values.spatial == ("✓" if spatial else "✗"))
                         & (values.temporal == ("✓" if temporal else "✗"))].drop_duplicates("run_id")
            selections.append(sel)
            cell = _cell(sel)
            if intervals:
                intervals.fill(cell, sel, f"{row_name}: {column}")
            if cell.mean is None:  # the temporal module trains on clips
                _not_applicable(cell, static_after_refusal(group.dataset.iloc[0])
                                if temporal and group.static_after.any() else None, column, reasons)
            cells.append(cell)
        _highlight(cells, higher)
        if intervals:
            intervals.mark_below_best(cells, selections)
        table.rows.append((row_name, cells))
    table.caption = (f"Ablation: {header} ×100 on test with the spatial (PuzzleCAM) and temporal modules on or off, "
                     f"{_threshold_caption(df, metric)} ({'higher' if higher else 'lower'} is better); "
                     f"{_seeds_text(c for _, cs in table.rows for c in cs)}. Best in bold, second underlined. "
                     f"{METRIC_FORMS[metric]}")
    return _with_notes(table, reasons, ignored, intervals)


def pairs(records: Iterable[RunRecord], metric: str = "iou_illegal") -> Table:
    """Every pair of comparison columns on every data set: mean difference, paired interval, seeds won.

    For columns A (left of B in the comparison) and B with runs on a data set: the mean over A's
    runs minus the mean over B's runs, the paired bootstrap interval of that difference over test
    videos (:func:`wsbench.bootstrap.difference_interval`, marked ``§`` where it excludes 0) and,
    among the (seed, split seed) pairs run for both, in how many A's value is higher.

    Args:
        records: finished runs.
        metric: a key of :data:`METRICS`; intervals exist for those of
            :data:`wsbench.bootstrap.COUNT_KEYS` only.

    Returns:
        The table: one row per data set and pair, columns the difference and the seeds won.
    """
    records = list(records)
    header, _ = _metric_header(metric)
    records, ignored = latest_runs(records)
    intervals = _Intervals(records, metric)
    df = long_form(records)
    table = Table("pairs", "", "data set: A − B", ["A − B ×100 [paired 95 % interval]", "seeds with A > B"], [])
    if df.empty:
        return table
    names = _column_names(df, ignore=("data_root", "split_seed"))
    columns = list(dict.fromkeys(names.values()))
    values = df[(df.metric == metric) & (df.split == "test") & df.value.notna()]
    rows = _data_rows(df)
    missing: list[str] = []
    for data in dict.fromkeys(df.data):
        selections = {}
        for column in columns:
            variants = [v for v, n in names.items() if n == column]
            sel = values[(values.data == data) & values.variant.isin(variants)].drop_duplicates("run_id")
            if not sel.empty:
                selections[column] = sel
        present = list(selections)
        for i, a in enumerate(present):
            for b in present[i + 1:]:
                sel_a, sel_b = selections[a], selections[b]
                diff = Cell(mean=float(sel_a.value.astype(float).mean() - sel_b.value.astype(float).mean()) * 100,
                            n=len(sel_a) + len(sel_b))
                runs_a, runs_b = intervals.counts(sel_a), intervals.counts(sel_b)
                interval = (difference_interval(runs_a, runs_b, metric=metric)
                            if runs_a and runs_b and metric in COUNT_KEYS else None)
                if interval is not None:
                    diff.ci_low, diff.ci_high = interval[0] * 100, interval[1] * 100
                    diff.below_best = interval[0] > 0 or interval[1] < 0
                elif metric in COUNT_KEYS:
                    missing.append(f"{a} − {b}")
                both = sel_a.merge(sel_b, on=["seed", "split_seed"], suffixes=("_a", "_b"))
                wins = int((both.value_a.astype(float) > both.value_b.astype(float)).sum())
                table.rows.append((f"{rows[data]}: {a} − {b}", [diff, Cell(note=f"{wins}/{len(both)}")]))
    table.caption = (f"Pairs: {header} ×100 on test, {_threshold_caption(df, metric)}: for every pair of comparison "
                     "columns A, B on a data set, the mean over A's runs minus the mean over B's runs; in brackets "
                     f"the paired 95 % percentile bootstrap interval over test videos ({RESAMPLES} resamples, seed "
                     f"{SEED}): in every resample A's and B's runs are scored on the same drawn test videos and the "
                     f"difference of the two cells is taken; {_BELOW}: the interval excludes 0. It reflects the "
                     "choice of test videos, not training seeds: seeds with A > B counts, among the (seed, split "
                     f"seed) pairs run for both, those where A scored higher. {METRIC_FORMS[metric]}")
    table.footnotes = _reruns_note(ignored)
    if metric not in COUNT_KEYS:
        table.footnotes.append(f"No intervals: the bootstrap over test videos is for --metric "
                               f"{' or '.join(COUNT_KEYS)}, not {metric}.")
    elif missing:
        table.footnotes.append(f"No interval for {', '.join(missing)}: a result.json without per-test-video counts "
                               "(counts.test_videos, or its iou_frame_sum for the per-frame mean"
                               + (", its pxap_pos / pxap_neg for PxAP" if metric in HISTOGRAMS else "") + ").")
    return table


def background(records: Iterable[RunRecord]) -> Table:
    """Paper Table 3: accuracy ×100 of the standard classifier trained with / without background.

    The paper evaluates "a standard classifier (ResNet 50)" here, so the rows are the classifiers
    that ``gradcam`` trains (global average pooling + linear head), not the CAM network.

    Rows: per data set, the classifier trained on the original frames ("with background",
    ``background_removal = false``) and on background-removed frames ("without background").
    Columns: tested with background (original frames) and without (foreground only), each on the
    train and val splits. A classifier shared by several runs counts once; cells are mean ± std
    over seeds. The best value per column is bold.
    """
    records, ignored = latest_runs(records)
    df = long_form(records)
    groups = [("tested with background", 2), ("tested without background", 2)]
    table = Table("background", "", "accuracy ×100 ↑", ["train", "val", "train", "val"], [], groups=groups)
    if df.empty:
        return table
    df = df[(df.trained_by == "gradcam") & df.metric.str.startswith("accuracy:")]
    df = df.drop_duplicates(["classifier", "metric", "split"])
    if df.empty:
        return table
    tags = _recipe_tags(df, ignore=("background_removal",))
    df = df.assign(row=[d + (f" [{tags[v]}]" if tags.get(v) else "")
                        for d, v in zip(df.dataset, df.variant, strict=True)])
    for row_name, group in df.groupby("row", sort=False):
        for removal, text in ((False, "trained with background"), (True, "trained without background")):
            sel = group[group.background_removal == removal]
            if sel.empty:
                continue
            cells = [_cell(sel[(sel.metric == f"accuracy:{kind}") & (sel.split == split)])
                     for kind in ("original", "foreground") for split in ("train", "val")]
            table.rows.append((f"{row_name}: {text}", cells))
    for j in range(len(table.columns)):  # best only, as the caption says
        _highlight([cells[j] for _, cells in table.rows], second=False)
    table.caption = ("Background bias: before/after accuracy ×100 of the standard classifier (global average "
                     "pooling + linear head, the one GradCAM and Frame-to-Frame explain; the paper's Table 3 "
                     "classifier), trained and tested with and without background (higher is better); "
                     f"{_seeds_text(c for _, cs in table.rows for c in cs)}. Best per column in bold.")
    table.footnotes = _collapse_notes(table) + _reruns_note(ignored)
    return table


def build_tables(records: Iterable[RunRecord], names: Iterable[str] = TABLES, metric: str = "iou_illegal",
                 ci: bool = False, references: Iterable[RunRecord] = ()) -> list[Table]:
    """The named tables (``comparison``, ``ablation``, ``background``, ``pairs``, ``sanity``, ``explanations``)
    from the same records.

    ``ci`` adds bootstrap intervals over test videos to the comparison and ablation (see
    :func:`comparison`); the background table's accuracies get a footnote saying they have none.
    ``references`` (supervised reference runs) add the comparison's reference column.
    """
    records, references = list(records), list(references)
    builders = {"comparison": lambda: comparison(records, metric, ci, references),
                "ablation": lambda: ablation(records, metric, ci),
                "background": lambda: _without_intervals(background(records)) if ci else background(records),
                "pairs": lambda: pairs(records, metric), "sanity": lambda: sanity(records),
                "explanations": lambda: explanations(records)}
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise ValueError(f"unknown table {unknown[0]!r} (choose from {', '.join(builders)})")
    return [builders[n]() for n in names]


def _without_intervals(table: Table) -> Table:
    table.footnotes.append("No intervals: the bootstrap over test videos (--ci) is for the test illegal IoU, not "
                           "train/val accuracy.")
    return table
