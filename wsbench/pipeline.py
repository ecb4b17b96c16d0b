"""One run, end to end: resolve the configuration, prepare data, obtain the classifier, evaluate, record.

``wsbench run`` and ``wsbench suite`` call :func:`execute`; nothing here parses command lines.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .data import DATASETS, create_dataset
from .data.cache import PreparedData, prepare
from .device import default_workers, resolve_device
from .errors import UserError
from .flow import FLOWS
from .methods import Fusion, Method, create_method
from .multiscale import parse_scales
from .recipes import Recipe, choose_recipe
from .runs import RunRecord, config_hash, create_run, environment, finish_run, iter_runs
from .train import obtain_classifier

__all__ = ["RunSpec", "cam_inference", "execute", "incompatibility", "resolve"]


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
        split_seed: seed of the split by video for data sets without fixed splits.
        dataset_options: the data set's own keyword options (``segment_seconds=10`` for a plugin).
        fuse_neighbours: temporal fusion of maps at inference over ±k frames (``None``: the
            method's own choice, ``0``: none).
        fuse_mode: ``max`` or ``mean``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: data-loader worker processes (``None``: 0 on the CPU, min(8, cores) on CUDA).
        compile: ``torch.compile`` the model for training.
        cache_dir: cache root.
        label: how tables name the run (a suite's ``label``); recorded, not part of the config hash.
        cam_scales: input scales of multi-scale map inference (``(1.0,)``: off).
        cam_flip: also average the maps of horizontally mirrored frames.
    """

    method: str
    dataset: str
    data_root: str | None = None
    method_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe_name: str | None = None
    seed: int = 0
    split_seed: int = 0
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    fuse_neighbours: int | None = None
    fuse_mode: str = "max"
    device: str = "auto"
    workers: int | None = None
    compile: bool = False
    cache_dir: str | None = None
    label: str | None = None
    cam_scales: tuple[float, ...] | str = (1.0,)
    cam_flip: bool = False


@dataclasses.dataclass
class Resolved:
    """A spec with everything looked up: the method object, data index, recipe and config."""

    method: Method
    recipe: Recipe
    fusion: Fusion | None
    config: dict[str, Any]
    index: Any
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
    method = create_method(spec.method, **spec.method_options)
    ds_entry = DATASETS.entry(spec.dataset)
    overrides = dict(spec.recipe)
    if overrides.get("flow_root"):
        overrides["flow_root"] = str(Path(overrides["flow_root"]).expanduser().resolve())
    recipe, recipe_name, recipe_note = choose_recipe(spec.recipe_name, ds_entry.meta.recipe, overrides,
                                                     device_type)
    FLOWS.entry(recipe.flow)  # an unknown --flow is an error even for methods that never read flow

    index = create_dataset(spec.dataset, root=spec.data_root, split_seed=spec.split_seed, cache_dir=spec.cache_dir,
                           **spec.dataset_options)
    why = incompatibility(method, index.static_after, spec.dataset)
    if why:
        raise UserError(why)

    if spec.fuse_neighbours is None:
        fusion = method.fusion()
    elif spec.fuse_neighbours > 0:
        fusion = Fusion(spec.fuse_neighbours, spec.fuse_mode)
    else:
        fusion = None
    if fusion is not None and fusion.mode not in ("max", "mean"):
        raise UserError(f"--fuse-mode must be max or mean, not {fusion.mode!r}")

    semantic = {
        "method": spec.method,
        "method_options": dataclasses.asdict(method.options),
        "dataset": spec.dataset,
        "data_root": str(Path(spec.data_root).expanduser().resolve()) if spec.data_root else None,
        "split_seed": spec.split_seed,
        "seed": spec.seed,
        "recipe": dataclasses.asdict(recipe),
        "fusion": dataclasses.asdict(fusion) if fusion else None,
    }
    if spec.dataset_options:  # only when given, so runs without options keep their hash
        semantic["dataset_options"] = dict(sorted(spec.dataset_options.items()))
    try:
        cam_scales = parse_scales(spec.cam_scales)
    except ValueError as err:
        raise UserError(str(err)) from None
    if cam_scales != (1.0,) or spec.cam_flip:  # only then, so single-scale runs keep their hashes
        semantic["cam_inference"] = {"scales": list(cam_scales), "flip": bool(spec.cam_flip)}
    config = dict(semantic)
    config.update({
        "config_hash": config_hash(semantic),
        "classifier": {"method": method.classifier()[0], "options": method.classifier()[1]},
        "dataset_info": dict(index.info, static_after=index.static_after),
        "label": spec.label,
        "recipe_name": recipe_name,
        "device": spec.device,
        "workers": spec.workers,
        "compile": spec.compile,
        "wsbench_version": __version__,
        "environment": environment(),
    })
    return Resolved(method=method, recipe=recipe, fusion=fusion, config=config, index=index, recipe_note=recipe_note)


def incompatibility(method: Method, static_after: bool, dataset: str) -> str | None:
    """Why ``method`` cannot run on a data set, or ``None`` if it can.

    Args:
        method: the method with its options.
        static_after: the data set's after class holds still images, not videos.
        dataset: its name, for the message.
    """
    trainer_name, trainer_options = method.classifier()
    if create_method(trainer_name, **trainer_options).clip_length() > 1 and static_after:
        return f"temporal training needs after videos; {dataset} has only static after frames"
    return None


def cam_inference(config: dict[str, Any]) -> dict[str, Any]:
    """``cam_scales``/``cam_flip`` keyword arguments of the evaluator from a resolved config."""
    cam = config.get("cam_inference") or {"scales": [1.0], "flip": False}
    return {"cam_scales": tuple(cam["scales"]), "cam_flip": cam["flip"]}


def execute(spec: RunSpec, runs_dir: str | Path, resume: bool = False, progress: bool = True) -> RunRecord | None:
    """Run one method on one data set and write its run record.

    Args:
        spec: what to run.
        runs_dir: where run records and shared classifiers go.
        resume: continue the latest unfinished run with the same configuration (and its
            interrupted classifier training) instead of starting a new one.
        progress: show progress bars.

    Returns:
        The finished run record (``result.json`` written); ``None`` on the ranks other than 0 of a
        torchrun launch, which only train (see :mod:`wsbench.distributed`).
    """
    from . import distributed
    from .evaluate import evaluate_maps

    started = time.perf_counter()
    runs_dir = Path(runs_dir)
    device = distributed.setup(resolve_device(spec.device))
    main = distributed.is_main()
    with distributed.main_first():  # a generated data set is written once, by rank 0
        resolved = resolve(spec, device.type)
    config = resolved.config
    if resolved.recipe_note and progress and main:
        print(f"note: {resolved.recipe_note}", file=sys.stderr)
    run_id = None
    if resume and main:
        unfinished = [r for r in iter_runs(runs_dir, finished=False)
                      if r.config.get("config_hash") == config["config_hash"]]
        run_id = unfinished[-1].run_id if unfinished else None
    # the resolved device and workers are recorded (not hashed: the hash is the semantic part only)
    config["device"] = str(device)
    config["workers"] = default_workers(device) if spec.workers is None else spec.workers
    record = create_run(runs_dir, config, run_id=run_id) if main else None
    recipe = resolved.recipe

    with distributed.main_first():
        data: PreparedData = prepare(resolved.index, recipe.image_size, spec.cache_dir, recipe.bg_threshold)
    model, classifier = obtain_classifier(resolved.method, recipe, data, spec.seed, runs_dir, device,
                                          resume=resume, workers=spec.workers, compile_model=spec.compile,
                                          progress=progress and main)
    if record is None:  # torchrun ranks > 0: training done, rank 0 evaluates and records
        return None
    accuracy = _cached_accuracy(Path(classifier["path"]), model, data, device)
    evaluation = evaluate_maps(resolved.method, model, data, device, recipe.background_removal,
                               fusion=resolved.fusion, flow=recipe.flow, progress=progress,
                               flow_options=recipe.flow_options(), **cam_inference(config))
    own_input = "foreground" if recipe.background_removal else "original"
    metrics = dict(evaluation["metrics"], accuracy=accuracy[own_input]["val"])
    result = {
        "run_id": record.run_id,
        "method": spec.method,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "config_hash": config["config_hash"],
        "metrics": metrics,
        "baselines": evaluation["baselines"],
        "accuracy_by_input": accuracy,
        "curves": evaluation["curves"],
        "counts": evaluation["counts"],
        "fusion": evaluation["fusion"],
        "classifier": classifier,
        "timings": {
            "train": round(classifier["train_seconds"], 3) if classifier["trained_now"] else 0.0,
            "train_original": round(classifier["train_seconds"], 3),
            "cache": round(data.timings["frames"], 3),
            "flow": round(data.timings["flow"], 3),
            "maps": evaluation["timings"]["maps"],
            "maps_frames_per_second": evaluation["timings"]["maps_frames_per_second"],
            "total": round(time.perf_counter() - started, 3),
        },
        "config": config,
    }
    if not evaluation["counts"]["test_frames"]:  # nothing to score: keep the maps instead
        from .export import export_maps

        maps_dir = record.path / "maps"
        from .inference import TrainedRun

        cam = cam_inference(config)
        trained = TrainedRun(record=record, method=resolved.method, model=model.eval(), recipe=recipe,
                             fusion=resolved.fusion, threshold=float("nan"), device=device,
                             cam_scales=cam["cam_scales"], cam_flip=cam["cam_flip"])
        count = export_maps(trained, data, maps_dir)
        result["maps"] = {"dir": str(maps_dir), "frames": count}
        result["note"] = ("no GT masks in the test split, so no IoU (it needs masks/before/<video>/<frame>.png); "
                          "the maps of the validation and test before frames were written instead")
    return finish_run(record, result)


def _cached_accuracy(folder: Path, model: Any, data: PreparedData, device: Any) -> dict:
    """Accuracy depends only on the classifier, so methods that share one compute it once."""
    import json

    from .evaluate import classification_accuracy
    from .runs import atomic_write_json

    path = folder / "accuracy.json"
    if path.exists():
        return json.loads(path.read_text())
    accuracy = classification_accuracy(model, data, device)
    atomic_write_json(path, accuracy)
    return accuracy
