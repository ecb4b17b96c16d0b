"""Fidelity to the paper and the authors' code (issue 24): clip coverage, multi-scale combination,
the two IoU forms, paired intervals, the official ramp and the tuning sweep."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wsbench.data.cache import VideoSlice
from wsbench.data.torch_data import ClipDataset, epoch_offset


def _fake_data(lengths: list[int], split: str = "train") -> SimpleNamespace:
    """Just what :class:`ClipDataset` reads to place clips: videos (all ``before``) and their slices."""
    videos, slices, start = [], [], 0
    for i, n in enumerate(lengths):
        videos.append(SimpleNamespace(split=split, label="before", key=f"before/v{i}"))
        slices.append(VideoSlice(start, n, (8, 8)))
        start += n
    return SimpleNamespace(index=SimpleNamespace(videos=videos, name="fake"), slices=slices)


def _centres_and_links(clips: ClipDataset) -> tuple[Counter, Counter]:
    """Temporal centres (frame → times) and linked neighbour pairs of the clips of one epoch,
    counted from the clips as the temporal loss uses them: positions 1..T-2 are centres, each
    linked to the frame before and after it."""
    centres: Counter = Counter()
    links: Counter = Counter()
    for t0, _, _ in clips.items:
        for c in range(t0 + 1, t0 + clips.clip_len - 1):
            centres[c] += 1
            links[(c - 1, c)] += 1
            links[(c, c + 1)] += 1
    return centres, links


def test_clip_epochs_make_every_frame_a_centre_hand_count():
    """One 12-frame video, clips of 4: two clips per epoch; over the 4 offsets frames 2..8 are
    centres twice each (hand count below). Fixed starts (0, 4, 8) made 0, 3, 4, 7, 8, 11 never centres."""
    clips = ClipDataset(_fake_data([12]), "train", np.zeros((12, 2, 2, 1, 1), np.float32), clip_len=4,
                        background_removal=False)
    per_offset = {}
    for offset in range(4):
        clips.set_offset(offset)
        per_offset[offset] = sorted(t0 for t0, _, _ in clips.items)
    assert per_offset == {0: [0, 4], 1: [1, 5], 2: [2, 6], 3: [3, 7]}
    total: Counter = Counter()
    for offset in range(4):
        clips.set_offset(offset)
        total += _centres_and_links(clips)[0]
    # centres per offset: 0 → 1,2,5,6; 1 → 2,3,6,7; 2 → 3,4,7,8; 3 → 4,5,8,9
    assert dict(total) == {1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2, 8: 2, 9: 1}
    with pytest.raises(ValueError, match="range\\(4\\)"):
        clips.set_offset(4)


def test_clip_cycle_counts_on_belt_sized_videos():
    """48 videos of 32 frames (the belt's train split), clips of 4 at the trainer's offsets: the same
    number of clips each epoch, and over 4 epochs every frame 2..28 of each video a centre exactly
    twice and every neighbour pair 1..28 linked (fixed starts: 768 of 1536 centres, 1152 of 1488 pairs)."""
    n, videos = 32, 48
    clips = ClipDataset(_fake_data([n] * videos), "train", np.zeros((n * videos, 2, 2, 1, 1), np.float32),
                        clip_len=4, background_removal=False)
    offsets = [epoch_offset(seed=5, epoch=e, period=clips.stride) for e in range(8)]
    assert sorted(offsets[:4]) == [0, 1, 2, 3] and sorted(offsets[4:]) == [0, 1, 2, 3]
    sizes, centres, links = set(), Counter(), Counter()
    for offset in offsets[:4]:
        clips.set_offset(offset)
        sizes.add(len(clips))
        c, li = _centres_and_links(clips)
        centres += c
        links += li
    assert sizes == {7 * videos}
    for v in range(videos):
        base = v * n
        assert all(centres[base + f] == 2 for f in range(2, 29))
        assert all(links[(base + f, base + f + 1)] > 0 for f in range(0, 29))
    assert len(centres) == videos * 29  # frames 1..29 of each video are centres at least once


def test_triplets_unchanged_by_offsets():
    clips = ClipDataset(_fake_data([6, 5]), "train", np.zeros((11, 2, 2, 1, 1), np.float32), clip_len=3,
                        stride=1, background_removal=False)
    assert sorted(t0 for t0, _, _ in clips.items) == [0, 1, 2, 3, 6, 7, 8]


def test_trainer_moves_clips_every_epoch_and_records_it(tiny_belt, tmp_path, monkeypatch):
    """The trainer sets each epoch's offset from (seed, epoch) and writes them to train.json."""
    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.methods import create_method
    from wsbench.recipes import named_recipe
    from wsbench.train import train_classifier

    used = []
    original = ClipDataset.set_offset

    def spy(self, offset):
        used.append(offset)
        return original(self, offset)

    monkeypatch.setattr(ClipDataset, "set_offset", spy)
    recipe = named_recipe("smoke").recipe(epochs=3)
    data = prepare(create_dataset("video-folder", root=tiny_belt), recipe.image_size, cache_dir=tmp_path / "c")
    method = create_method("tccam", clip_len=3)
    train_classifier(method, recipe, data, seed=4, folder=tmp_path / "clf", device=torch.device("cpu"),
                     workers=0, progress=False)
    expected = [epoch_offset(4, e, 3) for e in range(3)]
    assert used[1:] == expected and sorted(expected) == [0, 1, 2]  # used[0]: the constructor's offset 0
    assert json.loads((tmp_path / "clf" / "train.json").read_text())["clip_offsets"] == expected


# -- item 2: multi-scale combination ----------------------------------------------------------------
class _ScaledRandomCam:
    """A stand-in CAM method: raw maps random ≥ 0 at 1/8 of the input, their magnitude growing with
    the input size (so normalising each scale first weighs the scales differently from the raw sum)."""

    target = "before"

    def raw_maps(self, model, images):
        b, _, h, w = images.shape
        gen = torch.Generator().manual_seed(h * 1000 + w)
        return torch.rand(b, max(1, h // 8), max(1, w // 8), generator=gen) * (h / 16) ** 2

    def maps(self, model, images):
        raw = self.raw_maps(model, images)
        return raw / (raw.flatten(1).amax(1).view(-1, 1, 1) + 1e-5)


def _authors_raw_combination(method, images, scales, flip):
    """The authors' code restated: the raw maps of every scale (and mirror) enlarged to the input and
    summed, then ReLU and one division by the maximum + 1e-5."""
    h, w = images.shape[-2:]
    total = torch.zeros(images.shape[0], h, w)
    for s in scales:
        size = (max(8, round(h * s)), max(8, round(w * s)))
        x = torch.nn.functional.interpolate(images, size=size, mode="bilinear", antialias=s < 1)
        for mirrored in ([False, True] if flip else [False]):
            raw = method.raw_maps(None, x.flip(-1) if mirrored else x)
            raw = raw.flip(-1) if mirrored else raw
            total += torch.nn.functional.interpolate(raw[:, None], size=(h, w), mode="bilinear",
                                                     antialias=raw.shape[-1] > w)[:, 0]
    total = total.relu()
    return total / (total.flatten(1).amax(1).view(-1, 1, 1) + 1e-5)


def test_raw_combination_restates_the_authors_code():
    from wsbench.maps import multiscale_maps

    x = torch.rand(2, 3, 48, 64)
    scales = (0.2, 0.5, 1.0, 2.0, 4.0, 6.0)
    method = _ScaledRandomCam()
    raw = multiscale_maps(method, None, x, scales, True, combine="raw")
    expected = _authors_raw_combination(method, x, scales, True)
    assert torch.allclose(raw, expected, atol=1e-5)
    normalised = multiscale_maps(method, None, x, scales, True)  # the default: normalised, then summed
    assert (normalised - expected).abs().max() > 0.05  # the two combinations differ on these maps
    with pytest.raises(ValueError, match="--cam-combine must be one of normalised, raw"):
        multiscale_maps(method, None, x, scales, True, combine="mean")


def test_raw_combination_hand_case():
    """Two scales with 1x2 maps, raw [1, 0] and [3, 3]: raw sum [4, 3] / (4 + 1e-5) ≈ [1, 0.75] at the
    left and right edge; normalised [1, 0] + [1, 1] = [2, 1] / 2 = [1, 0.5]."""
    from wsbench.maps import multiscale_maps

    class Two:
        target = "before"

        def raw_maps(self, model, images):
            return torch.tensor([[[1.0, 0.0]]]) if images.shape[-1] == 16 else torch.tensor([[[3.0, 3.0]]])

        def maps(self, model, images):
            raw = self.raw_maps(model, images)
            return raw / raw.amax()

    x = torch.zeros(1, 3, 8, 16)
    # scale 1 → 8x16 input (map [1, 0]); scale 2 → 16x32 input (map [3, 3]); maps resized to 8x16
    raw = multiscale_maps(Two(), None, x, (1.0, 2.0), combine="raw")
    normalised = multiscale_maps(Two(), None, x, (1.0, 2.0))
    assert raw.shape == (1, 8, 16)
    assert raw[0, 0, 0].item() == pytest.approx(4 / (4 + 1e-5)) and raw[0, 0, -1].item() == pytest.approx(0.75, abs=1e-5)
    assert normalised[0, 0, 0].item() == pytest.approx(1.0) and normalised[0, 0, -1].item() == pytest.approx(0.5)


def test_cam_combine_is_recorded_and_checked(tiny_belt):
    from wsbench.errors import UserError
    from wsbench.pipeline import RunSpec, resolve
    from wsbench.runs import cam_inference

    base = dict(dataset="video-folder", data_root=str(tiny_belt), recipe_name="smoke", cam_scales="0.5,1")
    raw = resolve(RunSpec(method="cam", cam_combine="raw", **base)).config
    normalised = resolve(RunSpec(method="cam", **base)).config
    assert raw["cam_inference"] == {"scales": [0.5, 1.0], "flip": False, "combine": "raw"}
    assert "combine" not in normalised["cam_inference"] and raw["config_hash"] != normalised["config_hash"]
    assert cam_inference(raw)["cam_combine"] == "raw" and cam_inference(normalised)["cam_combine"] == "normalised"
    with pytest.raises(UserError, match="--cam-combine raw: method 'gradcam' has its own maps"):
        resolve(RunSpec(method="gradcam", cam_combine="raw", **base))


def test_authors_preset_combines_raw_maps():
    import tomllib
    from pathlib import Path

    spec = tomllib.loads((Path(__file__).parent.parent / "benchmarks" / "seruso-wsws.toml").read_text())
    assert spec["evaluation"]["cam_combine"] == "raw"
