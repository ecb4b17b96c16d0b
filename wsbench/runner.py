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

__all__ = ["run_logged"]


def run_logged(run_spec: RunSpec, runs_dir: str | Path, resume: bool = True,
               progress: bool = False) -> RunRecord | None:
    """Execute one run (:func:`wsbench.pipeline.execute`) and write its TensorBoard scores and example masks
    (:func:`wsbench.figures.tensorboard_run`; nothing without the optional ``tensorboard``).

    Args:
        run_spec: what to run.
        runs_dir: the runs directory.
        resume: continue the latest unfinished run of the same configuration (launchers always do).
        progress: progress bars, the recipe note and the time estimate.

    Returns:
        The finished record; ``None`` on the torchrun ranks other than 0, which only train.
    """
    from .figures import tensorboard_run
    from .pipeline import execute

    record = execute(run_spec, runs_dir, resume=resume, progress=progress)
    if record is not None:
        tensorboard_run(record, run_spec.cache_dir)
    return record
