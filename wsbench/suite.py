"""Benchmark suites: a TOML spec of datasets × methods × seeds, run once each.

A spec (see ``benchmarks/*.toml``)::

    name = "paper"
    datasets = ["synthetic-belt"]
    seeds = [0]
    tables = ["comparison", "ablation", "background"]   # printed after the run

    [recipe]                 # optional, for every run: a named recipe (wsbench list recipes; default: the
    name = "cpu"             # data set's) and recipe options over its fields; a name alone: recipe = "cpu"
    epochs = 8

    [[runs]]
    method = "tccam"
    options = { spatial = false }   # the method's own options
    recipe = { epochs = 4 }         # optional, over the suite's recipe (or recipe = "NAME")
    label = "Only temporal"         # optional, for tables

    [datasets_options."video-folder"]  # optional per-dataset data root / split seed
    data_root = "/data/belt"          # or: wsbench suite SPEC --data-root video-folder=/data/belt;
                                      # other keys are the data set's own options (segment_seconds = 10)

    [evaluation]             # optional multi-scale / flip map inference for every run
    cam_scales = [0.2, 0.5, 1, 2, 4, 6]
    cam_flip = true

A run whose configuration hash matches a finished run in the runs directory is skipped, so
re-running a suite trains and evaluates nothing again.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .runs import RunRecord, iter_runs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SuiteRun", "SuiteSpec", "load_spec", "run_suite"]


@dataclasses.dataclass(frozen=True)
class SuiteRun:
    """One entry of ``[[runs]]``."""

    method: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    fuse_neighbours: int | None = None
    fuse_mode: str = "max"
    label: str | None = None


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


def load_spec(path: str | Path) -> SuiteSpec:
    """Read and validate a suite spec.

    Raises:
        UserError: unreadable TOML or a wrong structure, naming the file.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: suite spec not found") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"{path}: not a valid TOML suite spec ({err})") from None
    allowed = {"name", "description", "datasets", "seeds", "recipe", "runs", "tables", "datasets_options",
               "evaluation"}
    unknown = set(raw) - allowed
    if unknown:
        raise UserError(f"{path}: unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(allowed))})")
    if not raw.get("runs"):
        raise UserError(f"{path}: no [[runs]]")
    from .report import TABLES

    bad = [t for t in raw.get("tables", []) if t not in TABLES]
    if bad:
        raise UserError(f"{path}: unknown table {bad[0]!r} in tables (choose from {', '.join(TABLES)})")
    runs = []
    for i, entry in enumerate(raw["runs"]):
        extra = set(entry) - {f.name for f in dataclasses.fields(SuiteRun)}
        if "method" not in entry or extra:
            raise UserError(f"{path}: runs[{i}] needs 'method' and may have options, recipe, fuse_neighbours, "
                            "fuse_mode, label"
                            + (f" (unknown: {sorted(extra)[0]!r})" if extra else ""))
        entry = dict(entry, recipe=_recipe_table(entry.get("recipe", {}), path, f"runs[{i}].recipe"))
        runs.append(SuiteRun(**entry))
    evaluation = dict(raw.get("evaluation", {}))
    if set(evaluation) - {"cam_scales", "cam_flip"}:
        raise UserError(f"{path}: [evaluation] takes cam_scales and cam_flip, not "
                        f"{sorted(set(evaluation) - {'cam_scales', 'cam_flip'})[0]!r}")
    return SuiteSpec(name=raw.get("name", path.stem), path=path, datasets=list(raw.get("datasets", ["synthetic-belt"])),
                     seeds=[int(s) for s in raw.get("seeds", [0])], runs=runs,
                     recipe=_recipe_table(raw.get("recipe", {}), path, "recipe"),
                     dataset_options=dict(raw.get("datasets_options", {})),
                     tables=list(raw.get("tables", ["comparison"])), description=raw.get("description", ""),
                     evaluation=evaluation)


def _recipe_table(value: Any, path: Path, where: str) -> dict[str, Any]:
    """A spec's ``recipe``: ``"NAME"`` is ``{name = "NAME"}``; a table's ``name`` is a named recipe, the rest its options.

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
        for run in spec.runs:
            for seed in seeds:
                recipe = dict(spec.recipe)
                recipe.update(run.recipe)
                recipe.update(overrides.get("recipe", {}))
                recipe_name = recipe.pop("name", None)
                yield run, RunSpec(method=run.method, dataset=dataset, data_root=ds_opts.get("data_root"),
                                   split_seed=int(ds_opts.get("split_seed", 0)), method_options=dict(run.options),
                                   dataset_options=own_options,
                                   recipe=recipe, recipe_name=recipe_name, seed=seed,
                                   fuse_neighbours=run.fuse_neighbours,
                                   fuse_mode=run.fuse_mode,
                                   device=overrides.get("device", "auto"), workers=overrides.get("workers"),
                                   cache_dir=overrides.get("cache_dir"), label=run.label,
                                   cam_scales=tuple(spec.evaluation.get("cam_scales", (1.0,))),
                                   cam_flip=bool(spec.evaluation.get("cam_flip", False)))


def run_suite(spec: SuiteSpec, runs_dir: Path, seeds: list[int] | None = None, overrides: dict[str, Any] | None = None,
              progress: bool = True, echo: Callable[[str], None] = print) -> list[RunRecord]:
    """Run every dataset × run × seed of ``spec`` that has no finished run yet.

    Args:
        spec: the suite.
        runs_dir: runs directory.
        seeds: replaces the spec's seeds.
        overrides: ``{"recipe": {...}, "device": ..., "workers": ..., "cache_dir": ...,
            "data_roots": {dataset: path}}`` (data roots replace the spec's ``data_root``).
        progress: progress bars.
        echo: where one-line status messages go.

    Returns:
        The finished run records of the suite (old and new), in spec order.
    """
    from .device import resolve_device
    from .pipeline import execute, resolve

    overrides = overrides or {}
    seeds = seeds if seeds is not None else spec.seeds
    records = []
    started = time.perf_counter()
    todo = list(_specs(spec, seeds, overrides))
    for i, (run, run_spec) in enumerate(todo, 1):
        config_hash = resolve(run_spec, resolve_device(run_spec.device).type).config["config_hash"]
        done = [r for r in iter_runs(runs_dir) if r.config.get("config_hash") == config_hash]
        label = f"[{i}/{len(todo)}] {run_spec.method} {run.options or ''} on {run_spec.dataset} seed {run_spec.seed}"
        if done:
            echo(f"{label}: done before ({done[-1].run_id})")
            # this spec's label names the run in its tables, whatever an earlier suite called it
            records.append(dataclasses.replace(done[-1], config={**done[-1].config, "label": run.label}))
            continue
        echo(f"{label}: running")
        record = execute(run_spec, runs_dir, resume=True, progress=progress)
        m = (record.result or {}).get("metrics", {})
        iou = m.get("iou_illegal")
        echo(f"{label}: IoU {iou if iou is None else f'{iou:.4f}'} ({record.result['timings']['total']:.0f} s)")
        records.append(record)
    echo(f"suite {spec.name}: {len(records)} runs, {time.perf_counter() - started:.0f} s")
    return records
