"""Registers the built-in data sets (imported lazily by the registry)."""

from __future__ import annotations

from pathlib import Path

from . import register_dataset
from .index import VideoIndex
from .seruso import read_seruso
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
def synthetic_belt(root: Path | None = None, split_seed: int = 0, cache_dir: str | None = None) -> VideoIndex:
    """The default synthetic belt, generated into ``root`` or the cache on first use (see :mod:`.synthetic`)."""
    from .cache import resolve_cache_dir
    from .synthetic import BeltConfig, generate_belt, generator_tag

    config = BeltConfig()
    target = Path(root) if root is not None else resolve_cache_dir(cache_dir) / f"synthetic-belt-{generator_tag(config)}"
    index = read_video_folder(generate_belt(target, config), split_seed=split_seed, name="synthetic-belt")
    index.info["generator"] = generator_tag(config)
    return index


@register_dataset("seruso", description="SERUSO in the authors' layout (train_val_dataset/, test_set/), given splits")
def seruso(root: Path, split_seed: int = 0) -> VideoIndex:
    """SERUSO as read by the authors' code (see :mod:`wsbench.data.seruso`); ``split_seed`` is unused."""
    return read_seruso(root, name="seruso")


@register_dataset("ws2", description="WS² (Zenodo 14793518): the same layout as seruso (wsbench data fetch ws2)")
def ws2(root: Path, split_seed: int = 0) -> VideoIndex:
    """WS², the public successor of SERUSO, in the same layout (see :mod:`wsbench.data.seruso`)."""
    return read_seruso(root, name="ws2")
