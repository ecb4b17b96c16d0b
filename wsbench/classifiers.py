"""The classifier cache: runs that need the same classifier train it once and share it.

A classifier is named by the hash of what determines it (:func:`classifier_key`: the trainer
method and its options, the recipe, the data, the seed) and lives in ``RUNS_DIR/classifiers/<hash>/``
(``final.pt``, ``train.json``, ``log.csv``, ``checkpoint.pt`` while training). :func:`obtain_classifier`
takes it from there, or trains it with :func:`wsbench.train.train_classifier` under an exclusive
lock, so two runs never train the same classifier at once (the second waits, then reuses it).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import distributed
from .data.cache import PreparedData
from .data.torch_data import classes_for
from .errors import UserError
from .files import config_hash, load_torch
from .flow import flow_fingerprint
from .methods import Method, create_trainer
from .model import CamNet, build_model, load_weights
from .recipes import Recipe, recipe_record
from .schema import AnyValue, Number, Record, load_json
from .train import Hardware, train_classifier

__all__ = ["classifier_dir", "classifier_key", "obtain_classifier"]


def classifier_key(method: Method, recipe: Recipe, data: PreparedData, seed: int) -> dict[str, Any]:
    """What determines a trained classifier; its hash names the cache folder.

    The data enter as the frame cache's name (the data set's content fingerprint) and, for clip
    training on ``.flo`` files, the files' content fingerprint.
    """
    name, options = method.classifier()
    fields = recipe_record(recipe)
    key = {"method": name, "options": options, "recipe": fields, "data": data.path.parent.name,
           "image_size": list(recipe.image_size), "seed": seed}
    if create_trainer(method).clip_length() == 1:  # the trainer's: tccam --no-temporal trains as puzzlecam
        fields.pop("flow")  # single-frame training never reads flow
        fields.pop("flow_root")
    else:
        content = flow_fingerprint(recipe.flow, recipe.flow_options(), data.index)
        if content is not None:  # .flo files: their content, not only where they are
            key["flow_data"] = content
    return key


def classifier_dir(runs_dir: Path, key: dict[str, Any]) -> Path:
    """``RUNS_DIR/classifiers/<hash>``."""
    return Path(runs_dir) / "classifiers" / config_hash(key)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock so two runs never train the same classifier at once (the second waits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def obtain_classifier(method: Method, recipe: Recipe, data: PreparedData, seed: int, runs_dir: Path,
                      hardware: Hardware, resume: bool = False) -> tuple[CamNet, dict[str, Any]]:
    """The trained classifier of ``method``: from the cache if another run trained it, else trained now.

    Args:
        method: the method whose maps are wanted (its ``classifier()`` names the recipe).
        recipe: training recipe.
        data: prepared data.
        seed: training seed.
        runs_dir: runs directory holding ``classifiers/``.
        hardware: where and how to train (device, data-loader workers, ``torch.compile``); the model is
            returned on its device.
        resume: continue an interrupted training from its last checkpoint.

    Returns:
        ``(model in eval mode, info)`` where info has ``key``, ``path``, ``train_seconds``,
        ``trained_now``.

    Raises:
        UserError: an interrupted training exists and ``resume`` is false.
    """
    key = classifier_key(method, recipe, data, seed)
    folder = classifier_dir(runs_dir, key)
    trainer = create_trainer(method)
    # under torchrun rank 0 holds the lock and decides; the other ranks follow its decision
    lock = _locked(folder.parent / f"{folder.name}.lock") if distributed.is_main() else contextlib.nullcontext()
    with lock:
        trained_now = False
        todo = "done"
        if distributed.is_main() and not (folder / "final.pt").exists():
            todo = "train"
            if (folder / "checkpoint.pt").exists() and not resume:
                state = load_torch(folder / "checkpoint.pt")
                epoch = state.get("epoch") if isinstance(state, dict) else None
                done = f"after epoch {epoch + 1}/{recipe.epochs}" if isinstance(epoch, int) else "midway"
                todo = (f"{folder}: an interrupted training of this classifier stopped {done}; "
                        "pass --resume to continue it")
        todo = distributed.broadcast(todo)
        if todo not in ("train", "done"):
            raise UserError(todo)
        if todo == "train":
            train_classifier(trainer, recipe, data, seed, folder, hardware, key=key)
            trained_now = True
        info = load_json(folder / "train.json", Record({"train_seconds": Number(finite=True)},
                                                        required=("train_seconds",), extra=AnyValue()),
                         "classifier training record", hint=f"delete {folder} to train the classifier again")
    model = build_model(recipe, classes_for(recipe.background_removal), trainer.head)
    load_weights(model, folder / "final.pt")
    model.to(hardware.device).eval()
    # relative to the runs directory, which can then be copied or moved
    return model, {"key": config_hash(key), "path": folder.relative_to(Path(runs_dir)).as_posix(),
                   "train_seconds": info["train_seconds"], "trained_now": trained_now, "method": key["method"],
                   "options": key["options"]}
