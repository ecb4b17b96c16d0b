"""The ``wsbench`` group, its one-line errors and what every command shares (options, paths, parsing)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import UserError
from ..registry import RegistryError
from ..suite import SEED_MAX

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
            from ..files import disk_error

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
        from ..progress import progress_bars

        ctx.with_resource(progress_bars(False))
    return value


#: ``--quiet/-q`` of every command with progress bars
quiet_option = click.option("--quiet", "-q", is_flag=True, callback=_set_quiet,
                            help="no progress bars (and for run: no recipe note or time estimate)")
#: ``--overwrite`` of every command that writes a named output file
overwrite_option = click.option("--overwrite", is_flag=True, help="replace existing output files")


def _runs_dir(path: Path | None) -> Path:
    """The runs directory (option, environment or default), refused when a file is in the way."""
    from ..files import check_output
    from ..runs import resolve_runs_dir

    return check_output(resolve_runs_dir(path), "--runs-dir", "dir")


def _cache_dir(path: Path | None) -> str | None:
    """``--cache-dir`` as the library takes it, refused when it (or the resolved default) is a file."""
    from ..data.cache import resolve_cache_dir
    from ..files import check_output

    check_output(resolve_cache_dir(path), "--cache-dir", "dir")
    return str(path) if path else None


def _image_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)(?:[x,](\d+))?", value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not N or WxH")
    w = int(match[1])
    return w, int(match[2] or w)


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


_METRIC_CHOICES = ["iou_illegal", "iou_illegal_per_frame", "miou", "oracle_iou_illegal", "stability",
                   "iou_illegal_wsws", "map_stability", "map_spread", "pxap"]


def _write_or_echo(text: str, out: Path | None) -> None:
    """Print a table, or write it to ``--out``."""
    if out is None:
        click.echo(text.rstrip("\n"))
    else:
        from ..files import atomic_write_text

        atomic_write_text(out, text)
        click.echo(f"wrote {out}")


def _run_folders(runs_dir: Path) -> list[Path]:
    """What a command reading the runs directory reads: each run's folder and the classifiers."""
    if not runs_dir.is_dir():
        return []
    return [runs_dir / "classifiers", *(p.parent for p in runs_dir.glob("*/config.json"))]
