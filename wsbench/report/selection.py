"""Run selection: a run's recorded configuration as the tables read it, one sample per configuration and
seed (:func:`latest_runs`), and the long-form table of every finished run (:func:`long_form`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..errors import UserError
from ..files import config_hash
from ..recipes import MOVED_TO_METHODS, Recipe
from ..runs import RunRecord

__all__ = ["SOURCE_KEYS", "ablation_components", "column_label", "latest_runs", "long_form"]


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
