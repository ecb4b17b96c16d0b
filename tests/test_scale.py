"""Suites at scale: --jobs on one machine, the submitit/SLURM launcher (local executor), TensorBoard logs, curves."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.runs import iter_runs
from wsbench.slurm import SuiteJob

from .conftest import CAM_AND_GRADCAM, smoke_suite

REPO = Path(__file__).resolve().parent.parent

#: the runs of the suites below (:func:`tests.conftest.smoke_suite`)
_RUNS = CAM_AND_GRADCAM + """
[[runs]]
method = "f2f"
"""

#: a run whose training diverges (lr 1e30): it fails at execution time, after planning
_DIVERGING = """
[[runs]]
method = "gradcam"
recipe = { lr = 1e30, background_removal = false }
label = "Diverging"
"""


def _spec(tmp_path: Path, belt: Path, extra: str = "", epochs: int = 1, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(smoke_suite(belt, _RUNS + extra, name, epochs))
    return path


def _tables(output: str) -> str:
    """The table text of a suite's output: from the first table caption on."""
    return output[output.index("**Comparison"):]


def _invoke(args: list[str]):
    return CliRunner().invoke(cli, args, prog_name="wsbench")


# -- --jobs -----------------------------------------------------------------------------------
def test_slots_pin_one_gpu_each_round_robin(monkeypatch):
    from wsbench import launch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    setups = launch.slot_setups(3, "cuda")
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in setups] == ["3", "5", "3"]
    monkeypatch.setattr(launch, "_cores", lambda: 8)
    cpu = launch.slot_setups(3, "cpu")
    assert [s.threads for s in cpu] == [2, 2, 2] and all(s.env["OMP_NUM_THREADS"] == "2" for s in cpu)
    assert "CUDA_VISIBLE_DEVICES" not in cpu[0].env
    assert [s.threads for s in launch.slot_setups(16, "cpu")] == [1] * 16  # never 0 threads
    assert launch.slot_setups(2, "cpu", threads=3)[0].threads == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(Exception, match="no CUDA device is visible"):
        launch.slot_setups(2, "cuda")


def test_a_slot_worker_runs_with_its_environment_and_threads():
    import concurrent.futures
    import multiprocessing

    from wsbench.launch import SlotSetup, _init_slot

    setup = SlotSetup({"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "7"}, 1)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_init_slot, initargs=(setup,)) as pool:
        threads, visible = pool.submit(_probe).result(timeout=120)
    assert threads == 1 and visible == "7"


def _probe() -> tuple[int, str | None]:
    return torch.get_num_threads(), os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.fixture
def torch_threads():
    """``wsbench suite --threads`` sets this process's torch threads: restored afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_jobs_2_gives_the_sequential_tables_and_trains_a_shared_classifier_once(tiny_belt, tmp_path, torch_threads):
    spec = _spec(tmp_path, tiny_belt)
    # one thread per run in both: on the CPU the thread count changes floating-point sums
    sequential = _invoke(["suite", str(spec), "--runs-dir", str(tmp_path / "seq"), "-q", "--threads", "1"])
    assert sequential.exit_code == 0, sequential.output
    assert torch.get_num_threads() == 1
    parallel = _invoke(["suite", str(spec), "--runs-dir", str(tmp_path / "par"), "-q", "--jobs", "2", "--threads", "1"])
    assert parallel.exit_code == 0, parallel.output
    assert _tables(parallel.output) == _tables(sequential.output)
    assert "3 runs finished, 0 failed" in parallel.output and "(2 at once)" in parallel.output
    records = list(iter_runs(tmp_path / "par"))
    assert len(records) == 3 and len(list((tmp_path / "par" / "classifiers").glob("*/final.pt"))) == 2
    assert sum(r.result["classifier"]["trained_now"] for r in records) == 2  # gradcam's, shared with f2f
    again = _invoke(["suite", str(spec), "--runs-dir", str(tmp_path / "par"), "-q", "--jobs", "2"])
    assert again.exit_code == 0 and again.output.count("done before") == 3, again.output
    figures = _invoke(["figures", "--runs-dir", str(tmp_path / "par"), "--examples", "0"])
    assert figures.exit_code == 0 and "training_curves.png" in figures.output, figures.output


def test_a_group_waits_for_its_first_run_then_spreads_over_the_free_slots():
    """The runs sharing a classifier wait for the run that trains it, then any slot takes them."""
    import threading

    from wsbench.launch import _Schedule
    from wsbench.suite import PlannedRun

    a1, a2, a3, b1, c1 = (PlannedRun(i, name, None, None, name[0]) for i, name in enumerate(["a1", "a2", "a3", "b1",
                                                                                              "c1"]))
    schedule = _Schedule([[b1], [a1, a2, a3], [c1]])
    assert [schedule.take(), schedule.take(), schedule.take()] == [a1, b1, c1]  # first runs, largest group first
    schedule.done(b1)
    schedule.done(c1)
    taken: list = []
    waiting = threading.Thread(target=lambda: taken.append(schedule.take()))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and not taken  # a2 and a3 wait for a1's classifier
    schedule.done(a1)
    waiting.join(5)
    assert taken == [a2] and schedule.take() == a3  # two slots take the rest of the group at once
    schedule.done(a2)
    schedule.done(a3)
    assert schedule.take() is None


def test_the_parent_builds_the_flows_of_the_stability_score_for_runs_without_clips(tiny_belt, tmp_path):
    """cam neither trains on clips nor fuses, but its evaluation scores temporal stability with flow."""
    from wsbench.launch import warm_caches
    from wsbench.suite import load_spec, plan_suite

    spec_path = tmp_path / "cam.toml"
    spec_path.write_text(smoke_suite(tiny_belt, '[[runs]]\nmethod = "cam"\n', "cam"))
    planned = plan_suite(load_spec(spec_path), tmp_path / "runs", overrides={"cache_dir": tmp_path / "cache"})
    assert warm_caches(planned, echo=lambda line: None) == 1
    assert len(list((tmp_path / "cache").rglob("flow-*.npy"))) == 1


@pytest.mark.slow
def test_jobs_build_each_cache_once_before_the_slots_start(tiny_belt, tmp_path, torch_threads):
    """Frames and flows are prepared in the parent first: no run of a --jobs suite builds a cache itself."""
    spec = _spec(tmp_path, tiny_belt)
    out = _invoke(["suite", str(spec), "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "fresh"),
                   "-q", "--jobs", "2", "--threads", "1"])
    assert out.exit_code == 0, out.output
    assert "caches ready for" in out.output
    records = list(iter_runs(tmp_path / "runs"))
    assert len(records) == 3
    assert [(r.result["timings"]["cache"], r.result["timings"]["flow"]) for r in records] == [(0.0, 0.0)] * 3


def test_training_curves_average_the_seeds_of_a_method(tmp_path, monkeypatch):
    from wsbench import figures
    from wsbench.runs import RunRecord

    class Run(RunRecord):  # a finished record holding only what the figure reads
        def __init__(self, seed: int, losses: list[float]):
            self.path = tmp_path / f"run{seed}"
            self.result = {"dataset": "belt", "seed": seed, "classifier": {"path": f"classifiers/c{seed}"}}
            folder = tmp_path / "classifiers" / f"c{seed}"
            folder.mkdir(parents=True)
            lines = ["epoch,step,lr,alpha,total,cls"] + [f"0,{i},0.1,0.5,{v},{v / 2}" for i, v in enumerate(losses)]
            (folder / "log.csv").write_text("\n".join(lines) + "\n")

    runs = [Run(0, [1.0, 0.5, 0.25]), Run(1, [3.0, 1.5, 0.75, 0.1])]
    monkeypatch.setattr("wsbench.report.method_columns", lambda records: [("CAM", list(records))])
    drawn = []
    plt = figures._pyplot()
    real = plt.Axes.plot

    def plot(ax, x, y, *args, **kwargs):
        drawn.append((kwargs.get("label"), [float(v) for v in x], [float(v) for v in y]))
        return real(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "plot", plot)
    assert figures.training_curves(runs, tmp_path / "curves.png") == tmp_path / "curves.png"
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert [label for label, _, _ in drawn] == ["CAM (n=2)"] * 3  # total, cls, alpha; not lr, epoch, step
    assert ("CAM (n=2)", [0.0, 1.0, 2.0], [2.0, 1.0, 0.5]) in drawn  # total: mean of two seeds, common steps
    assert ("CAM (n=2)", [0.0, 1.0, 2.0], [1.0, 0.5, 0.25]) in drawn  # cls


@pytest.mark.slow
def test_a_failing_run_does_not_stop_the_others(tiny_belt, tmp_path):
    spec = _spec(tmp_path, tiny_belt, _DIVERGING)
    result = _invoke(["suite", str(spec), "--runs-dir", str(tmp_path / "runs"), "-q", "--jobs", "2"])
    assert result.exit_code == 1, result.output
    assert "[4/4] gradcam" in result.output and "FAILED: loss became" in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert "1 run(s) of" in last and "[4/4] gradcam" in last and "loss became" in last
    assert "Plain CAM" in result.output  # the others' tables are printed
    assert sorted(r.result["method"] for r in iter_runs(tmp_path / "runs")) == ["cam", "f2f", "gradcam"]


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out += [int(c) for c in task.read_text().split()]
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_suite_process_is_killed(tiny_belt, tmp_path):
    """kill -9 of ``wsbench suite --jobs 2``: its two workers, busy training, end within seconds."""
    import subprocess

    spec = _spec(tmp_path, tiny_belt, epochs=200)  # long enough that the workers are training when killed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    suite = subprocess.Popen([sys.executable, "-m", "wsbench", "suite", str(spec), "--runs-dir", str(tmp_path / "runs"),
                              "-q", "--jobs", "2", "--threads", "1"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while len(workers) < 2:  # the two slots' pool workers (spawn also starts a resource tracker)
            assert suite.poll() is None and time.monotonic() < deadline, "the suite did not start two workers"
            workers = [c for c in _children(suite.pid)
                       if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")
                       and "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
            time.sleep(0.5)
        time.sleep(3)  # inside their first run
        assert all(_alive(w) for w in workers)
        suite.kill()
        suite.wait(30)
        deadline = time.monotonic() + 20
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), f"workers {workers} outlived their parent"
    finally:
        suite.kill()
        for worker in workers:  # nothing left behind if the test failed
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)


# -- submitit: SLURM without a cluster ------------------------------------------------------
@pytest.fixture
def job_env(monkeypatch):
    """Local submitit jobs import this checkout (and this test module) first."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def test_slurm_options_come_from_the_spec_then_the_command_line(tmp_path, tiny_belt):
    from wsbench.slurm import SlurmOptions
    from wsbench.suite import load_spec

    spec = load_spec(_spec(tmp_path, tiny_belt, '\n[slurm]\npartition = "gpu"\ngpus = 2\ntasks = 2\ntime_min = 60\n'))
    merged = SlurmOptions(time_min=30, cpus=4).merged(spec.slurm)
    assert merged["partition"] == "gpu" and merged["gpus"] == 2 and merged["tasks"] == 2
    assert merged["time_min"] == 30 and merged["cpus"] == 4 and merged["mem_gb"] == 32.0
    bad = _spec(tmp_path, tiny_belt, '\n[slurm]\ngpu = 2\n', name="bad")
    result = _invoke(["suite", str(bad), "--launcher", "slurm", "--status"])
    assert result.exit_code == 1 and "slurm.gpu: unknown key" in result.stderr and str(bad) in result.stderr
    good = _spec(tmp_path, tiny_belt, name="good")
    mixed = _invoke(["suite", str(good), "--launcher", "slurm", "--jobs", "2"])
    assert mixed.exit_code == 1 and "--jobs and --threads are for --launcher local" in mixed.stderr
    local = _invoke(["suite", str(good), "--status"])
    assert local.exit_code == 1 and "--status and --no-wait go with --launcher slurm" in local.stderr


@pytest.mark.parametrize(("table", "key"), [
    ('partition = "gpu\\ntouch /tmp/x #"', "slurm.partition"),  # a newline ends the #SBATCH block
    ("account = \"lab'; id; '\"", "slurm.account"),
    ('qos = "normal;id"', "slurm.qos"),
    ('constraint = "a100$(id)"', "slurm.constraint"),
    ('partition = "gpu\\u0000"', "slurm.partition"),
    ('partition = ""', "slurm.partition"),
])
def test_hostile_slurm_strings_are_one_line_errors_before_anything_is_written(tmp_path, tiny_belt, table, key):
    spec, runs = _spec(tmp_path, tiny_belt, f"\n[slurm]\n{table}\n"), tmp_path / "runs"
    result = _invoke(["suite", str(spec), "--runs-dir", str(runs), "--launcher", "slurm"])
    assert result.exit_code == 1 and str(spec) in result.stderr and f"{key} = " in result.stderr, result.output
    assert result.stderr.count("\n") == 1 and "is not a SLURM" in result.stderr
    assert not (runs / "jobs").exists()  # refused before the jobs folder, the jobs file or sbatch


def test_slurm_strings_accept_what_slurm_does_and_name_command_line_options(tmp_path, tiny_belt):
    from wsbench.slurm import check_job_strings

    check_job_strings({"partition": "gpu,gpu-long", "account": "lab_1.x", "qos": "high-prio",
                       "constraint": "[a100|h100]&ib*2:x", "gpus": 2}, "spec: slurm.")
    result = _invoke(["suite", str(_spec(tmp_path, tiny_belt)), "--runs-dir", str(tmp_path / "runs"),
                      "--launcher", "slurm", "--partition", "gpu --wrap=id"])
    assert result.exit_code == 1 and "--partition = 'gpu --wrap=id' is not a SLURM partition" in result.stderr


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "..", "two\\nlines", "x'y", "a;b", " lead"])
def test_a_spec_name_must_be_a_plain_file_name(tmp_path, tiny_belt, name):
    path = tmp_path / "spec.toml"
    path.write_text(smoke_suite(tiny_belt, _RUNS, name))
    result = _invoke(["suite", str(path), "--runs-dir", str(tmp_path / "runs"), "--launcher", "submitit-local"])
    assert result.exit_code == 1 and f"{path}: name = " in result.stderr and "not a plain file name" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "runs").exists() and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("where", ["jobs", "jobs/tiny"])
def test_a_jobs_folder_other_users_can_write_is_refused(tmp_path, tiny_belt, where):
    """submitit's job unpickles its callable from the jobs folder: another user must not be able to swap it."""
    runs = tmp_path / "runs"
    (runs / where).mkdir(parents=True)
    (runs / where).chmod(0o777)
    result = _invoke(["suite", str(_spec(tmp_path, tiny_belt)), "--runs-dir", str(runs),
                      "--launcher", "submitit-local"])
    assert result.exit_code == 1 and f"{runs / where}: jobs folder writable by another user" in result.stderr
    assert not list((runs / "jobs").rglob("*.pkl")) and not (runs / "jobs" / "tiny.json").exists()
    (runs / where).chmod(0o775)  # group-writable too
    again = _invoke(["suite", str(_spec(tmp_path, tiny_belt)), "--runs-dir", str(runs), "--launcher", "submitit-local"])
    assert again.exit_code == 1 and "mode 775" in again.stderr


def test_a_runs_dir_with_a_newline_is_refused_before_a_job_script_is_written(tmp_path, tiny_belt):
    runs = tmp_path / "runs\ntouch x #"
    result = _invoke(["suite", str(_spec(tmp_path, tiny_belt)), "--runs-dir", str(runs),
                      "--launcher", "submitit-local"])
    assert result.exit_code == 1 and "a jobs folder path with a control character" in result.stderr
    assert result.stderr.count("\n") == 1 and not runs.exists()


def test_slurm_job_states_need_no_accounting(tmp_path, monkeypatch):
    """A job's state: the outcome it wrote, else squeue's, else ENDED (SLURM forgot it and it wrote none)."""
    from types import SimpleNamespace

    from wsbench import slurm

    def job(job_id: str, outcome: dict | None = None):
        folder = tmp_path / job_id
        folder.mkdir()
        if outcome is not None:
            (folder / slurm.OUTCOME).write_text(json.dumps(outcome))
        return SimpleNamespace(job_id=job_id, paths=SimpleNamespace(folder=folder))

    asked: list[list[str]] = []
    monkeypatch.setattr(slurm, "_squeue", lambda ids: asked.append(ids) or {"5": "RUNNING", "7": "COMPLETED"})
    jobs = [job("5"), job("6"), job("7", {"state": "FAILED", "error": "loss became nan"}),
            job("8", {"state": "COMPLETED", "runs": ["r"]})]
    assert slurm._outcomes(jobs, "slurm") == [("RUNNING", None), ("ENDED", None), ("FAILED", "loss became nan"),
                                              ("COMPLETED", None)]
    assert asked == [["5", "6"]]  # one squeue call, only for the jobs without an outcome
    assert slurm.wait_for_jobs(jobs[1:], "slurm", poll_s=0, echo=lambda line: None) == \
        ["job 6: ENDED", "job 7: loss became nan"]


@pytest.mark.slow
def test_submitit_local_runs_the_suite_and_reports_status(tiny_belt, tmp_path, job_env):
    spec, runs = _spec(tmp_path, tiny_belt), tmp_path / "runs"
    status = _invoke(["suite", str(spec), "--runs-dir", str(runs), "--launcher", "submitit-local", "--status"])
    assert status.exit_code == 0 and status.output.count(": not submitted") == 3, status.output
    result = _invoke(["suite", str(spec), "--runs-dir", str(runs), "-q", "--launcher", "submitit-local"])
    assert result.exit_code == 0, result.output
    assert result.output.count("submitted as job") == 3 and "Plain CAM" in result.output
    jobs = json.loads((runs / "jobs" / "tiny.json").read_text())
    assert jobs["cluster"] == "local" and sorted(i for e in jobs["jobs"] for i in e["runs"]) == [1, 2, 3]
    status = _invoke(["suite", str(spec), "--runs-dir", str(runs), "--launcher", "submitit-local", "--status"])
    assert status.exit_code == 0 and status.output.count(": done (") == 3, status.output
    sequential = _invoke(["suite", str(spec), "--runs-dir", str(tmp_path / "seq"), "-q"])
    assert _tables(result.output) == _tables(sequential.output)


@pytest.mark.slow
def test_a_failed_job_is_reported_from_its_json_outcome_not_a_pickle(tiny_belt, tmp_path, job_env):
    """--status names a failed job's error, read from the JSON outcome the job wrote (no unpickling)."""
    spec, runs = _spec(tmp_path, tiny_belt, _DIVERGING), tmp_path / "runs"
    result = _invoke(["suite", str(spec), "--runs-dir", str(runs), "-q", "--launcher", "submitit-local"])
    assert result.exit_code == 1 and "run(s) of" in result.stderr, result.output
    outcomes = [json.loads(p.read_text()) for p in (runs / "jobs" / "tiny").glob("*/wsbench-outcome.json")]
    assert sorted(o["state"] for o in outcomes) == ["COMPLETED"] * 3 + ["FAILED"]
    assert any("loss became" in (o.get("error") or "") for o in outcomes)
    status = _invoke(["suite", str(spec), "--runs-dir", str(runs), "--launcher", "submitit-local", "--status"])
    assert status.exit_code == 0 and status.output.count(": done (") == 3, status.output
    assert "FAILED (job" in status.output and "loss became" in status.output, status.output


class PausingJob(SuiteJob):
    """:class:`wsbench.slurm.SuiteJob` whose first attempt pauses in epoch 2 (after the first epoch's
    checkpoint), writing ``PAUSED`` into the runs directory; pickled by reference into the job."""

    def __call__(self):
        marker = Path(self.runs_dir) / "PAUSED"
        if not marker.exists():
            from wsbench.methods import create_method

            cls = type(create_method("cam"))
            original = cls.training_losses

            def pausing(method, model, batch, progress):
                if progress.step == progress.steps_per_epoch + 1:
                    marker.write_text(str(os.getpid()))
                    time.sleep(300)  # preempted here
                return original(method, model, batch, progress)

            cls.training_losses = pausing
        return super().__call__()


def assert_same_as_uninterrupted(data: Path, runs: Path, fresh: Path) -> None:
    """The one (requeued, resumed) CAM run in ``runs`` equals the same command run uninterrupted in ``fresh``:
    the same scores and bit-identical weights."""
    assert len(list(iter_runs(runs, finished=None))) == 1  # the interrupted run record was finished
    uninterrupted = _invoke(["run", "-m", "cam", "-d", "video-folder", "--data-root", str(data), "-q",
                             "--runs-dir", str(fresh), "--recipe", "smoke", "--epochs", "3"])
    assert uninterrupted.exit_code == 0, uninterrupted.output
    (scores, weights), (other_scores, other_weights) = _outcome(fresh), _outcome(runs)
    assert other_scores == scores and scores["metrics"]["iou_illegal"] is not None
    assert weights.keys() == other_weights.keys() and all(torch.equal(weights[k], other_weights[k]) for k in weights)


def _outcome(runs: Path) -> tuple[dict, dict]:
    (record,) = iter_runs(runs)
    r = record.result
    scores = {k: r[k] for k in ("metrics", "baselines", "curves", "counts", "accuracy_by_input")}
    return scores, torch.load(runs / r["classifier"]["path"] / "final.pt", weights_only=True)


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes_to_the_uninterrupted_result(tiny_belt, tmp_path, job_env,
                                                                              monkeypatch):
    from wsbench import slurm
    from wsbench.suite import load_spec, plan_suite

    monkeypatch.setattr(slurm, "SuiteJob", PausingJob)
    spec_path = tmp_path / "one.toml"
    spec_path.write_text(smoke_suite(tiny_belt, '[[runs]]\nmethod = "cam"\n', "one", epochs=3))
    spec, runs = load_spec(spec_path), tmp_path / "runs"
    (job,) = slurm.submit_suite(spec, plan_suite(spec, runs), runs, slurm.SlurmOptions(gpus=0), cluster="local",
                                echo=lambda line: None)
    try:
        deadline = time.monotonic() + 240
        while not (runs / "PAUSED").exists():
            assert time.monotonic() < deadline and not job.done(), job.stderr()
            time.sleep(0.2)
        (folder,) = (runs / "classifiers").glob("*/")
        assert torch.load(folder / "checkpoint.pt", weights_only=False)["epoch"] == 0
        assert not (folder / "final.pt").exists()
        # SLURM signals the job's task (USR2) when preempting it or near its time limit; submitit's handler
        # calls checkpoint() and requeues, and the local controller restarts the task. (LocalJob._interrupt
        # signals the controller instead, which in submitit 1.5.4 has no handler for it and just dies.)
        os.kill(int((runs / "PAUSED").read_text()), signal.SIGUSR2)
        assert slurm.wait_for_jobs([job], "local", poll_s=0.5, echo=lambda line: None) == []
        log = job.stdout() + (job.stderr() or "")
        assert "this job is preempted" in log and "Requeued" in log, log
    finally:
        job.cancel()  # the controller kills its task (nothing left sleeping if the test failed)
    assert_same_as_uninterrupted(tiny_belt, runs, tmp_path / "uninterrupted")


# -- TensorBoard ------------------------------------------------------------------------------
def _tiny_run(belt: Path, runs: Path, method: str = "cam"):
    return _invoke(["run", "-m", method, "-d", "video-folder", "--data-root", str(belt), "-q", "--runs-dir",
                    str(runs), "--recipe", "smoke", "--epochs", "2"])


@pytest.fixture
def fresh_tblog(monkeypatch):
    from wsbench import tblog

    monkeypatch.setattr(tblog, "_WRITERS", {})
    monkeypatch.setattr(tblog, "_NOTED", False)
    return tblog


@pytest.mark.slow
def test_tensorboard_logs_every_logged_column_metrics_and_masks(tiny_belt, tmp_path, fresh_tblog):
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    result = _tiny_run(tiny_belt, runs, "puzzlecam")
    assert result.exit_code == 0, result.output
    (folder,) = (runs / "classifiers").glob("*/")
    with open(folder / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    columns = [c for c in rows[0] if c not in ("epoch", "step")]
    assert {"lr", "weight:spatial", "total"} <= set(columns) and len(columns) > 4  # puzzlecam's own loss terms too
    train = EventAccumulator(str(folder))
    train.Reload()
    assert sorted(train.Tags()["scalars"]) == sorted(f"train/{c}" for c in columns)
    lr = train.Scalars("train/lr")
    assert [e.step for e in lr] == [int(r["step"]) for r in rows]
    assert [e.value for e in lr] == pytest.approx([float(r["lr"]) for r in rows], rel=1e-6)
    (record,) = iter_runs(runs)
    run = EventAccumulator(str(record.path), size_guidance={"images": 0})
    run.Reload()
    assert {"eval/iou_illegal", "eval/accuracy", "eval/miou"} <= set(run.Tags()["scalars"])
    assert run.Scalars("eval/iou_illegal")[0].value == pytest.approx(record.result["metrics"]["iou_illegal"])
    assert run.Scalars("eval/accuracy")[0].step == len(rows) - 1
    assert 1 <= len(run.Tags()["images"]) <= 3


@pytest.mark.slow
def test_without_tensorboard_one_note_and_the_runs_work(tiny_belt, tmp_path, fresh_tblog, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    runs = tmp_path / "runs"
    first, second = _tiny_run(tiny_belt, runs, "cam"), _tiny_run(tiny_belt, runs, "puzzlecam")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    notes = [line for line in (first.stderr + second.stderr).splitlines() if "tensorboard is not installed" in line]
    assert notes == [("note: tensorboard is not installed, so no TensorBoard logs are written "
                      "(pip install 'wsbench[tensorboard]')")]
    assert len(list(iter_runs(runs))) == 2 and not list(runs.rglob("events.out.tfevents*"))
