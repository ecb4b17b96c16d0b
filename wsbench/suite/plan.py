"""A suite planned: every data set × run × split seed × seed resolved once, with its finished run if one exists."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from ..runs import RunRecord, iter_runs
from .spec import SuiteRun, SuiteSpec

__all__ = ["PlannedRun", "grid_points", "plan_suite", "refresh", "suite_record"]


def _specs(spec: SuiteSpec, seeds: list[int], overrides: dict[str, Any]):
    from ..pipeline import RunSpec

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


@dataclasses.dataclass
class PlannedRun:
    """One run of a suite, resolved: its place, its status line label, what to execute, and whether it is done.

    ``group`` is the same for runs that share a trained classifier (data, split, seed, recipe and the
    classifier's method), so a parallel launcher can keep them together. ``config`` is the resolved
    configuration (what a finished run of it has, :func:`wsbench.pipeline.same_run`) and ``resolved``
    the whole resolution (:func:`wsbench.pipeline.resolve`; kept in this process only, never pickled
    into a worker or a job).
    """

    index: int
    label: str
    run_spec: Any
    suite_label: str | None
    group: str
    done: RunRecord | None = None
    run: SuiteRun | None = None
    config: dict[str, Any] | None = None
    resolved: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "resolved": None}  # its data index and method stay in the planning process


def plan_suite(spec: SuiteSpec, runs_dir: Path, seeds: list[int] | None = None,
               overrides: dict[str, Any] | None = None) -> list[PlannedRun]:
    """Every dataset × run × split seed × seed of ``spec`` in spec order, each with its finished run if one exists.

    Each run is resolved here, once per command: launchers read ``PlannedRun.resolved`` and look for
    runs finished later with :func:`refresh`.

    Args: as :func:`wsbench.suite.run_suite`.
    """
    import json

    from ..device import resolve_device
    from ..pipeline import resolve
    from ..recipes import recipe_record

    overrides = overrides or {}
    seeds = seeds if seeds is not None else spec.seeds
    todo = list(_specs(spec, seeds, overrides))
    planned = []
    for i, (run, run_spec) in enumerate(todo, 1):
        resolved = resolve(run_spec, resolve_device(run_spec.device).type)
        label = f"[{i}/{len(todo)}] {run_spec.method} {run.options or ''} on {run_spec.dataset} seed {run_spec.seed}"
        if run_spec.split_seed is not None:
            label += f" split seed {run_spec.split_seed}"
        group = json.dumps([run_spec.dataset, run_spec.data_root, run_spec.split_seed, run_spec.dataset_options,
                            run_spec.seed, resolved.method.classifier(), recipe_record(resolved.recipe)],
                           sort_keys=True, default=str)
        planned.append(PlannedRun(i, label, run_spec, run.label, group, None, run, resolved.config, resolved))
    return refresh(planned, runs_dir)


def refresh(planned: list[PlannedRun], runs_dir: Path) -> list[PlannedRun]:
    """``planned`` with each run's ``done`` set to its latest finished run in ``runs_dir`` (or ``None``), without
    resolving anything again: after a launcher ran them, the runs it finished."""
    from ..pipeline import same_run

    finished = list(iter_runs(runs_dir))
    out = []
    for item in planned:
        done = [r for r in finished if item.config is not None and same_run(r, item.config)]
        out.append(dataclasses.replace(item, done=done[-1] if done else None))
    return out


def suite_record(planned: PlannedRun) -> RunRecord:
    """The finished record of a done run, named by this spec's label whatever an earlier suite called it."""
    assert planned.done is not None
    return dataclasses.replace(planned.done, config={**planned.done.config, "label": planned.suite_label})
