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
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import atomic_write_json
from .suite import PlannedRun, SuiteSpec, distill_stages, done_line

submitit: Any
try:
    import submitit
except ImportError:  # pragma: no cover - the optional extra
    submitit = None

__all__ = ["SlurmOptions", "SuiteJob", "check_job_strings", "job_states", "submit_suite", "wait_for_jobs"]

#: job states after which nothing more happens (SLURM's, submitit's local ones, and ENDED: SLURM no
#: longer lists the job and it wrote no outcome)
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "FINISHED", "INTERRUPTED", "NO PROCESS AND NO RESULT", "ENDED",
                "SPECIAL_EXIT", "REVOKED"}

_NAME = r"[A-Za-z0-9_.-]+"
#: what SLURM accepts in each string that reaches a job script's #SBATCH lines: names (a partition
#: may be a comma-separated list), and a constraint's features with SLURM's operators & | , * [ ] :
JOB_STRINGS = {"partition": (re.compile(rf"{_NAME}(,{_NAME})*"), "names of letters, digits, _ . - separated by ,"),
               "account": (re.compile(_NAME), "letters, digits, _ . -"),
               "qos": (re.compile(_NAME), "letters, digits, _ . -"),
               "constraint": (re.compile(r"[A-Za-z0-9_.,:&|*\[\]-]+"),
                              "features of letters, digits, _ . - joined by & | , * [ ] :")}


def check_job_strings(options: dict[str, Any], where: str) -> None:
    """Refuse a string option that SLURM would not accept in a job script (a newline there ends the
    ``#SBATCH`` block and runs the rest as a shell command on the node).

    Args:
        options: ``[slurm]`` keys and values (keys not in :data:`JOB_STRINGS` are not looked at).
        where: prefix of the error: the spec file and table, or ``--`` for command-line options.

    Raises:
        UserError: one line naming the key, its value and what SLURM accepts.
    """
    for key, (pattern, accepted) in JOB_STRINGS.items():
        value = options.get(key)
        if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise UserError(f"{where}{key} = {value!r} is not a SLURM {key} ({accepted})")


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
        from . import distributed
        from .runner import run_logged

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
    # submitit takes the requeue count as a constructor argument, not as a parameter of update_parameters
    extra = {"slurm_max_num_timeout": int(options["requeues"])} if cluster == "slurm" else {}
    executor = sub.AutoExecutor(folder=folder / "%j", cluster=cluster, **extra)
    params: dict[str, Any] = {"name": name, "timeout_min": int(options["time_min"]),
                              "gpus_per_node": int(options["gpus"]), "tasks_per_node": int(options["tasks"]),
                              "cpus_per_task": int(options["cpus"]), "mem_gb": float(options["mem_gb"])}
    if cluster == "slurm":
        for key in ("partition", "account", "qos", "constraint"):
            if options.get(key):
                params[f"slurm_{key}"] = options[key]
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


def _read_outcome(folder: Path) -> tuple[str, str | None] | None:
    """The outcome a job wrote into its folder (:data:`OUTCOME`), or ``None`` before it wrote one."""
    path = folder / OUTCOME
    if not path.is_file():
        return None
    try:
        outcome = json.loads(path.read_text())
        return str(outcome["state"]), outcome.get("error")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return "FAILED", f"unreadable {path} ({err})"


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


def _final(state: str) -> bool:
    return state in FINAL_STATES or state.startswith("CANCELLED")


def _private_folder(path: Path) -> None:
    """Create ``path`` (and parents); refuse it when another user could write to it (submitit's job
    unpickles its callable from there on the node) or when its name has a control character (it goes
    into the job script)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in str(path)):  # it is written into the #SBATCH lines
        raise UserError(f"{str(path)!r}: a jobs folder path with a control character (newline, tab, ...); "
                        "choose another --runs-dir")
    path.mkdir(parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o022 or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise UserError(f"{path}: jobs folder writable by another user (mode {info.st_mode & 0o777:o}, owner uid "
                        f"{info.st_uid}); chmod go-w it or use a --runs-dir of your own")


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
    active = set()
    entries_before = earlier.get("jobs", [])
    states = _outcomes([_job(Path(earlier["folder"]), earlier["cluster"], e["job_id"]) for e in entries_before],
                       earlier.get("cluster", cluster))
    for entry, (state, _) in zip(entries_before, states, strict=True):
        if not _final(state) and state != "UNKNOWN":
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
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):  # submitit prints sbatch's refusal: it goes into our error
                job = executor.submit(SuiteJob([p.run_spec for p in batch], str(runs_dir), int(resources["tasks"]),
                                               distill=(spec, batch) if distills else None))
        except submitit.core.utils.FailedJobError as err:  # sbatch refused it: keep the jobs submitted so far
            record()
            reason = (str(err).strip().splitlines() or ["no reason given"])[-1]
            raise UserError(f"sbatch refused the job of {batch[0].label}: {reason} (ask for what the cluster has: "
                            "--gpus 0 where nodes have no GPUs, --cpus, --mem-gb, --partition; "
                            f"{len(entries)} job(s) submitted before it)") from None
        if said.getvalue():
            echo(said.getvalue().rstrip("\n"))
        first_jobs.setdefault(batch[0].group, str(job.job_id))
        jobs.append(job)
        entries.append({"job_id": str(job.job_id), "runs": [p.index for p in batch],
                        "labels": [p.label for p in batch]})
        for p in batch:
            echo(f"{p.label}: submitted as job {job.job_id}")
    record()
    return jobs + [_job(Path(earlier["folder"]), cluster, e["job_id"]) for e in kept]


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
