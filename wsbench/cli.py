"""The ``wsbench`` command line (click). Wiring only: the work happens in the library modules.

Errors that users can fix (:class:`~wsbench.errors.UserError`, unknown registry names) print one
line and exit with status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .data.synthetic import BeltConfig
from .errors import UserError
from .recipes import RECIPES, RecipeOption, parse_recipe_option, recipe_options
from .registry import RegistryError
from .suite import SEED_MAX

RUNS_DIR_HELP = "runs directory [default: $WSBENCH_RUNS_DIR or ./runs]"
CACHE_DIR_HELP = "cache directory for frames and flows [default: $WSBENCH_CACHE_DIR or ~/.cache/wsbench]"
SPLIT_SEED_HELP = ("seed of the split by video; re-splits synthetic-belt (same proportions); seruso/ws2: which "
                   "test_set videos become val [default: the data set's split: splits.json or its fixed split, "
                   "else seed 0]")
_SEED = click.IntRange(0, SEED_MAX)


# -- error handling ---------------------------------------------------------------------------
class _UsageLine(click.ClickException):
    """A usage error as one line, with the exit status of click's usage errors (2)."""

    exit_code = click.UsageError.exit_code


class _Group(click.Group):
    """Turns user errors into one-line messages (tracebacks only with ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UserError, RegistryError) as err:
            if ctx.meta.get("wsbench.debug"):
                raise
            raise click.ClickException(str(err)) from None
        except click.UsageError as err:  # one line too, instead of click's usage block
            if ctx.meta.get("wsbench.debug") or err.ctx is None:
                raise
            raise _UsageLine(f"{err.format_message()} (see '{err.ctx.command_path} -h')") from None
        except OSError as err:  # a full, read-only or forbidden folder: one line naming it
            from .files import disk_error

            disk = disk_error(err)
            if disk is None or ctx.meta.get("wsbench.debug"):
                raise
            raise click.ClickException(str(disk)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted; run the same command with --resume to continue", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="wsbench")
@click.option("--debug", is_flag=True, help="show tracebacks instead of one-line errors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark weakly supervised CAM methods for video segmentation in waste sorting.

    \b
    Quick start:
      wsbench list methods
      wsbench run --method tccam --dataset synthetic-belt
      wsbench leaderboard
    """
    ctx.meta["wsbench.debug"] = debug
    if not debug:
        _one_line_warnings(ctx)


def _one_line_warnings(ctx: click.Context) -> None:
    """Print warnings as one line, ``warning: [Category: ]<message>``, and silence OpenCV's log lines.

    Both last until the command ends.
    """
    import warnings

    import cv2

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        kind = "" if category is UserWarning else f"{category.__name__}: "
        click.echo(f"warning: {kind}{message}", err=True)

    saved, level = warnings.showwarning, cv2.utils.logging.getLogLevel()
    warnings.showwarning = show
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

    def restore() -> None:
        warnings.showwarning = saved
        cv2.utils.logging.setLogLevel(level)

    ctx.call_on_close(restore)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="wsbench")


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:  # every bar of the library (caches, flows, inference) off while this command runs
        from .progress import progress_bars

        ctx.with_resource(progress_bars(False))
    return value


#: ``--quiet/-q`` of every command with progress bars
quiet_option = click.option("--quiet", "-q", is_flag=True, callback=_set_quiet,
                            help="no progress bars (and for run: no recipe note or time estimate)")
#: ``--overwrite`` of every command that writes a named output file
overwrite_option = click.option("--overwrite", is_flag=True, help="replace existing output files")


def _runs_dir(path: Path | None) -> Path:
    """The runs directory (option, environment or default), refused when a file is in the way."""
    from .files import check_output
    from .runs import resolve_runs_dir

    return check_output(resolve_runs_dir(path), "--runs-dir", "dir")


def _cache_dir(path: Path | None) -> str | None:
    """``--cache-dir`` as the library takes it, refused when it (or the resolved default) is a file."""
    from .data.cache import resolve_cache_dir
    from .files import check_output

    check_output(resolve_cache_dir(path), "--cache-dir", "dir")
    return str(path) if path else None


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
        from .methods import METHODS

        return METHODS
    if kind == "datasets":
        from .data import DATASETS

        return DATASETS
    from .flow import FLOWS

    return FLOWS


# -- run --------------------------------------------------------------------------------------
def _image_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)(?:[x,](\d+))?", value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not N or WxH")
    w = int(match[1])
    return w, int(match[2] or w)


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
    from .methods import method_options
    from .registry import UnknownEntryError

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
    from .pipeline import RunSpec
    from .runner import run_logged

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
    from .texts import threshold_text

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


# -- leaderboard and suites -------------------------------------------------------------------
#: the metrics tables can show (wsbench.report.METRICS; listed here so --help needs no pandas import)
_METRIC_CHOICES = ["iou_illegal", "iou_illegal_per_frame", "miou", "oracle_iou_illegal", "stability",
                   "iou_illegal_wsws", "map_stability", "map_spread", "pxap"]


def _print_tables(records, names, fmt: str = "markdown", metric: str = "iou_illegal", out: Path | None = None,
                  echo=click.echo, ci: bool = False, footnotes: list[str] | None = None) -> None:
    from .leaderboard import tables_text

    text = tables_text(records, names, fmt, metric, ci, footnotes)
    if text is None:
        echo("no finished runs")
        return
    _write_or_echo(text, out, echo)


def _write_or_echo(text: str, out: Path | None, echo=click.echo) -> None:
    """Print a table, or write it to ``--out``."""
    if out is None:
        echo(text.rstrip("\n"))
    else:
        from .files import atomic_write_text

        atomic_write_text(out, text)
        echo(f"wrote {out}")


@cli.command("leaderboard")
@click.option("--table", "table", type=click.Choice(["comparison", "ablation", "background", "all", "pairs", "long",
                                                    "stages"]),
              default="all", show_default=True,
              help="comparison (Table 1), ablation (Table 2), background (Table 3), all three, pairs: every pair of "
                   "comparison columns (mean difference, paired bootstrap interval, seeds won), long: one row "
                   "per run, metric and split (csv, json or markdown; not latex), or stages: CAM → pseudo-labels → "
                   "distilled segmenter (wsbench distill)")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "json"]), default="markdown",
              show_default=True, help="GitHub markdown, LaTeX booktabs (needs booktabs, amssymb), tidy CSV, JSON")
@click.option("--metric", type=click.Choice(_METRIC_CHOICES), default="iou_illegal",
              show_default=True, help="test metric of the comparison and ablation: iou_illegal pooled over test "
                                      "frames, iou_illegal_per_frame the mean of per-frame IoUs, miou a two-class "
                                      "mean, iou_illegal_wsws the authors' code's protocol, pxap the "
                                      "threshold-free pixel average precision")
@click.option("--ci", is_flag=True, help="add a 95% bootstrap interval over test videos to each illegal-IoU or PxAP "
                                        "cell (1000 resamples; see the caption)")
@click.option("--out", type=click.Path(path_type=Path), help="write to FILE instead of printing")
@overwrite_option
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
def leaderboard_cmd(table: str, fmt: str, metric: str, ci: bool, out: Path | None, overwrite: bool,
                    runs_dir: Path | None) -> None:
    """Tables from every finished run: mean ± std over seeds × split seeds, best bold, second underlined.

    Runs without result.json (still running or interrupted) are ignored; a configuration re-run
    with the same seed counts once (its latest finished run).
    """
    from .files import check_output
    from .report import TABLES
    from .runs import iter_runs

    runs = _runs_dir(runs_dir)
    if out is not None:
        check_output(out, "--out", inputs=_run_folders(runs), overwrite=overwrite)
    if table == "stages":
        _print_stages(iter_runs(runs), fmt, out)
        return
    names = list(TABLES) if table == "all" else [table]
    _print_tables(iter_runs(runs), names, fmt, metric, out, ci=ci)


def _print_stages(records, fmt: str, out: Path | None) -> None:
    """``--table stages`` (wsbench.stages): distilled runs only."""
    from .leaderboard import stages_text

    _write_or_echo(stages_text(records, fmt), out)


def _run_folders(runs_dir: Path) -> list[Path]:
    """What a command reading the runs directory reads: each run's folder and the classifiers."""
    if not runs_dir.is_dir():
        return []
    return [runs_dir / "classifiers", *(p.parent for p in runs_dir.glob("*/config.json"))]


@cli.command("figures")
@click.option("--out", type=click.Path(path_type=Path), help="output folder [default: RUNS_DIR/figures]")
@click.option("--format", "fmt", type=click.Choice(["png", "pdf"]), default="png", show_default=True)
@click.option("--examples", type=int, default=3, show_default=True,
              help="test frames in the qualitative figure (0: skip it; it reloads each run's stored classifier)")
@click.option("--metric", type=click.Choice(_METRIC_CHOICES), default="iou_illegal",
              show_default=True, help="metric of the ablation bar chart")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (masks for the figure)")
@overwrite_option
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@quiet_option
def figures_cmd(out: Path | None, fmt: str, examples: int, metric: str, device: str, overwrite: bool,
                runs_dir: Path | None, cache_dir: Path | None, quiet: bool) -> None:
    """Figures from the finished runs: qualitative masks (paper Fig. 7), ablation bars, val threshold sweeps.

    Writes qualitative-<dataset>, ablation, threshold_sweep and training_curves (.png or .pdf) into --out. Nothing is
    trained: masks are recomputed from each run's stored classifier at its threshold (chosen on val,
    or the fixed one its result records).
    """
    from .data.cache import resolve_cache_dir
    from .figures import write_figures
    from .files import check_output, check_outside
    from .leaderboard import table_runs
    from .runs import iter_runs

    runs_dir = _runs_dir(runs_dir)
    out = check_output(out or runs_dir / "figures", "--out", "dir", inputs=_run_folders(runs_dir))
    records = table_runs(iter_runs(runs_dir))  # distilled runs are in --table stages
    data_roots = {r.config.get("data_root") for r in records} if examples else set()  # qualitative: reads frames
    check_outside(out, "--out", data_roots)
    check_outside(resolve_cache_dir(cache_dir), "--cache-dir", data_roots)
    written = write_figures(records, out, fmt, examples, metric, _cache_dir(cache_dir), device,
                            overwrite=overwrite)
    click.echo("\n".join(f"wrote {p}" for p in written) if written else "no finished runs: no figures")


@cli.command("suite")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--seeds", type=click.IntRange(min=1), help="run seeds 0..N-1 instead of the spec's seeds")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--workers", type=click.IntRange(min=0),
              help="data-loader worker processes [default: 0 on CPU, min(8, cores) on CUDA]")
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@click.option("--data-root", "data_roots", multiple=True, metavar="DATASET=PATH",
              help="data folder of a dataset of the spec (replaces its data_root; repeatable)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="runs at once on this machine, each in its own process: with CUDA one GPU each "
                   "(round-robin), on the CPU cores // N threads each")
@click.option("--threads", type=click.IntRange(min=1),
              help="torch threads per run [default: cores // N with --jobs N, else torch's]; on the CPU the "
                   "thread count changes floating-point sums, so compare suites run with the same")
@click.option("--launcher", type=click.Choice(["local", "slurm", "submitit-local"]), default="local",
              show_default=True, help="local: this machine (--jobs); slurm: one SLURM job per run through submitit; "
                                      "submitit-local: the same jobs as local processes (no SLURM)")
@click.option("--status", is_flag=True,
              help="with --launcher slurm: each run's state (done, or its job's), submit nothing")
@click.option("--metric", type=click.Choice(_METRIC_CHOICES), default="iou_illegal", show_default=True,
              help="test metric of the tables printed at the end (as wsbench leaderboard --metric)")
@click.option("--no-wait", is_flag=True, help="with --launcher slurm: submit and return (tables: wsbench leaderboard)")
@click.option("--partition", help="SLURM partition [default: the spec's [slurm] table, else the cluster's]")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs per SLURM job [default: [slurm] gpus, else 1]")
@click.option("--tasks", type=click.IntRange(min=1),
              help="processes per SLURM job, one per GPU, joined by torch.distributed like torchrun [default: 1]")
@click.option("--cpus", type=click.IntRange(min=1), help="CPUs per task of a SLURM job [default: 8]")
@click.option("--mem-gb", type=click.FloatRange(min=0, min_open=True), help="memory per SLURM job [default: 32]")
@click.option("--time-min", type=click.IntRange(min=1),
              help="time limit of a SLURM job in minutes; a job reaching it is requeued and resumes [default: 240]")
@quiet_option
def suite_cmd(spec: Path, seeds: int | None, device: str, workers: int | None, runs_dir: Path | None,
              cache_dir: Path | None, data_roots: tuple[str, ...], jobs: int, threads: int | None, launcher: str,
              status: bool, metric: str, no_wait: bool, partition: str | None, gpus: int | None, tasks: int | None,
              cpus: int | None, mem_gb: float | None, time_min: int | None, quiet: bool) -> None:
    """Run a benchmark SPEC (TOML, see benchmarks/), skipping runs finished on unchanged data, then print its tables.

    A run is done when a finished run has its configuration hash and the same data fingerprint
    (names, sizes and mtimes of its frames, masks and .flo files). With --jobs or --launcher slurm a
    failing run does not stop the others; the command then exits with status 1 naming them.
    """
    from .api import suite

    runs, cache = _runs_dir(runs_dir), _cache_dir(cache_dir)
    roots = {}
    for item in data_roots:
        dataset, sep, path = item.partition("=")
        if not sep or not dataset or not path:
            raise click.BadParameter(f"{item!r} is not DATASET=PATH", param_hint="--data-root")
        roots[dataset] = str(Path(path).expanduser())
    slurm = dict(partition=partition, gpus=gpus, tasks=tasks, cpus=cpus, mem_gb=mem_gb, time_min=time_min)
    outcome = suite(spec, runs_dir=runs, seeds=list(range(seeds)) if seeds else None, device=device, workers=workers,
                    cache_dir=cache, data_roots=roots, launcher=launcher, jobs=jobs, threads=threads, slurm=slurm,
                    status=status, wait=not no_wait, metric=metric, progress=not quiet, echo=click.echo)
    for label, state in outcome.states or []:
        click.echo(f"{label}: {state}")
    if outcome.submitted is not None:
        click.echo(f"{outcome.submitted} job(s) queued or running; wsbench suite {spec} --launcher {launcher} "
                   "--status shows their state, wsbench leaderboard the tables")
    if outcome.tables is not None:
        click.echo("")
        if outcome.tables:
            click.echo(outcome.tables)
    if outcome.failures:
        raise UserError(f"{len(outcome.failures)} run(s) of {spec} failed: " + "; ".join(outcome.failures))


# -- data -------------------------------------------------------------------------------------
@cli.group("data")
def data_cmd() -> None:
    """Generate, inspect and cache datasets."""


_BELT = BeltConfig()


@data_cmd.command("synth")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="folder to write (video-folder layout)")
@click.option("--videos", type=click.IntRange(min=1), default=_BELT.train_videos, show_default=True,
              help=f"train videos per class (val/test scale with it: {_BELT.val_videos}/{_BELT.test_videos} "
                   f"at the default)")
@click.option("--frames", type=click.IntRange(min=2), default=_BELT.frames, show_default=True,
              help="frames per video (at least 2: one frame has no belt)")
@click.option("--size", default="x".join(map(str, _BELT.size)), show_default=True, help="frame size WxH")
@click.option("--seed", type=_SEED, default=0, show_default=True, help="generator seed")
@click.option("--grey-matched", "grey_matched", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="probability that an illegal object is printed in the belt's grey level in another hue")
@click.option("--grey-stripes", "grey_stripes", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="probability that an illegal object's print has thin rows of belt grey")
@click.option("--shared-palette", is_flag=True,
              help="harder belt: translucent legal objects take the illegal objects' colours")
@click.option("--object-size", metavar="LO,HI", default=",".join(f"{v:g}" for v in _BELT.object_size),
              show_default=True, help="range of the object extent in px (smaller: a harder belt)")
@click.option("--belt-gain", type=click.FloatRange(0, 3, min_open=True), default=_BELT.belt_gain, show_default=True,
              help="brightness gain of the belt (below 1: a darker, harder belt)")
def data_synth(out: Path, videos: int, frames: int, size: str, seed: int, grey_matched: float,
               grey_stripes: float, shared_palette: bool, object_size: str, belt_gain: float) -> None:
    """Write a synthetic conveyor-belt dataset (before/after videos with GT masks); the defaults are the built-in
    belt."""
    from .data.synthetic import generate_belt
    from .files import check_output

    check_output(out, "--out", "dir")
    config = BeltConfig().scaled(videos=videos, frames=frames, size=_image_size(size), seed=seed)
    config = dataclasses.replace(config, grey_matched_prob=grey_matched, grey_stripes_prob=grey_stripes,
                                 shared_palette=shared_palette, object_size=_size_range(object_size),
                                 belt_gain=belt_gain)
    path = generate_belt(out, config)
    click.echo(f"wrote {path}  (use: --dataset video-folder --data-root {path})")


def _size_range(value: str) -> tuple[float, float]:
    """``--object-size LO,HI`` as two numbers with 0 < LO <= HI."""
    parts = value.split(",")
    try:
        lo, hi = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        lo = hi = math.nan
    if not (0 < lo <= hi < math.inf):
        raise click.BadParameter(f"{value!r} is not LO,HI with 0 < LO <= HI (e.g. 10,24)", param_hint="--object-size")
    return lo, hi


@data_cmd.command("show")
@click.argument("root", type=click.Path(path_type=Path), required=False)
@click.option("--dataset", "-d", default="video-folder", show_default=True, help="layout of ROOT")
@click.option("--split-seed", type=_SEED, help=SPLIT_SEED_HELP)
@click.option("--bg-threshold", type=float, default=22.0, show_default=True)
@click.option("--bg-morph", type=click.IntRange(0, 255), default=3, show_default=True,
              help="opening/closing square of background removal (0: none)")
@click.option("--bg-rule", type=click.Choice(["gray", "lab"]), default="gray", show_default=True,
              help="the rule whose background image is shown (both rules' objects are)")
@click.option("--bg-lab-threshold", type=click.FloatRange(0, 400, max_open=True), default=10.0, show_default=True,
              help="colour distance (CIE76 delta E) of the lab rule")
@click.option("--bg-threshold-mode", type=click.Choice(["fixed", "otsu"]), default="fixed", show_default=True,
              help="fixed thresholds, or Otsu's per video")
@click.option("--dataset-option", "dataset_option", multiple=True, metavar="KEY=VALUE",
              help="an option of the data set (repeatable), e.g. segment_seconds=10")
@click.option("--out", type=click.Path(path_type=Path), default=Path("contact_sheet.png"), show_default=True,
              help="contact sheet (.png or .jpg), outside ROOT")
@overwrite_option
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
def data_show(root: Path | None, dataset: str, split_seed: int | None, bg_threshold: float, bg_morph: int,
              bg_rule: str, bg_lab_threshold: float, bg_threshold_mode: str, dataset_option: tuple[str, ...],
              out: Path, overwrite: bool, cache_dir: Path | None) -> None:
    """Print counts per class and split, and save a contact sheet of frames, what each background rule keeps,
    and masks."""
    from .data import create_dataset
    from .data.preview import contact_sheet, counts_table
    from .files import IMAGE_SUFFIXES, check_output

    target = check_output(out, "--out", inputs=[root], overwrite=overwrite, suffixes=IMAGE_SUFFIXES)
    index = create_dataset(dataset, root=root, split_seed=split_seed, cache_dir=_cache_dir(cache_dir),
                           **dataset_options(dataset_option))
    click.echo(counts_table(index))
    contact_sheet(index, target, bg_threshold=bg_threshold, bg_morph=bg_morph, bg_rule=bg_rule,
                  bg_lab_threshold=bg_lab_threshold, bg_threshold_mode=bg_threshold_mode)
    click.echo(f"contact sheet: {target}")


# -- data set options -------------------------------------------------------------------------
def dataset_options(values: tuple[str, ...]) -> dict[str, Any]:
    """Parse repeated ``--dataset-option KEY=VALUE`` into keyword options of the data set function.

    A value is read as JSON where it parses (``10`` → 10, ``2.5``, ``true``, ``null``), else as text.

    Raises:
        click.BadParameter: an item without ``=``, or a key that has an option of its own.
    """
    import json

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--dataset-option")
        key = key.strip().replace("-", "_")
        if key in ("root", "split_seed", "cache_dir"):
            raise click.BadParameter(f"{key} has its own option (--{key.replace('root', 'data_root')})"
                                     .replace("_", "-"), param_hint="--dataset-option")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
        except RecursionError:
            raise click.BadParameter(f"the value of {key} is nested too deeply",
                                     param_hint="--dataset-option") from None
    return out


# -- beyond the paper: pseudo-labels and segmenting videos with a finished run ---------------
@cli.command("export")
@click.option("--run", "run", required=True, help="finished run: its id in RUNS_DIR or its directory")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="output folder (new or empty)")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="all", show_default=True,
              help="which frames of the run's data set")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@quiet_option
def export_cmd(run: str, out: Path, split: str, device: str, runs_dir: Path | None, cache_dir: Path | None,
               quiet: bool) -> None:
    """Write the run's masks of every frame as pseudo-labels for a fully supervised network.

    OUT/images/<split>/<name>.png and OUT/masks/<split>/<name>.png (0 background, 1 legal,
    2 illegal), classes.json, classes.txt and export.json. Uses the run's classifier, method,
    fusion and val-chosen threshold; after frames get legal + background only.
    """
    from .data.index import SPLITS
    from .export import export_pseudo_labels
    from .files import check_output
    from .inference import load_run

    check_output(out, "--out", "dir", empty=True)  # before loading; the run's inputs are checked once known
    from .distill import distilled_record

    if distilled_record(run, _runs_dir(runs_dir)) is not None:
        raise UserError(f"{run}: is a distilled run (a segmenter); export its source run, or segment videos "
                        "with wsbench segment --run")
    trained = load_run(run, _runs_dir(runs_dir), device)
    summary = export_pseudo_labels(trained, out, SPLITS if split == "all" else (split,),
                                   cache_dir=_cache_dir(cache_dir))
    frames = sum(sum(c.values()) for c in summary["frames"].values())
    click.echo(f"wrote {frames} images and masks of run {trained.run_id} (threshold {trained.threshold:.2f}) "
               f"to {out}")


@cli.command("distill")
@click.option("--run", "run", required=True, help="finished CAM run: its id in RUNS_DIR or its directory")
@click.option("--recipe", default="cpu", show_default=True,
              help="named distill recipe: cpu (from scratch on 2 CPU cores in minutes) or smoke (seconds)")
@click.option("--architecture", help="smp architecture: Unet, UnetPlusPlus, FPN, DeepLabV3Plus, ... [recipe: Unet]")
@click.option("--encoder", help="smp encoder; tu-<timm model> for any timm backbone [recipe: tu-resnet10t]")
@click.option("--encoder-depth", type=click.IntRange(1, 5), help="encoder stages used [recipe: 3]")
@click.option("--decoder-channels", help="decoder widths, one per encoder stage, e.g. 64,32,16 [recipe: 32,16,8]")
@click.option("--pretrained", type=click.Path(path_type=Path), help="local .pt state dict for the encoder")
@click.option("--epochs", type=click.IntRange(min=1), help="training epochs [recipe: 4]")
@click.option("--batch-size", type=click.IntRange(min=1), help="frames per step [recipe: 32]")
@click.option("--lr", type=float, help="peak learning rate (AdamW, one-cycle) [recipe: 0.003]")
@click.option("--image-size", help="N or WxH [default: the source run's resolution]")
@click.option("--ignore-band", metavar="LOW,HIGH",
              help="foreground pixels whose map lies in [LOW, HIGH) are not trained on, e.g. 0.3,0.7")
@click.option("--seed", type=_SEED, default=0, show_default=True, help="training seed")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--resume", is_flag=True, help="continue the interrupted distill run with the same options")
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@quiet_option
def distill_cmd(run: str, recipe: str, seed: int, device: str, resume: bool, runs_dir: Path | None,
                cache_dir: Path | None, quiet: bool, **options: Any) -> None:
    """Train a segmentation network on the run's train-split pseudo-labels and score it like any run.

    The labels are exactly what wsbench export writes (0 background, 1 legal, 2 illegal); the
    segmenter (segmentation_models_pytorch) sees original frames, so deploying it needs no
    background model or flow. The result is a new run in RUNS_DIR, scored by the same evaluator.
    """
    from .distill import distill, distill_recipe

    def numbers(name: str, value: str | None, kind: type) -> tuple | None:
        if value is None:
            return None
        try:
            return tuple(kind(v) for v in value.split(","))
        except ValueError:
            raise UserError(f"--{name} {value}: expected comma-separated numbers") from None

    band = numbers("ignore-band", options.pop("ignore_band"), float)
    if band is not None and len(band) != 2:
        raise UserError(f"--ignore-band: expected LOW,HIGH, got {len(band)} value(s)")
    options["ignore_band"] = band
    options["decoder_channels"] = numbers("decoder-channels", options.pop("decoder_channels"), int)
    options["image_size"] = _image_size(options.pop("image_size"))
    if options["pretrained"] is not None:
        options["pretrained"] = str(options["pretrained"].resolve())
    resolved = distill_recipe(recipe, **options)
    record = distill(run, _runs_dir(runs_dir), resolved, seed=seed, device=device, resume=resume,
                     cache_dir=_cache_dir(cache_dir))
    res = record.result or {}
    info, metrics = res["distill"], res["metrics"]
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    click.echo(f"distilled run {record.run_id} from {info['source_run']}: test IoU {fmt(metrics['iou_illegal'])} "
               f"(source CAM {fmt(info['source_iou_illegal'])}, its train pseudo-labels "
               f"{fmt(info['pseudo_labels_train']['iou_illegal'])}); maps "
               f"{res['timings']['maps_frames_per_second']} frames/s")


@cli.command("segment")
@click.option("--run", "run", required=True, help="finished run: its id in RUNS_DIR or its directory")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="output folder (new or empty): masks/<frame>.png, classes.json, segment.json")
@click.option("--overlay-video", type=click.Path(path_type=Path), help="also write an overlay video (.mp4 or .avi)")
@overwrite_option
@click.option("--save-overlays", is_flag=True, help="also write each overlay frame to OUT/overlay/<frame>.png")
@click.option("--bg-frames", type=int, default=64, show_default=True,
              help="the background is the median of the first N frames")
@click.option("--batch-size", type=int, default=8, show_default=True, help="frames per forward pass")
@click.option("--fps", type=float, help="overlay video frame rate [default: the input's, 10 for frame folders]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@quiet_option
def segment_cmd(run: str, input_path: Path, out: Path, overlay_video: Path | None, overwrite: bool,
                save_overlays: bool, bg_frames: int, batch_size: int, fps: float | None, device: str,
                runs_dir: Path | None, quiet: bool) -> None:
    """Segment INPUT (a video file or a folder of frames) with a finished run, streaming.

    Writes a mask per frame (0 background, 1 legal, 2 illegal) and, with --overlay-video, the
    video with illegal objects tinted red. Frames are processed in small batches and written at
    once; the run's fusion, if any, is applied with flow computed on the fly.
    """
    from .inference import load_run
    from .segment import check_segment_options, segment_file

    options: dict[str, Any] = dict(overlay_video=overlay_video, overwrite=overwrite, bg_frames=bg_frames,
                                   batch_size=batch_size, fps=fps)
    check_segment_options(input_path, out, **options)  # before the run is loaded
    from .distill import distilled_record, load_distilled

    distilled = distilled_record(run, _runs_dir(runs_dir))
    trained = load_distilled(distilled, device) if distilled else load_run(run, _runs_dir(runs_dir), device)
    summary = segment_file(trained, input_path, out, save_overlays=save_overlays, **options)
    click.echo(f"segmented {summary['frames']} frames with run {trained.run_id}: masks in {out / 'masks'}"
               + (f", overlay video {overlay_video}" if overlay_video else "")
               + " (new frames: the run's own data set is not read or checked; segment.json records both)")


# -- data: flow files and downloads (SERUSO / WS²) ----------------------------------------------
@data_cmd.command("flow")
@click.option("--dataset", "-d", default="synthetic-belt", show_default=True, help="dataset name")
@click.option("--data-root", type=click.Path(path_type=Path), help="dataset folder (not needed for synthetic-belt)")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="root of the .flo tree to write (new or empty; --overwrite writes into a non-empty one)")
@click.option("--flow", default="dis", show_default=True, help="flow estimator (wsbench list flows)")
@click.option("--split-seed", type=_SEED, help=SPLIT_SEED_HELP)
@overwrite_option
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@quiet_option
def data_flow(dataset: str, data_root: Path | None, out: Path, flow: str, split_seed: int | None, overwrite: bool,
              cache_dir: Path | None, quiet: bool) -> None:
    """Write the flow of every frame to the next one as Middlebury .flo files, mirroring the frame tree.

    The file of frame n holds the flow n -> n+1 at the frame's own resolution (the last frame of a
    video gets none); 'wsbench run --flow files --flow-root OUT' reads them back. A non-empty OUT
    is refused unless --overwrite.
    """
    from contextlib import nullcontext

    from .data import create_dataset
    from .files import check_output, removed_on_failure
    from .flow import create_flow, write_flo_tree

    check_output(out, "--out", "dir", inputs=[data_root], empty=not overwrite)
    index = create_dataset(dataset, root=data_root, split_seed=split_seed, cache_dir=_cache_dir(cache_dir))
    if index.root:
        check_output(out, "--out", "dir", inputs=[index.root], empty=not overwrite)
    # a new or empty folder is removed or emptied again if the command fails (with --overwrite it is kept)
    with removed_on_failure(out) if not (out.is_dir() and any(out.iterdir())) else nullcontext():
        written = write_flo_tree(index, create_flow(flow), out, desc=f"flow ({flow})")
    click.echo(f"wrote {written} .flo files under {out}  (use: --flow files --flow-root {out})")


@data_cmd.command("fetch")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="folder to put the dataset in")
@quiet_option
def data_fetch(name: str, out: Path, quiet: bool) -> None:
    """Download a public dataset from Zenodo (ws2, zerowaste-w), verify and extract it.

    An interrupted download resumes when the command is run again. The base URL is
    $WSBENCH_ZENODO_URL or https://zenodo.org.
    """
    from .fetch import PUBLIC_DATASETS, fetch_dataset
    from .files import check_output

    check_output(out, "--out", "dir")
    root = fetch_dataset(name, out, echo=click.echo)
    click.echo(f"done; use: --dataset {PUBLIC_DATASETS[name].dataset} --data-root {root}")


if __name__ == "__main__":  # pragma: no cover
    main()
