"""Tables from stored results: run records → long-form table → the paper's three tables.

Nothing here recomputes a metric; every number comes from a ``result.json``. The tables:

- **comparison** (paper Table 1): rows data sets, one column per method variant (GradCAM,
  Frame-to-Frame, PuzzleCAM, temporal-consistent CAM first, then any other variant with results),
  plus the all-foreground reference; cells mean ± std ×100 over seeds of a test metric;
- **ablation** (paper Table 2): rows data sets, columns None / Only temporal / Only spatial / Both,
  from the runs of ``cam``, ``puzzlecam`` and ``tccam`` (with ``--no-spatial`` / ``--no-temporal``);
- **background** (paper Table 3): accuracy of the plain classifier (the one ``cam``, ``gradcam``
  and ``f2f`` share) trained with / without background, tested with / without background, on the
  train and val splits.

A *variant* is everything that determines a run's result except its seed (method, options,
fusion, data set, recipe); cells aggregate the seeds of one variant. Best values are marked
``best`` and second best ``second`` (bold and underlined when rendered); a method that cannot run
on a data set gets ``n/a`` with a footnote.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections import Counter
from typing import Any, Iterable

import pandas as pd

from .runs import RunRecord, config_hash

__all__ = [
    "ABLATION_COLUMNS",
    "METRICS",
    "TABLES",
    "Cell",
    "Table",
    "ablation",
    "ablation_components",
    "background",
    "build_tables",
    "column_label",
    "comparison",
    "latex_escape",
    "long_form",
    "method_columns",
    "render",
]

#: built-in methods in the order of the paper's Table 1, with their display names
METHOD_NAMES = {"gradcam": "GradCAM", "f2f": "Frame-to-Frame", "puzzlecam": "PuzzleCAM",
                "tccam": "TC-CAM", "cam": "CAM"}
#: columns of the ablation: (spatial module, temporal module) → header
ABLATION_COLUMNS = {(False, False): "None", (False, True): "Only temporal", (True, False): "Only spatial",
                    (True, True): "Both"}
#: metrics the comparison and ablation can show: name → (header text, higher is better)
METRICS = {"iou_illegal": ("illegal IoU", True), "miou": ("mIoU", True),
           "oracle_iou_illegal": ("oracle illegal IoU (best threshold on test)", True),
           "stability": ("temporal stability (IoU of flow-warped consecutive masks)", True),
           "iou_illegal_wsws": ("illegal IoU, authors' code's protocol (argmax, mean per-frame IoU)", True)}
TABLES = ("comparison", "ablation", "background")
#: the split each stored metric was measured on
_METRIC_SPLIT = {"iou_illegal": "test", "miou": "test", "oracle_iou_illegal": "test", "oracle_threshold": "test",
                 "stability": "test", "iou_illegal_wsws": "test",
                 "val_iou_illegal": "val", "threshold": "val", "accuracy": "val"}
_SEMANTIC = ("method", "method_options", "dataset", "dataset_options", "data_root", "split_seed", "recipe", "fusion",
             "cam_inference")
_NA = "†"


# -- run metadata -----------------------------------------------------------------------------
def _config(record: RunRecord) -> dict[str, Any]:
    return record.config or (record.result or {}).get("config", {})


def _method_defaults(method: str, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Default options of a registered method and the fusion it chooses itself with ``options``.

    Returns empty options and ``None`` for an unknown method or options it cannot be built with.
    """
    from .methods import METHODS, create_method

    if method not in METHODS:
        return {}, None
    try:
        defaults = dataclasses.asdict(create_method(method).options)
        fusion = create_method(method, **(options or {})).fusion()
    except Exception:  # a plugin whose defaults cannot be built, or options from another version
        return {}, None
    return defaults, dataclasses.asdict(fusion) if fusion else None


def column_label(result: dict[str, Any]) -> str:
    """How a run is named by default: the method's display name plus its non-default options and fusion.

    Args:
        result: a ``result.json`` (or anything with ``method`` and ``config``).

    Returns:
        e.g. ``TC-CAM --no-spatial`` or ``CAM --fuse 2 mean``.
    """
    config = result.get("config", {})
    method = result.get("method") or config.get("method", "?")
    label = METHOD_NAMES.get(method, method)
    options = config.get("method_options", {}) or {}
    # the fusion a method's own options choose (f2f --neighbours 4) is not an extra --fuse
    defaults, default_fusion = _method_defaults(method, options)
    changed = {k: v for k, v in options.items() if defaults.get(k, object()) != v}
    for key, value in sorted(changed.items()):
        flag = key.replace("_", "-")
        label += f" --{flag}" if value is True else f" --no-{flag}" if value is False else f" --{flag} {value}"
    fusion = config.get("fusion", default_fusion)
    if fusion != default_fusion:
        label += f" --fuse {fusion['neighbours']} {fusion['mode']}" if fusion else " --no-fuse"
    return label


def ablation_components(method: str, options: dict[str, Any]) -> tuple[bool, bool] | None:
    """The (spatial, temporal) modules a run trained with, or ``None`` if it is not an ablation run.

    ``cam`` has neither, ``puzzlecam`` the spatial one, ``tccam`` what its ``spatial`` and
    ``temporal`` options say. Other methods (GradCAM, Frame-to-Frame, plugins) read their maps
    differently, so they are not rows of the ablation.
    """
    if method == "cam":
        return False, False
    if method == "puzzlecam":
        return True, False
    if method == "tccam":
        return bool(options.get("spatial", True)), bool(options.get("temporal", True))
    return None


def _cannot_run(method: str, options: dict[str, Any], static_after: bool, dataset: str) -> str | None:
    """Why ``method`` cannot run on a data set (the check :func:`wsbench.pipeline.resolve` makes)."""
    from .methods import METHODS, create_method
    from .pipeline import incompatibility

    if method not in METHODS:
        return None
    try:
        return incompatibility(create_method(method, **options), static_after, dataset)
    except Exception:
        return None


def _options_text(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(options.items()))


def long_form(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per finished run × metric × split.

    Columns: ``run_id, method, label, options, dataset, split, seed, metric, value, config_hash,
    commit`` and ``spatial`` / ``temporal`` (✓/✗, empty for runs outside the ablation),
    ``variant`` (hash of the configuration without the seed), ``user_label`` (the suite's label or
    empty), ``static_after``, ``background_removal``, ``classifier`` (path of the trained classifier)
    and ``recipe`` (JSON). Metrics: the test and val metrics of ``result.json``, the
    ``all_foreground`` and ``empty`` references, and ``accuracy:original`` / ``accuracy:foreground``
    on train and val.
    """
    rows = []
    for record in records:
        r = record.result
        if not r:
            continue  # unfinished: result.json is written last
        config = dict(r.get("config", {}))
        config.update(_config(record))
        method = r.get("method") or config.get("method")
        options = config.get("method_options", {}) or {}
        comps = ablation_components(method, options)
        tick = lambda on: "" if comps is None else ("✓" if on else "✗")  # noqa: E731
        semantic = {k: config.get(k) for k in _SEMANTIC}
        base = {"run_id": record.run_id, "method": method,
                "label": config.get("label") or column_label({"method": method, "config": config}),
                "user_label": config.get("label") or "", "options": _options_text(options),
                "options_json": json.dumps(options, sort_keys=True),
                "trained_by": (config.get("classifier") or {}).get("method"),
                "dataset": r.get("dataset") or config.get("dataset"), "seed": r.get("seed", config.get("seed")),
                "config_hash": r.get("config_hash") or config.get("config_hash"),
                "commit": (config.get("environment") or {}).get("git_commit"),
                "spatial": tick(comps and comps[0]), "temporal": tick(comps and comps[1]),
                "variant": config_hash(semantic),
                "static_after": bool((config.get("dataset_info") or {}).get("static_after", False)),
                "background_removal": (config.get("recipe") or {}).get("background_removal", True),
                "classifier": (r.get("classifier") or {}).get("path"),
                "recipe": json.dumps({**(config.get("recipe") or {}), "data_root": config.get("data_root"),
                                      "split_seed": config.get("split_seed"),
                                      **({"cam_inference": config["cam_inference"]}
                                         if config.get("cam_inference") else {})}, sort_keys=True)}
        for metric, value in (r.get("metrics") or {}).items():
            if metric in _METRIC_SPLIT and (value is None or isinstance(value, (int, float))):
                split = _METRIC_SPLIT[metric]
                name = "iou_illegal" if metric == "val_iou_illegal" else metric
                rows.append({**base, "split": split, "metric": name, "value": value})
        for name, values in (r.get("baselines") or {}).items():
            for metric, value in values.items():
                rows.append({**base, "split": "test", "metric": f"{name}:{metric}", "value": value})
        for kind, splits in (r.get("accuracy_by_input") or {}).items():
            for split, value in splits.items():
                rows.append({**base, "split": split, "metric": f"accuracy:{kind}", "value": value})
    columns = ["run_id", "method", "label", "options", "dataset", "split", "seed", "metric", "value", "config_hash",
               "commit", "spatial", "temporal", "variant", "user_label", "options_json", "trained_by", "static_after",
               "background_removal", "classifier", "recipe"]
    return pd.DataFrame(rows, columns=columns)


def _recipe_tags(df: pd.DataFrame, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """variant → the recipe settings in which it differs from its data set's most common recipe."""
    tags: dict[str, str] = {}
    runs = df.drop_duplicates("run_id")
    for _, group in runs.groupby("dataset", sort=False):
        recipes = {v: json.loads(rec) for v, rec in zip(group.variant, group.recipe)}
        for key in ignore:
            for rec in recipes.values():
                rec.pop(key, None)
        common = json.loads(Counter(json.dumps(r, sort_keys=True) for r in recipes.values()).most_common(1)[0][0])
        for variant, rec in recipes.items():
            diff = [f"{k}={rec.get(k)}" for k in sorted(set(rec) | set(common)) if rec.get(k) != common.get(k)]
            tags[variant] = ", ".join(diff)
    return tags


# -- tables -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Cell:
    """One cell of a table: mean and std over seeds (already scaled), or a note.

    Attributes:
        mean: mean over seeds (``None``: no value).
        std: sample standard deviation over seeds (``None`` with one seed).
        n: number of seeds.
        note: ``"n/a"`` (cannot run; see the footnote) or ``"–"`` (not run); used when ``mean`` is None.
        mark: ``"best"`` or ``"second"`` in its row (or column), else ``None``.
    """

    mean: float | None = None
    std: float | None = None
    n: int = 0
    note: str = "–"
    mark: str | None = None

    @property
    def text(self) -> str:
        """``37.84 ± 1.20``, ``37.84`` (one seed), ``n/a†`` or ``–``."""
        if self.mean is None:
            return f"n/a{_NA}" if self.note == "n/a" else self.note
        if self.std is None:
            return f"{self.mean:.2f}"
        return f"{self.mean:.2f} ± {self.std:.2f}"


@dataclasses.dataclass
class Table:
    """A rendered-format-independent table.

    Attributes:
        name: ``comparison``, ``ablation`` or ``background``.
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


def _cell(values: pd.Series, scale: float = 100.0) -> Cell:
    values = values.dropna().astype(float)
    if values.empty:
        return Cell()
    std = float(values.std(ddof=1)) * scale if len(values) > 1 else None
    return Cell(mean=float(values.mean()) * scale, std=std, n=len(values))


def _footnotes(reasons: dict[str, list[str]]) -> list[str]:
    """One footnote per reason, naming the columns it empties."""
    return [f"{_NA} {', '.join(dict.fromkeys(cols))}: {why}" for why, cols in reasons.items()]


def _highlight(cells: list[Cell], higher_better: bool = True, second: bool = True) -> None:
    """Mark the best (and, with ``second``, among three or more values the second best) cells, ties alike."""
    values = sorted({round(c.mean, 2) for c in cells if c.mean is not None}, reverse=higher_better)
    numeric = [c for c in cells if c.mean is not None]
    if not values:
        return
    for c in numeric:
        if round(c.mean, 2) == values[0]:
            c.mark = "best"
        elif second and len(numeric) >= 3 and len(values) > 1 and round(c.mean, 2) == values[1]:
            c.mark = "second"


def _seeds_text(cells: Iterable[Cell]) -> str:
    counts = sorted({c.n for c in cells if c.mean is not None})
    if not counts:
        return "no seeds"
    if counts == [1]:
        return "1 seed (no std)"
    if len(counts) == 1:
        return f"mean ± std over {counts[0]} seeds"
    return f"mean ± std over {counts[0]}–{counts[-1]} seeds (differs per cell)"


def _metric_header(metric: str) -> tuple[str, bool]:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")
    return METRICS[metric]


def _column_order(df: pd.DataFrame) -> list[str]:
    """Variants in table order: the paper's methods with default options first, then the rest."""
    order = {m: i for i, m in enumerate(METHOD_NAMES)}
    runs = df.drop_duplicates("variant")
    keyed = []
    for pos, (_, row) in enumerate(runs.iterrows()):
        default = not row.options or row.options == _options_text(_method_defaults(row.method)[0])
        keyed.append(((order.get(row.method, len(order)), not default, pos), row.variant))
    return [v for _, v in sorted(keyed)]


def _column_names(df: pd.DataFrame) -> dict[str, str]:
    """variant → its comparison column: the suite's label, else the default label plus recipe differences."""
    tags = _recipe_tags(df)
    names: dict[str, str] = {}
    for variant in _column_order(df):
        row = df[df.variant == variant].iloc[0]
        names[variant] = row.user_label or (row.label + (f" [{tags[variant]}]" if tags.get(variant) else ""))
    return names


def method_columns(records: Iterable[RunRecord]) -> list[tuple[str, list[RunRecord]]]:
    """The comparison's method columns in table order, each with its finished runs (all data sets and seeds)."""
    records = [r for r in records if r.finished]
    df = long_form(records)
    if df.empty:
        return []
    by_id = {r.run_id: r for r in records}
    names = _column_names(df)
    runs = df.drop_duplicates("run_id")
    return [(name, [by_id[i] for i in runs[runs.variant.isin([v for v, n in names.items() if n == name])].run_id])
            for name in dict.fromkeys(names.values())]


def comparison(records: Iterable[RunRecord], metric: str = "iou_illegal") -> Table:
    """Paper Table 1: rows data sets, columns method variants plus the all-foreground reference.

    Args:
        records: finished runs (unfinished ones are ignored).
        metric: a key of :data:`METRICS` (measured on test, threshold chosen on val).

    Returns:
        The table; best and second best method per row are marked (the reference is not ranked).
    """
    header, higher = _metric_header(metric)
    df = long_form(records)
    table = Table("comparison", "", f"{header} ×100 {'↑' if higher else '↓'}", [], [])
    if df.empty:
        return table
    names = _column_names(df)
    columns = list(dict.fromkeys(names.values()))
    values = df[(df.metric == metric) & (df.split == "test")]
    ref = df[(df.metric == f"all_foreground:{metric}") & (df.split == "test")]
    reasons: dict[str, list[str]] = {}
    for dataset, group in df.groupby("dataset", sort=False):
        static_after = bool(group.static_after.any())
        cells = []
        for column in columns:
            variants = [v for v, n in names.items() if n == column]
            sel = values[(values.dataset == dataset) & values.variant.isin(variants)]
            cell = _cell(sel.drop_duplicates("run_id").value)
            if cell.mean is None and not (group.variant.isin(variants)).any():
                row = df[df.variant == variants[0]].iloc[0]
                options = json.loads(row.options_json)
                why = _cannot_run(row.method, options, static_after, dataset)
                if why:
                    cell.note = "n/a"
                    reasons.setdefault(why, []).append(column)
            cells.append(cell)
        _highlight(cells, higher)
        # the reference depends on the test split only: one value per data set and seed
        cells.append(_cell(ref[ref.dataset == dataset].drop_duplicates(["seed", "value"]).value))
        table.rows.append((dataset, cells))
    table.columns = columns + ["all-foreground (reference)"]
    chosen = "argmax, no threshold" if metric == "iou_illegal_wsws" else "threshold chosen on val"
    table.caption = (f"Comparison: {header} ×100 on test, {chosen} ({'higher' if higher else 'lower'} "
                     f"is better); {_seeds_text(c for _, cs in table.rows for c in cs)}. Best in bold, second "
                     f"underlined; all-foreground calls every foreground pixel illegal (not ranked).")
    table.footnotes = _footnotes(reasons)
    return table


def _is_plain_variant(method: str, options_json: str, fusion_default: bool) -> bool:
    """An ablation run: its options other than spatial/temporal and its fusion are the defaults."""
    defaults, _ = _method_defaults(method)
    options = json.loads(options_json)
    extra = {k: v for k, v in options.items() if k not in ("spatial", "temporal")}
    return fusion_default and all(defaults.get(k) == v for k, v in extra.items())


def ablation(records: Iterable[RunRecord], metric: str = "iou_illegal") -> Table:
    """Paper Table 2: rows data sets, columns None / Only temporal / Only spatial / Both.

    Uses the runs of ``cam``, ``puzzlecam`` and ``tccam`` whose other options and fusion are the
    defaults. A data set with runs under several recipes gets one row for its most common recipe
    and one for each other recipe that has runs with at least two module settings.

    Args:
        records: finished runs.
        metric: a key of :data:`METRICS`.

    Returns:
        The table; best and second best per row are marked.
    """
    records = list(records)
    header, higher = _metric_header(metric)
    df = long_form(records)
    table = Table("ablation", "", f"{header} ×100 {'↑' if higher else '↓'}", list(ABLATION_COLUMNS.values()), [])
    if df.empty:
        return table
    fusion_default = {rec.run_id: _fusion_is_default(rec) for rec in records if rec.result}
    df = df[df.spatial != ""]
    df = df[[_is_plain_variant(m, o, fusion_default.get(r, True)) for m, o, r in zip(df.method, df.options_json, df.run_id)]]
    if df.empty:
        return table
    tags = _recipe_tags(df)
    df = df.assign(row=[d + (f" [{tags[v]}]" if tags.get(v) else "") for d, v in zip(df.dataset, df.variant)],
                   main=[not tags.get(v) for v in df.variant])
    df = df.sort_values("main", ascending=False, kind="stable")  # the data set's usual recipe first
    values = df[(df.metric == metric) & (df.split == "test")]
    reasons: dict[str, list[str]] = {}
    for row_name, group in df.groupby("row", sort=False):
        if not group.main.iloc[0] and group.spatial.astype(str).add(group.temporal).nunique() < 2:
            continue  # a side recipe with a single module setting (e.g. a classifier for Table 3) ablates nothing
        cells = []
        for (spatial, temporal), column in ABLATION_COLUMNS.items():
            sel = values[(values.row == row_name) & (values.spatial == ("✓" if spatial else "✗"))
                         & (values.temporal == ("✓" if temporal else "✗"))]
            cell = _cell(sel.drop_duplicates("run_id").value)
            if cell.mean is None:
                options = {"spatial": spatial, "temporal": temporal}
                why = _cannot_run("tccam", options, bool(group.static_after.any()), group.dataset.iloc[0])
                if why:
                    cell.note = "n/a"
                    reasons.setdefault(why, []).append(column)
            cells.append(cell)
        _highlight(cells, higher)
        table.rows.append((row_name, cells))
    table.caption = (f"Ablation: {header} ×100 on test with the spatial (PuzzleCAM) and temporal modules on or off "
                     f"({'higher' if higher else 'lower'} is better); "
                     f"{_seeds_text(c for _, cs in table.rows for c in cs)}. Best in bold, second underlined.")
    table.footnotes = _footnotes(reasons)
    return table


def _fusion_is_default(record: RunRecord) -> bool:
    config = _config(record)
    return config.get("fusion") == _method_defaults(config.get("method", ""))[1]


def background(records: Iterable[RunRecord]) -> Table:
    """Paper Table 3: accuracy ×100 of the plain classifier trained with / without background.

    Rows: per data set, the classifier trained on the original frames ("with background",
    ``background_removal = false``) and on background-removed frames ("without background").
    Columns: tested with background (original frames) and without (foreground only), each on the
    train and val splits. A classifier shared by several runs counts once; cells are mean ± std
    over seeds. The best value per column is bold.
    """
    df = long_form(records)
    groups = [("tested with background", 2), ("tested without background", 2)]
    table = Table("background", "", "accuracy ×100 ↑", ["train", "val", "train", "val"], [], groups=groups)
    if df.empty:
        return table
    df = df[(df.trained_by == "cam") & df.metric.str.startswith("accuracy:")]
    df = df.drop_duplicates(["classifier", "metric", "split"])
    if df.empty:
        return table
    tags = _recipe_tags(df, ignore=("background_removal",))
    df = df.assign(row=[d + (f" [{tags[v]}]" if tags.get(v) else "") for d, v in zip(df.dataset, df.variant)])
    for row_name, group in df.groupby("row", sort=False):
        for removal, text in ((False, "trained with background"), (True, "trained without background")):
            sel = group[group.background_removal == removal]
            if sel.empty:
                continue
            cells = [_cell(sel[(sel.metric == f"accuracy:{kind}") & (sel.split == split)].value)
                     for kind in ("original", "foreground") for split in ("train", "val")]
            table.rows.append((f"{row_name}: {text}", cells))
    for j in range(len(table.columns)):  # best only, as the caption says
        _highlight([cells[j] for _, cells in table.rows], second=False)
    table.caption = ("Background bias: before/after accuracy ×100 of the plain classifier (shared by CAM, GradCAM "
                     "and Frame-to-Frame), trained and tested with and without background (higher is better); "
                     f"{_seeds_text(c for _, cs in table.rows for c in cs)}. Best per column in bold.")
    return table


def build_tables(records: Iterable[RunRecord], names: Iterable[str] = TABLES, metric: str = "iou_illegal") -> list[Table]:
    """The named tables (``comparison``, ``ablation``, ``background``) from the same records."""
    records = list(records)
    builders = {"comparison": lambda: comparison(records, metric), "ablation": lambda: ablation(records, metric),
                "background": lambda: background(records)}
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise ValueError(f"unknown table {unknown[0]!r} (choose from {', '.join(TABLES)})")
    return [builders[n]() for n in names]


# -- rendering --------------------------------------------------------------------------------
def _markdown(table: Table) -> str:
    from tabulate import tabulate

    def fmt(cell: Cell) -> str:
        return {"best": f"**{cell.text}**", "second": f"<u>{cell.text}</u>"}.get(cell.mark or "", cell.text)

    headers = list(table.columns)
    if table.groups:
        spans = [g for g, n in table.groups for _ in range(n)]
        headers = [f"{g.removeprefix('tested ')}: {c}" for g, c in zip(spans, headers)]
    body = [[name] + [fmt(c) for c in cells] for name, cells in table.rows]
    text = f"**{table.caption}**\n\n" + tabulate(body, headers=[table.corner] + headers, tablefmt="github",
                                                  disable_numparse=True)
    return text + "".join(f"\n\n{note}" for note in table.footnotes)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$", "✓": r"\checkmark{}",
                  "✗": r"$\times$", "†": r"\textsuperscript{\dag}", "–": "--", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and turn the tables' Unicode symbols into LaTeX (needs amssymb).

    Hyphens stay hyphens: ``--cam`` becomes ``-{}-cam`` (TeX would set ``--`` as an en dash).
    """
    return "".join("-{}" if ch == "-" and text[i + 1:i + 2] == "-" else _LATEX_ESCAPES.get(ch, ch)
                   for i, ch in enumerate(text))


def _latex(table: Table) -> str:
    def fmt(cell: Cell) -> str:
        text = latex_escape(cell.text)
        return {"best": f"\\textbf{{{text}}}", "second": f"\\underline{{{text}}}"}.get(cell.mark or "", text)

    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(table.caption)}}}",
             f"\\label{{tab:wsbench-{table.name}}}", f"\\begin{{tabular}}{{l{'c' * len(table.columns)}}}", "\\toprule"]
    if table.groups:
        parts, rules, start = [""], [], 2
        for text, span in table.groups:
            parts.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(text)}}}")
            rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines.append(" & ".join(parts) + " \\\\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(latex_escape(h) for h in [table.corner] + table.columns) + " \\\\")
    lines.append("\\midrule")
    for name, cells in table.rows:
        lines.append(" & ".join([latex_escape(name)] + [fmt(c) for c in cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.footnotes:
        lines.append("\\par\\smallskip\\footnotesize " + " \\\\ ".join(latex_escape(f) for f in table.footnotes))
    lines.append("\\end{table}")
    return "\n".join(lines)


def _tidy(tables: list[Table]) -> list[dict[str, Any]]:
    rows = []
    for table in tables:
        spans = [g for g, n in (table.groups or []) for _ in range(n)] or [""] * len(table.columns)
        for name, cells in table.rows:
            for group, column, cell in zip(spans, table.columns, cells):
                rows.append({"table": table.name, "row": name, "column": f"{group}: {column}" if group else column,
                             "text": cell.text, "mean": None if cell.mean is None else round(cell.mean, 4),
                             "std": None if cell.std is None else round(cell.std, 4), "seeds": cell.n,
                             "mark": cell.mark or ""})
    return rows


def render(tables: list[Table], fmt: str = "markdown") -> str:
    """Render tables as ``markdown`` (GitHub), ``latex`` (booktabs; needs booktabs and amssymb),
    ``csv`` (one tidy row per cell) or ``json``.

    Args:
        tables: from :func:`build_tables`.
        fmt: output format.

    Returns:
        The text (empty tables are rendered with a one-line note in markdown and LaTeX).
    """
    if fmt == "markdown":
        return "\n\n".join(_markdown(t) if not t.empty else f"**{t.name}**: no finished runs for this table"
                           for t in tables) + "\n"
    if fmt == "latex":
        return "\n\n".join(_latex(t) if not t.empty else f"% {t.name}: no finished runs for this table"
                           for t in tables) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, ["table", "row", "column", "text", "mean", "std", "seeds", "mark"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(_tidy(tables))
        return out.getvalue()
    if fmt == "json":
        payload = [{"name": t.name, "caption": t.caption, "corner": t.corner, "columns": t.columns,
                    "groups": t.groups, "footnotes": t.footnotes,
                    "rows": [{"row": name, "cells": [dataclasses.asdict(c) | {"text": c.text, "note": _json_note(c)}
                                                       for c in cells]}
                             for name, cells in t.rows]} for t in tables]
        return json.dumps(payload, indent=2, ensure_ascii=False, default=_nan_to_none) + "\n"
    raise ValueError(f"unknown format {fmt!r} (markdown, latex, csv, json)")


def _json_note(cell: Cell) -> str | None:
    """A cell's note where it has no value (``n/a``, ``–``), else ``None``."""
    return cell.note if cell.mean is None else None


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    raise TypeError(type(obj).__name__)
