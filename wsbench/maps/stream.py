"""Fusion over a stream of frames (``wsbench segment``): :func:`~wsbench.maps.fuse_maps` over a ring buffer."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..data.cache import FLOW_STRIDE
from ..flow import create_flow, resize_flow
from ..methods import Fusion
from .fusion import fuse_maps

__all__ = ["StreamFusion"]


@dataclasses.dataclass
class _Entry:
    """A frame in the window, with what fusion needs."""

    item: Any  # the caller's, handed back with the fused map
    small: np.ndarray  # the frame at the training resolution (the flow's input)
    maps: torch.Tensor
    to_next: torch.Tensor | None = None
    to_prev: torch.Tensor | None = None


class StreamFusion:
    """A run's fusion over neighbouring frames, applied to a stream whose frames arrive one at a time.

    Frame t's fused map is handed out once frame t+k has arrived (k = the fusion's neighbours: k frames
    of latency, none for causal fusion), fused over the window t−k … t+k held in a ring buffer, so
    what is held never grows with the stream; the result equals :func:`~wsbench.maps.fuse_maps` on the
    whole video. Flows between consecutive frames come from the run's flow estimator on the fly (DIS
    for a run that reads ``.flo`` files: they exist only for a data set's own frames), at the cached
    flows' resolution; none for unwarped fusion.

    Args:
        fusion: the run's fusion (``None`` or 0 neighbours: maps pass through as they are).
        flow: the run's flow estimator.
        image_size: the training resolution ``(w, h)`` of the maps and of the frames added.
    """

    def __init__(self, fusion: Fusion | None, flow: str, image_size: tuple[int, int]) -> None:
        self.fusion = fusion if fusion is not None and fusion.neighbours > 0 else None
        self.k = self.fusion.neighbours if self.fusion is not None else 0
        self.ahead = 0 if self.fusion is None or self.fusion.causal else self.k  # later frames a frame waits for
        warps = self.fusion is not None and self.fusion.warp
        self.estimator = create_flow("dis" if flow == "files" else flow) if warps else None
        w, h = image_size
        self.flow_size = (max(1, h // FLOW_STRIDE), max(1, w // FLOW_STRIDE))
        self.entries: collections.deque[_Entry] = collections.deque()  # frames start .. read-1
        self.start = self.read = self.emitted = 0

    def _flow(self, src: np.ndarray, dst: np.ndarray) -> torch.Tensor:
        assert self.estimator is not None  # called only when fusion warps
        f = torch.from_numpy(np.ascontiguousarray(self.estimator(src[None], dst[None]))).permute(0, 3, 1, 2)
        return resize_flow(f, self.flow_size)[0]

    def add(self, item: Any, small: np.ndarray, maps: torch.Tensor) -> None:
        """Append the next frame of the stream.

        Args:
            item: anything the caller wants back with the frame's fused map.
            small: the frame at the training resolution, RGB uint8 (h, w, 3).
            maps: its (h', w') map before fusion (:meth:`~wsbench.maps.MapProducer.batch`).
        """
        entry = _Entry(item, small, maps)
        if self.estimator is not None and self.entries:
            prev = self.entries[-1]
            prev.to_next, entry.to_prev = self._flow(prev.small, entry.small), self._flow(entry.small, prev.small)
        self.entries.append(entry)
        self.read += 1

    def ready(self, done: bool) -> Iterator[tuple[int, Any, torch.Tensor]]:
        """``(index in the stream, item, fused map)`` of every frame whose later frames in its window have
        arrived (every frame left once the stream is ``done``); frames no later frame needs are dropped."""
        k = self.k
        while self.emitted < self.read and (done or self.emitted + self.ahead < self.read):
            lo, hi = max(0, self.emitted - k), min(self.read, self.emitted + self.ahead + 1)
            clip = [self.entries[i - self.start] for i in range(lo, hi)]
            entry = clip[self.emitted - lo]
            fused = entry.maps
            if self.fusion is not None:  # a lone frame too: fusion on raw maps normalises it
                zero = torch.zeros(2, *self.flow_size)
                to_next = to_prev = None
                if self.estimator is not None:
                    to_next = torch.stack([e.to_next if e.to_next is not None else zero for e in clip])
                    to_prev = torch.stack([e.to_prev if e.to_prev is not None else zero for e in clip])
                fused = fuse_maps(torch.stack([e.maps for e in clip]), to_next, to_prev,
                                  self.fusion)[self.emitted - lo]
            yield self.emitted, entry.item, fused
            self.emitted += 1
            while self.start < self.emitted - k:  # no later frame needs it
                self.entries.popleft()
                self.start += 1
