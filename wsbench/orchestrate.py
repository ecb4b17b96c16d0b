"""A suite run end to end, as ``wsbench suite`` and :func:`wsbench.api.suite` start it.

The suite is planned once (:func:`wsbench.suite.plan_suite`); :class:`Launch` says who runs the
runs not done yet: this process one after another (:func:`wsbench.suite.run_suite`), ``jobs``
worker processes (:mod:`wsbench.launch`), or one SLURM job per run through submitit
(:mod:`wsbench.slurm`; ``submitit-local``: the same jobs as local processes). Then the distill
stages the spec asks for, and the spec's tables (:func:`suite_tables`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError
from .runs import RunRecord
from .suite import PlannedRun, SuiteSpec

__all__ = ["LAUNCHERS", "Launch", "SuiteOutcome", "launch_suite", "suite_tables"]

#: where a suite's runs are started
LAUNCHERS = ("local", "slurm", "submitit-local")


@dataclasses.dataclass(frozen=True)
class Launch:
    """Who runs a suite's runs, checked when made.

    Attributes:
        launcher: ``local`` (this machine), ``slurm`` (one SLURM job per run) or ``submitit-local``
            (those jobs as local processes).
        jobs: runs at once with ``local`` (1: one after another in this process).
        threads: torch threads per run with ``local`` (``None``: cores // jobs with jobs > 1, else torch's).
        slurm: job resources, a :class:`wsbench.slurm.SlurmOptions` (``None``: the spec's ``[slurm]`` table).
        status: only report each run's state (done, or its job's); submit nothing.
        wait: wait for the submitted jobs, then collect their runs and print the tables.

    Raises:
        UserError: an option that does not go with the launcher.
    """

    launcher: str = "local"
    jobs: int = 1
    threads: int | None = None
    slurm: Any = None
    status: bool = False
    wait: bool = True

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise UserError(f"launcher {self.launcher!r}: choose from {', '.join(LAUNCHERS)}")
        if (self.status or not self.wait) and self.launcher == "local":
            raise UserError("--status and --no-wait go with --launcher slurm (or submitit-local)")
        if self.launcher != "local" and (self.jobs > 1 or self.threads is not None):
            raise UserError(f"--jobs and --threads are for --launcher local; with --launcher {self.launcher} every "
                            "run is its own job (resources: --gpus, --cpus, --tasks or the spec's [slurm] table)")


@dataclasses.dataclass
class SuiteOutcome:
    """What running (or asking about) a suite gave.

    Attributes:
        records: the suite's finished runs, old and new, in spec order, then its distilled runs.
        failures: ``"<run label>: <reason>"`` of each run that did not finish.
        tables: the spec's tables as ``wsbench suite`` prints them (``None``: not made, see ``states``
            and ``submitted``).
        states: with ``Launch(status=True)``: ``(run label, state)`` of every run.
        submitted: with ``Launch(wait=False)``: the jobs queued or running.
    """

    records: list[RunRecord] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    tables: str | None = None
    states: list[tuple[str, str]] | None = None
    submitted: int | None = None


def launch_suite(spec: SuiteSpec, runs_dir: Path, launch: Launch, seeds: list[int] | None = None,
                 overrides: dict[str, Any] | None = None, metric: str = "iou_illegal", progress: bool = True,
                 echo: Callable[[str], None] = print) -> SuiteOutcome:
    """Plan ``spec`` once, run what is not done as ``launch`` says, run its distill stages, make its tables.

    Args:
        spec: the suite (:func:`wsbench.suite.load_spec`).
        runs_dir: the runs directory.
        launch: who runs the runs.
        seeds: replaces the spec's seeds.
        overrides: as :func:`wsbench.suite.run_suite` (``device``, ``workers``, ``cache_dir``, ``data_roots``).
        metric: the tables' comparison and ablation metric.
        progress: progress bars (runs in this process only).
        echo: where status lines go.

    Returns:
        The outcome; failed runs are listed in it, not raised.
    """
    overrides = overrides or {}
    if launch.launcher == "local" and launch.jobs == 1:
        from .suite import run_suite

        if launch.threads is not None:
            import torch

            torch.set_num_threads(launch.threads)
        records = run_suite(spec, runs_dir, seeds=seeds, overrides=overrides, progress=progress, echo=echo)
        return SuiteOutcome(records, tables=suite_tables(records, spec.tables, spec, runs_dir, metric))
    from .suite import plan_suite

    planned = plan_suite(spec, runs_dir, seeds, overrides)
    if launch.launcher == "local":
        outcome = _in_workers(spec, planned, runs_dir, launch, overrides, echo)
    else:
        outcome = _in_jobs(spec, planned, runs_dir, launch, overrides, echo)
    if outcome.states is None and outcome.submitted is None:
        outcome.tables = suite_tables(outcome.records, spec.tables, spec, runs_dir, metric)
    return outcome


def _in_workers(spec: SuiteSpec, planned: list[PlannedRun], runs_dir: Path, launch: Launch,
                overrides: dict[str, Any], echo: Callable[[str], None]) -> SuiteOutcome:
    """``--jobs N``: the runs in N worker processes, then the distill stages here."""
    from .launch import run_parallel, slot_setups
    from .suite import distill_stages, refresh

    setups = slot_setups(launch.jobs, overrides.get("device", "auto"), launch.threads)
    records, failed = run_parallel(planned, runs_dir, launch.jobs, setups, echo=echo)
    finished = [(p, p.done) for p in refresh(planned, runs_dir) if p.done is not None]
    records = list(records) + distill_stages(spec, finished, runs_dir, overrides, echo)
    return SuiteOutcome(records, [f"{f.label}: {f.message}" for f in failed])


def _in_jobs(spec: SuiteSpec, planned: list[PlannedRun], runs_dir: Path, launch: Launch,
             overrides: dict[str, Any], echo: Callable[[str], None]) -> SuiteOutcome:
    """``--launcher slurm`` / ``submitit-local``: one job per run (their state with ``status``), waited for unless
    ``wait`` is false; then the runs and distill stages the jobs finished."""
    from .slurm import SlurmOptions, job_states, submit_suite, wait_for_jobs
    from .suite import distill_stages, refresh, suite_record

    if launch.status:
        return SuiteOutcome(states=job_states(spec, planned, runs_dir))
    cluster = "slurm" if launch.launcher == "slurm" else "local"
    submitted = submit_suite(spec, planned, runs_dir, launch.slurm or SlurmOptions(), cluster, echo=echo)
    if not launch.wait:
        return SuiteOutcome(submitted=len(submitted))
    wait_for_jobs(submitted, cluster, poll_s=10.0 if cluster == "slurm" else 0.5, echo=echo)
    planned = refresh(planned, runs_dir)
    records = [suite_record(p) for p in planned if p.done is not None]
    # each unfinished run once, with its job's state and error
    failures = [f"{label}: {state}" for label, state in job_states(spec, planned, runs_dir)
                if not state.startswith("done (")]
    finished = [(p, p.done) for p in planned if p.done is not None]
    # the jobs ran the distill stages (a failed one failed its job): collect them
    records += distill_stages(spec, finished, runs_dir, overrides, echo, execute=False)
    return SuiteOutcome(records, failures)


def suite_tables(records: list[RunRecord], tables: list[str], suite: SuiteSpec | None = None,
                 runs_dir: Path | None = None, metric: str = "iou_illegal") -> str:
    """A suite's tables as text; ``stages`` (the distill stages) after the others.

    With ``[sweep]`` grids only each swept entry's run chosen on validation is shown
    (:func:`wsbench.suite.apply_sweeps`, which needs ``suite`` and ``runs_dir``).
    """
    from .leaderboard import stages_text, tables_text

    notes: list[str] = []
    if suite is not None and runs_dir is not None:
        from .suite import apply_sweeps

        records, notes = apply_sweeps(suite, list(records), runs_dir)
    parts = []
    names = [t for t in tables if t != "stages"]
    if names:
        text = tables_text(records, names, metric=metric, footnotes=notes)
        parts.append("no finished runs" if text is None else text.rstrip("\n"))
    if "stages" in tables:
        if names:
            parts.append("")
        parts.append(stages_text(records).rstrip("\n"))
    return "\n".join(parts)
