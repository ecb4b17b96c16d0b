"""Writing a method's maps to disk, for data sets whose test frames have no GT masks.

Without masks there is nothing to score, but the maps are still the method's output: they are
computed exactly as the evaluator computes them (same input variant, same temporal fusion) and
written as 8-bit grayscale PNGs at each frame's original size (0 = 0.0, 255 = 1.0).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .data.cache import PreparedData
from .data.torch_data import FOREGROUND, ORIGINAL
from .evaluate import fuse_maps, video_maps
from .methods import METHODS, Fusion, Method
from .model import CamNet

__all__ = ["export_maps"]


def export_maps(method: Method, model: CamNet, data: PreparedData, device: torch.device, out_dir: str | Path,
                background_removal: bool = True, fusion: Fusion | None = None, flow: str = "dis",
                splits: tuple[str, ...] = ("val", "test"), batch_size: int = 32) -> int:
    """Write the maps of every *before* frame of ``splits`` to ``out_dir/<video id>/<frame name>.png``.

    Args:
        method: the method whose maps are written.
        model: its trained classifier, in eval mode.
        data: prepared data.
        device: where to compute maps.
        out_dir: folder to write (created).
        background_removal: feed background-removed frames (as in training) or originals.
        fusion: temporal fusion at inference; ``None`` uses ``method.fusion()``.
        flow: flow estimator whose cached flows fusion uses.
        splits: whose before videos (by default the held-out ones).
        batch_size: frames per forward pass.

    Returns:
        The number of maps written.
    """
    fusion = fusion if fusion is not None else method.fusion()
    needs_grad = METHODS.entry(method.name).meta.needs_grad
    variant = FOREGROUND if background_removal else ORIGINAL
    flows = data.flows(flow) if fusion is not None and fusion.neighbours > 0 else None
    out_dir = Path(out_dir)
    model.eval()
    written = 0
    for pos, video in enumerate(data.index.videos):
        if video.label != "before" or video.split not in splits:
            continue
        maps = video_maps(method, model, data, pos, variant, device, batch_size, needs_grad)
        if flows is not None:
            s = data.slices[pos]
            clip = torch.from_numpy(np.asarray(flows[s.start:s.stop], dtype=np.float32))
            maps = fuse_maps(maps, clip[:, 0], clip[:, 1], fusion)
        w, h = data.slices[pos].frame_size
        folder = out_dir / video.id
        folder.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(video.frames.names):
            scores = cv2.resize(maps[i].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(folder / f"{name}.png"), np.clip(scores * 255 + 0.5, 0, 255).astype(np.uint8))
            written += 1
    return written
