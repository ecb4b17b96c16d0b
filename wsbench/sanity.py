"""The model-parameter randomisation test (Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018).

Maps that explain a classifier must change when the classifier's weights are destroyed. For a
finished run, :func:`randomisation_test` re-initialises a copy of its classifier in cascade from the
top (the head, then the backbone's stages from the last to the first, then whatever is left), and
after each step computes the run's maps of its fixed sample of test frames (the frames of
``sample_maps``, :func:`wsbench.evaluate.evaluate_maps`) with the same method, input, multi-scale/flip
inference and fusion (a :class:`~wsbench.maps.MapProducer` around the copy), and the Spearman rank
correlation between the trained and the randomised maps over the sampled *foreground* pixels at
training resolution (the pixels every score is computed on; background pixels are zero in both maps
of background-removed frames and would count as agreement). The cascade is drawn :data:`DRAWS` times
and each step reports the mean of the *absolute* correlation over the draws (as in the paper: a map
that is only inverted is still the same map). One draw is not enough: on the built-in belt the
correlation after the whole cascade ranged from 0.00 to 0.67 over 8 draws for the same run, and the
draw, not the run, decided whether it passed (the three TC-CAM seeds gave 0.54, 0.67 and 0.55 on one
draw and 0.21, 0.23 and 0.19 on average). The method fails when that mean after the whole cascade is
above :data:`BOUND`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .data.cache import PreparedData
from .maps import MapProducer, upsample
from .maps.fusion import fuse_maps
from .model import CamNet

__all__ = ["BOUND", "DRAWS", "cascade", "randomisation_test", "reinitialise", "spearman"]

#: a method whose maps still correlate above this (in absolute value) with the trained model's after the whole
#: cascade fails
BOUND = 0.5
#: independent re-initialisations of the cascade whose absolute correlations are averaged
DRAWS = 8
RULE = (f"fails when the absolute Spearman correlation of the trained and randomised maps over the sampled "
        f"foreground pixels, averaged over {DRAWS} independent re-initialisations, is above {BOUND} after the "
        "whole classifier is re-initialised")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally long samples: the Pearson correlation of their ranks, ties
    given their average rank.

    Args:
        a, b: the samples (flattened).

    Returns:
        The correlation; for a constant sample (no ranks to correlate) 1.0 if both are equal, else 0.0.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.std() < 1e-6 or b.std() < 1e-6:
        return 1.0 if np.allclose(a, b, atol=1e-3) else 0.0
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, tied values sharing the mean of their ranks."""
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # the rank of the last of each group of equal values
    return (ends - (counts - 1) / 2.0)[inverse]


def cascade(model: CamNet) -> list[tuple[str, list[nn.Module]]]:
    """The steps of the cascade from the top: ``head``, the backbone's stages from the last (the modules timm's
    ``feature_info`` names), then ``rest``: every module not reset yet (the stem).

    Args:
        model: a :class:`~wsbench.model.CamNet` (``head`` and a timm ``backbone``).

    Returns:
        ``[(step name, modules it re-initialises), ...]``; steps without parameters are left out.
    """
    backbone = model.backbone
    names = [info["module"] for info in getattr(backbone, "feature_info", []) or []]
    steps: list[tuple[str, list[nn.Module]]] = [("head", [cast(nn.Module, model.head)])]
    for name in reversed(names):
        module = backbone.get_submodule(name)
        if any(True for _ in module.parameters()):
            steps.append((name, [module]))
    done = {id(m) for _, modules in steps for top in modules for m in top.modules()}
    rest = [m for m in model.modules() if id(m) not in done and any(True for _ in m.parameters(recurse=False))]
    if rest:
        steps.append(("rest", rest))
    return steps


def reinitialise(modules: list[nn.Module]) -> None:
    """Draw the weights of ``modules`` (and their submodules) anew from the global RNG: each layer's own
    ``reset_parameters`` (batch norms also forget their running statistics); a parameter of a module without
    one is drawn from N(0, 0.02²), timm's default.

    Args:
        modules: the modules to re-initialise in place.
    """
    for top in modules:
        for module in top.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
            elif any(True for _ in module.parameters(recurse=False)):
                with torch.no_grad():
                    for p in module.parameters(recurse=False):
                        nn.init.normal_(p, std=0.02)


def _sample_maps(producer: MapProducer, data: PreparedData, frames: list[str]) -> list[np.ndarray]:
    """The producer's maps of the sampled frames (``<video key>#<frame index>``) at training resolution, each
    computed as the evaluator does: with its fused neighbours when the producer fuses."""
    positions = {v.key: pos for pos, v in enumerate(data.index.videos)}
    fusion = producer.fusion
    n = fusion.neighbours if fusion is not None else 0
    flows = producer.fusion_flows(data) if n > 0 else None
    h, w = data.frames.shape[1:3]
    out = []
    for name in frames:
        key, index = name.rsplit("#", 1)
        s, i = data.slices[positions[key]], int(index)
        lo, hi = s.start + max(0, i - n), s.start + min(s.length, i + n + 1)  # the frame and its neighbours
        maps = producer.batch(data.frames[lo:hi], data.fg[lo:hi])
        if fusion is not None and n > 0:
            clip = torch.from_numpy(np.asarray(flows[lo:hi], np.float32)) if flows is not None else None
            maps = fuse_maps(maps, None if clip is None else clip[:, 0], None if clip is None else clip[:, 1],
                             fusion)
        out.append(upsample(maps[s.start + i - lo].float(), (w, h)))
    return out


def randomisation_test(producer: MapProducer, data: PreparedData, frames: list[str], seed: int,
                       draws: int = DRAWS) -> dict[str, Any]:
    """The cascading model-parameter randomisation test of a run (see the module docstring).

    Args:
        producer: the run's maps (its trained classifier is not changed: copies are randomised).
        data: its prepared data.
        frames: the sampled test frames, ``<video key>#<frame index>`` (``result.json`` → ``sanity.sample_frames``).
        seed: seeds the re-initialisations (the run's seed).
        draws: how many times the whole cascade is drawn (at least 1).

    Returns:
        ``{"randomisation": [{"reset": step, "spearman": mean |r| over the draws, "draws": [r, ...]}, ...],
        "randomisation_draws", "randomisation_pixels": "foreground" or "frame" (when the sample has no
        foreground), "randomisation_bound": BOUND, "randomisation_rule", "randomisation_passed": bool,
        "randomisation_seconds"}`` for ``result.json`` → ``sanity``.
    """
    if draws < 1:
        raise ValueError(f"the randomisation test needs at least one draw, got {draws}")
    started = time.perf_counter()
    trained = _sample_maps(producer, data, frames)
    positions = {v.key: pos for pos, v in enumerate(data.index.videos)}
    fg = [np.asarray(data.fg[data.slices[positions[f.rsplit('#', 1)[0]]].start + int(f.rsplit('#', 1)[1])]) > 0
          for f in frames]
    where = "foreground" if sum(int(m.sum()) for m in fg) >= 2 else "frame"
    pick = (lambda maps: np.concatenate([m[k] for m, k in zip(maps, fg, strict=True)])) if where == "foreground" \
        else (lambda maps: np.concatenate([m.ravel() for m in maps]))
    if not isinstance(producer.model, CamNet):
        raise TypeError(f"the randomisation test re-initialises a CamNet, not a {type(producer.model).__name__}")
    per_step: dict[str, list[float]] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(draws):
            model = copy.deepcopy(producer.model)
            randomised = dataclasses.replace(producer, model=model)
            for name, modules in cascade(model):
                reinitialise(modules)
                per_step.setdefault(name, []).append(
                    round(spearman(pick(trained), pick(_sample_maps(randomised, data, frames))), 6))
    steps: list[dict[str, Any]] = [{"reset": name, "spearman": round(float(np.mean(np.abs(rs))), 6), "draws": rs}
             for name, rs in per_step.items()]
    return {"randomisation": steps, "randomisation_draws": draws, "randomisation_pixels": where,
            "randomisation_bound": BOUND, "randomisation_rule": RULE,
            "randomisation_passed": bool(steps[-1]["spearman"] <= BOUND),
            "randomisation_seconds": round(time.perf_counter() - started, 3)}
