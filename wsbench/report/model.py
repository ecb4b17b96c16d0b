"""The table model: :class:`Cell` and :class:`Table`, the metrics, and how runs become rows and columns
(:func:`grouped`, :func:`method_columns`)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable

import pandas as pd

from ..collapse import REASONS
from ..runs import RunRecord
from .selection import _DATA, _reruns_note, latest_runs, long_form

__all__ = ["METRICS", "METRIC_FORMS", "PAPER_ORDER", "Cell", "Table", "grouped", "method_columns"]


#: built-in methods in the order of the paper's Table 1 (display names come from the runs' records)
PAPER_ORDER = ("gradcam", "f2f", "puzzlecam", "tccam", "cam")
#: metrics the comparison and ablation can show: name → (header text, higher is better)
METRICS = {"iou_illegal": ("illegal IoU (pooled)", True),
           "iou_illegal_per_frame": ("illegal IoU (per-frame mean)", True),
           "miou": ("two-class mIoU", True),
           "oracle_iou_illegal": ("oracle illegal IoU (best threshold on test)", True),
           "stability": ("temporal stability (IoU of flow-warped consecutive masks)", True),
           "iou_illegal_wsws": ("illegal IoU, authors' code's protocol (argmax, mean per-frame IoU)", True),
           "map_stability": ("temporal stability of the maps (correlation of flow-warped consecutive maps in the "
                             "foreground; a constant map scores 0)", True),
           "map_spread": ("map spread (std of the map values over the test foreground; 0: a constant map)", True),
           "pxap": ("PxAP (illegal-class pixel average precision, threshold-free)", True)}
#: the sentence every caption adds on how its metric averages over frames
METRIC_FORMS = {
    "iou_illegal": "Pooled: Σ intersection / Σ union over all test frames, so frames with more illegal pixels "
                   "weigh more (the mean of per-frame IoUs is --metric iou_illegal_per_frame).",
    "iou_illegal_per_frame": "Per-frame mean: every test frame's own IoU averaged, a frame with an empty union "
                             "counting 1, as in the authors' code (pooled over frames: --metric iou_illegal).",
    "miou": "Two-class: the mean of the pooled IoU of the illegal class and of the rest of the pixels.",
    "oracle_iou_illegal": "Pooled: Σ intersection / Σ union over all test frames.",
    "stability": "Pooled over all consecutive test frame pairs.",
    "iou_illegal_wsws": "Per-frame mean over the centres of triplets, a frame with an empty union counting 1.",
    "map_stability": "Pooled over all consecutive test frame pairs, each map pair's correlation (negative counts 0).",
    "map_spread": "Pooled over the foreground pixels of all test frames.",
    "pxap": "PxAP (wsolevaluation, CVPR 2020): the area under the precision-recall curve of the illegal class over "
            "the foreground pixels of all test frames pooled: over the 100 map-value thresholds, the recall each "
            "threshold adds times its precision, summed, so no threshold is chosen; the reference is a constant "
            "map (the share of illegal pixels in the foreground).",
}
_NA = "†"
#: the mark of a cell whose paired interval to the row's best excludes 0 (``--ci``)
_BELOW = "§"
#: the mark of a cell with a collapsed run (wsbench.collapse): its number is a trivial output's
_COLLAPSED = "‡"
#: the mark of a cell with a run whose maps failed the randomisation test (wsbench.sanity): they ignore the model
_INSANE = "¶"


@dataclasses.dataclass
class Cell:
    """One cell of a table: mean and std over runs (seeds × split seeds; already scaled), or a note.

    Attributes:
        mean: mean over the runs (``None``: no value).
        std: sample standard deviation over the runs (``None`` with one run).
        n: number of runs.
        note: ``"n/a"`` (cannot run; see the footnote) or ``"–"`` (not run); used when ``mean`` is None.
        mark: ``"best"`` or ``"second"`` in its row (or column), else ``None``.
        seeds: number of distinct training seeds among the runs.
        split_seeds: number of distinct split seeds among the runs.
        ci_low, ci_high: 95 % bootstrap interval over test videos (scaled like ``mean``), or ``None``.
        below_best: with ``--ci``, the paired bootstrap interval of the row's best cell minus this one
            excludes 0 (shown as ``§``).
        collapsed: how many of the runs collapsed (:mod:`wsbench.collapse`); such a cell is marked
            ``‡`` and never best or second.
        collapse_reasons: what failed in them (keys of :data:`wsbench.collapse.REASONS`).
        failed_sanity: how many of the runs failed the randomisation test (:mod:`wsbench.sanity`); such a
            cell is marked ``¶`` and never best or second.
    """

    mean: float | None = None
    std: float | None = None
    n: int = 0
    note: str = "–"
    mark: str | None = None
    seeds: int = 0
    split_seeds: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    below_best: bool = False
    collapsed: int = 0
    collapse_reasons: tuple[str, ...] = ()
    failed_sanity: int = 0

    @property
    def text(self) -> str:
        """``37.84 ± 1.20``, ``37.84`` (one run), ``37.84 ± 1.20 [35.1, 40.3]`` (interval), ``n/a†``, ``–``;
        ``‡`` after the number when runs of the cell collapsed, ``¶`` when one failed the randomisation test (see
        the table's footnotes)."""
        if self.mean is None:
            return f"n/a{_NA}" if self.note == "n/a" else self.note
        text = f"{self.mean:.2f}" if self.std is None else f"{self.mean:.2f} ± {self.std:.2f}"
        if self.ci_low is not None and self.ci_high is not None:
            text += f" [{self.ci_low:.1f}, {self.ci_high:.1f}]"
        return (text + (_BELOW if self.below_best else "") + (_COLLAPSED if self.collapsed else "")
                + (_INSANE if self.failed_sanity else ""))


@dataclasses.dataclass
class Table:
    """A rendered-format-independent table.

    Attributes:
        name: ``comparison``, ``ablation``, ``background`` or ``pairs``.
        caption: one sentence: what the cells are, the arrow, how many seeds.
        corner: header of the row-label column.
        columns: column headers.
        rows: (row header, cells) pairs.
        groups: optional header groups ``[(text, span), ...]`` over ``columns``.
        footnotes: lines printed under the table.
    """

    name: str
    caption: str
    corner: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]
    groups: list[tuple[str, int]] | None = None
    footnotes: list[str] = dataclasses.field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No row has a value."""
        return not any(c.mean is not None for _, cells in self.rows for c in cells)


def _cell(rows: pd.DataFrame, scale: float = 100.0) -> Cell:
    """Mean ± std of the long-form ``rows`` (one per run) that have a value."""
    rows = rows[rows.value.notna()]
    if rows.empty:
        return Cell()
    values = rows.value.astype(float)
    std = float(values.std(ddof=1)) * scale if len(values) > 1 else None
    flagged = rows[rows.collapse != ""]
    reasons = tuple(dict.fromkeys(r for text in flagged.collapse for r in text.split(",")))
    return Cell(mean=float(values.mean()) * scale, std=std, n=len(values), seeds=rows.seed.nunique(dropna=False),
                split_seeds=rows.split_seed.nunique(dropna=False), collapsed=len(flagged), collapse_reasons=reasons)


def _footnotes(reasons: dict[str, list[str]]) -> list[str]:
    """One footnote per reason, naming the columns it empties."""
    return [f"{_NA} {', '.join(dict.fromkeys(cols))}: {why}" for why, cols in reasons.items()]


def _collapse_notes(table: Table) -> list[str]:
    """One footnote per cell with a collapsed run: where, how many runs, what failed."""
    notes = []
    for name, cells in table.rows:
        for column, cell in zip(table.columns, cells, strict=False):
            if cell.collapsed:
                what = "; ".join(REASONS.get(r, r) for r in cell.collapse_reasons)
                notes.append(f"{_COLLAPSED} {name}, {column}: {cell.collapsed} of {cell.n} run(s) collapsed ({what}); "
                             "the number is a trivial output's, not ranked (result.json: collapse)")
    return notes


def _highlight(cells: list[Cell], higher_better: bool = True, second: bool = True) -> None:
    """Mark the best (and, with ``second``, among three or more values the second best) cells, ties alike.

    Cells with a collapsed run or one that failed the randomisation test are not ranked.
    """
    numeric = [(c, round(c.mean, 2)) for c in cells if c.mean is not None and not c.collapsed and not c.failed_sanity]
    values = sorted({value for _, value in numeric}, reverse=higher_better)
    if not values:
        return
    for c, value in numeric:
        if value == values[0]:
            c.mark = "best"
        elif second and len(numeric) >= 3 and len(values) > 1 and value == values[1]:
            c.mark = "second"


def _seeds_text(cells: Iterable[Cell]) -> str:
    """How many runs, seeds and split seeds the cells aggregate, e.g. ``mean ± std over 3 seeds, one split``."""
    cells = [c for c in cells if c.mean is not None]
    if not cells:
        return "no seeds"

    def count(values: set[int], word: str) -> str:
        low, high = min(values), max(values)
        return f"{low}{f'–{high}' if high != low else ''} {word}{'' if high == 1 else 's'}"

    runs, seeds, splits = {c.n for c in cells}, {c.seeds for c in cells}, {c.split_seeds for c in cells}
    differs = "differs per cell" if len(runs) > 1 else ""
    if runs == {1}:
        return "1 seed, one split (no std)"
    if splits == {1} and runs == seeds:
        return f"mean ± std over {count(runs, 'seed')}, one split" + (f" ({differs})" if differs else "")
    return (f"mean ± std over {count(runs, 'run')} ({count(seeds, 'seed')} × {count(splits, 'split seed')}"
            + (f"; {differs})" if differs else ")"))


def _metric_header(metric: str) -> tuple[str, bool]:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")
    return METRICS[metric]


def _recipe_tags(df: pd.DataFrame, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """variant → the recipe settings in which it differs from its data set's most common recipe."""
    tags: dict[str, str] = {}
    runs = df.drop_duplicates("run_id")
    for _, group in runs.groupby("dataset", sort=False):
        recipes = {v: json.loads(rec) for v, rec in zip(group.variant, group.recipe, strict=True)}
        for key in ignore:
            for rec in recipes.values():
                rec.pop(key, None)
        common = json.loads(Counter(json.dumps(r, sort_keys=True) for r in recipes.values()).most_common(1)[0][0])
        for variant, rec in recipes.items():
            diff = [f"{k}={rec.get(k)}" for k in sorted(set(rec) | set(common)) if rec.get(k) != common.get(k)]
            tags[variant] = ", ".join(diff)
    return tags


def _column_order(df: pd.DataFrame) -> list[str]:
    """Variants in table order: the paper's methods with default options and recipe first, then the rest."""
    order = {m: i for i, m in enumerate(PAPER_ORDER)}
    tags = _recipe_tags(df)
    runs = df.drop_duplicates("variant")
    keyed = []
    for pos, (_, row) in enumerate(runs.iterrows()):
        main = bool(row.default_options) and not tags.get(row.variant) and not row.user_label
        keyed.append(((not main, order.get(row.method, len(order)), pos), row.variant))
    return [v for _, v in sorted(keyed)]


def _column_names(df: pd.DataFrame, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """variant → its comparison column: the suite's label, else the default label plus recipe differences
    (other than the ``ignore`` keys)."""
    tags = _recipe_tags(df, ignore)
    names: dict[str, str] = {}
    for variant in _column_order(df):
        row = df[df.variant == variant].iloc[0]
        names[variant] = row.user_label or (row.label + (f" [{tags[variant]}]" if tags.get(variant) else ""))
    return names


def method_columns(records: Iterable[RunRecord]) -> list[tuple[str, list[RunRecord]]]:
    """The comparison's method columns in table order, each with its finished runs (all data sets and seeds)."""
    records, _ = latest_runs(records)
    df = long_form(records)
    if df.empty:
        return []
    by_id = {r.run_id: r for r in records}
    names = _column_names(df)
    runs = df.drop_duplicates("run_id")
    return [(name, [by_id[i] for i in runs[runs.variant.isin([v for v, n in names.items() if n == name])].run_id])
            for name in dict.fromkeys(names.values())]


def grouped(records: Iterable[RunRecord]) -> tuple[pd.DataFrame, list[str]]:
    """The comparison's grouping of finished runs, for tables built elsewhere (:mod:`wsbench.stages`).

    Returns:
        ``(frame, footnotes)``: one row per sample kept (the latest finished run of each configuration and
        seed, :func:`latest_runs`) with columns ``run_id``, ``row`` (the data set identity's row name) and
        ``column`` (the configuration's column name, as in :func:`comparison`); the footnotes count the
        re-runs ignored.
    """
    kept, ignored = latest_runs(records)
    df = long_form(kept)
    if df.empty:
        return pd.DataFrame(columns=["run_id", "row", "column"]), _reruns_note(ignored)
    names, rows = _column_names(df, ignore=("data_root", "split_seed")), _data_rows(df)
    runs = df.drop_duplicates("run_id")
    frame = pd.DataFrame({"run_id": list(runs.run_id), "row": [rows[d] for d in runs.data],
                          "column": [names[v] for v in runs.variant]})
    return frame, _reruns_note(ignored)


def _data_rows(df: pd.DataFrame) -> dict[str, str]:
    """data identity (JSON) → row name: the data set's name, plus what differs where one name has several."""
    identities = {d: json.loads(d) for d in dict.fromkeys(df.data)}
    names = {}
    for data, ident in identities.items():
        same_name = [i for i in identities.values() if i["dataset"] == ident["dataset"]]
        varying = [k for k in _DATA if k != "dataset" and len({json.dumps(i.get(k), sort_keys=True)
                                                                 for i in same_name}) > 1]
        names[data] = ident["dataset"] + (f" [{', '.join(f'{k}={ident.get(k)}' for k in varying)}]" if varying else "")
    return names
