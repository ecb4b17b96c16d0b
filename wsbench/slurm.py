"""``wsbench suite SPEC --launcher slurm``: one SLURM job per run (or per classifier group) through submitit.

Every job runs :class:`SuiteJob`, a ``submitit.helpers.Checkpointable``: when SLURM preempts it
or its time limit nears, submitit calls :meth:`SuiteJob.checkpoint`, which resubmits the same
job; the requeued job executes its runs again with ``resume=True``, so the classifier training
continues from its last epoch checkpoint and an unfinished run record is finished in place (what
``wsbench run --resume`` does). A job with ``tasks`` > 1 starts that many processes (one per GPU,
``tasks_per_node``) which join one torch.distributed group from submitit's environment, as
``torchrun --nproc_per_node`` would.

Job folders (scripts, pickles, logs) go to ``RUNS_DIR/jobs/<spec name>/``; the small jobs file
``RUNS_DIR/jobs/<spec name>.json`` lists which job runs which runs, for ``--status``. The runs and
cache directories must be on a file system every node sees.

``cluster="local"`` runs each job as a local process through submitit's ``LocalExecutor`` (the same
pickling, folders and requeue logic, no SLURM): for tests and for trying a spec on one machine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import atomic_write_json
from .suite import PlannedRun, SuiteSpec, done_line

submitit: Any
try:
    import submitit
except ImportError:  # pragma: no cover - the optional extra
    submitit = None

__all__ = ["SlurmOptions", "SuiteJob", "job_states", "submit_suite", "wait_for_jobs"]

#: job states after which nothing more happens (SLURM's, and submitit's local ones)
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "FINISHED", "INTERRUPTED", "NO PROCESS AND NO RESULT"}


def _require_submitit() -> Any:
    if submitit is None:
        raise UserError("--launcher slurm needs submitit: pip install 'wsbench[slurm]'")
    return submitit


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """Resources of each job; ``None`` fields come from the spec's ``[slurm]`` table, then the defaults."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    mem_gb: float | None = None
    time_min: int | None = None
    tasks: int | None = None
    group: str | None = None
    requeues: int | None = None

    def merged(self, table: dict[str, Any]) -> dict[str, Any]:
        """These options over the spec's ``[slurm]`` table over the defaults."""
        out: dict[str, Any] = {"gpus": 1, "cpus": 8, "mem_gb": 32.0, "time_min": 240, "tasks": 1, "group": "run",
                               "requeues": 3}
        out.update(table)
        out.update({k: v for k, v in dataclasses.asdict(self).items() if v is not None})
        return out


_Base: Any = submitit.helpers.Checkpointable if submitit is not None else object


class SuiteJob(_Base):
    """The callable of one job: execute its runs (in order) with ``resume=True``; requeued as it is.

    Args:
        run_specs: the :class:`~wsbench.pipeline.RunSpec` of each run of the job.
        runs_dir: the shared runs directory.
        distributed_tasks: processes of the job (``tasks_per_node``); above 1 each joins the
            torch.distributed group submitit's environment describes.
    """

    def __init__(self, run_specs: list[Any], runs_dir: str, distributed_tasks: int = 1) -> None:
        self.run_specs = list(run_specs)
        self.runs_dir = str(runs_dir)
        self.distributed_tasks = distributed_tasks

    def __call__(self) -> list[str | None]:
        """Run (or resume) every run of the job; the run ids (``None`` on ranks other than 0)."""
        from .figures import tensorboard_run
        from .pipeline import execute

        if self.distributed_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        out = []
        try:
            for spec in self.run_specs:
                record = execute(spec, Path(self.runs_dir), resume=True, progress=False)
                tensorboard_run(record, spec.cache_dir)
                out.append(None if record is None else record.run_id)
        except Exception as err:
            _write_outcome({"state": "FAILED", "error": str(err).strip().splitlines()[-1] if str(err).strip()
                            else type(err).__name__})
            raise
        _write_outcome({"state": "COMPLETED", "runs": out})
        return out

    # checkpoint() is Checkpointable's: a DelayedSubmission of this same call, so a requeued job
    # runs __call__ again, and execute(resume=True) continues from the last epoch checkpoint.


#: written by a job beside submitit's logs: its state and error as JSON, so that --status and the
#: waiting command never unpickle a file from the shared jobs folder (submitit's result pickle)
OUTCOME = "wsbench-outcome.json"


def _write_outcome(outcome: dict[str, Any]) -> None:
    """Record the job's outcome in its folder (rank 0 of the job only)."""
    env = submitit.JobEnvironment()
    if env.global_rank == 0:
        atomic_write_json(env.paths.folder / OUTCOME, outcome)


def jobs_file(runs_dir: Path, spec: SuiteSpec) -> Path:
    """``RUNS_DIR/jobs/<spec name>.json``: the jobs of the spec's last submission."""
    return Path(runs_dir) / "jobs" / f"{spec.name}.json"


def _executor(folder: Path, cluster: str, options: dict[str, Any], name: str) -> Any:
    sub = _require_submitit()
    executor = sub.AutoExecutor(folder=folder / "%j", cluster=cluster)
    params: dict[str, Any] = {"name": name, "timeout_min": int(options["time_min"]),
                              "gpus_per_node": int(options["gpus"]), "tasks_per_node": int(options["tasks"]),
                              "cpus_per_task": int(options["cpus"]), "mem_gb": float(options["mem_gb"])}
    if cluster == "slurm":
        for key in ("partition", "account", "qos", "constraint"):
            if options.get(key):
                params[f"slurm_{key}"] = options[key]
        params["slurm_max_num_timeout"] = int(options["requeues"])
    else:  # the local executor has no partition, memory or CPU limits
        params = {k: v for k, v in params.items() if k not in ("mem_gb", "cpus_per_task")}
        params["gpus_per_node"] = 0 if int(options["gpus"]) == 0 else params["gpus_per_node"]
    executor.update_parameters(**params)
    return executor


def _job(folder: Path, cluster: str, job_id: str) -> Any:
    sub = _require_submitit()
    if cluster == "slurm":
        return sub.SlurmJob(folder=folder / "%j", job_id=job_id)
    return sub.local.local.LocalJob(folder=folder / "%j", job_id=job_id)


def _outcome(job: Any) -> tuple[str, str | None]:
    """``(state, error)`` of a job: SLURM's state (sacct) or the local one, and its error if it failed."""
    state = str(job.state).upper()
    path = job.paths.folder / OUTCOME
    if not path.is_file():
        return state, None
    try:
        outcome = json.loads(path.read_text())
        return str(outcome["state"]), outcome.get("error")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return "FAILED", f"unreadable {path} ({err})"


def submit_suite(spec: SuiteSpec, planned: list[PlannedRun], runs_dir: Path, options: SlurmOptions,
                 cluster: str = "slurm", echo: Callable[[str], None] = print) -> list[Any]:
    """Submit one job per run that is not done (or per classifier group with ``group = "classifier"``).

    Runs whose job from an earlier submission is still pending or running are not submitted again.

    Args:
        spec: the suite.
        planned: :func:`wsbench.suite.plan_suite` of it.
        runs_dir: the shared runs directory (must be on a file system the nodes see).
        options: job resources (over the spec's ``[slurm]`` table).
        cluster: ``slurm``, or ``local`` for submitit's local executor.
        echo: status lines.

    Returns:
        The submitted submitit jobs.
    """
    resources = options.merged(spec.slurm)
    folder = Path(runs_dir) / "jobs" / spec.name
    path = jobs_file(runs_dir, spec)
    earlier = _read_jobs(path)
    active = set()
    for entry in earlier.get("jobs", []):
        state, _ = _outcome(_job(Path(earlier["folder"]), earlier["cluster"], entry["job_id"]))
        if state not in FINAL_STATES and not state.startswith("CANCELLED") and state != "UNKNOWN":
            active.update(entry["runs"])
    todo = [p for p in planned if p.done is None and p.index not in active]
    for p in planned:
        if p.done is not None:
            echo(done_line(p.label, p.done))
        elif p.index in active:
            echo(f"{p.label}: already queued or running")
    batches: list[list[PlannedRun]] = []
    if resources["group"] == "classifier":
        groups: dict[str, list[PlannedRun]] = {}
        for p in todo:
            groups.setdefault(p.group, []).append(p)
        batches = list(groups.values())
    else:
        batches = [[p] for p in todo]
    executor = _executor(folder, cluster, resources, f"wsbench-{spec.name}")
    jobs, entries = [], []
    for batch in batches:
        job = executor.submit(SuiteJob([p.run_spec for p in batch], str(runs_dir), int(resources["tasks"])))
        jobs.append(job)
        entries.append({"job_id": str(job.job_id), "runs": [p.index for p in batch],
                        "labels": [p.label for p in batch]})
        for p in batch:
            echo(f"{p.label}: submitted as job {job.job_id}")
    kept = [e for e in earlier.get("jobs", []) if set(e["runs"]) & active] if earlier.get("cluster") == cluster else []
    atomic_write_json(path, {"spec": str(spec.path), "cluster": cluster, "folder": str(folder),
                             "jobs": kept + entries})
    return jobs


def _read_jobs(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    from .schema import AnyValue, ListOf, MapOf, Record, Str, load_json

    schema = Record({"spec": Str(), "cluster": Str(), "folder": Str(), "jobs": ListOf(MapOf(AnyValue()))},
                    required=("cluster", "folder", "jobs"))
    return load_json(path, schema, "jobs file", hint=f"delete {path} to forget the earlier submission")


def job_states(spec: SuiteSpec, planned: list[PlannedRun], runs_dir: Path) -> list[tuple[str, str]]:
    """``(run label, state)`` for each run of the suite: done (its run id), or its job's state.

    A run's state is ``done`` when a finished run has its configuration, else the state of the
    last job that ran it (SLURM's ``sacct`` state, e.g. ``PENDING``, ``RUNNING``, ``FAILED``, with
    the error of a failed job), else ``not submitted``.
    """
    data = _read_jobs(jobs_file(runs_dir, spec))
    by_run: dict[int, tuple[str, str]] = {}
    for entry in data.get("jobs", []):
        job = _job(Path(data["folder"]), data["cluster"], entry["job_id"])
        state, error = _outcome(job)
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


def wait_for_jobs(jobs: list[Any], poll_s: float = 10.0, echo: Callable[[str], None] = print) -> list[str]:
    """Wait until every job has ended; the errors of the jobs that failed (one line each)."""
    pending = list(jobs)
    errors = []
    while pending:
        still = []
        for job in pending:
            if job.done():
                state, error = _outcome(job)
                if state != "COMPLETED":
                    errors.append(f"job {job.job_id}: {error or state}")
                    echo(f"job {job.job_id}: {state}" + (f": {error}" if error else ""))
            else:
                still.append(job)
        pending = still
        if pending:
            time.sleep(poll_s)
    return errors
