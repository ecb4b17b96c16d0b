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

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .collapse import warning_text
from .errors import UserError
from .progress import no_bars_unless
from .runs import RunRecord, iter_runs
from .schema import (
    AnyValue,
    Bool,
    Int,
    ListOf,
    MapOf,
    Number,
    OneOf,
    Optional,
    Record,
    Str,
    decode_text,
    from_dataclass,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SEED_MAX", "PlannedRun", "SuiteRun", "SuiteSpec", "distill_stages", "done_line", "finished_line",
           "load_spec", "plan_suite", "run_suite", "spec_schema", "suite_record"]


@dataclasses.dataclass(frozen=True)
class SuiteRun:
    """One entry of ``[[runs]]``."""

    method: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    fuse_neighbours: int | None = None
    fuse_mode: str = "max"
    fuse_on: str = "maps"
    label: str | None = None
    distill: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class SuiteSpec:
    """A parsed suite file."""

    name: str
    path: Path
    datasets: list[str]
    seeds: list[int]
    runs: list[SuiteRun]
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    tables: list[str] = dataclasses.field(default_factory=lambda: ["comparison"])
    description: str = ""
    evaluation: dict[str, Any] = dataclasses.field(default_factory=dict)
    split_seeds: list[int] | None = None
    slurm: dict[str, Any] = dataclasses.field(default_factory=dict)
    distill: dict[str, Any] | None = None


#: seeds are 64-bit (what torch.manual_seed takes)
SEED_MAX = 2**64 - 1


def spec_schema() -> Record:
    """The schema of a suite spec: every key, its type, which are required."""
    from .recipes import Recipe
    from .report import TABLES

    recipe = from_dataclass(Recipe)
    recipe.fields["name"] = Str()  # a named recipe (wsbench list recipes), the other keys over it
    run = Record({"method": Str(), "options": MapOf(AnyValue()), "recipe": recipe,
                  "fuse_neighbours": Optional(Int(0)), "fuse_mode": OneOf("max", "mean"),
                  "fuse_on": OneOf("maps", "raw"),
                  "label": Optional(Str()), "distill": _distill_schema()},
                 required=("method",))
    dataset_options = Record({"data_root": Str(), "split_seed": Int(0, SEED_MAX)}, extra=AnyValue())
    evaluation = Record({"cam_scales": ListOf(Number(finite=True), min_len=1), "cam_flip": Bool()})
    slurm = Record({"partition": Str(), "account": Str(), "qos": Str(), "constraint": Str(), "gpus": Int(0),
                    "cpus": Int(1), "mem_gb": Number(finite=True), "time_min": Int(1), "tasks": Int(1),
                    "group": OneOf("run", "classifier"), "requeues": Int(0)})
    return Record({"name": Str(), "description": Str(), "datasets": ListOf(Str(), min_len=1),
                   "seeds": ListOf(Int(0, SEED_MAX), min_len=1), "recipe": recipe, "runs": ListOf(run, min_len=1),
                   "tables": ListOf(OneOf(*TABLES, "stages")), "datasets_options": MapOf(dataset_options),
                   "evaluation": evaluation, "split_seeds": ListOf(Int(0, SEED_MAX), min_len=1),
                   "slurm": slurm, "distill": _distill_schema()},
                  required=("runs",))


def _distill_schema() -> Record:
    """``[distill]`` (every run) or a run's ``distill = {...}``: a distill stage after the run (``wsbench distill``);
    ``recipe`` names a distill recipe, the other keys are its fields; ``enabled = false`` skips a run's stage."""
    return Record({"recipe": Str(), "enabled": Bool(), "architecture": Str(), "encoder": Str(),
                   "encoder_depth": Int(1, 5), "decoder_channels": ListOf(Int(1)), "pretrained": Str(),
                   "epochs": Int(1), "batch_size": Int(1), "lr": Number(finite=True),
                   "weight_decay": Number(finite=True), "image_size": ListOf(Int(1), min_len=2),
                   "ignore_band": ListOf(Number(finite=True), min_len=2), "dice_weight": Number(finite=True)})


def _distill_options(spec: SuiteSpec, run: SuiteRun) -> dict[str, Any] | None:
    """The distill stage of a run (the spec's ``[distill]`` under the run's own), or ``None``."""
    if spec.distill is None and run.distill is None:
        return None
    options = {**(spec.distill or {}), **(run.distill or {})}
    return None if options.pop("enabled", True) is False else options


def _options_schema(method: str) -> Record | None:
    """The schema of a registered method's options (``None`` for an unknown method: resolving reports it)."""
    from .methods import METHODS
    from .registry import RegistryError

    try:
        return from_dataclass(METHODS.entry(method).obj.Options)
    except (RegistryError, AttributeError, NameError, TypeError):  # not a method class, unresolvable hints
        return None


def load_spec(path: str | Path) -> SuiteSpec:
    """Read and validate a suite spec against :func:`spec_schema`.

    Raises:
        UserError: unreadable or non-UTF-8 file, invalid TOML, or a key of the wrong type, a
            missing or unknown key, naming the file and the key.
    """
    path = Path(path)
    try:
        text = decode_text(path.read_bytes(), path, "suite spec")
    except FileNotFoundError:
        raise UserError(f"{path}: suite spec not found") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the suite spec ({err.strerror or err})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not a valid TOML suite spec ({err})") from None
    except RecursionError:
        raise UserError(f"{path}: not a valid TOML suite spec (nested too deeply)") from None
    # a recipe may be a name ("cpu"): the table form {name = "cpu"} is what the schema checks
    if isinstance(raw.get("recipe"), str):
        raw["recipe"] = {"name": raw["recipe"]}
    for entry in raw.get("runs", []) if isinstance(raw.get("runs"), list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("recipe"), str):
            entry["recipe"] = {"name": entry["recipe"]}
    spec_schema().check(raw, path)
    for i, entry in enumerate(raw["runs"]):  # each method's options have a schema of their own
        options = _options_schema(entry["method"])
        if options is not None:
            options.check(entry.get("options", {}), path, f"runs[{i}].options")
    split_seeds = raw.get("split_seeds")
    if split_seeds is not None:
        fixed = [d for d, o in raw.get("datasets_options", {}).items() if "split_seed" in o]
        if fixed:
            raise UserError(f"{path}: datasets_options.{fixed[0]!r} sets split_seed and split_seeds is given; "
                            "keep one")
    runs = [SuiteRun(**dict(entry, recipe=_recipe_table(entry.get("recipe", {}), path, f"runs[{i}].recipe")))
            for i, entry in enumerate(raw["runs"])]
    return SuiteSpec(name=raw.get("name", path.stem), path=path, datasets=list(raw.get("datasets", ["synthetic-belt"])),
                     seeds=[int(s) for s in raw.get("seeds", [0])], runs=runs,
                     recipe=_recipe_table(raw.get("recipe", {}), path, "recipe"),
                     dataset_options=dict(raw.get("datasets_options", {})),
                     tables=list(raw.get("tables", ["comparison"])), description=raw.get("description", ""),
                     evaluation=dict(raw.get("evaluation", {})), split_seeds=split_seeds,
                     slurm=dict(raw.get("slurm", {})), distill=raw.get("distill"))


def _recipe_table(value: Any, path: Path, where: str) -> dict[str, Any]:
    """A spec's ``recipe``: ``"NAME"`` is ``{name = "NAME"}``; a table's ``name`` is a named recipe, the rest its
    options.

    Raises:
        UserError: neither a string nor a table, or an unknown recipe name.
    """
    from .recipes import named_recipe

    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise UserError(f"{path}: {where} must be a recipe name or a table of recipe options, not {value!r}")
    if "name" in value:
        try:
            named_recipe(value["name"])
        except UserError as err:
            raise UserError(f"{path}: {where}: {err}") from None
    return dict(value)


def _specs(spec: SuiteSpec, seeds: list[int], overrides: dict[str, Any]):
    from .pipeline import RunSpec

    for dataset in spec.datasets:
        ds_opts = dict(spec.dataset_options.get(dataset, {}))
        if dataset in overrides.get("data_roots", {}):
            ds_opts["data_root"] = overrides["data_roots"][dataset]
        own_options = {k: v for k, v in ds_opts.items() if k not in ("data_root", "split_seed")}
        split_seeds: list[Any] = spec.split_seeds or [ds_opts.get("split_seed")]
        for run in spec.runs:
            for split_seed, seed in itertools.product(split_seeds, seeds):
                recipe = dict(spec.recipe)
                recipe.update(run.recipe)
                recipe.update(overrides.get("recipe", {}))
                recipe_name = recipe.pop("name", None)
                yield run, RunSpec(method=run.method, dataset=dataset, data_root=ds_opts.get("data_root"),
                                   split_seed=None if split_seed is None else int(split_seed),
                                   method_options=dict(run.options),
                                   dataset_options=own_options,
                                   recipe=recipe, recipe_name=recipe_name, seed=seed,
                                   fuse_neighbours=run.fuse_neighbours,
                                   fuse_mode=run.fuse_mode, fuse_on=run.fuse_on,
                                   device=overrides.get("device", "auto"), workers=overrides.get("workers"),
                                   cache_dir=overrides.get("cache_dir"), label=run.label,
                                   cam_scales=tuple(spec.evaluation.get("cam_scales", (1.0,))),
                                   cam_flip=bool(spec.evaluation.get("cam_flip", False)))


@dataclasses.dataclass
class PlannedRun:
    """One run of a suite, resolved: its place, its status line label, what to execute, and whether it is done.

    ``group`` is the same for runs that share a trained classifier (data, split, seed, recipe and the
    classifier's method), so a parallel launcher can keep them together.
    """

    index: int
    label: str
    run_spec: Any
    suite_label: str | None
    group: str
    done: RunRecord | None = None
    run: SuiteRun | None = None


def plan_suite(spec: SuiteSpec, runs_dir: Path, seeds: list[int] | None = None,
               overrides: dict[str, Any] | None = None) -> list[PlannedRun]:
    """Every dataset × run × split seed × seed of ``spec`` in spec order, each with its finished run if one exists.

    Args: as :func:`run_suite`.
    """
    import json

    from .device import resolve_device
    from .pipeline import resolve, same_run

    overrides = overrides or {}
    seeds = seeds if seeds is not None else spec.seeds
    todo = list(_specs(spec, seeds, overrides))
    finished = list(iter_runs(runs_dir))
    planned = []
    for i, (run, run_spec) in enumerate(todo, 1):
        resolved = resolve(run_spec, resolve_device(run_spec.device).type)
        config = resolved.config
        done = [r for r in finished if same_run(r, config)]
        label = f"[{i}/{len(todo)}] {run_spec.method} {run.options or ''} on {run_spec.dataset} seed {run_spec.seed}"
        if run_spec.split_seed is not None:
            label += f" split seed {run_spec.split_seed}"
        group = json.dumps([run_spec.dataset, run_spec.data_root, run_spec.split_seed, run_spec.dataset_options,
                            run_spec.seed, resolved.method.classifier(), dataclasses.asdict(resolved.recipe)],
                           sort_keys=True, default=str)
        planned.append(PlannedRun(i, label, run_spec, run.label, group, done[-1] if done else None, run))
    return planned


def suite_record(planned: PlannedRun) -> RunRecord:
    """The finished record of a done run, named by this spec's label whatever an earlier suite called it."""
    assert planned.done is not None
    return dataclasses.replace(planned.done, config={**planned.done.config, "label": planned.suite_label})


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
    from .figures import tensorboard_run
    from .pipeline import execute

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
        record = execute(planned.run_spec, runs_dir, resume=True, progress=progress)
        if record is None:  # a torchrun rank other than 0 only trains: rank 0 records and reports
            continue
        tensorboard_run(record, planned.run_spec.cache_dir)
        echo(finished_line(planned.label, record))
        finished.append((planned, record))
        records.append(record)
    with no_bars_unless(progress):
        records += distill_stages(spec, finished, runs_dir, overrides, echo)
    echo(f"suite {spec.name}: {len(records)} runs, {time.perf_counter() - started:.0f} s")
    return records


def distill_stages(spec: SuiteSpec, finished: list[tuple[PlannedRun, RunRecord]], runs_dir: Path,
                   overrides: dict[str, Any] | None = None,
                   echo: Callable[[str], None] = print) -> list[RunRecord]:
    """The distill stages the spec asks for, one after another, once the planned runs are finished.

    Args:
        spec: the suite.
        finished: each planned run (:func:`plan_suite`) with its finished record.
        runs_dir, overrides, echo: as :func:`run_suite`.

    Returns:
        The distilled runs' records (finished now or before).
    """
    return [_distill_stage(spec, planned.run, record, runs_dir, overrides or {}, echo)
            for planned, record in finished
            if planned.run is not None and _distill_options(spec, planned.run) is not None]


def _distill_stage(spec: SuiteSpec, run: SuiteRun, source: RunRecord, runs_dir: Path, overrides: dict[str, Any],
                   echo: Callable[[str], None]) -> RunRecord:
    """Distill ``source`` as the spec asks (skipped when a finished distilled run of that configuration exists)."""
    from .distill import distill_once, distill_recipe

    options = dict(_distill_options(spec, run) or {})
    recipe = distill_recipe(options.pop("recipe", "cpu"), **options)
    seed = int(source.config.get("seed", 0))
    label = f"distill {source.run_id} seed {seed}"
    record, ran = distill_once(source, runs_dir, recipe, seed, overrides.get("device", "auto"),
                               overrides.get("cache_dir"))
    iou = (record.result or {}).get("metrics", {}).get("iou_illegal")
    echo(f"{label}: " + (f"IoU {iou if iou is None else f'{iou:.4f}'} "
                         f"({record.finished_result['timings']['total']:.0f} s)"
                         if ran else f"done before ({record.run_id})"))
    return record
