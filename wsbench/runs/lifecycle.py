"""A run's lifecycle, the same for a CAM run (:mod:`wsbench.pipeline`) and a distilled one (:mod:`wsbench.distill`):
start it or resume it (:func:`start_run`), assemble its scored result (:func:`run_result`), record it
(:func:`~wsbench.runs.finish_run`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from .checks import is_distilled
from .records import RunRecord, create_run, iter_runs

__all__ = ["latest_run", "run_result", "same_run", "start_run"]


def same_run(record: RunRecord, config: Mapping[str, Any]) -> bool:
    """Whether ``record`` ran ``config``: the same configuration hash on data with the same fingerprint, and
    both distilled or both not.

    Records made before data fingerprints were recorded never match (their data cannot be vouched for).
    """
    return (record.config.get("config_hash") == config["config_hash"]
            and record.config.get("data_fingerprint") == config.get("data_fingerprint")
            and is_distilled(record.config) == is_distilled(config))


def latest_run(runs_dir: str | os.PathLike, match: Callable[[RunRecord], bool],
               finished: bool | None = True) -> RunRecord | None:
    """The latest run (by id) in ``runs_dir`` that ``match`` accepts, or ``None``.

    Args:
        runs_dir: the runs directory.
        match: which records count.
        finished: as :func:`~wsbench.runs.iter_runs`: only finished runs, only unfinished ones (``False``) or
            both (``None``).
    """
    found = [r for r in iter_runs(runs_dir, finished=finished) if match(r)]
    return found[-1] if found else None


def start_run(runs_dir: str | os.PathLike, config: Mapping[str, Any], resume: bool = False) -> RunRecord:
    """Create a run's record and write its ``config.json``; with ``resume``, reopen the latest unfinished run
    that ran the same configuration (:func:`same_run`) instead, if there is one.

    Args:
        runs_dir: the runs directory.
        config: the run's resolved configuration (``config_hash``, ``data_fingerprint``).
        resume: look for an unfinished run to continue.

    Returns:
        The unfinished record.
    """
    unfinished = latest_run(runs_dir, lambda r: same_run(r, config), finished=False) if resume else None
    return create_run(runs_dir, config, run_id=unfinished.run_id if unfinished else None)


def run_result(record: RunRecord, evaluation: Mapping[str, Any], data_timings: Mapping[str, float],
               started: float, own_timings: Mapping[str, float], **entries: Any) -> dict[str, Any]:
    """A scored run's ``result.json``: who it is (from its config), what the evaluator measured, its own
    entries, its timings and its config.

    Args:
        record: the unfinished run.
        evaluation: :func:`wsbench.evaluate.evaluate_maps`'s result (``metrics``, ``baselines``, ``curves``,
            ``counts``, ``fusion``, ``timings``).
        data_timings: the prepared data's ``timings`` (``frames``, ``flow``).
        started: :func:`time.perf_counter` when the run started (for ``timings.total``).
        own_timings: the run's own stages in seconds (``train``, ...), first in ``timings``.
        **entries: further entries; ``metrics`` replaces the evaluator's.

    Returns:
        The result, ready for :func:`~wsbench.runs.finish_run`.
    """
    config = record.config
    result = {"run_id": record.run_id, "method": config["method"], "dataset": config["dataset"],
              "seed": config["seed"], "config_hash": config["config_hash"], "metrics": evaluation["metrics"],
              "baselines": evaluation["baselines"], "curves": evaluation["curves"], "counts": evaluation["counts"],
              "fusion": evaluation["fusion"]}
    result.update(entries)
    result["timings"] = {**own_timings, "cache": round(data_timings["frames"], 3),
                         "flow": round(data_timings["flow"], 3), "maps": evaluation["timings"]["maps"],
                         "maps_frames_per_second": evaluation["timings"]["maps_frames_per_second"],
                         "total": round(time.perf_counter() - started, 3)}
    result["config"] = config
    return result
