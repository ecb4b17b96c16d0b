"""Run records: run ids, the environment a run records, writing and reading a runs directory.

Atomic writes and hashing are :mod:`wsbench.files`'; what a record must hold is :mod:`wsbench.runs.checks`.
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

from ..files import atomic_write_json
from .checks import CONFIG_FILE, RESULT_FILE, RecordError, check_record

__all__ = ["RUNS_ENV", "RunRecord", "SAMPLE_MAPS_FILE", "cam_inference", "create_run", "environment", "finish_run",
           "iter_runs", "load_sample_maps", "new_run_id", "recorded_split_seed", "resolve_runs_dir",
           "save_sample_maps"]

RUNS_ENV = "WSBENCH_RUNS_DIR"
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
    here = Path(__file__).resolve().parents[2]  # the checkout holding wsbench/
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
        config = _json_object(path / CONFIG_FILE, "not a run record")
        result = _json_object(path / RESULT_FILE, "unreadable result") if (path / RESULT_FILE).exists() else None
        check_record(config, result, path)
        return cls(path=path, config=config, result=result)


def _json_object(file: Path, what: str) -> dict[str, Any]:
    """A record file's JSON object, or a one-line ``ValueError``: ``"<file>: <what> (<why>)"``."""
    try:
        value = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise ValueError(f"{file}: {what} ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{file}: {what} (not a JSON object)")
    return value


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

    from ..files import atomic_write

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
