"""``--launcher slurm`` against a real SLURM cluster (``make test-slurm`` starts one on this machine with
``scripts/slurm-cluster.sh``); skipped when no cluster answers. Jobs ask for 1 CPU and no GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import smoke_suite
from tests.test_scale import _DIVERGING, PausingJob, _invoke, _spec, _tables, assert_same_as_uninterrupted
from wsbench.runs import iter_runs


def _cluster_problem() -> str | None:
    """Why no SLURM cluster can run jobs here, or ``None``."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM commands (make test-slurm installs and starts a single-node cluster)"
    try:
        states = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True,
                                timeout=20).stdout.split()
    except (OSError, subprocess.SubprocessError) as err:
        return f"sinfo failed ({err}); make test-slurm starts a cluster"
    if not any(s in ("idle", "mixed", "allocated") for s in states):
        return f"no SLURM node is up (sinfo: {' '.join(states) or 'nothing'}); make test-slurm starts one"
    return None


_PROBLEM = _cluster_problem()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_PROBLEM is not None, reason=str(_PROBLEM))]

#: every job of these tests: 1 CPU, no GPU, little memory (the single-node cluster has a few cores)
RESOURCES = ["--gpus", "0", "--cpus", "1", "--mem-gb", "2", "--time-min", "20"]


@pytest.fixture
def job_env(monkeypatch):
    """Jobs import this checkout (and the test modules), on one thread like the sequential runs here."""
    repo = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("WSBENCH_PROGRESS", "0")


def _slurm(spec: Path, runs: Path, *extra: str):
    return _invoke(["suite", str(spec), "--runs-dir", str(runs), "-q", "--launcher", "slurm", *RESOURCES, *extra])


def _wait_until(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}"
        time.sleep(1)


def test_no_wait_then_status_then_the_sequential_tables(tiny_belt, tmp_path, job_env):
    """Four runs (two classifier groups, one job each; three share the standard classifier): --no-wait,
    --status until done, then the tables are those of the sequential suite on the same thread count."""
    spec = _spec(tmp_path, tiny_belt, '\n[[runs]]\nmethod = "gradcam"\noptions = { cam = "gradcam++" }\n'
                 '\n[slurm]\ngroup = "classifier"\n')
    runs = tmp_path / "runs"
    submitted = _slurm(spec, runs, "--no-wait")
    assert submitted.exit_code == 0, submitted.output
    jobs = json.loads((runs / "jobs" / "tiny.json").read_text())["jobs"]
    assert len(jobs) == 2 and sorted(len(j["runs"]) for j in jobs) == [1, 3], jobs  # the shared classifier's group
    again = _slurm(spec, runs, "--no-wait")  # nothing is submitted twice while its job is queued or running
    assert again.exit_code == 0 and "submitted as job" not in again.output, again.output
    assert again.output.count("already queued or running") + again.output.count("done before") == 4, again.output

    def states() -> str:
        status = _invoke(["suite", str(spec), "--runs-dir", str(runs), "--launcher", "slurm", "--status"])
        assert status.exit_code == 0, status.output
        assert "UNKNOWN" not in status.output and "FAILED" not in status.output, status.output
        return status.output

    seen = states()
    assert "not submitted" not in seen and seen.count("(job") + seen.count("done (") == 4, seen
    _wait_until(lambda: states().count(": done (") == 4, 600, "the four runs")
    waited = _slurm(spec, runs)  # every run done: nothing submitted, the tables printed
    assert waited.exit_code == 0 and "submitted as job" not in waited.output, waited.output
    sequential = _invoke(["suite", str(spec), "--runs-dir", str(tmp_path / "seq"), "-q", "--threads", "1"])
    assert sequential.exit_code == 0, sequential.output
    assert _tables(waited.output) == _tables(sequential.output)
    outcomes = [json.loads(p.read_text()) for p in (runs / "jobs" / "tiny").glob("*/wsbench-outcome.json")]
    assert [o["state"] for o in outcomes] == ["COMPLETED"] * 2 and {o["world_size"] for o in outcomes} == {1}


def test_a_run_reusing_a_classifier_waits_for_the_job_that_trains_it(tiny_belt, tmp_path, job_env):
    """One job per run: Frame-to-Frame's job depends on GradCAM's (their shared classifier) instead of holding
    a CPU while it waits on the classifier's lock; submitting again waits for the queued jobs."""
    spec, runs = _spec(tmp_path, tiny_belt), tmp_path / "runs"
    submitted = _slurm(spec, runs, "--no-wait")
    assert submitted.exit_code == 0 and "3 job(s) queued or running" in submitted.output, submitted.output
    entries = json.loads((runs / "jobs" / "tiny.json").read_text())["jobs"]
    jobs = {e["labels"][0].split()[1]: e["job_id"] for e in entries}  # method: job id
    dependency = subprocess.run(["squeue", "-h", "-j", jobs["f2f"], "-o", "%E"], capture_output=True, text=True,
                                timeout=60).stdout.strip()
    assert dependency.startswith(f"afterany:{jobs['gradcam']}"), dependency
    waited = _slurm(spec, runs)  # nothing new to submit: it waits for the three queued jobs, then the tables
    assert waited.exit_code == 0 and waited.output.count("already queued or running") == 3, waited.output
    assert "Plain CAM" in waited.output
    records = list(iter_runs(runs))
    assert len(records) == 3 and sum(r.result["classifier"]["trained_now"] for r in records) == 2


def test_a_failing_job_is_named_and_the_command_exits_1(tiny_belt, tmp_path, job_env):
    spec_path = tmp_path / "fail.toml"
    spec_path.write_text(smoke_suite(tiny_belt, _DIVERGING, "fail"))
    runs = tmp_path / "runs"
    result = _slurm(spec_path, runs)
    assert result.exit_code == 1, result.output
    assert "1 run(s) of" in result.stderr and "[1/1] gradcam  on video-folder seed 0: FAILED (job" in result.stderr
    assert "loss became" in result.stderr, result.stderr
    assert "FAILED: " in result.output and "loss became" in result.output, result.output
    status = _invoke(["suite", str(spec_path), "--runs-dir", str(runs), "--launcher", "slurm", "--status"])
    assert status.exit_code == 0 and "[1/1] gradcam" in status.output and "FAILED (job" in status.output
    assert "loss became" in status.output, status.output


@pytest.mark.parametrize("how", ["signal", "scontrol"])
def test_a_job_requeued_mid_training_resumes_to_the_uninterrupted_result(tiny_belt, tmp_path, job_env, monkeypatch,
                                                                         how):
    """``signal``: SLURM signals USR2 before a time limit or a preemption (submitit's --signal); the job
    checkpoints and requeues itself with scontrol. ``scontrol``: the job is requeued from outside (an
    administrator, a node failure) and killed without a checkpoint. Either way the requeued job resumes
    from the last epoch checkpoint."""
    from wsbench import slurm
    from wsbench.suite import load_spec, plan_suite

    monkeypatch.setattr(slurm, "SuiteJob", PausingJob)
    spec_path = tmp_path / "one.toml"
    spec_path.write_text(smoke_suite(tiny_belt, '[[runs]]\nmethod = "cam"\n', "one", epochs=3))
    spec, runs = load_spec(spec_path), tmp_path / "runs"
    options = slurm.SlurmOptions(gpus=0, cpus=1, mem_gb=2, time_min=20)
    (job,) = slurm.submit_suite(spec, plan_suite(spec, runs), runs, options, echo=lambda line: None)
    try:
        _wait_until(lambda: (runs / "PAUSED").exists(), 300, "the job to pause in epoch 2")
        (folder,) = (runs / "classifiers").glob("*/")
        assert torch.load(folder / "checkpoint.pt", weights_only=False)["epoch"] == 0
        if how == "signal":
            subprocess.run(["scancel", "--signal=USR2", str(job.job_id)], check=True, timeout=60)
        else:
            subprocess.run(["scontrol", "requeue", str(job.job_id)], check=True, timeout=60)

        def requeued() -> bool:  # SLURM holds a requeued job back for two minutes: release it now
            state = subprocess.run(["squeue", "-h", "-j", str(job.job_id), "-o", "%T %r"], capture_output=True,
                                   text=True, timeout=60).stdout.split()
            return state[:2] == ["PENDING", "BeginTime"]

        _wait_until(requeued, 120, "the job to be requeued")  # scontrol: SIGKILL after KillWait (30 s)
        subprocess.run(["scontrol", "update", f"JobId={job.job_id}", "StartTime=now"], check=True, timeout=60)
        assert slurm.wait_for_jobs([job], poll_s=2, echo=lambda line: None) == []
    finally:
        subprocess.run(["scancel", str(job.job_id)], timeout=60)
    log = job.stdout() + (job.stderr() or "")
    if how == "signal":
        assert "this job is preempted" in log and "Requeued job" in log, log
    else:
        assert "DUE TO JOB REQUEUE" in log, log
    assert_same_as_uninterrupted(tiny_belt, runs, tmp_path / "uninterrupted")


def test_distill_stages_run_in_the_jobs_after_their_source_runs(tiny_belt, tmp_path, job_env):
    spec_path = tmp_path / "two.toml"
    runs_toml = '[[runs]]\nmethod = "cam"\nlabel = "Plain CAM"\n\n[distill]\nrecipe = "smoke"\nepochs = 1\n'
    spec_path.write_text(smoke_suite(tiny_belt, runs_toml, "two").replace('tables = ["comparison", "background"]',
                                                                          'tables = ["comparison", "stages"]'))
    runs = tmp_path / "runs"
    result = _slurm(spec_path, runs)
    assert result.exit_code == 0, result.output
    assert "note: distill stages are not submitted" not in result.output
    (log,) = (runs / "jobs" / "two").glob("*/*_0_log.out")
    assert "distill " in log.read_text() and "IoU" in log.read_text(), log.read_text()
    sequential = _invoke(["suite", str(spec_path), "--runs-dir", str(tmp_path / "seq"), "-q", "--threads", "1"])
    assert sequential.exit_code == 0, sequential.output
    # the stages table ends with two measured speeds (frames/s): compare the cells before them
    assert [line.rsplit("|", 3)[0] for line in _tables(result.output).splitlines()] == \
        [line.rsplit("|", 3)[0] for line in _tables(sequential.output).splitlines()]
    assert "segmenter maps frames/s" in result.output


def test_two_tasks_of_one_job_train_with_ddp(tiny_belt, tmp_path, job_env):
    """tasks = 2: two processes of one job join one gloo group from SLURM's environment (as NCCL across GPU
    nodes would); rank 0 records the run and the job's world size."""
    spec_path = tmp_path / "ddp.toml"
    spec_path.write_text(smoke_suite(tiny_belt, '[[runs]]\nmethod = "cam"\n\n[slurm]\ntasks = 2\n', "ddp"))
    runs = tmp_path / "runs"
    result = _slurm(spec_path, runs)
    assert result.exit_code == 0, result.output
    (outcome,) = [json.loads(p.read_text()) for p in (runs / "jobs" / "ddp").glob("*/wsbench-outcome.json")]
    assert outcome["state"] == "COMPLETED" and outcome["world_size"] == 2
    assert len(list(iter_runs(runs))) == 1


def test_a_job_sbatch_refuses_is_a_one_line_error(tiny_belt, tmp_path, job_env):
    """The default job asks for a GPU; the cluster's node has none: sbatch's reason, not a traceback."""
    spec, runs = _spec(tmp_path, tiny_belt), tmp_path / "runs"
    result = _invoke(["suite", str(spec), "--runs-dir", str(runs), "-q", "--launcher", "slurm"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.output
    (last,) = result.stderr.strip().splitlines()
    assert last.startswith("Error: sbatch refused the job of [1/3] cam") and "gres" in last and "--gpus 0" in last
    assert json.loads((runs / "jobs" / "tiny.json").read_text())["jobs"] == []
