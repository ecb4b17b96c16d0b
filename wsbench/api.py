"""wsbench as a library: the stable Python API that ``wsbench`` commands are a thin layer over.

Everything a notebook needs, by name::

    import wsbench.api as wb

    wb.list_methods()                                   # ['cam', 'f2f', 'gradcam', 'puzzlecam', 'tccam']
    record = wb.run("cam", "synthetic-belt", runs_dir="runs/nb", recipe="smoke")
    record.result["metrics"]["iou_illegal"]             # test illegal IoU at the val-chosen threshold
    finished = wb.open_run(record.path)
    maps, masks = finished.maps("before/v012"), finished.masks("before/v012")
    wb.table("comparison", runs_dir="runs/nb")          # a pandas DataFrame

Names in ``__all__`` keep their meaning between releases; every other module is internal. Importing
this module (and the ``list_*`` functions) does not import torch; running and opening runs does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .data.cache import PreparedData
    from .inference import TrainedRun
    from .orchestrate import SuiteOutcome
    from .report import Table
    from .runs import RunRecord
    from .segment import SegmentedFrame

__all__ = ["FinishedRun", "list_datasets", "list_flows", "list_methods", "list_recipes", "open_run", "run",
           "runs", "suite", "table", "table_frame"]


def list_methods(pattern: str = "*") -> list[str]:
    """Registered CAM methods (built-in and plugins) whose name matches ``pattern`` (shell wildcards)."""
    from .methods import list_methods as _list

    return _list(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered data sets whose name matches ``pattern``."""
    from .data import list_datasets as _list

    return _list(pattern)


def list_flows(pattern: str = "*") -> list[str]:
    """Registered optical-flow estimators whose name matches ``pattern``."""
    from .flow import list_flows as _list

    return _list(pattern)


def list_recipes() -> list[str]:
    """Names of the training recipes (``paper``, ``cpu``, ``smoke``); see :mod:`wsbench.recipes`."""
    from .recipes import RECIPES

    return list(RECIPES)


def run(method: str, dataset: str = "synthetic-belt", *, runs_dir: str | Path = "runs", data_root: str | None = None,
        options: dict[str, Any] | None = None, recipe: str | None = None,
        recipe_options: dict[str, Any] | None = None, seed: int = 0, split_seed: int | None = None,
        dataset_options: dict[str, Any] | None = None, device: str = "auto", resume: bool = False,
        progress: bool = False) -> RunRecord:
    """Run one configuration (train or reuse its classifier, evaluate, record), as ``wsbench run`` does.

    Args:
        method: a registered method (:func:`list_methods`).
        dataset: a registered data set (:func:`list_datasets`).
        runs_dir: where the run record and shared classifiers go.
        data_root: the data set's folder (``None`` for generated data sets).
        options: the method's own options by field name (``{"beta_max": 4.0}``).
        recipe: a named recipe (:func:`list_recipes`; ``None``: the data set's default).
        recipe_options: recipe fields over the named recipe's (``{"epochs": 3}``).
        seed: training seed.
        split_seed: re-split by video (``None``: the data set's own split).
        dataset_options: the data set's own keyword options.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: continue an interrupted run of the same configuration.
        progress: draw progress bars.

    Returns:
        The finished :class:`~wsbench.runs.RunRecord` (``record.result`` holds the metrics).

    Raises:
        UserError: unknown names, bad options or bad data, in one line.
    """
    from .errors import UserError
    from .pipeline import RunSpec, execute
    from .progress import progress_bars

    spec = RunSpec(method=method, dataset=dataset, data_root=data_root, method_options=dict(options or {}),
                   recipe=dict(recipe_options or {}), recipe_name=recipe, seed=seed, split_seed=split_seed,
                   dataset_options=dict(dataset_options or {}), device=device)
    with progress_bars(progress):
        record = execute(spec, runs_dir, resume=resume, progress=progress)
    if record is None:  # only on the non-zero ranks of a torchrun launch
        raise UserError("this process is not rank 0 of a torchrun launch: the run record is written by rank 0")
    return record


def suite(spec: str | Path, *, runs_dir: str | Path = "runs", seeds: list[int] | None = None, device: str = "auto",
          workers: int | None = None, cache_dir: str | Path | None = None, data_roots: dict[str, str] | None = None,
          launcher: str = "local", jobs: int = 1, threads: int | None = None, slurm: dict[str, Any] | None = None,
          status: bool = False, wait: bool = True, metric: str = "iou_illegal", progress: bool = True,
          echo: Callable[[str], None] = print) -> SuiteOutcome:
    """Run a benchmark suite spec (TOML, see ``benchmarks/``) as ``wsbench suite`` does: plan it once, run every
    run without a finished run of its configuration on unchanged data, its distill stages, then its tables.

    Args:
        spec: the suite spec file.
        runs_dir: the runs directory.
        seeds: replaces the spec's seeds.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: data-loader worker processes (``None``: 0 on CPU, min(8, cores) on CUDA).
        cache_dir: the frame and flow cache (``None``: the default).
        data_roots: ``{dataset: folder}`` replacing the spec's ``data_root`` of those data sets.
        launcher: ``local``, ``slurm`` (one SLURM job per run through submitit) or ``submitit-local``.
        jobs: runs at once with ``local``, each in its own process.
        threads: torch threads per run with ``local``.
        slurm: job resources over the spec's ``[slurm]`` table (keys of :class:`wsbench.slurm.SlurmOptions`).
        status: with a job launcher, only each run's state (``outcome.states``); nothing is submitted.
        wait: with a job launcher, wait for the jobs and collect their runs (``False``: submit and return).
        metric: the comparison and ablation metric of ``outcome.tables``.
        progress: progress bars of the runs in this process.
        echo: where status lines go.

    Returns:
        A :class:`~wsbench.orchestrate.SuiteOutcome`: ``records``, ``failures`` (runs that did not finish
        are listed, not raised), ``tables`` (as the command prints them).

    Raises:
        UserError: an unreadable or invalid spec, options that do not go with the launcher.
    """
    from .orchestrate import Launch, launch_suite
    from .suite import load_spec

    loaded = load_spec(spec)
    options = None
    if launcher != "local":
        from .slurm import SlurmOptions

        options = SlurmOptions(**(slurm or {}))
    launch = Launch(launcher, jobs, threads, options, status, wait)
    overrides = {"device": device, "workers": workers, "data_roots": dict(data_roots or {}),
                 "cache_dir": None if cache_dir is None else str(cache_dir)}
    return launch_suite(loaded, Path(runs_dir), launch, seeds, overrides, metric, progress, echo)


def runs(runs_dir: str | Path = "runs") -> list[RunRecord]:
    """The finished runs in ``runs_dir`` (read-only records: ``.config``, ``.result``, ``.path``)."""
    from .runs import iter_runs

    return list(iter_runs(runs_dir))


@dataclasses.dataclass
class FinishedRun:
    """A finished run opened for inference: maps and masks of its own data set's frames, or of new frames.

    Attributes:
        trained: the loaded run (classifier, method, fusion, the val-chosen ``threshold``).
        cache_dir: where the run's data set is (re)prepared; ``None``: the default cache.
    """

    trained: TrainedRun
    cache_dir: str | Path | None = None

    @property
    def record(self) -> RunRecord:
        """The run record (config and result)."""
        return self.trained.record

    @property
    def threshold(self) -> float:
        """The threshold that turns maps into masks (chosen on validation, or fixed; see the result)."""
        return self.trained.threshold

    @cached_property
    def data(self) -> PreparedData:
        """The run's data set prepared at its training resolution, as the run saw it.

        Raises:
            UserError: the data changed since the run was made (:func:`wsbench.inference.check_data`).
        """
        from .inference import open_data

        return open_data(self.trained, self.cache_dir)

    @property
    def videos(self) -> list[str]:
        """Videos of the run's data set as ``"<label>/<id>"`` keys (``"before/v003"``), all splits, index order."""
        return [v.key for v in self.data.index.videos]

    def _position(self, video: str) -> int:
        from .errors import UserError

        for pos, v in enumerate(self.data.index.videos):
            if v.key == video:
                return pos
        raise UserError(f"run {self.trained.run_id}: its data set has no video {video!r} "
                        "(give '<label>/<id>', see .videos)")

    def maps(self, video: str) -> np.ndarray | None:
        """The run's scored maps of one video at frame size, exactly as the evaluator scored them.

        Args:
            video: a video key ``"before/<id>"`` or ``"after/<id>"`` (:attr:`videos`).

        Returns:
            (T, H, W) float32 maps in [0, 1] of the illegal class (the *before* class), or ``None``
            for an *after* video: it has no illegal objects by definition, so no map is scored.
        """
        import numpy as np

        from .maps import upsample

        pos = self._position(video)
        if self.data.index.videos[pos].label != "before":
            return None
        small = self.trained.producer.video(self.data, pos)
        return np.stack([upsample(m, self.data.slices[pos].frame_size) for m in small])

    def masks(self, video: str) -> np.ndarray:
        """One video's masks in the three-label domain, as ``wsbench export`` writes them.

        Returns:
            (T, H, W) uint8: 0 background, 1 legal, 2 illegal (the map reaches :attr:`threshold` on
            the foreground).
        """
        import numpy as np

        from .inference import label_mask

        pos = self._position(video)
        maps = self.maps(video)
        count = len(self.data.index.videos[pos].frames)
        return np.stack([label_mask(None if maps is None else maps[i], self.data.fg_full(pos, i), self.threshold)
                         for i in range(count)])

    def segment(self, frames: Iterable[np.ndarray], batch_size: int = 8) -> Iterator[SegmentedFrame]:
        """Masks of new frames (one camera's stream, RGB uint8, temporal order), as ``wsbench segment`` makes them.

        The stream's background is the median of its first frames, so ``frames`` is read twice when
        it is a list; pass a list (or anything re-iterable), not a one-shot generator.

        Yields:
            :class:`~wsbench.segment.SegmentedFrame` (``.index``, ``.frame``, ``.mask``) in input order.
        """
        from .data.background import BackgroundRule
        from .segment import segment_stream, stream_background

        background = stream_background(iter(frames), rule=BackgroundRule.of(self.trained.recipe))
        return segment_stream(self.trained, iter(frames), background, batch_size)


def open_run(run: str | Path, runs_dir: str | Path | None = None, device: str = "auto",
             cache_dir: str | Path | None = None) -> FinishedRun:
    """Open a finished run to get its maps and masks.

    Args:
        run: a run id in ``runs_dir``, or a run folder.
        runs_dir: the runs directory (default: ``$WSBENCH_RUNS_DIR`` or ``./runs``).
        device: where maps are computed.
        cache_dir: where the run's data set is prepared (default cache when ``None``).

    Raises:
        UserError: no such run, an unfinished or damaged record, or missing classifier weights (reading
            :attr:`FinishedRun.data` later refuses data changed since the run was made).
    """
    from .inference import load_run

    return FinishedRun(load_run(run, runs_dir, device), cache_dir)


def table_frame(table: Table) -> pd.DataFrame:
    """One built table as a DataFrame: rows and columns as printed, cells as ``mean`` (``NaN``: n/a or not run).

    ``frame.attrs`` keeps the rest: ``std`` and ``n`` (DataFrames of the same shape), ``caption``
    and ``footnotes``.
    """
    import pandas as pd

    index = [name for name, _ in table.rows]

    def grid(field: str) -> pd.DataFrame:
        return pd.DataFrame([[getattr(c, field) for c in cells] for _, cells in table.rows], index=index,
                            columns=table.columns, dtype=float)

    frame = grid("mean")
    frame.index.name = table.corner
    frame.attrs.update(name=table.name, caption=table.caption, footnotes=list(table.footnotes),
                       std=grid("std"), n=grid("n"))
    return frame


def table(name: str = "comparison", runs_dir: str | Path = "runs", metric: str = "iou_illegal",
          ci: bool = False) -> pd.DataFrame:
    """A table of ``wsbench leaderboard`` (``comparison``, ``ablation``, ``background``, ``pairs``, ``sanity``) as a
    DataFrame.

    Built from the stored run records only (nothing is trained or evaluated), like the command; distilled
    runs (``wsbench distill``) are not in these tables (``wsbench leaderboard --table stages`` shows them).

    Args:
        name: which table (also ``explanations``: ROAD faithfulness, :mod:`wsbench.report.explanations`).
        runs_dir: the runs directory.
        metric: the comparison/ablation metric (``iou_illegal`` pooled over frames, ``iou_illegal_per_frame``,
            ``miou`` (two-class), ``oracle_iou_illegal``, ``stability``, ``iou_illegal_wsws``, ``pxap``).
        ci: add 95 % bootstrap intervals over test videos (in ``frame.attrs['ci']`` as text).

    Returns:
        See :func:`table_frame`.
    """
    from .leaderboard import reference_runs, table_runs
    from .report import build_tables
    from .runs import iter_runs

    records = list(iter_runs(runs_dir))
    built = build_tables(table_runs(records), [name], metric, ci, reference_runs(records))[0]
    frame = table_frame(built)
    if ci:
        frame.attrs["ci"] = [[c.text for c in cells] for _, cells in built.rows]
    return frame
