"""A suite spec: its dataclasses, its schema, reading and checking it (the format: :mod:`wsbench.suite`)."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..schema import (
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

__all__ = ["SEED_MAX", "SuiteRun", "SuiteSpec", "load_spec", "parse_spec", "spec_schema"]


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
    from ..recipes import MAX_CAM_SCALE, Recipe
    from ..report import TABLES

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
                   "tables": ListOf(OneOf(*TABLES, "pairs", "stages", "explanations", "sanity")),
                   "datasets_options": MapOf(dataset_options),
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
    from ..methods import METHODS
    from ..registry import RegistryError

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
            from ..distill import distill_recipe

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
    from ..recipes import named_recipe

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

