"""Run records: run ids, writing and reading a runs directory (atomic writes and hashing: :mod:`wsbench.files`).

Layout of a runs directory::

    RUNS_DIR/
      <run-id>/config.json        every option with resolved defaults, seed, versions, commit
      <run-id>/result.json        written last, only when the run finished
      <run-id>/maps/ ...          whatever the run stores besides (figures, sweep curves)
      classifiers/<hash>/         trained classifiers shared by runs with the same training config

Every JSON file is written to a temporary file in the same directory and renamed into place, so
a reader never sees half a file and a crash never corrupts a finished result.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import secrets
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .collapse import REASONS
from .errors import UserError
from .files import atomic_write_json
from .recipes import MAX_CAM_SCALE, MOVED_TO_METHODS, Recipe
from .schema import AnyValue, Bool, Int, ListOf, MapOf, Number, OneOf, Optional, Record, Str, from_dataclass
from .texts import BINS

__all__ = [
    "CONFIG_SCHEMA",
    "FUSION_SCHEMA",
    "RESULT_SCHEMA",
    "RecordError",
    "RunRecord",
    "SAMPLE_MAPS_FILE",
    "cam_inference",
    "check_record",
    "create_run",
    "environment",
    "finish_run",
    "is_distilled",
    "iter_runs",
    "load_sample_maps",
    "new_run_id",
    "recorded_split_seed",
    "resolve_runs_dir",
    "save_sample_maps",
]

RUNS_ENV = "WSBENCH_RUNS_DIR"
CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
#: a run's fixed low-resolution sample of test maps (``result.json`` → ``sanity``), for the duplicate check
SAMPLE_MAPS_FILE = "sample_maps.npy"


def resolve_runs_dir(path: str | os.PathLike | None = None) -> Path:
    """The runs directory: ``path`` if given, else ``$WSBENCH_RUNS_DIR``, else ``./runs``."""
    return Path(path or os.environ.get(RUNS_ENV) or "runs")


# -- ids ------------------------------------------------------------------------------------
def new_run_id(method: str, dataset: str) -> str:
    """A unique, sortable run id: ``<UTC time>-<method>-<dataset>-<random>``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = lambda s: "".join(c if c.isalnum() or c in "-_." else "_" for c in s)  # noqa: E731
    return f"{stamp}-{safe(method)}-{safe(dataset)}-{secrets.token_hex(3)}"


# -- environment ------------------------------------------------------------------------------
def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Versions of Python and the packages that affect results, the platform and the git commit."""
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for pkg in ("wsbench", "torch", "torchvision", "timm", "grad-cam", "opencv-python-headless", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git_commit(),
    }


# -- records ----------------------------------------------------------------------------------
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
_SANITY = Record({"sample_maps": Str(), "sample_frames": ListOf(Str(), min_len=1)},
                 required=("sample_maps", "sample_frames"), extra=AnyValue())
#: result.json, likewise
RESULT_SCHEMA = Record({
    "run_id": Str(), "method": Str(), "dataset": Str(), "seed": _SEED, "config_hash": Str(), "metrics": _METRICS,
    "baselines": Record({"foreground_recall": _UNIT}, extra=MapOf(_UNIT)),
    "accuracy_by_input": MapOf(MapOf(_UNIT)), "classifier": Record({"path": Str(), "key": Str()}, extra=AnyValue()),
    "fusion": Optional(FUSION_SCHEMA), "config": CONFIG_SCHEMA, "counts": _COUNTS, "sanity": _SANITY,
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
        distilled = "distill" in config
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
            (_DISTILL_RECIPE if "distill" in inner else _RECIPE).check(inner["recipe"], path / RESULT_FILE,
                                                                        "config.recipe")
    except UserError as err:
        raise RecordError(str(err)) from None


class RecordError(ValueError):
    """A run record whose JSON parses but that is incomplete or has a field of the wrong type or out of range
    (NaN, ±inf, an IoU above 1; the message names the file and the key)."""


@dataclasses.dataclass
class RunRecord:
    """A run directory with its config and, once finished, its result.

    Attributes:
        path: the run directory.
        config: content of ``config.json``.
        result: content of ``result.json``, or ``None`` while unfinished.
    """

    path: Path
    config: dict[str, Any]
    result: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        """The directory name."""
        return self.path.name

    @property
    def finished(self) -> bool:
        """Whether ``result.json`` exists."""
        return self.result is not None

    @property
    def finished_result(self) -> dict[str, Any]:
        """``result`` of a finished run (for code that reads finished runs only).

        Raises:
            ValueError: the run is unfinished (no ``result.json``).
        """
        if self.result is None:
            raise ValueError(f"{self.path}: unfinished run (no {RESULT_FILE})")
        return self.result

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunRecord:
        """Read a run directory.

        Raises:
            RecordError: ``config.json`` or ``result.json`` is incomplete or has a field of the wrong type
                or out of range (:func:`check_record`).
            ValueError: if ``config.json`` is missing, or it or ``result.json`` is not a JSON object.
        """
        path = Path(path)
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
        except (OSError, ValueError, RecursionError) as err:
            raise ValueError(f"{path / CONFIG_FILE}: not a run record ({err})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path / CONFIG_FILE}: not a run record (not a JSON object)")
        result = None
        if (path / RESULT_FILE).exists():
            try:
                result = json.loads((path / RESULT_FILE).read_text())
            except (OSError, ValueError, RecursionError) as err:
                raise ValueError(f"{path / RESULT_FILE}: unreadable result ({err})") from None
            if not isinstance(result, dict):
                raise ValueError(f"{path / RESULT_FILE}: unreadable result (not a JSON object)")
        check_record(config, result, path)
        return cls(path=path, config=config, result=result)


def create_run(runs_dir: str | os.PathLike, config: Mapping[str, Any], run_id: str | None = None) -> RunRecord:
    """Create ``runs_dir/<run-id>/`` and write ``config.json`` into it.

    Args:
        runs_dir: the runs directory (created if missing).
        config: the resolved configuration; it must contain ``method`` and ``dataset``.
        run_id: reuse this id (resuming); a new unique id otherwise.

    Returns:
        The new record (unfinished).
    """
    runs_dir = Path(runs_dir)
    if run_id is not None:
        path = runs_dir / run_id
        path.mkdir(parents=True, exist_ok=True)
    else:
        runs_dir.mkdir(parents=True, exist_ok=True)
        while True:  # mkdir is atomic: two processes never get the same directory
            path = runs_dir / new_run_id(str(config.get("method", "run")), str(config.get("dataset", "data")))
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
    atomic_write_json(path / CONFIG_FILE, dict(config))
    return RunRecord(path=path, config=dict(config))


def save_sample_maps(record: RunRecord, frames: list[str], maps: Any) -> dict[str, Any]:
    """Store a run's sample of test maps beside its record (before ``result.json``).

    Args:
        record: the unfinished run.
        frames: one name per map (``<video key>#<frame index>``), the same for every run on a data set.
        maps: (N, h, w) maps in [0, 1], stored as float16.

    Returns:
        The ``sanity`` entry of ``result.json`` that names the file and the frames.
    """
    import numpy as np

    from .files import atomic_write

    array = np.asarray(maps, np.float16)
    atomic_write(record.path / SAMPLE_MAPS_FILE, lambda f: np.save(f, array, allow_pickle=False))
    return {"sample_maps": SAMPLE_MAPS_FILE, "sample_frames": list(frames)}


def load_sample_maps(record: RunRecord) -> tuple[list[str], Any] | None:
    """A finished run's sample of test maps: ``(frames, (N, h, w) float32 array)``, ``None`` for runs
    recorded without one.

    Raises:
        RecordError: the file is missing, unreadable or does not match its frames, in one line.
    """
    import numpy as np

    sanity = (record.result or {}).get("sanity")
    if not sanity:
        return None
    path = record.path / sanity["sample_maps"]
    try:
        maps = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise RecordError(f"{path}: cannot read the run's sample of test maps ({err})") from None
    if maps.ndim != 3 or len(maps) != len(sanity["sample_frames"]):
        raise RecordError(f"{path}: expected {len(sanity['sample_frames'])} maps (result.json → sanity.sample_frames), "
                          f"got an array of shape {tuple(maps.shape)}")
    return list(sanity["sample_frames"]), maps.astype(np.float32)


def finish_run(record: RunRecord, result: Mapping[str, Any]) -> RunRecord:
    """Write ``result.json`` (atomically, last) and return the finished record."""
    atomic_write_json(record.path / RESULT_FILE, dict(result))
    record.result = dict(result)
    return record


def is_distilled(config: Mapping[str, Any]) -> bool:
    """Whether a run's config records a distill source: a segmenter trained by ``wsbench distill`` on another run.

    Args:
        config: a run's ``config.json`` (:attr:`RunRecord.config`).
    """
    return isinstance(config.get("distill"), dict)


def recorded_split_seed(config: dict[str, Any]) -> int | None:
    """The ``RunSpec.split_seed`` that reproduces a recorded run's split.

    ``None`` (the data set's default split) when the config records seed 0 without ``resplit``;
    ``resolve`` records that default as 0, and for seeded layouts seed 0 is their default.
    """
    seed = config.get("split_seed") or 0
    return seed if seed or config.get("resplit") else None


def cam_inference(config: dict[str, Any]) -> dict[str, Any]:
    """``cam_scales``/``cam_flip``/``cam_combine`` keyword arguments of the evaluator from a resolved config
    (``cam_combine`` is recorded only when it is not ``normalised``, so older records read as they were made)."""
    cam = config.get("cam_inference") or {"scales": [1.0], "flip": False}
    return {"cam_scales": tuple(cam["scales"]), "cam_flip": cam["flip"],
            "cam_combine": cam.get("combine", "normalised")}


def iter_runs(runs_dir: str | os.PathLike, finished: bool | None = True) -> Iterator[RunRecord]:
    """Run records in ``runs_dir`` sorted by id; directories that are not valid records are skipped.

    A record whose JSON is unreadable (half-written, foreign) is skipped silently; one whose
    record is incomplete or has a field of the wrong type or out of range (:func:`check_record`) is
    skipped with a warning naming the file and the key, so one bad
    record never stops a leaderboard.

    Args:
        runs_dir: the runs directory (missing = no runs).
        finished: ``True`` only finished runs, ``False`` only unfinished, ``None`` both.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir() and (p / CONFIG_FILE).exists()):
        try:
            record = RunRecord.load(path)
        except RecordError as err:
            warnings.warn(f"{err}; run skipped", stacklevel=2)
            continue
        except ValueError:
            continue  # half-written or foreign directory
        if finished is None or record.finished == finished:
            yield record
