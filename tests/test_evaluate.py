"""Evaluator maths: IoU against a hand count, the sweep, baselines and temporal fusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsbench.evaluate import IoUSweep
from wsbench.maps import fuse_maps
from wsbench.methods import Fusion


def test_iou_hand_count():
    scores = np.array([[0.9, 0.9, 0.2, 0.0],
                       [0.6, 0.1, 0.7, 0.0]], np.float32)
    fg = np.array([[1, 1, 1, 0],
                   [1, 1, 1, 1]], bool)
    gt = np.array([[1, 0, 0, 1],
                   [1, 1, 0, 0]], bool)
    s = IoUSweep()
    s.add(scores, fg, gt)
    iou, miou = s.iou(), s.miou()
    # threshold 0.5: predicted = fg & score >= .5 -> (0,0),(0,1),(1,0),(1,2)
    # TP = (0,0),(1,0) = 2; FP = (0,1),(1,2) = 2; FN = (0,3) outside fg + (1,1) low score = 2
    assert iou[50] == pytest.approx(2 / 6)
    # rest class: TN = 8 - 2 - 2 - 2 = 2 -> IoU 2 / 6
    assert miou[50] == pytest.approx(0.5 * (2 / 6 + 2 / 6))
    # threshold 0 is all-foreground: TP 3 (gt & fg), FP 4, FN 1
    assert iou[0] == pytest.approx(3 / 8)
    assert s.empty_mask()[0] == 0.0


def test_accumulates_over_frames_not_averaged():
    s = IoUSweep()
    big = np.ones((10, 10), bool)
    s.add(np.ones((10, 10), np.float32), big, big)  # perfect on a big frame
    small_gt = np.zeros((10, 10), bool)
    small_gt[0, 0] = True
    s.add(np.zeros((10, 10), np.float32), big, small_gt)  # misses one pixel on another
    assert s.iou()[50] == pytest.approx(100 / 101)  # per-frame mean would give 0.5


def test_fusion_max_brings_moving_blob_back():
    t, h, w = 3, 5, 7
    maps = torch.zeros(t, h, w)
    for i in range(t):
        maps[i, 2, 2 + i] = 1.0  # moves right by 1 px per frame
    to_next = torch.zeros(t, 2, h, w)
    to_next[:, 0] = 1.0
    to_prev = -to_next
    fused = fuse_maps(maps, to_next, to_prev, Fusion(1, "max"))
    assert torch.equal(fused, maps)  # compensated neighbours agree with each frame
    # frame 1 with mean: itself + both warped neighbours, all equal -> unchanged
    assert torch.allclose(fuse_maps(maps, to_next, to_prev, Fusion(2, "mean"))[1], maps[1])


def test_fusion_with_warp_needs_both_flows():
    maps = torch.zeros(3, 1, 5)
    with pytest.raises(ValueError, match="needs the flows"):
        fuse_maps(maps, torch.zeros(3, 2, 1, 5), None, Fusion(1, "max"))


def test_fusion_without_compensation_spreads():
    maps = torch.zeros(3, 1, 5)
    maps[0, 0, 0] = maps[1, 0, 2] = maps[2, 0, 4] = 1.0
    zero = torch.zeros(3, 2, 1, 5)
    fused = fuse_maps(maps, zero, zero, Fusion(1, "max"))
    assert fused[1].tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0]]


def test_foreground_recall_hand_count():
    s = IoUSweep()
    fg = np.array([[1, 1, 0, 0]], bool)
    gt = np.array([[1, 0, 1, 1]], bool)
    s.add(np.zeros((1, 4), np.float32), fg, gt)
    assert s.foreground_recall() == pytest.approx(1 / 3)  # one of three GT pixels lies in the foreground
    assert np.isnan(IoUSweep().foreground_recall())
