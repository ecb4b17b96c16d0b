"""Tables from stored results: run records → long-form table → the paper's three tables.

Nothing here recomputes a metric; every number comes from a ``result.json``, and everything the
tables say about a method (display name, modules, default options, the fusion it chooses, whether
it trains on clips) comes from ``method_info`` in the run's ``config.json``, written when the run
was made (:func:`wsbench.methods.method_info`). This module imports no method, no trainer and no
torch: only the run records and pandas. A record written before ``method_info`` existed is refused
with one line (``wsbench leaderboard`` first fills it in from the method registry, see
:func:`wsbench.methods.complete_method_info`). The tables:

- **comparison** (paper Table 1): rows data sets, one column per method variant (GradCAM,
  Frame-to-Frame, PuzzleCAM, temporal-consistent CAM first, then any other variant with results),
  plus the all-foreground reference; cells mean ± std ×100 over seeds of a test metric;
- **ablation** (paper Table 2): rows data sets, columns None / Only temporal / Only spatial / Both,
  from the runs of ``cam``, ``puzzlecam`` and ``tccam`` (with ``--no-spatial`` / ``--no-temporal``);
- **background** (paper Table 3): accuracy of the standard classifier (global average pooling +
  linear head, the one ``gradcam`` trains and ``f2f`` explains; the paper's Table 3 is about "a
  standard classifier (ResNet 50)") trained with / without background, tested with / without
  background, on the train and val splits.

A *variant* is everything that determines a run's result except its seed and split seed
(method, options, fusion, data set, recipe, and whether a fixed split was re-split); cells
aggregate the runs of one variant over seeds × split seeds, and a configuration run again with the
same seed is one sample (its latest finished run; a footnote counts the re-runs ignored). Rows of
the comparison are data-set identities (name, resolved root, options, content fingerprint), so runs
on two data roots, or on data changed in between, never share a cell or an all-foreground
reference. Best values are marked ``best`` and second best ``second`` (bold and underlined when
rendered); a method that cannot run on a data set gets ``n/a`` with a footnote. On request
(``ci=True``, ``wsbench leaderboard --ci``) illegal-IoU cells get a 95 % bootstrap interval over
test videos, recomputed from the per-video counts in ``result.json`` by
:func:`wsbench.bootstrap.iou_interval`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd

from .bootstrap import COUNT_KEYS, HISTOGRAMS, RESAMPLES, SEED, difference_interval, iou_interval
from .collapse import REASONS
from .errors import UserError
from .files import config_hash
from .recipes import MOVED_TO_METHODS, Recipe
from .runs import RecordError, RunRecord, load_sample_maps
from .texts import static_after_refusal, threshold_text

__all__ = [
    "ABLATION_COLUMNS",
    "METRICS",
    "SOURCE_KEYS",
    "TABLES",
    "Cell",
    "Table",
    "ablation",
    "ablation_components",
    "background",
    "build_tables",
    "column_label",
    "comparison",
    "grouped",
    "latest_runs",
    "latex_escape",
    "long_form",
    "method_columns",
    "pairs",
    "render",
]

#: built-in methods in the order of the paper's Table 1 (display names come from the runs' records)
PAPER_ORDER = ("gradcam", "f2f", "puzzlecam", "tccam", "cam")
#: columns of the ablation: (spatial module, temporal module) → header
ABLATION_COLUMNS = {(False, False): "None", (False, True): "Only temporal", (True, False): "Only spatial",
                    (True, True): "Both"}
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
TABLES = ("comparison", "ablation", "background")
#: the split each stored metric was measured on
_METRIC_SPLIT = {"iou_illegal": "test", "iou_illegal_per_frame": "test", "miou": "test", "oracle_iou_illegal": "test",
                 "oracle_threshold": "test", "stability": "test", "iou_illegal_wsws": "test", "map_stability": "test",
                 "map_spread": "test", "pxap": "test", "val_iou_illegal": "val", "threshold": "val", "accuracy": "val",
                 "val_map_spread": "val"}
_SEMANTIC = ("method", "method_options", "dataset", "dataset_options", "data_root", "resplit", "recipe", "fusion",
             "cam_inference")
#: what identifies a data set, a comparison row (its files' content fingerprint included: data changed
#: under one root is another data set); not its split, since split seeds are samples pooled in a cell
_DATA = ("dataset", "data_root", "dataset_options", "data_content", "background")
#: recipe fields that decide the foreground (and so the all-foreground reference and the foreground recall)
_BACKGROUND = ("bg_rule", "bg_threshold", "bg_lab_threshold", "bg_threshold_mode", "bg_morph")
#: what a distilled run records of its source run's config (``distill.source_config``): what the stages table
#: groups by, as the comparison groups CAM runs
SOURCE_KEYS = (*_SEMANTIC, "seed", "split_seed", "data_fingerprint", "data_content", "method_info", "label",
               "recipe_name")
_NA = "†"
#: two columns whose stored test-map samples correlate above this on every paired run give "the same maps"
SAME_MAPS = 0.99
#: the mark of a cell whose paired interval to the row's best excludes 0 (``--ci``)
_BELOW = "§"
#: the mark of a cell with a collapsed run (wsbench.collapse): its number is a trivial output's
_COLLAPSED = "‡"


# -- run metadata -----------------------------------------------------------------------------
def _config(record: RunRecord) -> dict[str, Any]:
    return record.config or (record.result or {}).get("config", {})


def _method_info(config: dict[str, Any]) -> dict[str, Any]:
    """The ``method_info`` a run's config records (see :func:`wsbench.methods.method_info`).

    Raises:
        UserError: a record written before ``method_info`` existed (one line).
    """
    info = config.get("method_info")
    if not isinstance(info, dict):
        run = config.get("config_hash") or "?"
        raise UserError(f"run of {config.get('method', '?')!r} (config {run}) was recorded before config.json kept "
                        "method_info, which the tables read; wsbench.methods.complete_method_info(records) takes it "
                        "from the installed methods (wsbench leaderboard does)")
    return info


def _recorded_fusion(fusion: dict[str, Any] | None) -> dict[str, Any] | None:
    """A recorded fusion in the form :meth:`~wsbench.methods.Fusion.as_config` writes (for comparisons):
    ``Fusion``'s defaults filled in (``warp`` true, ``causal`` false) and ``on`` left out while it is ``"maps"``."""
    if not fusion:
        return None
    out = {"warp": True, "causal": False, **fusion}
    if out.get("on") == "maps":
        del out["on"]
    return out


def _is_default(options: dict[str, Any], info: dict[str, Any]) -> bool:
    """Whether every recorded option has its default (under the run's recipe)."""
    defaults = info.get("default_options") or {}
    return all(defaults.get(k, object()) == v for k, v in options.items())


def column_label(result: dict[str, Any]) -> str:
    """How a run is named by default: the method's display name plus its non-default options and fusion.

    Args:
        result: a ``result.json`` (or anything with ``method`` and ``config``; the config's
            ``method_info`` names the method and its defaults).

    Returns:
        e.g. ``TC-CAM --no-spatial`` or ``CAM --fuse 2 mean``.
    """
    config = result.get("config", {})
    method = result.get("method") or config.get("method", "?")
    info = _method_info({"method": method, **config})
    label = info.get("display_name") or method
    options = config.get("method_options", {}) or {}
    # the fusion a method's own options choose (f2f --neighbours 4) is not an extra --fuse
    defaults, default_fusion = info.get("default_options") or {}, _recorded_fusion(info.get("own_fusion"))
    changed = {k: v for k, v in options.items() if defaults.get(k, object()) != v}
    for key, value in sorted(changed.items()):
        flag = key.replace("_", "-")
        label += f" --{flag}" if value is True else f" --no-{flag}" if value is False else f" --{flag} {value}"
    fusion = _recorded_fusion(config.get("fusion", default_fusion))
    if fusion != default_fusion:
        label += (f" --fuse {fusion['neighbours']} {fusion['mode']}" + (" raw" if fusion.get("on") == "raw" else "")
                  if fusion else " --no-fuse")
    return label


def ablation_components(config: dict[str, Any]) -> tuple[bool, bool] | None:
    """The (spatial, temporal) modules a run trained with, or ``None`` if it is not an ablation run.

    Read from the config's ``method_info`` (:meth:`wsbench.methods.Method.modules`): ``cam`` has
    neither, ``puzzlecam`` the spatial one, ``tccam`` what its ``spatial`` and ``temporal`` options
    say. Other methods (GradCAM, Frame-to-Frame, plugins that do not say) read their maps
    differently, so they are not rows of the ablation.
    """
    modules = _method_info(config).get("modules")
    return (bool(modules[0]), bool(modules[1])) if modules else None


def _tick(components: tuple[bool, bool] | None, i: int) -> str:
    """An ablation table's mark for module ``i`` (spatial 0, temporal 1); empty for other methods."""
    return "" if components is None else ("✓" if components[i] else "✗")


def _options_text(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(options.items()))


def _finished_at(record: RunRecord) -> tuple[int, str]:
    try:
        return (record.path / "result.json").stat().st_mtime_ns, record.run_id
    except OSError:
        return 0, record.run_id


def _full_config(record: RunRecord) -> dict[str, Any]:
    config = dict((record.result or {}).get("config") or {})
    config.update(_config(record))
    return _current_form(config)


def _current_form(config: dict[str, Any]) -> dict[str, Any]:
    """A config as wsbench records it now: loss weights that older runs recorded in the recipe
    (:data:`~wsbench.recipes.MOVED_TO_METHODS`) become options of the methods that have them and
    leave the recipe, so an old run and a new one of the same configuration are one variant."""
    recipe = config.get("recipe") or {}
    moved = {k: recipe[k] for k in MOVED_TO_METHODS if k in recipe}
    if not moved:
        return config
    defaults = (config.get("method_info") or {}).get("default_options") or {}
    options = dict(config.get("method_options") or {})
    for key, value in moved.items():
        if key in defaults:
            options.setdefault(key, value)
    return {**config, "recipe": {k: v for k, v in recipe.items() if k not in moved}, "method_options": options}


def _content_of(records: Iterable[RunRecord]) -> dict[str, str]:
    """``data_fingerprint`` → ``data_content`` as the records that have both say.

    A record from before ``data_content`` existed has only the split-including fingerprint; the
    same fingerprint means the same files, so another record's content stands in for it.
    """
    pairs = ((c.get("data_fingerprint"), c.get("data_content")) for c in map(_full_config, records))
    return {fp: content for fp, content in pairs if fp and content}


def _data_identity(config: dict[str, Any], result: dict[str, Any], content_of: dict[str, str]) -> dict[str, Any]:
    """A run's data set identity (:data:`_DATA`): name, resolved root, options, split-free content.

    Records without ``data_content`` take it from ``content_of`` (see :func:`_content_of`), else
    fall back to their ``data_fingerprint`` (which also covers the split).
    """
    ident = {k: config.get(k) for k in _DATA}
    ident["dataset"] = result.get("dataset") or config.get("dataset")
    fingerprint = config.get("data_fingerprint")
    ident["data_content"] = config.get("data_content") or (content_of.get(fingerprint, fingerprint) if fingerprint
                                                           else fingerprint)
    ident["background"] = _background_text(config.get("recipe") or {})
    return ident


def _background_text(recipe: dict[str, Any]) -> str:
    """The foreground a recipe makes, in words (e.g. ``gray > 22``, ``lab > 10 otsu, morph 0``): runs whose
    foreground differs are scored against different references, so they are different comparison rows."""
    full = {**dataclasses.asdict(Recipe()), **recipe}
    rule = full["bg_rule"]
    text = f"{rule} > {full['bg_lab_threshold' if rule == 'lab' else 'bg_threshold']:g}"
    if full["bg_threshold_mode"] != "fixed":
        text = f"{rule} {full['bg_threshold_mode']}"
    return text + (f", morph {full['bg_morph']}" if full["bg_morph"] != Recipe().bg_morph else "")


def latest_runs(records: Iterable[RunRecord]) -> tuple[list[RunRecord], int]:
    """One sample per configuration, seed and split seed: the latest finished run of each.

    A configuration is everything in :data:`_SEMANTIC` (method, options, data set and its root and
    options, recipe, fusion, map inference) on one data set identity (its files' content); running
    it again with the same seed and split seed repeats a sample, it does not add one. "Latest" is by the
    time ``result.json`` was written.

    Returns:
        ``(kept records in their original order, number of finished runs ignored as re-runs)``.
    """
    finished = [r for r in records if r.finished]
    content_of = _content_of(finished)
    latest: dict[str, RunRecord] = {}
    for record in sorted(finished, key=_finished_at):
        config = _full_config(record)
        seed = (record.result or {}).get("seed", config.get("seed"))
        latest[config_hash({**_semantic(config), "seed": seed,
                            "split_seed": config.get("split_seed"),
                            "data": _data_identity(config, record.result or {}, content_of)})] = record
    kept = {id(r) for r in latest.values()}
    return [r for r in finished if id(r) in kept], len(finished) - len(latest)


def _semantic(config: dict[str, Any]) -> dict[str, Any]:
    """What makes a configuration (:data:`_SEMANTIC`), plus a two-stage sample's segmenter (:mod:`wsbench.stages`)."""
    semantic = {k: config.get(k) for k in _SEMANTIC}
    if config.get("segmenter") is not None:  # only then, so CAM runs keep their variant hashes
        semantic["segmenter"] = config["segmenter"]
    return semantic


def _reruns_note(ignored: int) -> list[str]:
    if not ignored:
        return []
    return [f"{ignored} re-run(s) of a configuration and seed that already had a finished run were ignored: "
            "each configuration and seed counts once, with its latest finished run."]


def long_form(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per finished run × metric × split.

    Columns: ``run_id, method, label, options, dataset, split, seed, metric, value, config_hash,
    commit`` and ``spatial`` / ``temporal`` (✓/✗, empty for runs outside the ablation),
    ``options_json``, ``default_options`` (every option has its default under the run's recipe),
    ``defaults_json`` (those defaults), ``default_fusion`` (the fusion is the one the method's options
    choose), ``trains_on_clips`` (from the config's ``method_info``),
    ``variant`` (hash of the configuration without the seed and split seed), ``user_label`` (the
    suite's label or empty), ``static_after``, ``background_removal``, ``classifier`` (path of the
    trained classifier), ``recipe`` (JSON), ``split_seed``, ``threshold_source``
    (``metrics.threshold_source``: ``val`` or ``fixed``) and ``data`` (JSON of the data set's
    identity: name, resolved root, options and content fingerprint). Every finished run has rows,
    re-runs included (the tables count only the latest of each configuration and seed, see
    :func:`latest_runs`). Metrics: the test and val metrics of ``result.json``, the
    ``all_foreground`` and ``empty`` references, and ``accuracy:original`` /
    ``accuracy:foreground`` on train and val.
    """
    rows = []
    records = list(records)
    content_of = _content_of(r for r in records if r.result)
    for record in records:
        r = record.result
        if not r:
            continue  # unfinished: result.json is written last
        config = _full_config(record)
        method = r.get("method") or config.get("method")
        options = config.get("method_options", {}) or {}
        info = _method_info({"method": method, **config})
        comps = ablation_components({"method": method, **config})
        semantic = _semantic(config)
        base = {"run_id": record.run_id, "method": method,
                "label": config.get("label") or column_label({"method": method, "config": config}),
                "user_label": config.get("label") or "", "options": _options_text(options),
                "options_json": json.dumps(options, sort_keys=True),
                "default_options": _is_default(options, info),
                "defaults_json": json.dumps(info.get("default_options") or {}, sort_keys=True),
                "default_fusion": _recorded_fusion(config.get("fusion")) == _recorded_fusion(info.get("own_fusion")),
                "trains_on_clips": bool(info.get("trains_on_clips")),
                "trained_by": (config.get("classifier") or {}).get("method"),
                "dataset": r.get("dataset") or config.get("dataset"), "seed": r.get("seed", config.get("seed")),
                "config_hash": r.get("config_hash") or config.get("config_hash"),
                "commit": (config.get("environment") or {}).get("git_commit"),
                "spatial": _tick(comps, 0), "temporal": _tick(comps, 1),
                "variant": config_hash(semantic),
                "static_after": bool((config.get("dataset_info") or {}).get("static_after", False)),
                "background_removal": (config.get("recipe") or {}).get("background_removal", True),
                "classifier": (r.get("classifier") or {}).get("path"),
                "split_seed": config.get("split_seed"),
                "threshold_source": (r.get("metrics") or {}).get("threshold_source") or "",
                "collapse": ",".join((r.get("collapse") or {}).get("reasons") or []),
                "data": json.dumps(_data_identity(config, r, content_of), sort_keys=True),
                "recipe": json.dumps({**(config.get("recipe") or {}), "data_root": config.get("data_root"),
                                      "split": "seeded" if config.get("resplit") else "default",
                                      **({"cam_inference": config["cam_inference"]}
                                         if config.get("cam_inference") else {}),
                                      **{f"segmenter.{k}": v for k, v in (config.get("segmenter") or {}).items()}},
                                     sort_keys=True)}
        for metric, value in (r.get("metrics") or {}).items():
            if metric in _METRIC_SPLIT and (value is None or isinstance(value, (int, float))):
                split = _METRIC_SPLIT[metric]
                name = {"val_iou_illegal": "iou_illegal", "val_map_spread": "map_spread"}.get(metric, metric)
                rows.append({**base, "split": split, "metric": name, "value": value})
        for name, values in (r.get("baselines") or {}).items():
            if not isinstance(values, dict):  # a single number, e.g. foreground_recall
                rows.append({**base, "split": "test", "metric": name, "value": values})
                continue
            for metric, value in values.items():
                rows.append({**base, "split": "test", "metric": f"{name}:{metric}", "value": value})
        for kind, splits in (r.get("accuracy_by_input") or {}).items():
            for split, value in splits.items():
                rows.append({**base, "split": split, "metric": f"accuracy:{kind}", "value": value})
    columns = ["run_id", "method", "label", "options", "dataset", "split", "seed", "metric", "value", "config_hash",
               "commit", "spatial", "temporal", "variant", "user_label", "options_json", "default_options",
               "defaults_json", "default_fusion", "trains_on_clips", "trained_by", "static_after",
               "background_removal", "classifier", "recipe", "split_seed", "threshold_source", "data", "collapse"]
    return pd.DataFrame(rows, columns=columns)


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


# -- tables -----------------------------------------------------------------------------------
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

    @property
    def text(self) -> str:
        """``37.84 ± 1.20``, ``37.84`` (one run), ``37.84 ± 1.20 [35.1, 40.3]`` (interval), ``n/a†``, ``–``;
        ``‡`` after the number when runs of the cell collapsed (see the table's footnote)."""
        if self.mean is None:
            return f"n/a{_NA}" if self.note == "n/a" else self.note
        text = f"{self.mean:.2f}" if self.std is None else f"{self.mean:.2f} ± {self.std:.2f}"
        if self.ci_low is not None and self.ci_high is not None:
            text += f" [{self.ci_low:.1f}, {self.ci_high:.1f}]"
        return text + (_BELOW if self.below_best else "") + (_COLLAPSED if self.collapsed else "")


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

    Cells with a collapsed run are not ranked.
    """
    numeric = [(c, round(c.mean, 2)) for c in cells if c.mean is not None and not c.collapsed]
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


def comparison(records: Iterable[RunRecord], metric: str = "iou_illegal", ci: bool = False) -> Table:
    """Paper Table 1: rows data sets, columns method variants plus the all-foreground reference.

    Args:
        records: finished runs (unfinished ones are ignored).
        metric: a key of :data:`METRICS` (measured on test, threshold chosen on val).
        ci: add each method cell's 95 % bootstrap interval over test videos (illegal IoU only; see
            :func:`wsbench.bootstrap.iou_interval`).

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
    for data, group in df.groupby("data", sort=False):
        dataset = group.dataset.iloc[0]
        static_after = bool(group.static_after.any())
        cells, selections = [], []
        for column in columns:
            variants = [v for v, n in names.items() if n == column]
            sel = values[(values.data == data) & values.variant.isin(variants)].drop_duplicates("run_id")
            selections.append(sel)
            cell = _cell(sel)
            if intervals:
                intervals.fill(cell, sel, column)
            if cell.mean is None and not (group.variant.isin(variants)).any():
                row = df[df.variant == variants[0]].iloc[0]
                why = static_after_refusal(dataset) if static_after and row.trains_on_clips else None
                if why:
                    cell.note = "n/a"
                    reasons.setdefault(why, []).append(column)
            cells.append(cell)
        _highlight(cells, higher)
        if intervals:
            intervals.mark_below_best(cells, selections)
        same_maps.check(rows[data], columns, selections)
        # the references depend on the data set's test split only: one value per seed and split seed
        cells.append(_cell(ref[ref.data == data].drop_duplicates(["seed", "split_seed", "value"])))
        cells.append(_cell(recall[recall.data == data].drop_duplicates(["seed", "split_seed", "value"])))
        table.rows.append((rows[data], cells))
        if metric == "stability":  # constant maps win the mask stability: never show it without their content
            spread = df[(df.metric == "map_spread") & (df.split == "test") & (df.data == data)]
            table.rows.append((f"{rows[data]}: map spread ×100",
                               [_cell(spread[spread.variant.isin([v for v, n in names.items() if n == column])]
                                      .drop_duplicates("run_id")) for column in columns] + [Cell(), Cell()]))
    table.columns = columns + ["all-foreground (reference)", "foreground recall (ceiling)"]
    table.caption = (f"Comparison: {header} ×100 on test, {_threshold_caption(df, metric)} "
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
        table.caption += (f" {', '.join(explained)} explain{'s' if len(explained) == 1 else ''} a standard "
                          "classifier (global average pooling + linear head) trained apart from the CAM network, as "
                          "in the paper, so a difference to CAM compares two classifiers, not two ways of reading "
                          "one.")
    table = _with_notes(table, reasons, ignored, intervals)
    table.footnotes += same_maps.notes
    return table


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

    def _sample(self, run_id: str) -> tuple[list[str], Any] | None:
        if run_id not in self.samples:
            try:
                self.samples[run_id] = load_sample_maps(self.records[run_id])
            except RecordError as err:
                self.samples[run_id] = None
                self.notes.append(f"No duplicate check for run {run_id}: {err}.")
        return self.samples[run_id]

    def check(self, row: str, columns: list[str], selections: list[pd.DataFrame]) -> None:
        """Add a footnote for every pair of the row's ``columns`` (their runs: ``selections``) with the same maps."""
        for i, a in enumerate(columns):
            for j in range(i + 1, len(columns)):
                both = selections[i].merge(selections[j], on=["seed", "split_seed"], suffixes=("_a", "_b"))
                values = []
                for run_a, run_b in zip(both.run_id_a, both.run_id_b, strict=True):
                    sa, sb = self._sample(run_a), self._sample(run_b)
                    if sa is not None and sb is not None and sa[0] == sb[0]:
                        values.append(_sample_correlation(sa[1], sb[1]))
                if values and min(values) > SAME_MAPS:
                    self.notes.append(
                        f"Same maps: {a} and {columns[j]} on {row} (Pearson correlation of their stored test-map "
                        f"samples at least {min(values):.4f} over {len(values)} run(s) paired by seed): one column "
                        "repeats the other, so one is not what its name says.")


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
                why = static_after_refusal(group.dataset.iloc[0]) if temporal and group.static_after.any() else None
                if why:
                    cell.note = "n/a"
                    reasons.setdefault(why, []).append(column)
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
                 ci: bool = False) -> list[Table]:
    """The named tables (``comparison``, ``ablation``, ``background``, ``pairs``) from the same records.

    ``ci`` adds bootstrap intervals over test videos to the comparison and ablation (see
    :func:`comparison`); the background table's accuracies get a footnote saying they have none.
    """
    records = list(records)
    builders = {"comparison": lambda: comparison(records, metric, ci),
                "ablation": lambda: ablation(records, metric, ci),
                "background": lambda: _without_intervals(background(records)) if ci else background(records),
                "pairs": lambda: pairs(records, metric)}
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise ValueError(f"unknown table {unknown[0]!r} (choose from {', '.join(builders)})")
    return [builders[n]() for n in names]


def _without_intervals(table: Table) -> Table:
    table.footnotes.append("No intervals: the bootstrap over test videos (--ci) is for the test illegal IoU, not "
                           "train/val accuracy.")
    return table


# -- rendering --------------------------------------------------------------------------------
def _markdown(table: Table) -> str:
    from tabulate import tabulate

    def fmt(cell: Cell) -> str:
        return {"best": f"**{cell.text}**", "second": f"<u>{cell.text}</u>"}.get(cell.mark or "", cell.text)

    headers = list(table.columns)
    if table.groups:
        spans = [g for g, n in table.groups for _ in range(n)]
        headers = [f"{g.removeprefix('tested ')}: {c}" for g, c in zip(spans, headers, strict=True)]
    body = [[name] + [fmt(c) for c in cells] for name, cells in table.rows]
    text = f"**{table.caption}**\n\n" + tabulate(body, headers=[table.corner] + headers, tablefmt="github",
                                                  disable_numparse=True)
    return text + "".join(f"\n\n{note}" for note in table.footnotes)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$", "✓": r"\checkmark{}",
                  "✗": r"$\times$", "†": r"\textsuperscript{\dag}", "‡": r"\textsuperscript{\ddag}",
                  "§": r"\S{}", "–": "--",
                  "<": r"\textless{}",
                  ">": r"\textgreater{}"}


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
            for group, column, cell in zip(spans, table.columns, cells, strict=True):
                rows.append({"table": table.name, "row": name, "column": f"{group}: {column}" if group else column,
                             "text": cell.text, "mean": None if cell.mean is None else round(cell.mean, 4),
                             "std": None if cell.std is None else round(cell.std, 4), "runs": cell.n,
                             "seeds": cell.seeds, "split_seeds": cell.split_seeds,
                             "ci_low": None if cell.ci_low is None else round(cell.ci_low, 4),
                             "ci_high": None if cell.ci_high is None else round(cell.ci_high, 4),
                             "mark": cell.mark or "", "collapsed": cell.collapsed})
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
        writer = csv.DictWriter(out, ["table", "row", "column", "text", "mean", "std", "runs", "seeds", "split_seeds",
                                      "ci_low", "ci_high", "mark", "collapsed"], lineterminator="\n")
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
