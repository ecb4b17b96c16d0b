"""Running a planned suite one run after another, its status lines, and its distill stages."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..collapse import warning_text
from ..progress import no_bars_unless
from ..runs import RunRecord
from .plan import PlannedRun, plan_suite, suite_record
from .spec import SuiteRun, SuiteSpec, _distill_options

__all__ = ["distill_stages", "done_line", "finished_line", "run_suite"]


def finished_line(label: str, record: RunRecord) -> str:
    """The status line of a run that just finished: its illegal IoU and wall time, and whether it collapsed."""
    m = (record.result or {}).get("metrics", {})
    iou = m.get("iou_illegal")
    return (f"{label}: IoU {iou if iou is None else f'{iou:.4f}'} ({record.finished_result['timings']['total']:.0f} s)"
            + _collapse_tail(record))


def done_line(label: str, record: RunRecord) -> str:
    """The status line of a run finished before: its id, and whether it collapsed."""
    return f"{label}: done before ({record.run_id})" + _collapse_tail(record)


def _collapse_tail(record: RunRecord) -> str:
    """`` ‡ <warning>`` for a collapsed run (:func:`wsbench.collapse.warning_text`), else nothing."""
    flagged = (record.result or {}).get("collapse")
    return f" ‡ {warning_text('this run', flagged)}" if flagged else ""


def run_suite(spec: SuiteSpec, runs_dir: Path, seeds: list[int] | None = None, overrides: dict[str, Any] | None = None,
              progress: bool = True, echo: Callable[[str], None] = print) -> list[RunRecord]:
    """Run every dataset × run × split seed × seed of ``spec`` that has no finished run yet, one after the other.

    Args:
        spec: the suite.
        runs_dir: runs directory.
        seeds: replaces the spec's seeds.
        overrides: ``{"recipe": {...}, "device": ..., "workers": ..., "cache_dir": ...,
            "data_roots": {dataset: path}}`` (data roots replace the spec's ``data_root``).
        progress: progress bars and the runs' recipe notes and time estimates (see
            :func:`wsbench.pipeline.execute`).
        echo: where one-line status messages go.

    Returns:
        The finished run records of the suite (old and new), in spec order.
    """
    from ..runner import run_logged

    records = []
    started = time.perf_counter()
    finished = []
    for planned in plan_suite(spec, runs_dir, seeds, overrides):
        if planned.done is not None:
            echo(done_line(planned.label, planned.done))
            records.append(suite_record(planned))
            finished.append((planned, planned.done))
            continue
        echo(f"{planned.label}: running")
        record = run_logged(planned.run_spec, runs_dir, progress=progress)
        if record is None:  # a torchrun rank other than 0 only trains: rank 0 records and reports
            continue
        echo(finished_line(planned.label, record))
        finished.append((planned, record))
        records.append(record)
    with no_bars_unless(progress):
        records += distill_stages(spec, finished, runs_dir, overrides, echo)
    echo(f"suite {spec.name}: {len(records)} runs, {time.perf_counter() - started:.0f} s")
    return records


def distill_stages(spec: SuiteSpec, finished: list[tuple[PlannedRun, RunRecord]], runs_dir: Path,
                   overrides: dict[str, Any] | None = None, echo: Callable[[str], None] = print,
                   execute: bool = True) -> list[RunRecord]:
    """The distill stages the spec asks for, one after another, once the planned runs are finished.

    Args:
        spec: the suite.
        finished: each planned run (:func:`plan_suite`) with its finished record.
        runs_dir, overrides, echo: as :func:`run_suite`.
        execute: ``False`` only collects the stages finished before (a launcher's jobs ran them)
            and leaves out the others.

    Returns:
        The distilled runs' records (finished now or before).
    """
    stages = [_distill_stage(spec, planned.run, record, runs_dir, overrides or {}, echo, execute)
              for planned, record in finished
              if planned.run is not None and _distill_options(spec, planned.run) is not None]
    return [r for r in stages if r is not None]


def _distill_stage(spec: SuiteSpec, run: SuiteRun, source: RunRecord, runs_dir: Path, overrides: dict[str, Any],
                   echo: Callable[[str], None], execute: bool = True) -> RunRecord | None:
    """Distill ``source`` as the spec asks (skipped when a finished distilled run of that configuration exists;
    ``None`` when there is none and ``execute`` is false)."""
    from ..distill import distill_once, distill_recipe, finished_distilled

    options = dict(_distill_options(spec, run) or {})
    recipe = distill_recipe(options.pop("recipe", "cpu"), **options)
    seed = int(source.config.get("seed", 0))
    label = f"distill {source.run_id} seed {seed}"
    if not execute:
        return finished_distilled(source, runs_dir, recipe, seed)
    record, ran = distill_once(source, runs_dir, recipe, seed, overrides.get("device", "auto"),
                               overrides.get("cache_dir"))
    iou = (record.result or {}).get("metrics", {}).get("iou_illegal")
    echo(f"{label}: " + (f"IoU {iou if iou is None else f'{iou:.4f}'} "
                         f"({record.finished_result['timings']['total']:.0f} s)"
                         if ran else f"done before ({record.run_id})"))
    return record

