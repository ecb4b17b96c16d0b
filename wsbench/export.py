"""Pseudo-labels for a fully supervised network: every frame's mask from a finished run (``wsbench export``).

Layout written (the ``img_dir``/``ann_dir`` pair of mmsegmentation's custom data sets; any trainer
that pairs ``images/<x>.png`` with ``masks/<x>.png`` reads it)::

    OUT/
      images/<split>/<label>_<video>_<frame>.png   the original frame (RGB, original size); a name
                                                    over 240 bytes is cut and ends in a hash of the whole
      masks/<split>/<label>_<video>_<frame>.png    uint8 labels: 0 background, 1 legal, 2 illegal
      classes.json                                  names, values and palette (Fig. 3b colours)
      classes.txt                                   one class name a line, in value order
      export.json                                   run, threshold, splits, counts (written last)

Masks are the run's own: its classifier, method and inference-time fusion, upsampled to frame size
and cut at the threshold chosen on validation, with the cached foreground (background removal)
separating legal objects from the belt. *After* frames contain no illegal object by definition,
so their masks are legal + background and need no maps. GT masks are never read.

(A run whose test frames have no GT masks keeps its maps instead, written when it is made:
:func:`wsbench.maps.save_maps`.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .data.index import SPLITS
from .errors import UserError
from .files import atomic_write_json, check_output, removed_on_failure, write_image
from .inference import TrainedRun, open_data, run_summary, write_classes
from .maps import upsample
from .masks import CLASSES, label_mask
from .progress import show_progress

__all__ = ["export_pseudo_labels"]


#: longest file stem written (bytes): with ``.png`` within the 255 bytes file systems allow a name
_MAX_STEM_BYTES = 240


def _safe(name: str) -> str:
    """``name`` as a file stem: other characters than word characters, dots and dashes become
    ``_``; a stem longer than 240 bytes keeps its start and ends in a hash of the whole
    name (so two long names never share a file)."""
    stem = re.sub(r"[^\w.-]+", "_", name)
    if len(stem.encode()) <= _MAX_STEM_BYTES:
        return stem
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    head = stem.encode()[:_MAX_STEM_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}-{digest}"


def export_pseudo_labels(trained: TrainedRun, out: str | Path, splits: tuple[str, ...] = SPLITS,
                         cache_dir: str | Path | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Write images, three-label masks and a class list for every frame of ``splits``.

    Args:
        trained: the run (see :func:`wsbench.inference.load_run`).
        out: output folder; must not exist or be empty.
        splits: which splits of the run's data set.
        cache_dir: cache root of the frame, foreground and flow caches.
        batch_size: frames per forward pass.

    Returns:
        The content of ``export.json``.

    Raises:
        UserError: ``out`` is a file, a non-empty folder, the run or inside it or the run's data set,
            or the splits hold no frames.
    """
    data_root = trained.record.config.get("data_root")
    out = check_output(out, "--out", "dir", inputs=[trained.record.path, data_root], empty=True)
    with removed_on_failure(out):  # a failed export leaves no half-written folder that blocks its retry
        return _export(trained, out, splits, cache_dir, batch_size)


def _export(trained: TrainedRun, out: Path, splits: tuple[str, ...], cache_dir: str | Path | None,
            batch_size: int) -> dict[str, Any]:
    from tqdm.auto import tqdm

    data = open_data(trained, cache_dir)
    videos = [(pos, v) for pos, v in enumerate(data.index.videos) if v.split in splits]
    if not videos:
        raise UserError(f"data set {data.index.name!r} has no videos in split(s) {', '.join(splits)}")
    flows = trained.producer.fusion_flows(data)
    counts: dict[str, dict[str, int]] = {}
    pixels = np.zeros(len(CLASSES), np.int64)
    written: set[str] = set()
    for pos, video in tqdm(videos, desc="export", unit="video", leave=False,
                           disable=not show_progress()):
        maps = trained.producer.video(data, pos, flows, batch_size) if video.label == "before" else None
        size = data.slices[pos].frame_size
        image_dir, mask_dir = out / "images" / video.split, out / "masks" / video.split
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(video.frames):
            scores = None if maps is None else upsample(maps[i], size)
            mask = label_mask(scores, data.fg_full(pos, i), trained.threshold)
            stem = _safe(f"{video.label}_{video.id}_{video.frames.names[i]}")
            if f"{video.split}/{stem}" in written:
                raise UserError(f"{video.key}: frame {video.frames.names[i]!r} gives the file name {stem!r} "
                                "of another frame; rename one of the videos")
            written.add(f"{video.split}/{stem}")
            write_image(image_dir / f"{stem}.png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            write_image(mask_dir / f"{stem}.png", mask)
            pixels += np.bincount(mask.ravel(), minlength=len(CLASSES))
            c = counts.setdefault(video.split, {"before_frames": 0, "after_frames": 0})
            c[f"{video.label}_frames"] += 1
    write_classes(out)
    summary = {
        **run_summary(trained),
        "splits": [s for s in SPLITS if s in splits],
        "layout": {"images": "images/<split>/<label>_<video>_<frame>.png",
                   "masks": "masks/<split>/<same name>.png, uint8 values = indices of classes"},
        "classes": list(CLASSES),
        "frames": counts,
        "pixels": {name: int(n) for name, n in zip(CLASSES, pixels, strict=True)},
        "note": "pseudo-labels from a weakly supervised run (no GT used); after frames have no illegal pixels",
    }
    atomic_write_json(out / "export.json", summary)
    return summary

