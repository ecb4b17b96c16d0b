"""Beyond the paper: temporal stability, fusion for every method, pseudo-label export, video segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsbench.evaluate import StabilitySweep, predict_mask


def _square(t: int, h: int = 24, w: int = 32, side: int = 6, dx: int = 2) -> torch.Tensor:
    maps = torch.zeros(t, h, w)
    for i in range(t):
        maps[i, 8:8 + side, 3 + dx * i:3 + dx * i + side] = 0.9
    return maps


def test_stability_static_scene_identity_flow_is_perfect():
    maps = _square(1).repeat(5, 1, 1)
    sweep = StabilitySweep()
    sweep.add_video(maps, torch.ones_like(maps, dtype=torch.bool), torch.zeros(5, 2, 6, 8))
    stab = sweep.stability()
    assert sweep.pairs == 4
    assert stab[50] == 1.0 and stab[0] == 1.0
    assert np.isnan(stab[95])  # no mask at all above the map's values


def test_stability_translating_square_with_its_flow():
    maps = _square(6, dx=2)
    to_next = torch.zeros(6, 2, 6, 8)
    to_next[:, 0] = 0.5  # 2 px at 32 px wide = 0.5 px at the flow's 8 px
    sweep = StabilitySweep()
    sweep.add_video(maps, torch.ones_like(maps, dtype=torch.bool), to_next)
    assert sweep.stability()[50] == pytest.approx(1.0)
    # the same masks without motion compensation overlap far less
    still = StabilitySweep()
    still.add_video(maps, torch.ones_like(maps, dtype=torch.bool), torch.zeros(6, 2, 6, 8))
    assert still.stability()[50] < 0.6


def test_stability_of_random_masks_is_low():
    gen = torch.Generator().manual_seed(0)
    maps = (torch.rand(8, 32, 32, generator=gen) > 0.5).float()
    sweep = StabilitySweep()
    sweep.add_video(maps, torch.ones_like(maps, dtype=torch.bool), torch.zeros(8, 2, 8, 8))
    assert sweep.stability()[50] < 0.4  # ~1/3 for independent halves


def test_stability_ignores_background_and_pixels_leaving_the_frame():
    maps = torch.ones(2, 4, 4)
    fg = torch.zeros(2, 4, 4, dtype=torch.bool)
    fg[:, :, :2] = True  # left half is foreground in both frames
    to_next = torch.zeros(2, 2, 4, 4)
    to_next[:, 0] = 2.0  # the right half samples outside the next frame: excluded
    sweep = StabilitySweep()
    sweep.add_video(maps, fg, to_next)
    # left half of frame 0 (fg) meets columns 2-3 of frame 1 (background): union 8, intersection 0
    assert sweep.union[99] == 8 and sweep.inter.sum() == 0


def test_predict_mask_matches_threshold_bins():
    scores = np.array([[0.49, 0.5, 0.51, 0.9]], np.float32)
    fg = np.array([[True, True, True, False]])
    assert predict_mask(scores, fg, 0.5).tolist() == [[False, True, True, False]]
