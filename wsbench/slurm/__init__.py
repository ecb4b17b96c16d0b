"""``wsbench suite SPEC --launcher slurm``: one SLURM job per run (or per classifier group) through submitit.

Every job runs :class:`SuiteJob`, a ``submitit.helpers.Checkpointable``: when SLURM preempts it
or its time limit nears, submitit calls :meth:`SuiteJob.checkpoint`, which resubmits the same
job; the requeued job executes its runs again with ``resume=True``, so the classifier training
continues from its last epoch checkpoint and an unfinished run record is finished in place (what
``wsbench run --resume`` does). A job with ``tasks`` > 1 starts that many processes (one per GPU,
``tasks_per_node``) which join one torch.distributed group from submitit's environment, as
``torchrun --nproc_per_node`` would. A job's distill stages (the spec's ``[distill]``) run in it after
its runs, and each task uses ``SLURM_CPUS_PER_TASK`` torch threads.

Everything that goes into a job script is checked first (:func:`check_job_strings`, the spec
name in :func:`wsbench.suite.load_spec`), and the jobs folder must not be writable by other users.

Job folders (scripts, pickles, logs) go to ``RUNS_DIR/jobs/<spec name>/``; the small jobs file
``RUNS_DIR/jobs/<spec name>.json`` lists which job runs which runs, for ``--status``. The runs and
cache directories must be on a file system every node sees.

SLURM's own job states are read with ``squeue`` while SLURM holds the job (pending, running,
requeued, and for ``MinJobAge`` seconds after it ended); no accounting database (``sacct``,
slurmdbd) is needed: every job writes its outcome (``COMPLETED``, or ``FAILED`` with its error) as
JSON beside submitit's logs, and a job that SLURM no longer lists and that wrote none ended without
finishing (killed, cancelled, out of memory): ``ENDED``.

``cluster="local"`` runs each job as a local process through submitit's ``LocalExecutor`` (the same
pickling, folders and requeue logic, no SLURM): for tests and for trying a spec on one machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write_json
from ..suite import PlannedRun, SuiteSpec, distill_stages, done_line
from .jobs import (
    FINAL_STATES,
    JOB_STRINGS,
    OUTCOME,
    SlurmOptions,
    _executor,
    _final,
    _job,
    _private_folder,
    _read_jobs,
    _read_outcome,
    check_job_strings,
    jobs_file,
)

submitit: Any
try:
    import submitit
except ImportError:  # pragma: no cover - the optional extra
    submitit = None

__all__ = ["FINAL_STATES", "JOB_STRINGS", "OUTCOME", "SlurmOptions", "SuiteJob", "check_job_strings", "job_states",
           "jobs_file", "submit_suite", "wait_for_jobs"]


_Base: Any = submitit.helpers.Checkpointable if submitit is not None else object


class SuiteJob(_Base):
    """The callable of one job: execute its runs (in order) with ``resume=True``; requeued as it is.

    Args:
        run_specs: the :class:`~wsbench.pipeline.RunSpec` of each run of the job.
        runs_dir: the shared runs directory.
        distributed_tasks: processes of the job (``tasks_per_node``); above 1 each joins the
            torch.distributed group submitit's environment describes.
        distill: ``(suite, planned runs of the job)``: after its runs, the job runs the distill
            stages the suite asks for on them (:func:`wsbench.suite.distill_stages`).
    """

    def __init__(self, run_specs: list[Any], runs_dir: str, distributed_tasks: int = 1,
                 distill: tuple[SuiteSpec, list[PlannedRun]] | None = None) -> None:
        self.run_specs = list(run_specs)
        self.runs_dir = str(runs_dir)
        self.distributed_tasks = distributed_tasks
        self.distill = distill

    def __call__(self) -> list[str | None]:
        """Run (or resume) every run of the job, then its distill stages; the run ids (``None`` on ranks
        other than 0)."""
        from .. import distributed
        from ..runner import run_logged

        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:  # without task binding (task/none) torch would start one thread per core of the node
            import torch

            torch.set_num_threads(int(cpus))
        if self.distributed_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        out, records, world = [], [], 1
        try:
            for spec in self.run_specs:
                record = run_logged(spec, Path(self.runs_dir))
                world = max(world, distributed.world_size())
                out.append(None if record is None else record.run_id)
                records.append(record)
            if self.distill is not None:
                suite, planned = self.distill
                finished = [(p, r) for p, r in zip(planned, records, strict=True) if r is not None]
                spec = self.run_specs[0]
                distill_stages(suite, finished, Path(self.runs_dir),
                               {"device": spec.device, "cache_dir": spec.cache_dir}, print)
        except Exception as err:
            _write_outcome({"state": "FAILED", "error": str(err).strip().splitlines()[-1] if str(err).strip()
                            else type(err).__name__, "world_size": world})
            raise
        _write_outcome({"state": "COMPLETED", "runs": out, "world_size": world})
        return out

    # checkpoint() is Checkpointable's: a DelayedSubmission of this same call, so a requeued job
    # runs __call__ again, and execute(resume=True) continues from the last epoch checkpoint.


def _write_outcome(outcome: dict[str, Any]) -> None:
    """Record the job's outcome in its folder (rank 0 of the job only)."""
    env = submitit.JobEnvironment()
    if env.global_rank == 0:
        atomic_write_json(env.paths.folder / OUTCOME, outcome)


def _squeue(job_ids: list[str]) -> dict[str, str]:
    """SLURM's state of each job it still lists (``squeue``; jobs it forgot are absent).

    Raises:
        UserError: no ``squeue`` on this machine.
    """
    if not job_ids:
        return {}
    try:
        done = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T", "--jobs", ",".join(job_ids)],
                              capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise UserError("squeue not found: run --launcher slurm where SLURM's commands are installed") from None
    states = {}
    for line in done.stdout.splitlines():  # squeue exits 1 when it knows none of the jobs
        job_id, _, state = line.strip().partition("|")
        states[job_id] = state.upper()
    return states


def _outcomes(jobs: list[Any], cluster: str) -> list[tuple[str, str | None]]:
    """``(state, error)`` of each job: its written outcome, else SLURM's (or the local) state.

    On SLURM a job that ``squeue`` no longer lists and that wrote no outcome is ``ENDED``.
    """
    written = [_read_outcome(job.paths.folder) for job in jobs]
    if cluster == "slurm":
        listed = _squeue([str(job.job_id) for job, w in zip(jobs, written, strict=True) if w is None])
        return [w if w is not None else (listed.get(str(job.job_id), "ENDED"), None)
                for job, w in zip(jobs, written, strict=True)]
    return [w if w is not None else (str(job.state).upper(), None) for job, w in zip(jobs, written, strict=True)]


def submit_suite(spec: SuiteSpec, planned: list[PlannedRun], runs_dir: Path, options: SlurmOptions,
                 cluster: str = "slurm", echo: Callable[[str], None] = print) -> list[Any]:
    """Submit one job per run that is not done (or per classifier group with ``group = "classifier"``).

    Runs whose job from an earlier submission is still pending or running are not submitted again.
    On SLURM the job of a run that reuses a classifier depends on (``afterany``) the job of the
    first run of its classifier group submitted now, which trains it: it does not hold its
    resources while waiting on the classifier's lock.

    Args:
        spec: the suite.
        planned: :func:`wsbench.suite.plan_suite` of it.
        runs_dir: the shared runs directory (must be on a file system the nodes see).
        options: job resources (over the spec's ``[slurm]`` table).
        cluster: ``slurm``, or ``local`` for submitit's local executor.
        echo: status lines.

    Returns:
        The submitit jobs of the suite's runs that are not done: submitted now, then those queued
        or running from an earlier submission.
    """
    check_job_strings(spec.slurm, f"{spec.path}: slurm.")
    check_job_strings(dataclasses.asdict(options), "--")
    resources = options.merged(spec.slurm)
    folder = Path(runs_dir) / "jobs" / spec.name
    for private in (folder.parent, folder):
        _private_folder(private)
    path = jobs_file(runs_dir, spec)
    earlier = _read_jobs(path)
    active = _active_runs(earlier, cluster)
    todo = [p for p in planned if p.done is None and p.index not in active]
    for p in planned:
        if p.done is not None:
            echo(done_line(p.label, p.done))
        elif p.index in active:
            echo(f"{p.label}: already queued or running")
    batches = [[p] for p in todo]
    if resources["group"] == "classifier":
        groups: dict[str, list[PlannedRun]] = {}
        for p in todo:
            groups.setdefault(p.group, []).append(p)
        batches = list(groups.values())
    distills = spec.distill is not None or any(r.distill is not None for r in spec.runs)
    if distills and int(resources["tasks"]) > 1:
        raise UserError(f"{spec.path}: distill stages run in one process; submit the suite with tasks = 1")
    executor = _executor(folder, cluster, resources, f"wsbench-{spec.name}")
    jobs: list[Any] = []
    entries: list[dict[str, Any]] = []
    kept = [e for e in earlier.get("jobs", []) if set(e["runs"]) & active] if earlier.get("cluster") == cluster else []

    def record() -> None:
        atomic_write_json(path, {"spec": str(spec.path), "cluster": cluster, "folder": str(folder),
                                 "jobs": kept + entries})

    first_jobs: dict[str, str] = {}  # classifier group: the job of its first run submitted now
    for batch in batches:
        if cluster == "slurm":  # a run reusing a classifier waits for the job that trains it, not on its lock
            after = first_jobs.get(batch[0].group)
            executor.update_parameters(slurm_additional_parameters={"dependency": f"afterany:{after}"} if after
                                       else {})
        try:
            job = _submit(executor, SuiteJob([p.run_spec for p in batch], str(runs_dir), int(resources["tasks"]),
                                             distill=(spec, batch) if distills else None), echo)
        except UserError as err:  # sbatch refused it: keep the jobs submitted so far
            record()
            raise UserError(f"sbatch refused the job of {batch[0].label}: {err} (ask for what the cluster has: "
                            "--gpus 0 where nodes have no GPUs, --cpus, --mem-gb, --partition; "
                            f"{len(entries)} job(s) submitted before it)") from None
        first_jobs.setdefault(batch[0].group, str(job.job_id))
        jobs.append(job)
        entries.append({"job_id": str(job.job_id), "runs": [p.index for p in batch],
                        "labels": [p.label for p in batch]})
        for p in batch:
            echo(f"{p.label}: submitted as job {job.job_id}")
    record()
    return jobs + [_job(Path(earlier["folder"]), cluster, e["job_id"]) for e in kept]


def _active_runs(earlier: dict[str, Any], cluster: str) -> set[int]:
    """The runs (indices) whose job of an earlier submission (its jobs file) is still pending or running."""
    active: set[int] = set()
    entries = earlier.get("jobs", [])
    states = _outcomes([_job(Path(earlier["folder"]), earlier["cluster"], e["job_id"]) for e in entries],
                       earlier.get("cluster", cluster))
    for entry, (state, _) in zip(entries, states, strict=True):
        if not _final(state) and state != "UNKNOWN":
            active.update(entry["runs"])
    return active


def _submit(executor: Any, job: SuiteJob, echo: Callable[[str], None]) -> Any:
    """Submit one job; what submitit prints of sbatch goes to ``echo``.

    Raises:
        UserError: sbatch refused the job: its last line of reason.
    """
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # submitit prints sbatch's refusal: it goes into our error
            submitted = executor.submit(job)
    except submitit.core.utils.FailedJobError as err:
        raise UserError((str(err).strip().splitlines() or ["no reason given"])[-1]) from None
    if said.getvalue():
        echo(said.getvalue().rstrip("\n"))
    return submitted


def job_states(spec: SuiteSpec, planned: list[PlannedRun], runs_dir: Path) -> list[tuple[str, str]]:
    """``(run label, state)`` for each run of the suite: done (its run id), or its job's state.

    A run's state is ``done`` when a finished run has its configuration, else the state of the
    last job that ran it (its written outcome, else SLURM's state from ``squeue``: ``PENDING``,
    ``RUNNING``, ``FAILED`` with the error of a failed job, ``ENDED`` for one that ended without an
    outcome), else ``not submitted``.
    """
    data = _read_jobs(jobs_file(runs_dir, spec))
    by_run: dict[int, tuple[str, str]] = {}
    entries = data.get("jobs", [])
    states = _outcomes([_job(Path(data["folder"]), data["cluster"], e["job_id"]) for e in entries],
                       data.get("cluster", "slurm"))
    for entry, (state, error) in zip(entries, states, strict=True):
        text = f"{state} (job {entry['job_id']})" + (f": {error}" if error else "")
        for index in entry["runs"]:
            by_run[index] = (entry["job_id"], text)
    out = []
    for p in planned:
        if p.done is not None:
            out.append((p.label, f"done ({p.done.run_id})"))
        elif p.index in by_run:
            out.append((p.label, by_run[p.index][1]))
        else:
            out.append((p.label, "not submitted"))
    return out


def wait_for_jobs(jobs: list[Any], cluster: str = "slurm", poll_s: float = 10.0,
                  echo: Callable[[str], None] = print) -> list[str]:
    """Wait until every job has ended; the errors of the jobs that did not complete (one line each).

    Args:
        jobs: submitit jobs (:func:`submit_suite`).
        cluster: ``slurm`` (states from ``squeue`` and the jobs' outcomes) or ``local``.
        poll_s: seconds between looks.
        echo: a line for each job that did not complete.
    """
    pending = list(jobs)
    errors = []
    while pending:
        still = []
        for job, (state, error) in zip(pending, _outcomes(pending, cluster), strict=True):
            if cluster == "local" and not _final(state) and job.done():  # the local state lags its end
                state, error = _outcomes([job], cluster)[0]
                state = state if _final(state) else "FINISHED"
            if not _final(state):
                still.append(job)
            elif state != "COMPLETED":
                errors.append(f"job {job.job_id}: {error or state}")
                echo(f"job {job.job_id}: {state}" + (f": {error}" if error else ""))
        pending = still
        if pending:
            time.sleep(poll_s)
    return errors
