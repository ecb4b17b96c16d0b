"""What a run record holds: the schemas ``config.json`` and ``result.json`` are checked against, and
whether a record is a distilled run's (:func:`is_distilled`, the one test for it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..collapse import REASONS
from ..errors import UserError
from ..recipes import MAX_CAM_SCALE, MOVED_TO_METHODS, Recipe
from ..schema import AnyValue, Bool, Int, ListOf, MapOf, Number, OneOf, Optional, Record, Str, from_dataclass
from ..texts import BINS

__all__ = ["CONFIG_FILE", "CONFIG_SCHEMA", "FUSION_SCHEMA", "RESULT_FILE", "RESULT_SCHEMA", "RecordError",
           "check_record", "is_distilled", "is_reference"]

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"


def is_distilled(config: Mapping[str, Any]) -> bool:
    """Whether a run's config (``config.json``, or a ``result.json``'s ``config``) is a distilled segmenter's:
    it names its source run under ``distill`` (:mod:`wsbench.distill`).

    Args:
        config: the run's configuration.
    """
    return isinstance(config.get("distill"), dict)


def is_reference(config: Mapping[str, Any]) -> bool:
    """Whether a run's config is a supervised reference's (:mod:`wsbench.distill.reference`): it has ``reference``.

    Args:
        config: the run's configuration.
    """
    return isinstance(config.get("reference"), dict)


_ANY_MAP = MapOf(AnyValue())
#: a score or a share in [0, 1]; null where it could not be measured (no GT masks, no flow pairs)
_UNIT = Optional(Number(lo=0, hi=1))
_SEED = Int(0, 2**64 - 1)
#: a temporal fusion as :meth:`wsbench.methods.Fusion.as_config` records it
FUSION_SCHEMA = Record({"neighbours": Int(0), "mode": OneOf("max", "mean"), "warp": Bool(), "causal": Bool(),
                        "on": OneOf("maps", "raw")}, required=("neighbours", "mode"))
#: what the tables read of a method (:func:`wsbench.methods.method_info`)
_METHOD_INFO = Record({"display_name": Optional(Str()), "modules": Optional(ListOf(Bool(), length=2)),
                       "default_options": _ANY_MAP, "own_fusion": Optional(FUSION_SCHEMA),
                       "trains_on_clips": Bool()}, extra=AnyValue())
#: a CAM run's recipe: :class:`~wsbench.recipes.Recipe`'s fields, and the loss weights older runs recorded there
_RECIPE = from_dataclass(Recipe)
_RECIPE.fields.update({k: AnyValue() for k in MOVED_TO_METHODS})
#: a distilled run's recipe (:class:`wsbench.distill.DistillRecipe`, which this layer cannot import): what
#: readers of the record rely on
_DISTILL_RECIPE = Record({"architecture": Str(), "encoder": Str(), "image_size": ListOf(Int(1), length=2)},
                         extra=AnyValue())
_CONFIG_FIELDS = {
    "method": Str(), "method_options": _ANY_MAP, "dataset": Str(), "data_root": Optional(Str()),
    "split_seed": _SEED, "seed": _SEED, "recipe": _ANY_MAP, "fusion": Optional(FUSION_SCHEMA),
    "dataset_options": _ANY_MAP,
    "cam_inference": Optional(Record({"scales": ListOf(Number(lo=1e-6, hi=MAX_CAM_SCALE), min_len=1),
                                      "flip": Bool()}, required=("scales", "flip"))),
    "config_hash": Str(), "data_fingerprint": Str(), "data_content": Str(), "data_parts": MapOf(Optional(Str())),
    "classifier": Record({"method": Str(), "options": _ANY_MAP}, extra=AnyValue()), "dataset_info": _ANY_MAP,
    "label": Optional(Str()), "environment": _ANY_MAP, "method_info": _METHOD_INFO, "resplit": Bool(),
}
#: config.json: the keys readers rely on and their types (old records lack some of the optional ones); a
#: distilled run's ``distill.source_config`` is its source run's config (what the stages table groups by)
CONFIG_SCHEMA = Record({
    **_CONFIG_FIELDS,
    "distill": Record({"source_run": Str(), "source_method": Str(),
                       "source_config": Record(_CONFIG_FIELDS, required=("method", "dataset"), extra=AnyValue())},
                      required=("source_run", "source_method"), extra=AnyValue()),
    "reference": Record({"kind": Str(), "segmenter": _DISTILL_RECIPE}, required=("kind",), extra=AnyValue()),
}, extra=AnyValue())
#: what a finished run's config.json must have (an unfinished one may still be half-made)
_FINISHED_CONFIG = ("method", "dataset", "seed", "recipe")
_METRICS = Record({k: _UNIT for k in ("iou_illegal", "iou_illegal_per_frame", "miou", "val_iou_illegal",
                                      "oracle_iou_illegal", "oracle_threshold", "accuracy", "stability",
                                      "iou_illegal_wsws", "map_stability", "map_spread", "val_map_spread", "pxap")}
                  | {"threshold": Number(lo=0, hi=1), "threshold_source": Str()},
                  required=("iou_illegal", "threshold"), extra=AnyValue())
#: a test video's pixels per map-value bin (the PxAP histograms)
_HISTOGRAM = ListOf(Int(0), length=BINS)
_COUNTS = Record({"val_frames": Int(0), "test_frames": Int(0), "stability_pairs": Int(0),
                  "test_videos": MapOf(Record({"frames": Int(0), "intersection": Number(lo=0), "union": Number(lo=0),
                                               "pxap_pos": _HISTOGRAM, "pxap_neg": _HISTOGRAM},
                                              required=("intersection", "union"), extra=AnyValue()))},
                 extra=AnyValue())
_SANITY = Record({"sample_maps": Str(), "sample_frames": ListOf(Str(), min_len=1),
                  # the randomisation test (wsbench.sanity): the cascade's steps, in order
                  # spearman: the mean |r| over the draws (runs recorded before draws: one signed r)
                  "randomisation": ListOf(Record({"reset": Str(), "spearman": Number(lo=-1, hi=1),
                                                  "draws": ListOf(Number(lo=-1, hi=1), min_len=1)},
                                                 required=("reset", "spearman")), min_len=1),
                  "randomisation_draws": Number(lo=1),
                  "randomisation_passed": Bool(), "randomisation_bound": Number(lo=-1, hi=1)},
                 required=("sample_maps", "sample_frames"), extra=AnyValue())
#: ROAD scores (wsbench.evaluate.faithfulness): changes of a probability, so within [-1, 1]
_ROAD = Number(lo=-1, hi=1)
_EXPLANATIONS = Record({"morf": Optional(_ROAD), "lerf": Optional(_ROAD), "combined": Optional(_ROAD),
                        "frames": ListOf(Str(), min_len=1),
                        "target": Str()}, required=("morf", "lerf", "combined", "frames"), extra=AnyValue())
#: result.json, likewise
RESULT_SCHEMA = Record({
    "run_id": Str(), "method": Str(), "dataset": Str(), "seed": _SEED, "config_hash": Str(), "metrics": _METRICS,
    "baselines": Record({"foreground_recall": _UNIT}, extra=MapOf(_UNIT)),
    "accuracy_by_input": MapOf(MapOf(_UNIT)), "classifier": Record({"path": Str(), "key": Str()}, extra=AnyValue()),
    "fusion": Optional(FUSION_SCHEMA), "config": CONFIG_SCHEMA, "counts": _COUNTS, "sanity": _SANITY,
    "explanations": _EXPLANATIONS,
    "timings": Record({"maps_frames_per_second": Optional(Number(lo=0))}, extra=AnyValue()),
    # a run whose classifier is at chance or whose maps are flat (wsbench.collapse.judge)
    "collapse": Record({"reasons": ListOf(OneOf(*REASONS), min_len=1), "accuracy": Optional(_UNIT),
                        "chance_bound": Optional(Number(finite=True)), "map_spread": Optional(Number(lo=0)),
                        "spread_tolerance": Number(lo=0), "cause": Str()}, required=("reasons", "cause")),
    "distill": Record({"source_run": Str(), "source_method": Str(), "source_seed": Optional(_SEED),
                       "source_iou_illegal": _UNIT, "source_miou": _UNIT,
                       "source_maps_frames_per_second": Optional(Number(lo=0)),
                       "pseudo_labels_train": Record({"iou_illegal": _UNIT}, extra=AnyValue()),
                       "image_size": ListOf(Int(1), length=2)},
                      required=("source_run", "source_method", "image_size"), extra=AnyValue()),
    "reference": Record({"kind": Str(), "budget": MapOf(Int(0)), "image_size": ListOf(Int(1), length=2)},
                        required=("kind", "budget"), extra=AnyValue()),
}, required=("method", "dataset", "seed", "metrics"), extra=AnyValue())


def check_record(config: Any, result: Any, path: str | os.PathLike) -> None:
    """Check a run's ``config.json`` and ``result.json`` (``None`` while unfinished) for types and ranges and,
    once finished, completeness: :data:`CONFIG_SCHEMA`, :data:`RESULT_SCHEMA`, the recipe of a CAM run
    (:class:`~wsbench.recipes.Recipe`'s fields) or of a distilled run, and a distilled run's ``distill``.

    Raises:
        RecordError: the first problem, in one line naming the file and the key.
    """
    path = Path(path)
    try:
        CONFIG_SCHEMA.check(config, path / CONFIG_FILE)
        distilled = is_distilled(config)
        if "recipe" in config:
            (_DISTILL_RECIPE if distilled else _RECIPE).check(config["recipe"], path / CONFIG_FILE, "recipe")
        source = config["distill"].get("source_config") if distilled else None
        if source is not None and "recipe" in source:
            _RECIPE.check(source["recipe"], path / CONFIG_FILE, "distill.source_config.recipe")
        if result is None:
            return
        missing = [key for key in _FINISHED_CONFIG if key not in config]
        if missing:
            raise UserError(f"{path / CONFIG_FILE}: missing key {missing[0]!r} (a finished run records "
                            f"{', '.join(_FINISHED_CONFIG)})")
        RESULT_SCHEMA.check(result, path / RESULT_FILE)
        if distilled and "distill" not in result:
            raise UserError(f"{path / RESULT_FILE}: missing key 'distill' (the run's config.json says it is a "
                            "distilled run)")
        inner = result.get("config")
        if isinstance(inner, dict) and "recipe" in inner:
            (_DISTILL_RECIPE if is_distilled(inner) else _RECIPE).check(inner["recipe"], path / RESULT_FILE,
                                                                        "config.recipe")
    except UserError as err:
        raise RecordError(str(err)) from None


class RecordError(ValueError):
    """A run record whose JSON parses but that is incomplete or has a field of the wrong type or out of range
    (NaN, ±inf, an IoU above 1; the message names the file and the key)."""
