"""One run, end to end: resolve the configuration, prepare data, obtain the classifier, evaluate, record.

``wsbench run`` and ``wsbench suite`` call :func:`execute`; nothing here parses command lines.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from . import __version__
from .classifiers import obtain_classifier
from .collapse import CollapseWarning, epoch_means, judge, likely_cause, warning_text
from .data import DATASETS, LABELS, create_dataset
from .data.cache import PreparedData, prepare, resolve_cache_dir
from .device import default_workers, resolve_device
from .errors import UserError
from .files import atomic_write_json, check_outside, config_hash
from .flow import FLOWS
from .inference import data_fingerprint, data_parts
from .maps import CAM_COMBINE, parse_scales
from .methods import METHODS, Fusion, Method, create_method, has_raw_maps, method_info
from .progress import no_bars_unless, show_messages
from .recipes import Recipe, choose_recipe, named_recipe, recipe_record
from .runs import RunRecord, environment, finish_run, run_result, same_run, save_sample_maps, start_run
from .texts import static_after_refusal
from .train import Hardware

__all__ = ["RunSpec", "collapse_check", "data_fingerprint", "data_warnings", "execute", "incompatibility", "resolve",
           "same_run"]


@dataclasses.dataclass
class RunSpec:
    """What a user asks for; unset recipe fields take the named recipe's (``recipe_name``, else the data set's).

    Attributes:
        method: registered method name.
        dataset: registered data set name.
        data_root: data folder (``None`` for generated data sets).
        method_options: the method's own options.
        recipe: recipe overrides (``Recipe`` field → value) over the named recipe's fields.
        recipe_name: a named recipe (``wsbench list recipes``; ``None``: the data set's default,
            see :func:`~wsbench.recipes.choose_recipe`). Recorded, not hashed: the resolved fields are.
        seed: training seed.
        split_seed: seed of the split by video for data sets without fixed splits; ``None``: the
            data set's default split (recorded as 0, the hash it always had). ``synthetic-belt``
            re-splits its fixed split when given one (recorded with ``resplit: true``).
        dataset_options: the data set's own keyword options (``segment_seconds=10`` for a plugin).
        fuse_neighbours: temporal fusion of maps at inference over ±k frames (``None``: the
            method's own choice, ``0``: none).
        fuse_mode: ``max`` or ``mean``.
        fuse_on: ``maps`` (the method's per-frame maps) or ``raw`` (its raw maps, normalised after
            fusing: the authors' POF-CAM inference); see :class:`~wsbench.methods.Fusion`.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: data-loader worker processes (``None``: 0 on the CPU, min(8, cores) on CUDA).
        compile: ``torch.compile`` the model for training.
        cache_dir: cache root.
        label: how tables name the run (a suite's ``label``); recorded, not part of the config hash.
        cam_scales: input scales of multi-scale map inference (``(1.0,)``: off).
        cam_flip: also average the maps of horizontally mirrored frames.
        cam_combine: how multi-scale inference combines the scales: ``normalised`` (each scale's
            normalised map, summed) or ``raw`` (raw maps summed, normalised once: the authors' code).
    """

    method: str
    dataset: str
    data_root: str | None = None
    method_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe_name: str | None = None
    seed: int = 0
    split_seed: int | None = None
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    fuse_neighbours: int | None = None
    fuse_mode: str = "max"
    fuse_on: str = "maps"
    device: str = "auto"
    workers: int | None = None
    compile: bool = False
    cache_dir: str | None = None
    label: str | None = None
    cam_scales: tuple[float, ...] | str = (1.0,)
    cam_flip: bool = False
    cam_combine: str = "normalised"


@dataclasses.dataclass
class Resolved:
    """A spec with everything looked up: the method object, data index, recipe and config.

    ``warnings`` are doubts about the data (:func:`data_warnings`) that :func:`execute` shows.
    """

    method: Method
    recipe: Recipe
    fusion: Fusion | None
    config: dict[str, Any]
    index: Any
    warnings: list[str] = dataclasses.field(default_factory=list)
    recipe_note: str | None = None


def resolve(spec: RunSpec, device_type: str | None = None) -> Resolved:
    """Look up method and data set, apply defaults, check they fit together, build the config.

    Args:
        spec: what to run.
        device_type: the type of the device the run trains on (``"cpu"``, ``"cuda"``); on a CPU
            the ``paper`` recipe is not taken as a data set's default (``None``: no such check).

    Raises:
        UserError / UnknownEntryError: unknown names, bad options, or a method that cannot run on
            the data set.
    """
    METHODS.entry(spec.method)  # an unknown method is reported before the recipe
    ds_entry = DATASETS.entry(spec.dataset)
    overrides = dict(spec.recipe)
    if overrides.get("flow_root"):
        overrides["flow_root"] = str(Path(overrides["flow_root"]).expanduser().resolve())
    recipe, recipe_name, recipe_note = choose_recipe(spec.recipe_name, ds_entry.meta.recipe, overrides,
                                                     device_type)
    # the recipe's defaults for this method's own options (loss weights), under the options given
    recipe_defaults = named_recipe(recipe_name).options_for(spec.method)
    method = create_method(spec.method, **{**recipe_defaults, **spec.method_options})
    FLOWS.entry(recipe.flow)  # an unknown --flow is an error even for methods that never read flow

    index = create_dataset(spec.dataset, root=spec.data_root, split_seed=spec.split_seed, cache_dir=spec.cache_dir,
                           **spec.dataset_options)
    why = incompatibility(method, index.static_after, spec.dataset)
    if why:
        raise UserError(why)
    doubts = data_warnings(index, recipe)

    fusion = _fusion(spec, method)

    semantic = {
        "method": spec.method,
        "method_options": dataclasses.asdict(method.options),
        "dataset": spec.dataset,
        "data_root": str(Path(spec.data_root).expanduser().resolve()) if spec.data_root else None,
        "split_seed": 0 if spec.split_seed is None else spec.split_seed,
        "seed": spec.seed,
        "recipe": recipe_record(recipe),
        "fusion": fusion.as_config() if fusion else None,
    }
    if index.info.get("resplit"):  # only then, so runs on a data set's fixed split keep their hash
        semantic["resplit"] = True
    if spec.dataset_options:  # only when given, so runs without options keep their hash
        semantic["dataset_options"] = dict(sorted(spec.dataset_options.items()))
    cam = _cam_inference(spec, method)
    if cam is not None:
        semantic["cam_inference"] = cam
    config = dict(semantic)
    config.update({
        "config_hash": config_hash(semantic),
        "data_fingerprint": data_fingerprint(index, recipe),
        "data_content": data_fingerprint(index, recipe, splits=False),
        "data_parts": data_parts(index, recipe),
        "classifier": {"method": method.classifier()[0], "options": method.classifier()[1]},
        "method_info": method_info(method, recipe_defaults),
        "dataset_info": dict(index.info, static_after=index.static_after),
        "label": spec.label,
        "recipe_name": recipe_name,
        "device": spec.device,
        "workers": spec.workers,
        "compile": spec.compile,
        "wsbench_version": __version__,
        "environment": environment(),
    })
    return Resolved(method=method, recipe=recipe, fusion=fusion, config=config, index=index, warnings=doubts,
                    recipe_note=recipe_note)


def _fusion(spec: RunSpec, method: Method) -> Fusion | None:
    """The run's temporal fusion: the method's own, or the one the spec asks for (checked)."""
    if spec.fuse_neighbours is None and spec.fuse_on != "maps":
        raise UserError("--fuse-on needs --fuse-neighbours K (the method's own fusion is used as it is)")
    if spec.fuse_neighbours is None:
        fusion = method.fusion()
    elif spec.fuse_neighbours > 0:
        fusion = Fusion(spec.fuse_neighbours, spec.fuse_mode, on=spec.fuse_on)  # type: ignore[arg-type]
    else:
        fusion = None
    if fusion is not None and fusion.mode not in ("max", "mean"):
        raise UserError(f"--fuse-mode must be max or mean, not {fusion.mode!r}")
    if fusion is not None and fusion.on not in ("maps", "raw"):
        raise UserError(f"--fuse-on must be maps or raw, not {fusion.on!r}")
    if fusion is not None and fusion.on == "raw" and not has_raw_maps(method):
        raise UserError(f"--fuse-on raw: method {spec.method!r} has its own maps and no raw form of them "
                        "(only methods whose maps are CAMs, or that define raw_maps, can be fused on raw maps)")
    return fusion


def _cam_inference(spec: RunSpec, method: Method) -> dict[str, Any] | None:
    """The config's ``cam_inference`` (checked), ``None`` for single-scale inference without flip."""
    if isinstance(spec.cam_scales, str) and any(not item.strip() for item in spec.cam_scales.split(",")):
        raise UserError(f"--cam-scales {spec.cam_scales!r} has an empty item (write e.g. 0.5,1,2)")
    try:
        cam_scales = parse_scales(spec.cam_scales)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not all(math.isfinite(s) for s in cam_scales):
        raise UserError(f"--cam-scales must be finite positive numbers, not {spec.cam_scales!r}")
    if spec.cam_combine not in CAM_COMBINE:
        raise UserError(f"--cam-combine must be one of {', '.join(CAM_COMBINE)}, not {spec.cam_combine!r}")
    if spec.cam_combine == "raw" and not has_raw_maps(method):
        raise UserError(f"--cam-combine raw: method {spec.method!r} has its own maps and no raw form of them "
                        "(only methods whose maps are CAMs, or that define raw_maps, can sum raw maps)")
    if cam_scales == (1.0,) and not spec.cam_flip:  # only then, so single-scale runs keep their hashes
        return None
    cam: dict[str, Any] = {"scales": list(cam_scales), "flip": bool(spec.cam_flip)}
    if spec.cam_combine != "normalised":  # only then, so earlier multi-scale runs keep their hashes
        cam["combine"] = spec.cam_combine
    return cam


def data_warnings(index: Any, recipe: Recipe) -> list[str]:
    """Check that a data set can give meaningful numbers; what is doubtful but usable is returned.

    Raises:
        UserError: a train split without before or without after videos (the classifier has a
            single class to learn), or background removal on a data set whose videos all have
            one frame (the median belt is then the frame itself: nothing is foreground).

    Returns:
        Warnings: some videos of one frame under background removal.
    """
    for label in LABELS:
        if not index.split("train", label):
            counts = {lab: len(index.split("train", lab)) for lab in LABELS}
            raise UserError(f"data set {index.name!r}: the train split has no {label} videos "
                            f"({', '.join(f'{n} {lab}' for lab, n in counts.items())}); telling before from after "
                            "needs both (check splits.json or --split-seed)")
    single = [v.key for v in index.videos if len(v) == 1]
    if not recipe.background_removal or not single:
        return []
    why = "the median belt of one frame is the frame itself, so nothing in it is foreground"
    if len(single) == len(index.videos):
        raise UserError(f"data set {index.name!r}: every video has a single frame and {why}; give videos of "
                        "several frames, or --no-background-removal")
    return [f"{len(single)} video(s) of a single frame, e.g. {single[0]}: {why} (they add blank objects-only "
            "images and no foreground to score)"]


def incompatibility(method: Method, static_after: bool, dataset: str) -> str | None:
    """Why ``method`` cannot run on a data set, or ``None`` if it can.

    Args:
        method: the method with its options.
        static_after: the data set's after class holds still images, not videos.
        dataset: its name, for the message.
    """
    trainer_name, trainer_options = method.classifier()
    if create_method(trainer_name, **trainer_options).clip_length() > 1 and static_after:
        return static_after_refusal(dataset)
    return None


def execute(spec: RunSpec, runs_dir: str | Path, resume: bool = False, progress: bool = True) -> RunRecord | None:
    """Run one method on one data set and write its run record.

    Args:
        spec: what to run.
        runs_dir: where run records and shared classifiers go.
        resume: continue the latest unfinished run with the same configuration (and its
            interrupted classifier training) instead of starting a new one.
        progress: show progress bars, the recipe note and the training time estimate; ``False``:
            none of them, however deep (:func:`wsbench.progress.no_bars_unless`: nothing below takes a
            ``progress`` argument).

    Returns:
        The finished run record (``result.json`` written); ``None`` on the ranks other than 0 of a
        torchrun launch, which only train (see :mod:`wsbench.distributed`).
    """
    with no_bars_unless(progress):  # progress=False: no bar or note, however deep (caches, flows, inference)
        return _execute(spec, runs_dir, resume)


def _execute(spec: RunSpec, runs_dir: str | Path, resume: bool) -> RunRecord | None:
    from . import distributed
    from .evaluate import evaluate_maps
    from .evaluate.faithfulness import road_scores
    from .maps import MapProducer, save_maps
    from .sanity import randomisation_test

    started = time.perf_counter()
    runs_dir = Path(runs_dir)
    device = distributed.setup(resolve_device(spec.device))
    main = distributed.is_main()
    with distributed.main_first():  # a generated data set is written once, by rank 0
        resolved = resolve(spec, device.type)
    for message in resolved.warnings if main else ():
        warnings.warn(message, stacklevel=2)
    config = resolved.config
    check_outside(runs_dir, "--runs-dir", [resolved.index.root])  # run folders read back as frames, masks
    check_outside(resolve_cache_dir(spec.cache_dir), "--cache-dir", [resolved.index.root])
    if resolved.recipe_note and show_messages() and main:
        print(f"note: {resolved.recipe_note}", file=sys.stderr)
    # the resolved device and workers are recorded (not hashed: the hash is the semantic part only)
    config["device"] = str(device)
    config["workers"] = default_workers(device) if spec.workers is None else spec.workers
    record = start_run(runs_dir, config, resume) if main else None
    recipe = resolved.recipe

    with distributed.main_first():
        data: PreparedData = prepare(resolved.index, recipe.image_size, spec.cache_dir, background=recipe)
    model, classifier = obtain_classifier(resolved.method, recipe, data, spec.seed, runs_dir,
                                          Hardware(device, spec.workers, spec.compile), resume=resume)
    if record is None:  # torchrun ranks > 0: training done, rank 0 evaluates and records
        return None
    accuracy = _cached_accuracy(Path(runs_dir) / classifier["path"], model, data, device)
    producer = MapProducer.of_run(resolved.method, model, recipe, config, device, resolved.fusion)
    evaluation = evaluate_maps(producer, data)
    own_input = "foreground" if recipe.background_removal else "original"
    metrics = dict(evaluation["metrics"], accuracy=accuracy[own_input]["val"])
    train = {"train": round(classifier["train_seconds"], 3) if classifier["trained_now"] else 0.0,
             "train_original": round(classifier["train_seconds"], 3)}
    result = run_result(record, evaluation, data.timings, started, train, metrics=metrics,
                        accuracy_by_input=accuracy, classifier=classifier)
    flagged = collapse_check(data, metrics, Path(runs_dir) / classifier["path"])
    if flagged:
        result["collapse"] = flagged
    explanations = road_scores(producer, data)  # ROAD on the fixed sample of test frames (no GT read)
    if explanations is not None:
        result["explanations"] = explanations
    if evaluation["sample"]["frames"]:
        result["sanity"] = save_sample_maps(record, evaluation["sample"]["frames"], evaluation["sample"]["maps"])
        result["sanity"].update(randomisation_test(producer, data, evaluation["sample"]["frames"], spec.seed))
    if not evaluation["counts"]["test_frames"]:  # nothing to score: keep the maps instead
        maps_dir = record.path / "maps"
        count = save_maps(producer, data, maps_dir)
        result["maps"] = {"dir": maps_dir.relative_to(Path(runs_dir)).as_posix(), "frames": count}
        result["note"] = ("no GT masks in the test split, so no IoU (it needs masks/before/<video>/<frame>.png); "
                          "the maps of the validation and test before frames were written instead")
    finished = finish_run(record, result)
    if flagged:
        warnings.warn(warning_text(f"{spec.method} on {spec.dataset} (seed {spec.seed}, run {record.run_id})",
                                   flagged), CollapseWarning, stacklevel=3)
    return finished


def collapse_check(data: PreparedData, metrics: dict[str, Any], classifier_dir: Path) -> dict[str, Any] | None:
    """A finished run's ``collapse`` record (:func:`wsbench.collapse.judge`), or ``None`` if it did not collapse.

    Args:
        data: the prepared data (the validation frames per class give the chance level).
        metrics: the run's metrics (``accuracy``: on validation; ``val_map_spread``).
        classifier_dir: the classifier's folder, whose ``log.csv`` and ``train.json`` tell the likely cause.

    Returns:
        ``{"reasons", "accuracy", "chance_bound", "map_spread", "spread_tolerance", "cause"}`` or ``None``.
    """
    frames = {label: sum(data.slices[pos].length for pos, v in enumerate(data.index.videos)
                         if v.split == "val" and v.label == label) for label in LABELS}
    total = sum(frames.values())
    flagged = judge(metrics.get("accuracy"), max(frames.values()) / total if total else None, total,
                    metrics.get("val_map_spread"))
    if flagged is None:
        return None
    epochs: list[dict[str, float]] = []
    chance = None
    try:
        with open(classifier_dir / "log.csv", newline="") as handle:
            epochs = epoch_means(csv.DictReader(handle))
        chance = json.loads((classifier_dir / "train.json").read_text()).get("chance_cls")
    except (OSError, ValueError, KeyError):
        pass  # a classifier without a log (or from before chance_cls was recorded): the cause says less
    flagged["cause"] = likely_cause(epochs, chance if isinstance(chance, (int, float)) else None)
    return flagged


def _cached_accuracy(folder: Path, model: Any, data: PreparedData, device: Any) -> dict:
    """Accuracy depends only on the classifier, so methods that share one compute it once."""
    from .evaluate import classification_accuracy
    from .schema import Number, Optional, Record, load_json

    path = folder / "accuracy.json"
    if path.exists():
        splits = Record({"train": Optional(Number()), "val": Optional(Number())}, required=("train", "val"))
        schema = Record({"original": splits, "foreground": splits}, required=("original", "foreground"))
        return load_json(path, schema, "cached accuracy", hint=f"delete {path} to compute it again")
    accuracy = classification_accuracy(model, data, device)
    atomic_write_json(path, accuracy)
    return accuracy
