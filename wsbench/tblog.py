"""TensorBoard event files beside each ``log.csv``: ``tensorboard --logdir RUNS_DIR`` shows every run.

Two hooks write them, through ``torch.utils.tensorboard`` (the ``tensorboard`` package, the
optional extra ``pip install 'wsbench[tensorboard]'``):

* :func:`log_rows` from the trainer, each time it appends its rows to a classifier's
  ``log.csv``: every numeric column of a row except ``epoch`` and ``step`` (each loss term, the
  total, the loss weights, the learning rate — whatever the method's step produced) becomes the
  scalar ``train/<column>`` at the row's ``step``, in ``RUNS_DIR/classifiers/<hash>/``;
* :func:`log_run` after a run is scored: its metrics as ``eval/<name>`` (validation accuracy,
  test illegal IoU and mIoU, ...) and a few test frames with the run's masks overlaid as images
  ``masks/<video>#<frame>``, in the run's own folder.

Without ``tensorboard`` installed the first hook prints a one-line note and nothing is written.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["log_rows", "log_run", "summary_writer"]

_WRITERS: dict[str, Any] = {}
_NOTED = False
#: columns of a log.csv row that are positions, not values
_POSITION = ("epoch", "step")


def summary_writer(folder: Path, purge_step: int | None = None) -> Any:
    """A ``SummaryWriter`` into ``folder`` (one per folder and process), or ``None`` without tensorboard.

    Args:
        folder: where the event file goes.
        purge_step: on a resumed training, events at or after this step from the interrupted
            attempt are hidden (TensorBoard's ``purge_step``), so curves do not fold back.
    """
    global _NOTED
    key = str(Path(folder).resolve())
    if key in _WRITERS:
        return _WRITERS[key]
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _NOTED:
            _NOTED = True
            print("note: tensorboard is not installed, so no TensorBoard logs are written "
                  "(pip install 'wsbench[tensorboard]')", file=sys.stderr)
        return None
    writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step or None)
    _WRITERS[key] = writer
    return writer


def log_rows(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Write the rows just appended to ``folder/log.csv`` as ``train/<column>`` scalars at each row's step."""
    if not rows:
        return
    writer = summary_writer(folder, purge_step=int(rows[0].get("step", 0)))
    if writer is None:
        return
    for row in rows:
        step = int(row.get("step", 0))
        for name, value in row.items():
            if name in _POSITION or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                writer.add_scalar(f"train/{name}", value, step)
    writer.flush()


def log_run(record: Any, cache_dir: str | Path | None = None, device: str = "auto", examples: int = 3) -> None:
    """A finished run's metrics (``eval/<name>``) and ``examples`` test frames with its masks, in its folder.

    Args:
        record: the finished :class:`~wsbench.runs.RunRecord`.
        cache_dir: the cache root the run used (for its frames).
        device: device for the masks of the example frames.
        examples: frames shown (0: metrics only).
    """
    if record is None or not record.finished:
        return
    writer = summary_writer(record.path)
    if writer is None:
        return
    result = record.result
    step = 0  # at the classifier's last training step, beside its training curves
    train_json = Path(record.path).parent / str(result.get("classifier", {}).get("path", "")) / "train.json"
    if train_json.is_file():
        import json

        try:
            step = max(0, int(json.loads(train_json.read_text()).get("steps", 1)) - 1)
        except (ValueError, TypeError, OSError):  # an unreadable record: the metrics go to step 0
            step = 0
    for name, value in (result.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            writer.add_scalar(f"eval/{name}", value, step)
    if examples > 0 and (result.get("metrics") or {}).get("iou_illegal") is not None:
        import numpy as np

        from .evaluate import example_masks
        from .figures import _overlay, pick_examples
        from .inference import load_run, open_data

        trained = load_run(record.path, device=device)
        data = open_data(trained, cache_dir)
        for shown in example_masks(trained, data, pick_examples(data.index, examples)):
            picture = _overlay(shown["image"], shown["pred"], (230, 30, 30))
            if shown["gt"].any():  # the GT outline in green, as in the qualitative figure
                import cv2

                edge = cv2.morphologyEx(shown["gt"].astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
                picture = _overlay(shown["image"], shown["pred"], (230, 30, 30), edge > 0)
            writer.add_image(f"masks/{shown['video']}#{shown['frame']}", picture, step, dataformats="HWC")
    writer.close()  # a run is logged once: no writer stays open for it
    _WRITERS.pop(str(Path(record.path).resolve()), None)
