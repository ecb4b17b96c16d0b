"""TensorBoard event files beside each ``log.csv``: ``tensorboard --logdir RUNS_DIR`` shows every run.

Two hooks write them, through ``torch.utils.tensorboard`` (the ``tensorboard`` package, the
optional extra ``pip install 'wsbench[tensorboard]'``); this module imports nothing else of
wsbench, so the trainer can call it:

* :func:`log_rows` from the trainer, each time it appends its rows to a classifier's
  ``log.csv``: every numeric column of a row except ``epoch`` and ``step`` (each loss term, the
  total, the loss weights, the learning rate — whatever the method's step produced) becomes the
  scalar ``train/<column>`` at the row's ``step``, in ``RUNS_DIR/classifiers/<hash>/``;
* :func:`wsbench.runner.tensorboard_run` (through :func:`log_scores` and :func:`log_images`) after
  a run is scored: its metrics as ``eval/<name>`` (validation accuracy, test illegal IoU and mIoU,
  ...) and a few test frames with the run's masks overlaid as images ``masks/<video>#<frame>``, in
  the run's own folder.

Without ``tensorboard`` installed the first hook prints a one-line note and nothing is written.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["log_images", "log_rows", "log_scores", "summary_writer"]

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


def log_scores(folder: Path, metrics: dict[str, Any], step: int) -> None:
    """A finished run's numeric metrics as ``eval/<name>`` scalars at ``step`` (the classifier's last)."""
    writer = summary_writer(folder)
    if writer is None:
        return
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            writer.add_scalar(f"eval/{name}", value, step)
    writer.flush()


def log_images(folder: Path, images: list[tuple[str, Any]], step: int) -> None:
    """``(tag, H×W×3 uint8 array)`` pairs as TensorBoard images at ``step``; then the folder's writer is closed."""
    writer = summary_writer(folder)
    if writer is None:
        return
    for tag, picture in images:
        writer.add_image(tag, picture, step, dataformats="HWC")
    writer.close()  # a run is logged once: no writer stays open for it
    _WRITERS.pop(str(Path(folder).resolve()), None)
