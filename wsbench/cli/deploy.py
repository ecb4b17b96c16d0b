"""Beyond the paper: ``wsbench export`` (pseudo-labels), ``wsbench distill`` and ``wsbench segment``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from .base import (
    _SEED,
    CACHE_DIR_HELP,
    RUNS_DIR_HELP,
    _cache_dir,
    _image_size,
    _runs_dir,
    cli,
    overwrite_option,
    quiet_option,
)


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
    from ..data.index import SPLITS
    from ..export import export_pseudo_labels
    from ..files import check_output
    from ..inference import load_run

    check_output(out, "--out", "dir", empty=True)  # before loading; the run's inputs are checked once known
    from ..distill import distilled_record

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
@click.option("--run", "run", help="finished CAM run: its id in RUNS_DIR or its directory")
@click.option("--supervised-reference", is_flag=True,
              help="instead of a run's pseudo-labels, train on the val split's GT masks of --dataset and score on "
                   "test at the fixed threshold 0.5: a reference for the tables, not a weakly supervised method")
@click.option("--dataset", help="with --supervised-reference: registered data set name")
@click.option("--data-root", help="with --supervised-reference: the data set's folder")
@click.option("--split-seed", type=_SEED, help="with --supervised-reference: split seed [default: the data set's]")
@click.option("--cam-recipe", help="with --supervised-reference: named recipe whose background removal and "
                                   "resolution are used, as wsbench run --recipe [default: the data set's]")
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
def distill_cmd(run: str | None, recipe: str, seed: int, device: str, resume: bool, runs_dir: Path | None,
                cache_dir: Path | None, **options: Any) -> None:
    """Train a segmentation network on the run's train-split pseudo-labels and score it like any run.

    The labels are exactly what wsbench export writes (0 background, 1 legal, 2 illegal); the
    segmenter (segmentation_models_pytorch) sees original frames, so deploying it needs no
    background model or flow. The result is a new run in RUNS_DIR, scored by the same evaluator.

    With --supervised-reference --dataset D the same segmenter learns the val split's GT masks
    instead (before frames with a mask and after frames, in the same three labels): the comparison
    and stages tables show it as a reference column.
    """
    from ..distill import distill, distill_recipe

    reference = _reference_data(run, options)

    def numbers(name: str, value: str | None, kind: type) -> tuple | None:
        if value is None:
            return None
        try:
            return tuple(kind(v) for v in value.split(","))
        except ValueError:
            raise UserError(f"--{name} {value}: expected comma-separated numbers") from None

    options.pop("quiet")  # its callback turned the bars off
    band = numbers("ignore-band", options.pop("ignore_band"), float)
    if band is not None and len(band) != 2:
        raise UserError(f"--ignore-band: expected LOW,HIGH, got {len(band)} value(s)")
    options["ignore_band"] = band
    options["decoder_channels"] = numbers("decoder-channels", options.pop("decoder_channels"), int)
    options["image_size"] = _image_size(options.pop("image_size"))
    if options["pretrained"] is not None:
        options["pretrained"] = str(options["pretrained"].resolve())
    resolved = distill_recipe(recipe, **options)
    if reference is not None:
        from ..distill.reference import supervised_reference

        record = supervised_reference(reference, _runs_dir(runs_dir), resolved, seed=seed, device=device,
                                      resume=resume, cache_dir=_cache_dir(cache_dir))
        metrics, budget = (record.result or {})["metrics"], (record.result or {})["reference"]["budget"]
        iou = "n/a" if metrics["iou_illegal"] is None else f"{metrics['iou_illegal']:.3f}"
        click.echo(f"supervised reference {record.run_id} on {budget['before_frames']} val GT masks and "
                   f"{budget['after_frames']} after frames: test IoU {iou} (threshold {metrics['threshold']:.2f}, "
                   "fixed)")
        return
    record = distill(str(run), _runs_dir(runs_dir), resolved, seed=seed, device=device, resume=resume,
                     cache_dir=_cache_dir(cache_dir))
    res = record.result or {}
    info, metrics = res["distill"], res["metrics"]
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    click.echo(f"distilled run {record.run_id} from {info['source_run']}: test IoU {fmt(metrics['iou_illegal'])} "
               f"(source CAM {fmt(info['source_iou_illegal'])}, its train pseudo-labels "
               f"{fmt(info['pseudo_labels_train']['iou_illegal'])}); maps "
               f"{res['timings']['maps_frames_per_second']} frames/s")


def _reference_data(run: str | None, options: dict[str, Any]) -> Any:
    """The data set of ``--supervised-reference`` (``None`` without it), its options taken out of ``options``.

    Raises:
        UserError: --run and --supervised-reference together or neither, or a data option without the flag.
    """
    from ..distill.reference import ReferenceData

    flag = options.pop("supervised_reference")
    given = {key: options.pop(key) for key in ("dataset", "data_root", "split_seed", "cam_recipe")}
    if not flag:
        extra = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
        if extra:
            raise UserError(f"{extra[0]} is an option of --supervised-reference (distilling a run uses its data)")
        if run is None:
            raise UserError("distill: give --run RUN (a finished CAM run) or --supervised-reference --dataset D")
        return None
    if run is not None:
        raise UserError("--supervised-reference trains on GT masks, not on a run's pseudo-labels: leave out --run")
    if given["dataset"] is None:
        raise UserError("--supervised-reference: give --dataset D (and --data-root for data sets on disk)")
    return ReferenceData(**given)


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
def segment_cmd(run: str, input_path: Path, out: Path, save_overlays: bool, device: str, runs_dir: Path | None,
                **options: Any) -> None:
    """Segment INPUT (a video file or a folder of frames) with a finished run, streaming.

    Writes a mask per frame (0 background, 1 legal, 2 illegal) and, with --overlay-video, the
    video with illegal objects tinted red. Frames are processed in small batches and written at
    once; the run's fusion, if any, is applied with flow computed on the fly.
    """
    from ..inference import load_run
    from ..segment import SegmentOptions, check_segment_options, segment_file

    options.pop("quiet")  # its callback turned the bars off; the rest: --overlay-video, --overwrite, --bg-frames, ...
    segment_options = SegmentOptions(save_overlays=save_overlays, **options)
    check_segment_options(input_path, out, segment_options)  # before the run is loaded
    from ..distill import distilled_record, load_distilled

    distilled = distilled_record(run, _runs_dir(runs_dir))
    trained = load_distilled(distilled, device) if distilled else load_run(run, _runs_dir(runs_dir), device)
    summary = segment_file(trained, input_path, out, segment_options)
    click.echo(f"segmented {summary['frames']} frames with run {trained.run_id}: masks in {out / 'masks'}"
               + (f", overlay video {options['overlay_video']}" if options["overlay_video"] else "")
               + " (new frames: the run's own data set is not read or checked; segment.json records both)")
