"""Benchmark suites: a TOML spec of datasets × methods × seeds × split seeds, run once each.

A spec (see ``benchmarks/*.toml``)::

    name = "paper"
    datasets = ["synthetic-belt"]
    seeds = [0]
    split_seeds = [0, 1, 2]  # optional: every run once per split seed (re-splits synthetic-belt;
                             # without it each data set keeps its own split)
    tables = ["comparison", "ablation", "background"]   # printed after the run

    [recipe]                 # optional, for every run: a named recipe (wsbench list recipes; default: the
    name = "cpu"             # data set's) and recipe options over its fields; a name alone: recipe = "cpu"
    epochs = 8

    [[runs]]
    method = "tccam"
    options = { spatial = false }   # the method's own options
    recipe = { epochs = 4 }         # optional, over the suite's recipe (or recipe = "NAME")
    label = "Only temporal"         # optional, for tables

    [datasets_options."video-folder"]  # optional per-dataset data root / split seed (not with split_seeds)
    data_root = "/data/belt"          # or: wsbench suite SPEC --data-root video-folder=/data/belt;
                                      # other keys are the data set's own options (segment_seconds = 10)

    [evaluation]             # optional multi-scale / flip map inference for every run
    cam_scales = [0.2, 0.5, 1, 2, 4, 6]
    cam_flip = true
    cam_combine = "raw"      # optional: raw maps summed, normalised once (the authors' code); default "normalised"

    [sweep.puzzlecam]        # optional: tune a method's options on validation, the same way for every method
    alpha_max = [2.0, 4.0, 8.0]      # every run of puzzlecam once per grid point (the product of the lists)
    weight_ramp = ["ramp", "linear"] # the suite's tables keep, per data set and split, the point with the best
                                     # mean val IoU over seeds and show its test score; see apply_sweeps

    [slurm]                  # optional, for --launcher slurm (see wsbench.slurm; options override it)
    partition = "gpu"        # also: account, qos, constraint
    gpus = 1                 # GPUs per job; tasks = N starts N processes per job (one per GPU, DDP)
    cpus = 8                 # CPUs per task
    mem_gb = 32
    time_min = 240           # a job stopped at its time limit or preempted is requeued and resumes
    group = "run"            # one job per run, or "classifier": one per group sharing a classifier

A run whose configuration hash and data fingerprint (file names, sizes and mtimes of frames,
masks and ``.flo`` files, see :func:`wsbench.pipeline.data_fingerprint`) match a finished run in
the runs directory is skipped, so re-running a suite trains and evaluates nothing again, while
data changed under the same path runs again.
"""

from .plan import PlannedRun, grid_points, plan_suite, refresh, suite_record
from .run import distill_stages, done_line, finished_line, run_suite
from .spec import SEED_MAX, SuiteRun, SuiteSpec, load_spec, parse_spec, spec_schema
from .sweeps import apply_sweeps

# private names that tests reach for
from .plan import _specs  # noqa: F401  isort: skip
from .spec import _distill_options  # noqa: F401  isort: skip

__all__ = ["SEED_MAX", "PlannedRun", "SuiteRun", "SuiteSpec", "apply_sweeps", "distill_stages", "done_line",
           "finished_line", "grid_points", "load_spec", "parse_spec", "plan_suite", "refresh", "run_suite",
           "spec_schema", "suite_record"]
