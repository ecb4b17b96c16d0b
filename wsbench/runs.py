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
from .schema import AnyValue, Bool, Int, ListOf, MapOf, Number, OneOf, Optional, Record, Str

__all__ = [
    "CONFIG_SCHEMA",
    "RESULT_SCHEMA",
    "RecordError",
    "RunRecord",
    "cam_inference",
    "create_run",
    "environment",
    "finish_run",
    "iter_runs",
    "new_run_id",
    "recorded_split_seed",
    "resolve_runs_dir",
]

RUNS_ENV = "WSBENCH_RUNS_DIR"
CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"


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
#: config.json: the keys readers rely on and their types (all optional: old records lack some)
CONFIG_SCHEMA = Record({
    "method": Str(), "method_options": _ANY_MAP, "dataset": Str(), "data_root": Optional(Str()),
    "split_seed": Int(), "seed": Int(), "recipe": _ANY_MAP, "fusion": Optional(_ANY_MAP),
    "dataset_options": _ANY_MAP, "cam_inference": Optional(Record({"scales": ListOf(Number()), "flip": Bool()})),
    "config_hash": Str(), "data_fingerprint": Str(), "classifier": _ANY_MAP, "dataset_info": _ANY_MAP,
    "label": Optional(Str()), "environment": _ANY_MAP,
}, extra=AnyValue())
_SCORES = MapOf(MapOf(Optional(Number())))
#: result.json, likewise
RESULT_SCHEMA = Record({
    "run_id": Str(), "method": Str(), "dataset": Str(), "seed": Int(), "config_hash": Str(),
    "metrics": Record({k: Optional(Number()) for k in ("iou_illegal", "miou", "threshold", "val_iou_illegal",
                                                        "oracle_iou_illegal", "oracle_threshold", "accuracy",
                                                        "stability", "iou_illegal_wsws", "map_stability",
                                                        "map_spread", "val_map_spread")}, extra=AnyValue()),
    "baselines": Record({"foreground_recall": Optional(Number())}, extra=MapOf(Optional(Number()))),
    "accuracy_by_input": _SCORES, "classifier": Record({"path": Str()}, extra=AnyValue()),
    "fusion": Optional(_ANY_MAP), "config": CONFIG_SCHEMA,
    # a run whose classifier is at chance or whose maps are flat (wsbench.collapse.judge)
    "collapse": Record({"reasons": ListOf(OneOf(*REASONS), min_len=1), "accuracy": Optional(Number()),
                        "chance_bound": Optional(Number()), "map_spread": Optional(Number()),
                        "spread_tolerance": Number(), "cause": Str()}, required=("reasons", "cause")),
}, extra=AnyValue())


class RecordError(ValueError):
    """A run record whose JSON parses but whose fields have the wrong types (the message names the key)."""


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
            RecordError: a field of ``config.json`` or ``result.json`` has the wrong type
                (:data:`CONFIG_SCHEMA`, :data:`RESULT_SCHEMA`).
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
        for name, doc, schema in ((CONFIG_FILE, config, CONFIG_SCHEMA), (RESULT_FILE, result, RESULT_SCHEMA)):
            try:
                if doc is not None:
                    schema.check(doc, path / name)
            except UserError as err:
                raise RecordError(str(err)) from None
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


def finish_run(record: RunRecord, result: Mapping[str, Any]) -> RunRecord:
    """Write ``result.json`` (atomically, last) and return the finished record."""
    atomic_write_json(record.path / RESULT_FILE, dict(result))
    record.result = dict(result)
    return record


def recorded_split_seed(config: dict[str, Any]) -> int | None:
    """The ``RunSpec.split_seed`` that reproduces a recorded run's split.

    ``None`` (the data set's default split) when the config records seed 0 without ``resplit``;
    ``resolve`` records that default as 0, and for seeded layouts seed 0 is their default.
    """
    seed = config.get("split_seed") or 0
    return seed if seed or config.get("resplit") else None


def cam_inference(config: dict[str, Any]) -> dict[str, Any]:
    """``cam_scales``/``cam_flip`` keyword arguments of the evaluator from a resolved config."""
    cam = config.get("cam_inference") or {"scales": [1.0], "flip": False}
    return {"cam_scales": tuple(cam["scales"]), "cam_flip": cam["flip"]}


def iter_runs(runs_dir: str | os.PathLike, finished: bool | None = True) -> Iterator[RunRecord]:
    """Run records in ``runs_dir`` sorted by id; directories that are not valid records are skipped.

    A record whose JSON is unreadable (half-written, foreign) is skipped silently; one whose
    fields have the wrong types is skipped with a warning naming the file and the key, so one bad
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
