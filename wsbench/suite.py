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

from __future__ import annotations

import dataclasses
import itertools
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .collapse import warning_text
from .errors import UserError
from .progress import no_bars_unless
from .runs import RunRecord, is_distilled, iter_runs, recorded_split_seed
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

__all__ = ["SEED_MAX", "PlannedRun", "SuiteRun", "SuiteSpec", "apply_sweeps", "distill_stages", "done_line",
           "finished_line", "grid_points", "load_spec", "parse_spec", "plan_suite", "run_suite", "spec_schema",
           "suite_record"]


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
    sweep: dict[str, dict[str, list[Any]]] = dataclasses.field(default_factory=dict)


#: seeds are 64-bit (what torch.manual_seed takes)
SEED_MAX = 2**64 - 1


def spec_schema() -> Record:
    """The schema of a suite spec: every key, its type, which are required."""
    from .recipes import MAX_CAM_SCALE, Recipe
    from .report import TABLES

    recipe = from_dataclass(Recipe)
    recipe.fields["name"] = Str()  # a named recipe (wsbench list recipes), the other keys over it
    run = Record({"method": Str(), "options": MapOf(AnyValue()), "recipe": recipe,
                  "fuse_neighbours": Optional(Int(0)), "fuse_mode": OneOf("max", "mean"),
                  "fuse_on": OneOf("maps", "raw"),
                  "label": Optional(Str()), "distill": _distill_schema()},
                 required=("method",))
    dataset_options = Record({"data_root": Str(), "split_seed": Int(0, SEED_MAX)}, extra=AnyValue())
    evaluation = Record({"cam_scales": ListOf(Number(lo=1e-6, hi=MAX_CAM_SCALE), min_len=1), "cam_flip": Bool(),
                         "cam_combine": OneOf("normalised", "raw")})
    slurm = Record({"partition": Str(), "account": Str(), "qos": Str(), "constraint": Str(), "gpus": Int(0),
                    "cpus": Int(1), "mem_gb": Number(finite=True), "time_min": Int(1), "tasks": Int(1),
                    "group": OneOf("run", "classifier"), "requeues": Int(0)})
    return Record({"name": Str(), "description": Str(), "datasets": ListOf(Str(), min_len=1),
                   "seeds": ListOf(Int(0, SEED_MAX), min_len=1), "recipe": recipe, "runs": ListOf(run, min_len=1),
                   "tables": ListOf(OneOf(*TABLES, "stages")), "datasets_options": MapOf(dataset_options),
                   "evaluation": evaluation, "split_seeds": ListOf(Int(0, SEED_MAX), min_len=1),
                   "slurm": slurm, "distill": _distill_schema(),
                   "sweep": MapOf(MapOf(ListOf(AnyValue(), min_len=1)))},
                  required=("runs",))


def _distill_schema() -> Record:
    """``[distill]`` (every run) or a run's ``distill = {...}``: a distill stage after the run (``wsbench distill``);
    ``recipe`` names a distill recipe, the other keys are its fields; ``enabled = false`` skips a run's stage."""
    return Record({"recipe": Str(), "enabled": Bool(), "architecture": Str(), "encoder": Str(),
                   "encoder_depth": Int(1, 5), "decoder_channels": ListOf(Int(1)), "pretrained": Str(),
                   "epochs": Int(1), "batch_size": Int(1), "lr": Number(finite=True),
                   "weight_decay": Number(finite=True), "image_size": ListOf(Int(1), length=2),
                   "ignore_band": ListOf(Number(finite=True), length=2), "dice_weight": Number(finite=True)})


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
    return parse_spec(raw, path)


def parse_spec(raw: dict[str, Any], path: str | Path) -> SuiteSpec:
    """A suite spec from its parsed TOML, validated against :func:`spec_schema`, each run's method options and
    distill stage (:func:`wsbench.distill.distill_recipe`), so that a bad value stops the suite before any work.

    Args:
        raw: the parsed document (it may be changed).
        path: the spec's file, named in messages.

    Raises:
        UserError: a key of the wrong type or out of range, a missing or unknown key, naming the file and the key.
    """
    path = Path(path)
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
    for method, grid in raw.get("sweep", {}).items():
        if not any(entry["method"] == method for entry in raw["runs"]):
            raise UserError(f"{path}: sweep.{method}: the spec has no [[runs]] entry of method {method!r} to tune")
        options = _options_schema(method)
        for key, values in grid.items():
            for value in values:
                if options is not None:
                    options.check({key: value}, path, f"sweep.{method}")
    split_seeds = raw.get("split_seeds")
    if split_seeds is not None:
        fixed = [d for d, o in raw.get("datasets_options", {}).items() if "split_seed" in o]
        if fixed:
            raise UserError(f"{path}: datasets_options.{fixed[0]!r} sets split_seed and split_seeds is given; "
                            "keep one")
    runs = [SuiteRun(**dict(entry, recipe=_recipe_table(entry.get("recipe", {}), path, f"runs[{i}].recipe")))
            for i, entry in enumerate(raw["runs"])]
    name = raw.get("name", path.stem)
    if not _PLAIN_NAME.fullmatch(name):  # it names RUNS_DIR/jobs/<name>.json and SLURM job names
        raise UserError(f"{path}: name = {name!r} is not a plain file name (letters, digits, space, _ . + -; "
                        "not starting with '.' or a space)" + ("" if "name" in raw else "; set name in the spec"))
    spec = SuiteSpec(name=name, path=path, datasets=list(raw.get("datasets", ["synthetic-belt"])),
                     seeds=[int(s) for s in raw.get("seeds", [0])], runs=runs,
                     recipe=_recipe_table(raw.get("recipe", {}), path, "recipe"),
                     dataset_options=dict(raw.get("datasets_options", {})),
                     tables=list(raw.get("tables", ["comparison"])), description=raw.get("description", ""),
                     evaluation=dict(raw.get("evaluation", {})), split_seeds=split_seeds,
                     slurm=dict(raw.get("slurm", {})), distill=raw.get("distill"),
                     sweep={m: dict(g) for m, g in raw.get("sweep", {}).items()})
    for i, run in enumerate(runs):
        stage = _distill_options(spec, run)
        if stage is not None:
            from .distill import distill_recipe

            try:
                distill_recipe(stage.pop("recipe", "cpu"), **stage)
            except UserError as err:
                raise UserError(f"{path}: distill stage of runs[{i}]: {err}") from None
    return spec


#: a spec name: one plain file name (no folder, no '..', no control or shell characters)
_PLAIN_NAME = re.compile(r"\w[\w .+-]{0,99}(?<! )")


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
        for run, point in ((entry, p) for entry in spec.runs for p in grid_points(spec, entry.method)):
            for split_seed, seed in itertools.product(split_seeds, seeds):
                recipe = dict(spec.recipe)
                recipe.update(run.recipe)
                recipe.update(overrides.get("recipe", {}))
                recipe_name = recipe.pop("name", None)
                yield run, RunSpec(method=run.method, dataset=dataset, data_root=ds_opts.get("data_root"),
                                   split_seed=None if split_seed is None else int(split_seed),
                                   method_options={**run.options, **point},
                                   dataset_options=own_options,
                                   recipe=recipe, recipe_name=recipe_name, seed=seed,
                                   fuse_neighbours=run.fuse_neighbours,
                                   fuse_mode=run.fuse_mode, fuse_on=run.fuse_on,
                                   device=overrides.get("device", "auto"), workers=overrides.get("workers"),
                                   cache_dir=overrides.get("cache_dir"), label=run.label,
                                   cam_scales=tuple(spec.evaluation.get("cam_scales", (1.0,))),
                                   cam_flip=bool(spec.evaluation.get("cam_flip", False)),
                                   cam_combine=str(spec.evaluation.get("cam_combine", "normalised")))


def grid_points(spec: SuiteSpec, method: str) -> list[dict[str, Any]]:
    """The option settings ``[sweep.METHOD]`` asks for, in grid order (``[{}]`` without a sweep).

    Args:
        spec: the suite.
        method: a method of its ``[[runs]]``.

    Returns:
        One ``{option: value}`` per point of the product of the grid's lists (keys in spec order).
    """
    grid = spec.sweep.get(method) or {}
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def _grid_text(grid: dict[str, list[Any]]) -> str:
    return " × ".join(f"{k} ∈ {{{', '.join(str(v) for v in values)}}}" for k, values in grid.items())


def apply_sweeps(spec: SuiteSpec, records: list[RunRecord], runs_dir: Path) -> tuple[list[RunRecord], list[str]]:
    """Keep, of every swept run, the grid point chosen on validation; record the grid and the choice.

    For every ``[[runs]]`` entry of a method with a ``[sweep.METHOD]`` grid, on every data set
    (name, root and options) and split seed, each grid point's runs (one per training seed) are
    scored by their mean ``metrics.val_iou_illegal`` (the validation IoU at the validation-chosen
    threshold); the point with the highest mean is kept (ties: the first in grid order) and the
    other points' runs leave the suite's tables. Only validation decides; the kept runs' test
    scores are what the tables show, under the entry's label (else the method's name and
    "tuned on val"). A point without a validation IoU never wins. The grid, every point's mean
    validation IoU and the choice are written to ``RUNS_DIR/sweeps/<suite name>.json``.

    Args:
        spec: the suite.
        records: its finished runs (as :func:`run_suite` returns them).
        runs_dir: the runs directory.

    Returns:
        ``(records to tabulate, footnotes)``: one footnote per swept entry naming its grid and
        choices. Without sweeps, ``(records, [])`` unchanged and nothing written.
    """
    import json

    from .files import atomic_write_json
    from .methods import METHODS

    if not spec.sweep:
        return records, []
    kept: list[RunRecord] = []
    groups: dict[tuple[int, str], dict[str, list[RunRecord]]] = {}
    for record in records:
        config = record.config
        entry = _swept_entry(spec, config)
        if entry is None:
            kept.append(record)
            continue
        data = json.dumps([config.get("dataset"), config.get("data_root"), config.get("dataset_options"),
                           recorded_split_seed(config)], sort_keys=True, default=str)
        point = {k: config["method_options"].get(k) for k in spec.sweep[spec.runs[entry].method]}
        groups.setdefault((entry, data), {}).setdefault(json.dumps(point, sort_keys=True), []).append(record)
    choices, notes = [], []
    for (entry, data), points in groups.items():
        run = spec.runs[entry]
        scored: list[tuple[str, float | None, list[RunRecord]]] = []
        for key, runs in points.items():
            values = [(r.result or {}).get("metrics", {}).get("val_iou_illegal") for r in runs]
            mean = None if any(v is None for v in values) else sum(values) / len(values)
            scored.append((key, mean, runs))
        order = [json.dumps(p, sort_keys=True) for p in grid_points(spec, run.method)]
        scored.sort(key=lambda s: order.index(s[0]) if s[0] in order else len(order))
        valid = [(k, m, rs) for k, m, rs in scored if m is not None]
        best = max(valid, key=lambda s: s[1], default=None)
        label = run.label or f"{METHODS.entry(run.method).meta.display_name} (tuned on val)"
        if best is not None:
            kept += [dataclasses.replace(r, config={**r.config, "label": label}) for r in best[2]]
        dataset, _, _, split_seed = json.loads(data)
        choices.append({"entry": entry, "method": run.method, "label": label, "dataset": dataset,
                        "split_seed": split_seed, "grid": spec.sweep[run.method],
                        "points": [{"options": json.loads(k), "val_iou_illegal": m, "runs": [r.run_id for r in rs]}
                                   for k, m, rs in scored],
                        "chosen": json.loads(best[0]) if best else None})
        chosen = (", ".join(f"{k}={v}" for k, v in json.loads(best[0]).items())
                  + f" (val IoU ×100 {100 * best[1]:.2f})" if best else "none (no validation IoU)")
        split = "" if split_seed is None else f" split seed {split_seed}"
        notes.append(f"{label}: tuned on validation over {_grid_text(spec.sweep[run.method])} ({len(order)} "
                     f"configurations × {max(len(rs) for _, _, rs in scored)} seed(s)) on {dataset}{split}; chosen "
                     f"{chosen}; only its test score is shown.")
    atomic_write_json(Path(runs_dir) / "sweeps" / f"{spec.name}.json",
                      {"suite": spec.name, "sweep": spec.sweep, "choices": choices})
    return kept, notes


def _swept_entry(spec: SuiteSpec, config: dict[str, Any]) -> int | None:
    """The ``[[runs]]`` entry (index) a finished run of the suite came from, if its method is swept: of the
    entries of its method and label whose own options (other than the grid's) it has, the most specific."""
    method = config.get("method")
    grid = spec.sweep.get(method) if isinstance(method, str) else None
    if not grid:
        return None
    options = config.get("method_options") or {}
    matches = []
    for i, run in enumerate(spec.runs):
        fixed = {k: v for k, v in run.options.items() if k not in grid}
        if run.method == method and run.label == config.get("label") and \
                all(options.get(k) == v for k, v in fixed.items()):
            matches.append((len(fixed), -i))
    return -max(matches)[1] if matches else None


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
    from .recipes import recipe_record

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
                            run_spec.seed, resolved.method.classifier(), recipe_record(resolved.recipe)],
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
    from .distill import distill_hash, distill_once, distill_recipe

    options = dict(_distill_options(spec, run) or {})
    recipe = distill_recipe(options.pop("recipe", "cpu"), **options)
    seed = int(source.config.get("seed", 0))
    label = f"distill {source.run_id} seed {seed}"
    if not execute:
        wanted = distill_hash(source, recipe, seed)
        done = [r for r in iter_runs(runs_dir) if is_distilled(r.config) and r.config.get("config_hash") == wanted]
        return done[-1] if done else None
    record, ran = distill_once(source, runs_dir, recipe, seed, overrides.get("device", "auto"),
                               overrides.get("cache_dir"))
    iou = (record.result or {}).get("metrics", {}).get("iou_illegal")
    echo(f"{label}: " + (f"IoU {iou if iou is None else f'{iou:.4f}'} "
                         f"({record.finished_result['timings']['total']:.0f} s)"
                         if ran else f"done before ({record.run_id})"))
    return record
