"""A finished run as a segmenter: its classifier, method, fusion and val-chosen threshold.

``wsbench export`` and ``wsbench segment`` start from :func:`load_run`; the masks they write are
in the paper's three-label domain (Fig. 3b), :data:`CLASSES`: belt, legal object, illegal object.
A pixel is *illegal* when the (fused) map reaches the run's threshold and it is foreground,
exactly as the evaluator counts it (the mask rule, :mod:`wsbench.masks`); any other foreground
pixel is *legal*; the rest is *background*; the maps come from the run's :class:`~wsbench.maps.MapProducer`.
Nothing here reads GT masks.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .errors import UserError
from .files import atomic_write_json, atomic_write_text, config_hash
from .flow import flow_fingerprint
from .maps import MapProducer
from .masks import CLASSES, ILLEGAL, PALETTE, label_mask
from .methods import Fusion, Method, create_method, create_trainer
from .model import CamNet, build_model, load_weights
from .recipes import Recipe, recorded_fields
from .runs import RunRecord, is_reference, recorded_split_seed, resolve_runs_dir

__all__ = ["CLASSES", "PALETTE", "TrainedRun", "check_data", "data_fingerprint", "data_parts", "label_mask",
           "load_run", "open_data", "overlay", "run_summary", "write_classes"]


@dataclasses.dataclass
class TrainedRun:
    """What a finished run needs to segment new frames.

    Attributes:
        record: the run record (config and result).
        producer: its maps: method with options, classifier (eval mode), input, multi-scale/flip
            inference and the fusion recorded in the result, on the device maps are computed on.
        recipe: the training recipe (resolution, background removal, flow estimator).
        threshold: the run's threshold: chosen on validation, or fixed when the validation split
            had no masks (``metrics.threshold_source``).
    """

    record: RunRecord
    producer: MapProducer
    recipe: Recipe
    threshold: float

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.record.run_id

    @property
    def method(self) -> Method:
        """The run's method with its options."""
        return cast(Method, self.producer.method)  # load_run builds the producer from the run's registered method

    @property
    def model(self) -> CamNet:
        """Its classifier, in eval mode."""
        return cast(CamNet, self.producer.model)

    @property
    def fusion(self) -> Fusion | None:
        """Temporal fusion at inference recorded in the result (``None``: per-frame maps)."""
        return self.producer.fusion

    @property
    def device(self) -> torch.device:
        """Where maps are computed."""
        return self.producer.device


def load_run(run: str | Path, runs_dir: str | Path | None = None, device: str = "auto") -> TrainedRun:
    """Open a finished run and load its classifier.

    Args:
        run: a run id in ``runs_dir``, or the path of a run directory.
        runs_dir: the runs directory (default: ``$WSBENCH_RUNS_DIR`` or ``./runs``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        The run, ready to compute maps.

    Raises:
        UserError: no such run, an unfinished run, or its classifier weights are missing.
    """
    from .data.torch_data import classes_for
    from .device import resolve_device

    path = Path(run)
    if not (path / "config.json").is_file():
        path = resolve_runs_dir(runs_dir) / str(run)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: no such run (give a run id in the runs directory, or a run directory)")
    try:
        record = RunRecord.load(path)
    except ValueError as err:
        raise UserError(str(err)) from None
    result = record.result
    if result is None:
        raise UserError(f"{path}: the run has not finished (no result.json); finish it with wsbench run ... --resume")
    config = record.config
    if is_reference(config):
        raise UserError(f"{path}: is a supervised reference (a segmenter trained on val GT masks, wsbench distill "
                        "--supervised-reference), not a CAM run")
    method = create_method(config["method"], **config.get("method_options", {}))
    values = recorded_fields(config["recipe"])  # runs made before the loss weights moved to the methods too
    if "image_size" in values:
        values["image_size"] = tuple(values["image_size"])
    recipe = Recipe(**values)
    fusion = Fusion(**result["fusion"]) if result.get("fusion") else None
    weights = _classifier_weights(record)
    # the recorded trainer builds the net (runs made before gradcam had a classifier of its own explain
    # cam's); the weights hold every parameter, so no pretrained file is needed (or read)
    recorded = config.get("classifier") or {}
    trainer = (create_method(recorded["method"], **recorded.get("options", {})) if recorded.get("method")
               else create_trainer(method))
    model = build_model(dataclasses.replace(recipe, pretrained=None), classes_for(recipe.background_removal),
                        trainer.head)
    load_weights(model, weights)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    return TrainedRun(record=record, producer=MapProducer.of_run(method, model, recipe, config, torch_device, fusion),
                      recipe=recipe, threshold=float(result["metrics"]["threshold"]))


def _classifier_weights(record: RunRecord) -> Path:
    """``final.pt`` of the run's classifier.

    The recorded path is relative to the runs directory; records written before that hold an
    absolute path, used while it exists. Either way the classifier beside the run (its key under
    ``classifiers/``) is the fallback, so a copied or moved runs directory keeps working.
    """
    runs_dir = record.path.parent
    info = (record.result or {}).get("classifier", {})
    candidates = [runs_dir / info["path"]] if info.get("path") else []  # an absolute path stays absolute
    if info.get("key"):
        candidates.append(runs_dir / "classifiers" / info["key"])
    for folder in candidates:
        if (folder / "final.pt").is_file():
            return folder / "final.pt"
    where = candidates[-1] if candidates else runs_dir / "classifiers"
    raise UserError(f"{where / 'final.pt'}: classifier weights of run {record.run_id} not found")


def open_data(trained: TrainedRun, cache_dir: str | Path | None = None) -> Any:
    """The run's data set, prepared (cached) at its training resolution, as :func:`wsbench.pipeline.execute` saw it.

    The data set is opened with the recorded root, options and split seed, and checked against the
    run's recorded fingerprint (:func:`check_data`); frames and foreground are prepared with the
    run's recipe (resolution, background threshold and morphology).

    Returns:
        A :class:`~wsbench.data.cache.PreparedData`.

    Raises:
        UserError: the data set changed since the run was made (naming what changed).
    """
    from .data import create_dataset
    from .data.cache import prepare

    config = trained.record.config
    index = create_dataset(config["dataset"], root=config.get("data_root"), split_seed=recorded_split_seed(config),
                           cache_dir=str(cache_dir) if cache_dir else None, **(config.get("dataset_options") or {}))
    recipe = trained.recipe
    check_data(trained.record, index, recipe)
    return prepare(index, recipe.image_size, cache_dir, background=recipe)


def data_fingerprint(index: Any, recipe: Recipe, splits: bool = True) -> str:
    """Content fingerprint of everything a run reads besides its options: frames, masks, flow files.

    Made of file names, sizes and mtimes (no pixel data), with the data root resolved; it is
    recorded in ``config.json`` (``data_fingerprint``), and a finished run counts as done only while
    it still matches. With ``splits=False`` (``data_content``) it leaves out which split each video
    is in: the data set's identity in tables, where runs on several split seeds pool.
    """
    return config_hash({"data": index.fingerprint(masks=True, splits=splits),
                        "flow": flow_fingerprint(recipe.flow, recipe.flow_options(), index)}, 16)


def data_parts(index: Any, recipe: Recipe) -> dict[str, str | None]:
    """Fingerprints of the parts of a run's data (``config.json``'s ``data_parts``), so that a reopened run
    can say which part changed: ``frames`` (the files alone), ``masks`` (frames and GT masks), ``flow``
    (``None`` for computed flow)."""
    return {"frames": index.fingerprint(splits=False), "masks": index.fingerprint(masks=True, splits=False),
            "flow": flow_fingerprint(recipe.flow, recipe.flow_options(), index)}


def check_data(record: RunRecord, index: Any, recipe: Recipe) -> None:
    """Refuse to reopen a run on data other than it was trained and scored on.

    ``index`` (the run's data set opened again) must have the run's recorded ``data_fingerprint``:
    swapped ``splits.json`` lists, frames or masks edited, added or removed, other flow files. A
    record made before fingerprints were recorded cannot be checked: a warning says so.

    Raises:
        UserError: one line naming the run, what changed and what to do.
    """
    recorded = record.config.get("data_fingerprint")
    if not recorded:
        warnings.warn(f"{record.path}: the run records no data fingerprint (made by an older wsbench), so its "
                      "data cannot be checked for changes", stacklevel=3)
        return
    now = data_fingerprint(index, recipe)
    if now == recorded:
        return
    parts, new = record.config.get("data_parts") or {}, data_parts(index, recipe)
    root = Path(index.root) if getattr(index, "root", None) else None
    where = f" under {root}" if root else ""
    if parts.get("frames", new["frames"]) != new["frames"]:
        what = f"its frames{where} (added, removed, renamed or edited)"
    elif parts.get("masks", new["masks"]) != new["masks"]:
        what = f"its GT masks{where} (added, removed or edited)"
    elif parts.get("flow", new["flow"]) != new["flow"]:
        what = "its flow files (--flow-root)"
    elif parts or record.config.get("data_content") == data_fingerprint(index, recipe, splits=False):
        splits = root / "splits.json" if root and (root / "splits.json").is_file() else None
        what = f"which split each video is in ({splits or 'the seeded split'})"
    else:
        what = f"its frames, GT masks or flow files{where}"
    raise UserError(f"{record.path}: the data changed since the run was made: {what} (data fingerprint {recorded} "
                    f"recorded, {now} now); its classifier, threshold and scores belong to the old data: restore "
                    "it, or run the configuration again on this data")


def overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """What an operator watches: illegal pixels tinted red (alpha blend), everything else untouched.

    Args:
        frame: RGB uint8 (H, W, 3).
        mask: (H, W) labels of :func:`label_mask`.
        alpha: weight of the red tint.

    Returns:
        A new RGB uint8 frame.
    """
    out = frame.copy()
    illegal = mask == ILLEGAL
    red = np.array(PALETTE[ILLEGAL], np.float32)
    out[illegal] = ((1 - alpha) * frame[illegal].astype(np.float32) + alpha * red).round().astype(np.uint8)
    return out


def write_classes(folder: Path) -> None:
    """``classes.json`` (names, values, palette) and ``classes.txt`` (one name a line, in value order)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "classes.json", {
        "classes": list(CLASSES),
        "values": {name: i for i, name in enumerate(CLASSES)},
        "palette": [list(c) for c in PALETTE],
    })
    atomic_write_text(folder / "classes.txt", "\n".join(CLASSES) + "\n")


def run_summary(trained: TrainedRun) -> dict[str, Any]:
    """Provenance written beside exported or segmented masks."""
    result = trained.record.result or {}
    return {"run_id": trained.run_id, "method": result.get("method"), "dataset": result.get("dataset"),
            "config_hash": result.get("config_hash"), "threshold": trained.threshold,
            "threshold_source": result.get("metrics", {}).get("threshold_source"),
            "fusion": trained.fusion.as_config() if trained.fusion else None,
            "background_removal": trained.recipe.background_removal, **trained.recipe.background_options(),
            "image_size": list(trained.recipe.image_size)}

