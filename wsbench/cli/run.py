"""``wsbench list`` and ``wsbench run`` (with the options of the method it names)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from ..recipes import RECIPES, RecipeOption, parse_recipe_option, recipe_options
from .base import (
    _SEED,
    CACHE_DIR_HELP,
    RUNS_DIR_HELP,
    SPLIT_SEED_HELP,
    _cache_dir,
    _image_size,
    _runs_dir,
    cli,
    dataset_options,
    quiet_option,
)


# -- list -------------------------------------------------------------------------------------
@cli.command("list")
@click.argument("kind", type=click.Choice(["methods", "datasets", "flows", "recipes"]), default="methods")
@click.argument("pattern", default="*")
def list_cmd(kind: str, pattern: str) -> None:
    """List registered methods, datasets, flow estimators or training recipes matching PATTERN (wildcards allowed).

    Datasets show their default recipe; recipes show their main fields.
    """
    if kind == "recipes":
        _list_recipes(pattern)
        return
    registry = _registry(kind)
    entries = registry.entries(pattern)
    if not entries:
        click.echo(f"no {kind} match {pattern!r}")
        return
    width = max(len(e.name) for e in entries)
    for e in entries:
        flags = [f.name.replace("_", "-") for f in dataclasses.fields(e.meta)
                 if isinstance(getattr(e.meta, f.name), bool) and getattr(e.meta, f.name)]
        if kind == "datasets":
            flags.append(f"recipe: {e.meta.recipe}")
        desc = getattr(e.meta, "description", "")
        click.echo(f"{e.name:<{width}}  {desc}  [{e.source}{'; ' + ', '.join(flags) if flags else ''}]")


def _list_recipes(pattern: str) -> None:
    import fnmatch

    names = [n for n in RECIPES if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        click.echo(f"no recipes match {pattern!r}")
        return
    width = max(map(len, names))
    shown = ("backbone", "output_stride", "image_size", "epochs", "batch_size", "optimizer", "lr")
    for name in names:
        recipe = RECIPES[name].recipe()
        fields = ", ".join(f"--{k.replace('_', '-')} {'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                           for k, v in ((k, getattr(recipe, k)) for k in shown))
        methods = "; ".join(f"{m} " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options)
                            for m, options in RECIPES[name].method_options)  # defaults of methods' own options
        click.echo(f"{name:<{width}}  {RECIPES[name].description}  [{fields}{'; ' + methods if methods else ''}]")


def _registry(kind: str):
    if kind == "methods":
        from ..methods import METHODS

        return METHODS
    if kind == "datasets":
        from ..data import DATASETS

        return DATASETS
    from ..flow import FLOWS

    return FLOWS


# -- run --------------------------------------------------------------------------------------
_METHOD_PARAMS = "wsbench.method_params"


class _RunCommand(click.Command):
    """``wsbench run``: adds the options of the method named by ``--method`` to the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        name = _peek(args, ("--method", "-m"))
        if name:
            ctx.meta[_METHOD_PARAMS] = _method_params(name, {p.name for p in super().get_params(ctx)})
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as err:
            if name and ctx.meta.get(_METHOD_PARAMS) is not None:
                taken = [o for p in ctx.meta[_METHOD_PARAMS] for o in p.opts] or ["none"]
                raise click.UsageError(f"option {err.option_name} is not taken by method {name!r} "
                                       f"(its options: {', '.join(taken)})", ctx) from None
            raise

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        extra = ctx.meta.get(_METHOD_PARAMS) or []
        return params[:-1] + extra + params[-1:]  # keep --help last

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        if not ctx.meta.get(_METHOD_PARAMS):
            formatter.write_paragraph()
            formatter.write_text("Method options: wsbench run --method NAME --help shows the options of NAME.")


def _peek(args: list[str], names: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _method_params(name: str, taken: set[str]) -> list[click.Option] | None:
    from ..methods import method_options
    from ..registry import UnknownEntryError

    try:
        specs = method_options(name)
    except UnknownEntryError:
        return None  # reported by the callback, with the list of methods
    params = []
    for spec in specs:
        if spec.name in taken:
            raise UserError(f"method {name!r} declares option {spec.name!r}, which wsbench run already has")
        flag = spec.name.replace("_", "-")
        # not given: None, so that a named recipe's defaults for the method apply (NamedRecipe.method_options)
        shown = (f"--{flag}" if spec.default else f"--no-{flag}") if spec.type is bool else spec.default
        help_text = f"[{name}] {spec.help} [default: {shown}]"
        if spec.type is bool:
            params.append(click.Option([f"--{flag}/--no-{flag}"], default=None, help=help_text))
        else:
            type_ = click.Choice(spec.choices) if spec.choices else spec.type
            params.append(click.Option([f"--{flag}"], type=type_, default=None, help=help_text))
    return params


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by ``wsbench run`` and ``wsbench suite``'s overrides (recipe and setup)."""
    options = [
        click.option("--recipe", "recipe_name", type=click.Choice(list(RECIPES)),
                     help="named recipe (wsbench list recipes); the options below override its fields [default: "
                          "the dataset's (wsbench list datasets); on a CPU without --pretrained, cpu instead of "
                          "paper]"),
        *(_recipe_option(o) for o in recipe_options()),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _recipe_option(option: RecipeOption) -> Callable[..., Any]:
    """The click option of a recipe field (from its metadata, see :func:`wsbench.recipes.recipe_options`)."""
    flag = "--" + option.name.replace("_", "-")
    if option.type is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", default=None, help=option.help)
    if option.choices:
        kind: Any = click.Choice(list(option.choices))
    elif option.low is not None or option.high is not None:
        kind = click.IntRange(option.low, option.high)
    else:
        kind = option.type
    return click.option(flag, type=kind, help=option.help)


def recipe_from(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the recipe options out of a command's keyword arguments (those given: field → value)."""
    recipe = {}
    for option in recipe_options():
        value = kwargs.pop(option.name)
        recipe[option.name] = _image_size(value) if option.size else parse_recipe_option(option, value)
    return {k: v for k, v in recipe.items() if v is not None}


@cli.command("run", cls=_RunCommand)
@click.option("--method", "-m", required=True, help="method name (wsbench list methods)")
@click.option("--dataset", "-d", default="synthetic-belt", show_default=True,
              help="dataset name (wsbench list datasets)")
@click.option("--data-root", type=click.Path(path_type=Path), help="dataset folder (not needed for synthetic-belt)")
@click.option("--seed", type=_SEED, default=0, show_default=True, help="training seed (0 .. 2^64-1)")
@click.option("--split-seed", type=_SEED, help=SPLIT_SEED_HELP)
@click.option("--dataset-option", "dataset_option", multiple=True, metavar="KEY=VALUE",
              help="an option of the data set (repeatable), e.g. segment_seconds=10")
@run_options
@click.option("--fuse-neighbours", type=click.IntRange(min=0),
              help="fuse maps over +-K frames at inference with cached flow (0: off) "
                                                 "[default: the method's choice]")
@click.option("--fuse-mode", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="how --fuse-neighbours aggregates")
@click.option("--fuse-on", type=click.Choice(["maps", "raw"]), default="maps", show_default=True,
              help="what --fuse-neighbours fuses: the per-frame maps, or the raw (ReLU'd, unnormalised) class "
                   "maps normalised after fusing, as the authors' POF-CAM inference")
@click.option("--cam-scales", default="1", show_default=True,
              help="input scales of map inference, comma-separated (authors' code: 0.2,0.5,1,2,4,6)")
@click.option("--cam-flip", is_flag=True, help="also average the maps of horizontally mirrored frames")
@click.option("--cam-combine", type=click.Choice(["normalised", "raw"]), default="normalised", show_default=True,
              help="how --cam-scales/--cam-flip combine: each scale's normalised map summed, or the raw "
                   "(ReLU'd) class maps summed and normalised once, as the authors' code")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--workers", type=click.IntRange(min=0),
              help="data-loader worker processes [default: 0 on CPU, min(8, cores) on CUDA]")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model for training")
@click.option("--resume", is_flag=True, help="continue the interrupted run with the same options")
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@quiet_option
@click.pass_context
def run_cmd(ctx: click.Context, **kwargs: Any) -> None:
    """Train what METHOD needs on DATASET, produce maps for the test frames and score them.

    The classifier is shared with earlier runs that trained the same recipe (gradcam and f2f
    train once). Writes RUNS_DIR/<run-id>/config.json and, when finished, result.json.
    """
    from ..pipeline import RunSpec
    from ..runner import run_logged

    runs_dir, cache_dir = _runs_dir(kwargs["runs_dir"]), _cache_dir(kwargs["cache_dir"])
    method_params = ctx.meta.get(_METHOD_PARAMS) or []
    method_options = {p.name: v for p in method_params if (v := kwargs.pop(p.name)) is not None}
    recipe = recipe_from(kwargs)
    spec = RunSpec(method=kwargs["method"], dataset=kwargs["dataset"], recipe_name=kwargs["recipe_name"],
                   data_root=str(kwargs["data_root"]) if kwargs["data_root"] else None,
                   method_options=method_options, recipe=recipe, seed=kwargs["seed"], split_seed=kwargs["split_seed"],
                   dataset_options=dataset_options(kwargs["dataset_option"]),
                   fuse_neighbours=kwargs["fuse_neighbours"], fuse_mode=kwargs["fuse_mode"],
                   fuse_on=kwargs["fuse_on"], device=kwargs["device"],
                   workers=kwargs["workers"], compile=kwargs["compile_"],
                   cache_dir=cache_dir, cam_scales=kwargs["cam_scales"], cam_flip=kwargs["cam_flip"],
                   cam_combine=kwargs["cam_combine"])
    # also TensorBoard: the run's scores and example masks (optional extra)
    record = run_logged(spec, runs_dir, resume=kwargs["resume"], progress=not kwargs["quiet"])
    if record is None:  # a torchrun rank other than 0: rank 0 reports
        return
    click.echo(_summary(record.result or {}, record.path.parent))
    click.echo(f"run record: {record.path}")


def _summary(result: dict[str, Any], runs_dir: Path) -> str:
    m, b = result.get("metrics", {}), result.get("baselines", {})
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    if m.get("iou_illegal") is None:
        maps = result.get("maps") or {}
        written = f"; {maps['frames']} val/test maps written to {runs_dir / maps['dir']}" if maps else ""
        return (f"{result.get('method')} on {result.get('dataset')}: no GT masks in the test split, so no IoU "
                f"(IoU needs masks/before/<video>/<frame>.png){written} (accuracy {fmt(m.get('accuracy'))})")
    from ..texts import threshold_text

    return (f"{result['method']} on {result['dataset']} (seed {result['seed']}): "
            f"illegal IoU (pooled) {fmt(m['iou_illegal'])} at "
            f"{threshold_text(m.get('threshold_source'), m['threshold'])} "
            f"| per-frame mean {fmt(m.get('iou_illegal_per_frame'))} | two-class mIoU {fmt(m['miou'])} "
            f"| oracle IoU {fmt(m['oracle_iou_illegal'])} "
            f"| PxAP {fmt(m.get('pxap'))} "
            f"| accuracy {fmt(m.get('accuracy'))} | stability {fmt(m.get('stability'))} "
            f"(maps: stability {fmt(m.get('map_stability'))}, spread {fmt(m.get('map_spread'))}) "
            f"| all-foreground {fmt(b.get('all_foreground', {}).get('iou_illegal'))}"
            + (" | ‡ COLLAPSED (see the warning above; result.json: collapse)" if result.get("collapse") else ""))
