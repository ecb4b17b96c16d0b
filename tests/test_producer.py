"""The map producer: each video's maps once per evaluation, every class's maps as if computed alone."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from wsbench.maps import CamInference, MapProducer
from wsbench.methods import Fusion, create_method

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def belt_data(tiny_belt):
    """The tiny belt prepared at 32×32, and a random (untrained) CAM network on it."""
    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.model import build_model
    from wsbench.recipes import Recipe

    recipe = Recipe(backbone="wsbench_resnet_tiny", output_stride=8, image_size=(32, 32))
    data = prepare(create_dataset("video-folder", root=tiny_belt), recipe.image_size)
    torch.manual_seed(0)
    return data, build_model(recipe, ("before", "after", "background")).eval()


def _counting(model):
    calls = [0]
    handle = model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls, handle


def _alone(producer: MapProducer, name: str) -> MapProducer:
    """The same producer for class ``name`` only."""
    method = copy.copy(producer.method)
    method.target = name
    return MapProducer(method, producer.model, producer.device, producer.background_removal, producer.fusion,
                       producer.cam, producer.flow, producer.flow_options)


def test_evaluation_runs_the_network_once_per_batch_of_each_scored_video(belt_data):
    """The authors' protocol needs every class's maps of a test video: they come from the same forward passes
    as the scored class's (the evaluator used to run the network once more per other class)."""
    from wsbench.evaluate import evaluate_maps

    data, model = belt_data
    scored = [pos for pos, v in enumerate(data.index.videos)
              if v.label == "before" and v.split in ("val", "test") and (v.has_masks or v.split == "test")]
    batches = sum(math.ceil(data.slices[pos].length / 32) for pos in scored)
    calls, handle = _counting(model)
    try:
        result = evaluate_maps(MapProducer(create_method("cam"), model, CPU), data)
    finally:
        handle.remove()
    assert result["counts"]["wsws_frames"] > 0  # the protocol that needs every class was scored
    assert calls[0] == batches


@pytest.mark.parametrize("name", ["cam", "gradcam"])
def test_every_class_from_one_pass_equals_each_class_alone(belt_data, name):
    """Multi-scale, flip and warped fusion on: each class's maps are exactly those of a producer of that class."""
    data, model = belt_data
    pos = next(i for i, v in enumerate(data.index.videos) if v.label == "before" and v.split == "test")
    producer = MapProducer(create_method(name), model, CPU, fusion=Fusion(1, "max"),
                           cam=CamInference((0.5, 1.0), flip=True))
    flows = producer.flows(data)
    calls, handle = _counting(model)
    try:
        together = producer.classes(data, pos, flows)
        shared = calls[0]
        alone = {c: _alone(producer, c).video(data, pos, flows) for c in model.classes}
    finally:
        handle.remove()
    assert list(together) == list(model.classes)
    for c in model.classes:
        assert torch.equal(together[c], alone[c]), c
    assert not torch.equal(together["before"], together["after"])
    if name == "cam":  # 2 scales × 2 mirrors per batch, shared by the three classes
        assert shared == 4 * math.ceil(data.slices[pos].length / 32)
        assert calls[0] == shared * 4  # then three producers of one class each


def test_producer_settings_are_checked_and_looked_up_once(belt_data):
    _, model = belt_data
    assert MapProducer(create_method("gradcam"), model, CPU).needs_grad is True
    assert MapProducer(create_method("cam"), model, CPU).needs_grad is False
    assert MapProducer(create_method("gradcam"), model, CPU, needs_grad=False).needs_grad is False
    with pytest.raises(ValueError, match="--cam-combine must be one of normalised, raw, not 'mean'"):
        CamInference(combine="mean")
    with pytest.raises(ValueError, match="--cam-scales"):
        CamInference(scales=(0.0,))
    assert CamInference.of_config({}) == CamInference()
    assert CamInference.of_config({"cam_inference": {"scales": [0.5, 1], "flip": True, "combine": "raw"}}) == \
        CamInference((0.5, 1.0), True, "raw")


def test_maps_reach_frame_size_through_one_bilinear_upsample():
    """:func:`upsample` against a restatement of bilinear interpolation with pixel-centre alignment."""
    from wsbench.maps import upsample

    rng = np.random.default_rng(0)
    small = rng.random((3, 4)).astype(np.float32)
    out = upsample(torch.from_numpy(small), (8, 6))  # (width, height)
    assert out.shape == (6, 8)
    ys, xs = (np.arange(6) + 0.5) * 3 / 6 - 0.5, (np.arange(8) + 0.5) * 4 / 8 - 0.5
    y0, x0 = np.clip(np.floor(ys), 0, 2).astype(int), np.clip(np.floor(xs), 0, 3).astype(int)
    y1, x1 = np.minimum(y0 + 1, 2), np.minimum(x0 + 1, 3)
    wy, wx = np.clip(ys - y0, 0, 1)[:, None], np.clip(xs - x0, 0, 1)[None, :]
    ref = ((1 - wy) * ((1 - wx) * small[y0][:, x0] + wx * small[y0][:, x1])
           + wy * ((1 - wx) * small[y1][:, x0] + wx * small[y1][:, x1]))
    assert np.allclose(out, ref, atol=1e-3)
