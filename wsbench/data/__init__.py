"""Data sets: layouts, splits, background removal, caches and torch datasets.

A data set is a registered function ``(root, split_seed, **options) -> VideoIndex``::

    @register_dataset("video-folder", description="...")
    def video_folder(root, split_seed=0): ...

The contract of that function:

- **receives** ``root`` (a :class:`~pathlib.Path`, or ``None`` when the entry was registered
  with ``needs_root=False``), ``split_seed`` (seed of the split by video for data without fixed
  splits; the function's own default when the user gave none, so a data set with a fixed split
  may declare ``split_seed: int | None = None`` and re-split only when given one), ``cache_dir``
  only if its signature names it (where generated data may go), and its own keyword options
  (``wsbench run --dataset-option KEY=VALUE``, a suite's ``[datasets_options."NAME"]``); an
  option it does not declare is a one-line error.
- **returns** a :class:`VideoIndex`: every :class:`Video` with its label (``before``/``after``),
  a unique id, a :class:`~wsbench.data.io.FrameSource` (:class:`~wsbench.data.io.ImageFiles`,
  :class:`~wsbench.data.video.VideoFile` or your own) and its split; GT mask *paths* per frame
  where they exist (only the evaluator opens them). Use :func:`~wsbench.data.index.assign_splits`
  for splits by video and raise :class:`~wsbench.errors.UserError` naming the file on bad data.
- it reads no pixels beyond what indexing needs: :func:`wsbench.data.cache.prepare` turns the
  index into cached arrays at training resolution (background removal included), and flows are
  computed from those.

``create_dataset(name, root=...)`` calls it. See ``plugins/wsbench-frames-csv`` for a plugin.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import Registry
from .index import LABELS, SPLITS, Video, VideoIndex

__all__ = [
    "DATASETS",
    "DatasetMeta",
    "LABELS",
    "SPLITS",
    "Video",
    "VideoIndex",
    "create_dataset",
    "list_datasets",
    "register_dataset",
]


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
    """Metadata of a registered data set.

    Attributes:
        description: one line for ``wsbench list datasets``.
        needs_root: whether ``--data-root`` is required.
        recipe: name of the data set's default training recipe (``wsbench list recipes``), used
            when a run names none; ``"paper"`` is replaced by ``"cpu"`` on a CPU without
            pretrained weights (see :func:`wsbench.recipes.choose_recipe`).
    """

    description: str = ""
    needs_root: bool = True
    recipe: str = "paper"

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, str):
            raise TypeError(f"recipe must be a recipe name (wsbench list recipes), not {self.recipe!r}")


DATASETS: Registry[DatasetMeta] = Registry("dataset", "wsbench.datasets", DatasetMeta,
                                           builtins="wsbench.data._builtins")
register_dataset = DATASETS.register


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered data set names matching an fnmatch pattern (plugins included)."""
    return DATASETS.list(pattern)


def create_dataset(name: str, root: str | Path | None = None, split_seed: int | None = None,
                   cache_dir: str | Path | None = None, **options: Any) -> VideoIndex:
    """Index a registered data set.

    Args:
        name: registry name (``synthetic-belt``, ``video-folder``, ``zerowaste-w``, plugins).
        root: data folder (required unless the data set generates its own).
        split_seed: seed of the split by video where the data set has no fixed splits;
            ``None``: the data set's own default (its fixed split, or seed 0 of a seeded one).
            ``synthetic-belt`` re-splits its fixed split when given one.
        cache_dir: cache root, passed on to data sets whose entry function takes ``cache_dir``
            (``synthetic-belt`` generates its videos there); ignored by the others.
        **options: data-set specific options.

    Returns:
        The index with splits assigned.

    Raises:
        UserError: missing ``root`` or an option the data set does not take.
    """
    entry = DATASETS.entry(name)
    if entry.meta.needs_root and root is None:
        raise UserError(f"data set {name!r} needs --data-root PATH")
    params = inspect.signature(entry.obj).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not accepts_any]
    if unknown:
        taken = [p for p in params if p not in ("root", "split_seed", "cache_dir")]
        raise UserError(f"data set {name!r} takes no option {unknown[0]!r} (it takes: {', '.join(taken) or 'none'})")
    if "cache_dir" in params:
        options["cache_dir"] = cache_dir
    seed_param = params.get("split_seed")
    if split_seed is not None or seed_param is None or seed_param.default is inspect.Parameter.empty:
        options["split_seed"] = 0 if split_seed is None else split_seed
    index = entry.obj(root=Path(root).expanduser() if root is not None else None, **options)
    if not isinstance(index, VideoIndex):
        raise UserError(f"data set {name!r} ({entry.source}) returned {type(index).__name__}, not a VideoIndex")
    return index
