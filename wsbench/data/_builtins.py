"""Registers the built-in data sets (imported lazily by the registry)."""

from __future__ import annotations

from pathlib import Path

from . import register_dataset
from .index import VideoIndex
from .seruso import VAL_FROM_TEST, read_seruso
from .video_folder import read_video_folder
from .zerowaste import read_zerowaste


@register_dataset("video-folder", description="any data set in the before/after/<video>/<frames> layout, "
                                             "or before/after/<recording>.mp4 (options: segment_seconds, stride)")
def video_folder(root: Path, split_seed: int = 0, segment_seconds: float | None = None, stride: int = 1) -> VideoIndex:
    """A folder in the video-folder layout (see :mod:`wsbench.data.video_folder`).

    ``segment_seconds`` cuts each video file into videos of that length; ``stride`` keeps every
    n-th frame of a video file.
    """
    return read_video_folder(root, split_seed=split_seed, name="video-folder", segment_seconds=segment_seconds,
                             stride=stride)


@register_dataset("zerowaste-w", description="ZeroWaste-w: before videos, after stills (no temporal training)")
def zerowaste_w(root: Path, split_seed: int = 0) -> VideoIndex:
    """The public ZeroWaste-w layout (see :mod:`wsbench.data.zerowaste`)."""
    return read_zerowaste(root, split_seed=split_seed)


@register_dataset("synthetic-belt", needs_root=False,
                  description="built-in synthetic conveyor belt (generated once into the cache)",
                  recipe="cpu")
def synthetic_belt(root: Path | None = None, split_seed: int | None = None, cache_dir: str | None = None) -> VideoIndex:
    """The default synthetic belt, generated into ``root`` or the cache on first use (see :mod:`.synthetic`).

    Without ``split_seed`` the belt has its fixed split (``splits.json``: train v000–v023, val
    v024–v039, test v040–v135). With one, the same videos are re-split by
    :func:`~wsbench.data.index.assign_splits` with the fixed split's proportions (24/16/96 per
    camera), keeping each before/after pair in one split; ``info["resplit"]`` then marks the
    run's configuration, so a re-split run never shares a configuration hash with a fixed-split one.
    """
    from .cache import resolve_cache_dir
    from .index import assign_splits
    from .synthetic import BeltConfig, generate_belt, generator_tag

    config = BeltConfig()
    target = (Path(root) if root is not None
              else resolve_cache_dir(cache_dir) / f"synthetic-belt-{generator_tag(config)}")
    index = read_video_folder(generate_belt(target, config), name="synthetic-belt")
    if split_seed is not None:
        shares = (config.train_videos, config.val_videos, config.test_videos)
        index.videos = assign_splits(index.videos, seed=split_seed, proportions=shares)
        index.info.update(splits=f"seeded by video pair, {'/'.join(map(str, shares))} train/val/test per camera "
                                 f"(split_seed={split_seed})", resplit=True)
    index.info["generator"] = generator_tag(config)
    return index


@register_dataset("seruso", description="SERUSO in the authors' layout (train_val_dataset/, test_set/); val adds "
                                      "a masked quarter of test_set (val_from_test)")
def seruso(root: Path, split_seed: int = 0, val_from_test: float = VAL_FROM_TEST) -> VideoIndex:
    """SERUSO as read by the authors' code (see :mod:`wsbench.data.seruso`).

    ``val_from_test`` (default 0.25) of ``test_set``'s videos per class, chosen with ``split_seed``,
    become the masked val split that chooses the threshold; ``val_from_test=0`` keeps the given
    splits and a fixed threshold.
    """
    return read_seruso(root, name="seruso", val_from_test=val_from_test, split_seed=split_seed)


@register_dataset("ws2", description="WS² (Zenodo 14793518): the same layout as seruso (wsbench data fetch ws2)")
def ws2(root: Path, split_seed: int = 0, val_from_test: float = VAL_FROM_TEST) -> VideoIndex:
    """WS², the public successor of SERUSO, in the same layout and with the same options as ``seruso``."""
    return read_seruso(root, name="ws2", val_from_test=val_from_test, split_seed=split_seed)
