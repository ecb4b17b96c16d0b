"""``wsbench data``: generate, inspect, write flow files of and download data sets."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import click

from ..data.synthetic import BeltConfig
from .base import (
    _SEED,
    CACHE_DIR_HELP,
    SPLIT_SEED_HELP,
    _cache_dir,
    _image_size,
    cli,
    dataset_options,
    overwrite_option,
    quiet_option,
)


@cli.group("data")
def data_cmd() -> None:
    """Generate, inspect and cache datasets."""


_BELT = BeltConfig()


@data_cmd.command("synth")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="folder to write (video-folder layout)")
@click.option("--videos", type=click.IntRange(min=1), default=_BELT.train_videos, show_default=True,
              help=f"train videos per class (val/test scale with it: {_BELT.val_videos}/{_BELT.test_videos} "
                   f"at the default)")
@click.option("--test-videos", "test_videos", type=click.IntRange(min=1), default=None,
              help="test videos per class, instead of scaling with --videos (the train and val videos stay the "
                   "same whatever it is)")
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
def data_synth(out: Path, size: str, object_size: str, **options: Any) -> None:
    """Write a synthetic conveyor-belt dataset (before/after videos with GT masks); the defaults are the built-in
    belt."""
    from ..data.synthetic import generate_belt
    from ..files import check_output

    check_output(out, "--out", "dir")
    config = BeltConfig().scaled(videos=options["videos"], frames=options["frames"], size=_image_size(size),
                                 seed=options["seed"], test_videos=options["test_videos"])
    config = dataclasses.replace(config, grey_matched_prob=options["grey_matched"],
                                 grey_stripes_prob=options["grey_stripes"], shared_palette=options["shared_palette"],
                                 object_size=_size_range(object_size), belt_gain=options["belt_gain"])
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
def data_show(root: Path | None, dataset: str, split_seed: int | None, dataset_option: tuple[str, ...], out: Path,
              overwrite: bool, cache_dir: Path | None, **background: Any) -> None:
    """Print counts per class and split, and save a contact sheet of frames, what each background rule keeps,
    and masks."""
    from ..data import create_dataset
    from ..data.background import BackgroundRule
    from ..data.preview import contact_sheet, counts_table
    from ..files import IMAGE_SUFFIXES, check_output

    target = check_output(out, "--out", inputs=[root], overwrite=overwrite, suffixes=IMAGE_SUFFIXES)
    index = create_dataset(dataset, root=root, split_seed=split_seed, cache_dir=_cache_dir(cache_dir),
                           **dataset_options(dataset_option))
    click.echo(counts_table(index))
    rule = BackgroundRule(background["bg_rule"], background["bg_threshold"], background["bg_lab_threshold"],
                          background["bg_threshold_mode"], background["bg_morph"])
    contact_sheet(index, target, rule=rule)
    click.echo(f"contact sheet: {target}")


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

    from ..data import create_dataset
    from ..files import check_output, removed_on_failure
    from ..flow import create_flow, write_flo_tree

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
    from ..fetch import PUBLIC_DATASETS, fetch_dataset
    from ..files import check_output

    check_output(out, "--out", "dir")
    root = fetch_dataset(name, out, echo=click.echo)
    click.echo(f"done; use: --dataset {PUBLIC_DATASETS[name].dataset} --data-root {root}")
