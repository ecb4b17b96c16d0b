"""What a suite's SLURM jobs are made of: job resources and the strings checked before they reach a job
script, the jobs folder and file, submitit's executor and job handles, the outcome a job writes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..suite import SuiteSpec

submitit: Any
try:
    import submitit
except ImportError:  # pragma: no cover - the optional extra
    submitit = None

__all__ = ["FINAL_STATES", "JOB_STRINGS", "OUTCOME", "SlurmOptions", "check_job_strings", "jobs_file"]


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


#: written by a job beside submitit's logs: its state and error as JSON, so that --status and the
#: waiting command never unpickle a file from the shared jobs folder (submitit's result pickle)
OUTCOME = "wsbench-outcome.json"


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


def _read_jobs(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    from ..schema import AnyValue, ListOf, MapOf, Record, Str, load_json

    schema = Record({"spec": Str(), "cluster": Str(), "folder": Str(), "jobs": ListOf(MapOf(AnyValue()))},
                    required=("cluster", "folder", "jobs"))
    return load_json(path, schema, "jobs file", hint=f"delete {path} to forget the earlier submission")
