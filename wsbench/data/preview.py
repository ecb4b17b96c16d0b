"""``wsbench data show``: counts per class and split, and a contact sheet to look at the data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from ..files import write_image
from . import background as bg
from .index import LABELS, SPLITS, Video, VideoIndex
from .io import read_mask

__all__ = ["contact_sheet", "counts_table"]


def counts_table(index: VideoIndex) -> str:
    """A GitHub-markdown table of videos / frames / masked frames per split and class."""
    from tabulate import tabulate

    counts = index.counts()
    rows = []
    for split in SPLITS:
        for label in LABELS:
            c = counts.get(split, {}).get(label)
            if c:
                rows.append([split, label, c["videos"], c["frames"], c["masked_frames"]])
    head = f"{index.name}: {index.root or '(generated)'}  splits: {index.info.get('splits', '?')}"
    return head + "\n" + tabulate(rows, headers=["split", "class", "videos", "frames", "GT masks"], tablefmt="github")


def _tile(image: np.ndarray, size: int, caption: str) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_NEAREST
                       if image.dtype == bool or image.max() <= 1 else cv2.INTER_AREA)
    canvas = np.full((size + 16, size, 3), 255, np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    canvas[16:16 + image.shape[0], : image.shape[1]] = image
    cv2.putText(canvas, caption[:24], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def _rows_for(video: Video, frames: int, size: int, rules: dict[str, bg.BackgroundRule],
              chosen: str) -> list[np.ndarray]:
    n = len(video)
    picks = np.linspace(0, n - 1, min(n, frames)).round().astype(int)
    first = video.frames.read(0)
    asize = bg.analysis_size(first.shape[1], first.shape[0])
    sample = [video.frames.read(int(i)) for i in np.linspace(0, n - 1, min(n, bg.MEDIAN_FRAMES)).round().astype(int)]
    backgrounds = {name: rule.fit([rule.convert(f, asize) for f in sample]) for name, rule in rules.items()}
    rows = []
    for i in picks:
        frame = video.frames.read(int(i))
        mask_path = video.masks[int(i)] if video.masks else None
        gt = read_mask(mask_path, (frame.shape[1], frame.shape[0])) if mask_path is not None else None
        tiles = [_tile(frame, size, f"{video.key} #{i}")]
        fgs = {}
        for name, background in backgrounds.items():
            fg = cv2.resize(background.mask(frame), (frame.shape[1], frame.shape[0]),
                            interpolation=cv2.INTER_NEAREST).astype(bool)
            fgs[name] = fg
            kept = f" {100 * (gt & fg).sum() / gt.sum():.0f}% GT" if gt is not None and gt.any() else ""
            tiles.append(_tile(frame * fg[..., None], size, f"{name} keeps{kept}"))
        tiles.append(_tile(frame * ~fgs[chosen][..., None], size, f"background class ({chosen})"))
        if gt is not None:
            overlay = frame.copy()
            overlay[gt] = (0.4 * overlay[gt] + 0.6 * np.array([255, 0, 0])).astype(np.uint8)
            tiles.append(_tile(overlay, size, "GT illegal (red)"))
        else:
            tiles.append(_tile(np.full_like(frame, 230), size, "no GT mask"))
        rows.append(np.concatenate(tiles, axis=1))
    return rows


def contact_sheet(index: VideoIndex, out: Path, videos: int = 2, frames: int = 2, size: int = 160,
                  rule: bg.BackgroundRule | None = None) -> Path:
    """Save a PNG grid: per row a frame, the objects each background rule keeps, the background image and the GT.

    Shows ``videos`` before and ``videos`` after videos (masked before videos first), ``frames``
    frames each. Both rules (``gray`` and ``lab``) are shown with the given thresholds, threshold
    mode and cleaning, each captioned with the share of the frame's GT illegal pixels it keeps;
    the background image is ``rule``'s.

    Args:
        index: the data set.
        out: the image file to write.
        videos: videos per class.
        frames: frames per video.
        size: tile side in pixels.
        rule: the rule whose background image is shown; its thresholds (the grey and the colour
            one), threshold mode and cleaning apply to both rules (default: the paper's rule).

    Returns:
        ``out``.
    """
    rule = rule or bg.BackgroundRule()
    rules = {name: dataclasses.replace(rule, rule=name) for name in bg.RULES}
    chosen: list[Video] = []
    for label in LABELS:
        group = sorted((v for v in index.videos if v.label == label), key=lambda v: (not v.has_masks, v.key))
        chosen.extend(group[:videos])
    rows = [row for v in chosen for row in _rows_for(v, frames, size, rules, rule.rule)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out
