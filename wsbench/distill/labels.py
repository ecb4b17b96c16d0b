"""Pseudo-labels: the source run's masks of its train split, with an optional ignore band."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UserError

__all__ = ["IGNORE", "ignore_band_labels", "ignore_band_warning", "pseudo_labels"]

#: label of pixels that are not trained on (the ignore band)
IGNORE = 255


def ignore_band_warning(band: tuple[float, float] | None, threshold: float) -> str | None:
    """Why an ignore band is suspicious for a source run's threshold, or ``None``.

    The band is meant to leave out the uncertain pixels around the threshold that cuts the maps
    into pseudo-labels; a band ``[low, high)`` that does not contain it ignores confident pixels on
    one side of the cut and trains on the uncertain ones.

    Args:
        band: the distill recipe's ``ignore_band`` (``None``: no band).
        threshold: the source run's threshold.

    Returns:
        One line naming the band and the threshold, or ``None`` when the band contains it.
    """
    if band is None or band[0] <= threshold < band[1]:
        return None
    return (f"--ignore-band {band[0]},{band[1]} does not contain the source run's threshold {threshold:.2f}: it "
            "ignores confident pixels on one side of the cut, not the uncertain ones around it")


def ignore_band_labels(labels: np.ndarray, scores: np.ndarray, foreground: np.ndarray,
                       band: tuple[float, float] | None) -> np.ndarray:
    """Labels with the ignore band applied: foreground pixels whose score lies in ``[low, high)`` become :data:`IGNORE`.

    Args:
        labels: (H, W) uint8 labels of :func:`~wsbench.inference.label_mask`.
        scores: (H, W) maps in [0, 1] at the same size.
        foreground: (H, W) boolean foreground.
        band: ``(low, high)`` or ``None`` (labels returned unchanged).

    Returns:
        A new (H, W) uint8 array.
    """
    out = labels.copy()
    if band is not None:
        low, high = band
        out[foreground & (scores >= low) & (scores < high)] = IGNORE
    return out


def pseudo_labels(trained: Any, data: Any, size_data: Any, band: tuple[float, float] | None,
                  batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, dict[int, torch.Tensor]]:
    """The train split's pseudo-labels at the segmenter's resolution.

    Args:
        trained: the source run (:func:`wsbench.inference.load_run`).
        data: its prepared data at its own resolution (its maps are computed from it).
        size_data: the same data set prepared at the segmenter's resolution (frames, foreground).
        band: the ignore band, or ``None``.
        batch_size: frames per forward pass of the source run.

    Returns:
        ``(frame indices into size_data.frames, (N, h, w) uint8 labels, {video position: maps of the
        train before videos})``.
    """
    from tqdm.auto import tqdm

    from ..inference import label_mask
    from ..maps import upsample
    from ..progress import show_progress

    flows = trained.producer.fusion_flows(data)
    size = size_data.image_size
    index, labels, maps_of = [], [], {}
    videos = [(pos, v) for pos, v in enumerate(data.index.videos) if v.split == "train"]
    for pos, video in tqdm(videos, desc="pseudo-labels", unit="video", leave=False,
                           disable=not show_progress()):
        maps = trained.producer.video(data, pos, flows, batch_size) if video.label == "before" else None
        if maps is not None:
            maps_of[pos] = maps
        s = size_data.slices[pos]
        for i in range(len(video)):
            fg = np.asarray(size_data.fg[s.start + i]) > 0
            scores = None if maps is None else upsample(maps[i], size)
            label = label_mask(scores, fg, trained.threshold)
            if scores is not None:
                label = ignore_band_labels(label, scores, fg, band)
            index.append(s.start + i)
            labels.append(label)
    if not index:
        raise UserError(f"data set {data.index.name!r} has no train frames to distill from")
    return np.asarray(index, np.int64), np.stack(labels), maps_of
