"""Faithfulness of a run's maps to the classifier they explain: pytorch-grad-cam's ROAD, run by the library.

ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods", ICML 2022)
removes the pixels a map ranks highest (*most relevant first*, MoRF) or lowest (*least relevant first*,
LeRF), fills them by noisy linear imputation from their neighbours (so the filled image carries no
shape of the removed region) and measures how the classifier's confidence in the explained class
changes. Everything is the library's (:mod:`pytorch_grad_cam.metrics.road`): the imputer, the
removal at each percentile, the averaging over the percentiles 10, 20, …, 90 (its defaults) and the
combined score (LeRF − MoRF) / 2 of its ``ROADCombined``; wsbench only chooses what goes in:

- **frames**: the fixed sample every run keeps for the duplicate-column check (the middle frame of
  each of the first :data:`~wsbench.evaluate.SAMPLE_VIDEOS` test *before* videos by key), at the
  training resolution, as the classifier sees them (background removed when the run trains so);
- **maps**: the run's scored maps of the *before* class, the ones the evaluator scores and keeps in
  the sample (:meth:`wsbench.maps.MapProducer.video`: multi-scale/flip and, for a method that fuses
  neighbouring frames at inference such as Frame-to-Frame, the fusion), upsampled bilinearly to the
  training resolution;
- **model**: the classifier the method explains (CAM: its CAM network; GradCAM: the standard
  classifier it trains), its class maps pooled to logits as in training, and the sigmoid of the
  *before* logit as the confidence (the classifiers are trained with a multi-label soft margin, one
  sigmoid per class), so every score is a change of a probability, comparable across classifiers.

A score is the confidence after imputation minus before, averaged over the percentiles and frames:
MoRF lower is better (removing what the map calls relevant should hurt), LeRF higher is better
(removing what it calls irrelevant should not), combined higher is better. The imputation noise
comes from a fixed seed on a forked RNG, so a run's scores are reproducible and its training RNG
untouched.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.cache import PreparedData
from ..data.torch_data import FOREGROUND, ORIGINAL
from ..maps import MapProducer, network_input, upsample
from ..model import CamNet

__all__ = ["ROAD_SEED", "ROAD_TARGET", "ProbabilityOf", "road_scores", "sample_frames", "sample_maps"]

#: the seed of the imputation noise (the same for every run)
ROAD_SEED = 0
#: the class whose confidence is perturbed: the one whose maps are the illegal objects
ROAD_TARGET = "before"


class ProbabilityOf(nn.Module):
    """A :class:`~wsbench.model.CamNet` as ROAD asks for it: normalised images → per-class probabilities.

    Args:
        model: the classifier; its class maps are pooled to logits (:meth:`CamNet.pool`, as in
            training) and each logit goes through a sigmoid (its multi-label soft-margin loss).
    """

    def __init__(self, model: CamNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) probabilities of normalised frames (B, 3, H, W)."""
        return torch.sigmoid(self.model.pool(self.model(x)).float())


def sample_frames(data: PreparedData) -> list[tuple[str, int, int]]:
    """The fixed sample of test frames: the middle frame of each of the first ``SAMPLE_VIDEOS`` test before videos.

    The same frames (and names) as the sample of maps the evaluator keeps
    (:func:`wsbench.evaluate.evaluate_maps`, ``result.json`` → ``sanity.sample_frames``).

    Args:
        data: the run's prepared data.

    Returns:
        ``[(name, video position in data.index.videos, frame index in the video)]``, names
        ``<video key>#<frame index>``.
    """
    from . import SAMPLE_VIDEOS

    positions = {v.key: pos for pos, v in enumerate(data.index.videos) if v.label == "before" and v.split == "test"}
    chosen = []
    for key in sorted(positions)[:SAMPLE_VIDEOS]:
        length = data.slices[positions[key]].length
        if length:
            chosen.append((f"{key}#{length // 2}", positions[key], length // 2))
    return chosen


def sample_maps(producer: MapProducer, data: PreparedData, chosen: list[tuple[str, int, int]]) -> torch.Tensor:
    """The run's scored maps of the sampled frames: one batch without fusion, else each frame from its fused video.

    Args:
        producer: the run's maps.
        data: its prepared data.
        chosen: :func:`sample_frames`.

    Returns:
        (N, h', w') maps on the CPU at the method's resolution, equal to :meth:`MapProducer.video`'s.
    """
    if producer.fusion is None or producer.fusion.neighbours <= 0:  # per-frame maps: only the sampled frames
        rows = [data.slices[pos].start + index for _, pos, index in chosen]
        return producer.batch(np.asarray(data.frames[rows]), np.asarray(data.fg[rows]))
    flows = producer.fusion_flows(data)
    return torch.stack([producer.video(data, pos, flows)[index] for _, pos, index in chosen])


def road_scores(producer: MapProducer, data: PreparedData, seed: int = ROAD_SEED) -> dict[str, Any] | None:
    """ROAD MoRF, LeRF and combined scores of a run's maps on the fixed sample (see the module docstring).

    The classifier's mode, its parameters' ``requires_grad`` and ``.grad`` are restored afterwards
    (GradCAM-family maps run backward passes), and the global torch RNG is left as it was.

    Args:
        producer: the run's maps; its model must be a :class:`~wsbench.model.CamNet` with a *before* class.
        data: the run's prepared data.
        seed: seed of the imputation noise.

    Returns:
        ``{"morf", "lerf", "combined"}`` (means over the sample, each a change of the *before*
        probability; ``None`` where a value is not finite), their per-frame values under
        ``per_frame``, ``frames``, ``percentiles``, ``target``, ``seed`` and ``seconds``; ``None``
        when the test split has no before frame.
    """
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = producer.model
    if not isinstance(model, CamNet):
        raise TypeError(f"ROAD needs a CamNet classifier, not {type(model).__name__}")
    chosen = sample_frames(data)
    if not chosen:
        return None
    started = time.perf_counter()
    rows = [data.slices[pos].start + index for _, pos, index in chosen]
    frames, fg = np.asarray(data.frames[rows]), np.asarray(data.fg[rows])
    modes = [m.training for m in model.modules()]  # per module: a frozen BatchNorm may be in eval mode alone
    grads = [(p.requires_grad, p.grad) for p in model.parameters()]
    try:
        model.eval()
        maps = sample_maps(producer, data, chosen)
        size = (frames.shape[2], frames.shape[1])
        cams = np.stack([upsample(m, size) for m in maps]).astype(np.float32)
        x = network_input(model, frames, fg, FOREGROUND if producer.background_removal else ORIGINAL,
                          producer.device).contiguous()
        targets = [ClassifierOutputTarget(model.class_index(ROAD_TARGET))] * len(rows)
        road = ROADCombined()  # the library's default percentiles; its __call__ is (lerf - morf) / 2
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # the library's imputer hands torch tensors to numpy (np.argwhere), which NumPy 2 warns about on
            # every frame; the result is unchanged, and a run's output should not fill with it
            warnings.filterwarnings("ignore", message="__array_wrap__ must accept context", category=DeprecationWarning)
            torch.manual_seed(seed)
            wrapped = ProbabilityOf(model)
            lerf = road.lerf_averager(x, cams, targets, wrapped)  # in ROADCombined's order: the same noise
            morf = road.morf_averager(x, cams, targets, wrapped)
    finally:
        for module, mode in zip(model.modules(), modes, strict=True):
            module.train(mode)
        for p, (flag, grad) in zip(model.parameters(), grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
    combined = (lerf - morf) / 2
    return {"morf": _mean(morf), "lerf": _mean(lerf), "combined": _mean(combined),
            "per_frame": {"morf": _rounded(morf), "lerf": _rounded(lerf), "combined": _rounded(combined)},
            "frames": [name for name, _, _ in chosen], "percentiles": [int(p) for p in road.percentiles],
            "target": ROAD_TARGET, "seed": seed, "seconds": round(time.perf_counter() - started, 3)}


def _mean(values: np.ndarray) -> float | None:
    """The mean, ``None`` if a value is not finite (a singular imputation system), so result.json stays valid."""
    mean = float(np.mean(values))
    return round(mean, 6) if np.isfinite(mean) else None


def _rounded(values: np.ndarray) -> list[float | None]:
    return [round(float(v), 6) if np.isfinite(v) else None for v in np.ravel(values)]
