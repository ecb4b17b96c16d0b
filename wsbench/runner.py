"""One run as every launcher starts it: execute it (start or resume, record), then its TensorBoard logs.

``wsbench run``, the sequential suite, the ``--jobs`` workers (:mod:`wsbench.launch`) and the SLURM
jobs (:mod:`wsbench.slurm`) all call :func:`run_logged`; the status line a suite prints for it is
:func:`wsbench.suite.finished_line`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pipeline import RunSpec
    from .runs import RunRecord

__all__ = ["run_logged", "tensorboard_run"]


def run_logged(run_spec: RunSpec, runs_dir: str | Path, resume: bool = True,
               progress: bool = False) -> RunRecord | None:
    """Execute one run (:func:`wsbench.pipeline.execute`) and write its TensorBoard scores and example masks
    (:func:`tensorboard_run`; nothing without the optional ``tensorboard``).

    Args:
        run_spec: what to run.
        runs_dir: the runs directory.
        resume: continue the latest unfinished run of the same configuration (launchers always do).
        progress: progress bars, the recipe note and the time estimate.

    Returns:
        The finished record; ``None`` on the torchrun ranks other than 0, which only train.
    """
    from .pipeline import execute

    record = execute(run_spec, runs_dir, resume=resume, progress=progress)
    if record is not None:
        tensorboard_run(record, run_spec.cache_dir)
    return record


def tensorboard_run(record: RunRecord | None, cache_dir: str | Path | None = None, device: str | None = None,
                    examples: int = 3) -> None:
    """TensorBoard for a finished run (:mod:`wsbench.tblog`): its metrics and ``examples`` test frames with masks.

    Written into the run's folder at the classifier's last training step, beside its training
    curves; does nothing without tensorboard (the trainer has printed the note) or for ``None``
    (torchrun ranks other than 0) and unfinished runs.

    Args:
        record: the finished run.
        cache_dir: the cache root the run used (for its frames).
        device: device for the masks of the example frames (``None``: the one the run used).
        examples: frames shown (0: metrics only).
    """
    import json

    from . import tblog
    from .figures import example_masks, overlay, pick_examples

    if record is None or record.result is None or tblog.summary_writer(record.path) is None:  # None: unfinished
        return
    result = record.result
    step = 0  # the classifier's last training step
    train_json = Path(record.path).parent / str(result.get("classifier", {}).get("path", "")) / "train.json"
    try:
        step = max(0, int(json.loads(train_json.read_text()).get("steps", 1)) - 1)
    except (OSError, ValueError, TypeError, AttributeError):  # no or an unreadable training record: step 0
        step = 0
    tblog.log_scores(record.path, result.get("metrics") or {}, step)
    images = []
    if examples > 0 and (result.get("metrics") or {}).get("iou_illegal") is not None:
        import warnings

        import cv2
        import numpy as np

        from .inference import load_run, open_data

        with warnings.catch_warnings():  # the run itself has just shown the data's warnings
            warnings.simplefilter("ignore")
            trained = load_run(record.path, device=device or str(record.config.get("device", "auto")))
            data = open_data(trained, cache_dir)
        for shown in example_masks(trained, data, pick_examples(data.index, examples)):
            edge = cv2.morphologyEx(shown["gt"].astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            images.append((f"masks/{shown['video']}#{shown['frame']}",
                           overlay(shown["image"], shown["pred"], (230, 30, 30), edge)))
    tblog.log_images(record.path, images, step)
