"""Built-in synthetic conveyor-belt data set: a fair, hard test bed for CAM segmentation.

Two cameras watch a ribbed conveyor belt. The *before* camera sees a cluttered stream of
plastic objects; between the cameras an operator removes the "illegal" ones, so the *after*
camera sees the same stream (same legal objects, same belt motion) without them, except rare
leftovers the operator missed. Only the video-level label is meant for training.

Scene: the belt moves ``belt_speed`` px/frame along +x (a per-video constant); objects ride it
with a small drift and spin, enter on the left and leave on the right; each camera adds its own
sub-pixel jitter, light colour, exposure, blur and sensor noise. Legal objects are translucent
clear / light-blue PET (some with a coloured label band as a distractor); illegal objects are
opaque, coloured and printed. Both kinds share shape and size distributions and both differ
clearly from the belt in grayscale, so a median-background foreground contains legal objects as
well as illegal ones (the "all foreground" mask is a weak baseline, not a solution).

Harder variants (``BeltConfig.shared_palette``, ``belt_gain``, and ``object_size``; ``wsbench data
synth --shared-palette --belt-gain G --object-size LO,HI``): legal objects tinted from the illegal
objects' palette, a darker belt, smaller objects. At their defaults they leave the built-in belt's
bytes and hash unchanged.

Ground-truth rule (occlusion): an object *covers* a pixel where its geometric coverage is at
least 0.5. Walking the objects from bottom to top, an illegal object marks the pixels it covers
illegal; a legal object clears the mark where it covers the pixel with an alpha of at least 0.5
(its label band, rim or glint, or a body more opaque than 0.5), while thinner see-through PET
leaves the illegal object below visible. Legal masks (for tests and statistics, never written)
are legal-covered pixels that are not illegal.

Layout written by :func:`generate_belt` ("video-folder")::

    ROOT/before/<vid>/frame_0000.png        RGB frames, temporal order = natural sort
    ROOT/after/<vid>/frame_0000.png
    ROOT/masks/before/<vid>/frame_0000.png  uint8, 255 = visible illegal pixel
    ROOT/splits.json                        {"train": ["before/v000", "after/v000", ...], ...}
    ROOT/belt.json                          generator version, config and per-video statistics

The data set is built in ``ROOT.tmp-<random>`` and renamed to ``ROOT`` when complete, so a
folder named ``ROOT`` is always complete. Same config gives byte-identical files.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from wsbench.errors import UserError
from wsbench.files import config_hash, disk_errors

__all__ = ["GENERATOR_VERSION", "BeltConfig", "RenderedVideo", "generate_belt", "generator_tag", "render_pair"]

GENERATOR_VERSION = 2
_MARGIN = 4  # canvas margin (px) around the frame, room for camera jitter
_INVERSE = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # matrix maps output to input pixels

# Opaque print colours (RGB) of illegal objects and label bands; grayscale 120..235, i.e. as
# far from the belt (grey about 67 before, 84 after) as translucent clear PET is.
_PALETTE = np.array(
    [[235, 75, 60], [240, 135, 40], [230, 205, 50], [70, 185, 90], [80, 140, 235],
     [215, 80, 175], [50, 180, 175], [240, 140, 175], [160, 110, 220], [235, 235, 225]],
    np.float32,
)
# Print colours (RGB) whose grey level (0.299 R + 0.587 G + 0.114 B, 64..70) matches the before
# belt's (about 67) in other hues: blue, red, green, purple, teal, brown (BeltConfig.grey_matched_prob).
_GREY_MATCHED = np.array(
    [[40, 50, 210], [160, 25, 35], [20, 100, 30], [110, 20, 190], [10, 85, 120], [120, 55, 10]],
    np.float32,
)
_PET_TINTS = np.array([[224, 229, 231], [172, 208, 236]], np.float32)  # clear, light blue
# Belt base colour (RGB) of each camera's belt section, before the light's gain; the after
# camera's light colour is BeltConfig.after_light.
_CAMERAS = {
    "before": {"belt": (66, 67, 70)},
    "after": {"belt": (40, 98, 90)},
}


@dataclasses.dataclass(frozen=True)
class BeltConfig:
    """Everything that determines a synthetic belt data set (same config -> same bytes).

    Attributes:
        train_videos: Videos per class (before and after each) in the train split.
        val_videos: Videos per class in the validation split.
        test_videos: Videos per class in the test split.
        frames: Frames per video.
        size: Frame size ``(width, height)`` in pixels.
        seed: Seed of every random choice.
        belt_speed: Range of the per-video belt speed (px/frame, along +x).
        objects_visible: Range of the per-video mean number of objects in view.
        object_size: Range of the object extent (px); the same for legal and illegal objects.
        illegal_fraction: Range of the per-video fraction of illegal objects (before camera).
        leftover_prob: Probability that the operator misses an illegal object.
        label_prob: Probability that a legal object carries a coloured label band.
        legal_opacity: Range of the opacity of translucent legal objects.
        drift: Std of each object's velocity relative to the belt (px/frame).
        spin: Std of each object's angular velocity (degrees/frame).
        jitter: Std of the per-frame camera shift (px), clipped to twice this value.
        noise: Std of the Gaussian sensor noise (grey levels).
        blur: Sigma of the Gaussian lens blur (px); 0 disables it.
        after_light: RGB gain of the after camera's light relative to the before camera's. It
            tints objects as well as the belt, so a strong cast lets a classifier tell the
            cameras apart from any object, legal or not; the default is a mild warm cast.
        grey_matched_prob: Probability that an illegal object is printed in colours of the
            belt's grey level and another hue (the paper's grey-level background rule loses it).
        grey_stripes_prob: Probability that an illegal object's print has 2-px rows of belt grey
            every 4-5 px (a grey-level threshold cuts it into strips that a 3-px opening erases).
        shared_palette: Harder variant: translucent legal objects take their tint from the
            illegal objects' print palette instead of clear / light-blue PET, so colour alone
            no longer tells the classes apart (opacity and print still do).
        belt_gain: Harder variant: brightness gain of both cameras' belt (below 1: a darker belt,
            hence less contrast with dark prints and more with translucent PET).
        The four variant fields leave the belt, its random stream and its name unchanged at their
        defaults.
    """

    train_videos: int = 24
    val_videos: int = 16
    # 96, not 24: inference is cheap next to training, and a paired interval over 24 test videos was
    # about ±3.5 IoU points over 3 seeds against ±1.8 over 96 (benchmarks/test_split_size.py, README)
    test_videos: int = 96
    frames: int = 32
    size: tuple[int, int] = (128, 128)
    seed: int = 0
    belt_speed: tuple[float, float] = (3.0, 5.0)
    objects_visible: tuple[int, int] = (11, 15)
    object_size: tuple[float, float] = (16.0, 40.0)
    illegal_fraction: tuple[float, float] = (0.18, 0.30)
    leftover_prob: float = 0.05
    label_prob: float = 0.2
    legal_opacity: tuple[float, float] = (0.1, 0.6)
    drift: float = 0.25
    spin: float = 1.5
    jitter: float = 0.4
    noise: float = 2.5
    blur: float = 0.4
    after_light: tuple[float, float, float] = (1.04, 1.0, 0.96)
    grey_matched_prob: float = 0.0
    grey_stripes_prob: float = 0.0
    shared_palette: bool = False
    belt_gain: float = 1.0

    #: fields left out of :meth:`to_dict` at their default, so configs made before they existed keep
    #: their manifest and hash (and the data sets already generated from them stay valid)
    _UNLISTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"grey_matched_prob": 0.0, "grey_stripes_prob": 0.0,
                                                      "shared_palette": False, "belt_gain": 1.0}

    def __post_init__(self) -> None:
        if not isinstance(self.after_light, (tuple, list)) or len(self.after_light) != 3 or min(self.after_light) <= 0:
            raise UserError(f"belt config: after_light must be three positive gains, got {self.after_light!r}")
        object.__setattr__(self, "after_light", tuple(float(g) for g in self.after_light))
        for name in ("size", "belt_speed", "objects_visible", "object_size",
                     "illegal_fraction", "legal_opacity"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise UserError(f"belt config: {name} must be a pair, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if min(self.train_videos, self.val_videos, self.test_videos) < 0 or self.n_videos < 1:
            raise UserError("belt config: video counts must be >= 0 with at least one video")
        if self.frames < 2 or min(self.size) < 16:
            raise UserError("belt config: need frames >= 2 and a size of at least 16x16")
        for name in ("belt_speed", "objects_visible", "object_size", "illegal_fraction",
                     "legal_opacity"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise UserError(f"belt config: {name} must be 0 <= low <= high, got {lo}, {hi}")
        if not isinstance(self.shared_palette, bool):
            raise UserError(f"belt config: shared_palette must be true or false, got {self.shared_palette!r}")
        if not (isinstance(self.belt_gain, (int, float)) and 0 < self.belt_gain <= 3):
            raise UserError(f"belt config: belt_gain must be a number in (0, 3], got {self.belt_gain!r}")
        if not (0 <= self.leftover_prob <= 1 and 0 <= self.label_prob <= 1
                and 0 <= self.grey_matched_prob <= 1 and 0 <= self.grey_stripes_prob <= 1
                and self.illegal_fraction[1] <= 1 and self.legal_opacity[1] <= 1):
            raise UserError("belt config: probabilities and fractions must lie in [0, 1]")

    @property
    def n_videos(self) -> int:
        """Videos per class over all splits."""
        return self.train_videos + self.val_videos + self.test_videos

    def scaled(self, videos: int | None = None, frames: int | None = None, size: tuple[int, int] | None = None,
               seed: int | None = None, test_videos: int | None = None) -> BeltConfig:
        """This config with other video counts, frames per video, frame size or seed.

        Args:
            videos: train videos per class; the validation and test counts keep this config's
                proportions to it (at least one each). ``None`` keeps all three.
            test_videos: test videos per class, whatever ``videos`` is (``None``: as above). The
                videos of the other splits do not change with it: video *i* is rendered from
                ``(seed, i)`` alone and the test videos come last.
            frames: frames per video (``None``: unchanged).
            size: frame size ``(width, height)`` (``None``: unchanged).
            seed: generator seed (``None``: unchanged).

        Returns:
            The new config (validated like any other).
        """
        changes: dict[str, Any] = {}
        if videos is not None:
            if self.train_videos < 1:
                raise UserError("belt config: cannot scale the video counts of a config without train videos")
            changes.update(train_videos=videos,
                           val_videos=max(1, round(videos * self.val_videos / self.train_videos)),
                           test_videos=max(1, round(videos * self.test_videos / self.train_videos)))
        if test_videos is not None:
            changes["test_videos"] = test_videos
        if frames is not None:
            changes["frames"] = frames
        if size is not None:
            changes["size"] = size
        if seed is not None:
            changes["seed"] = seed
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-compatible dict (pairs become lists).

        Returns:
            A dict with one entry per field, except the harder variants' fields at their defaults.
        """
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        return {k: v for k, v in data.items()
                if not (k in self._UNLISTED_AT_DEFAULT and v == self._UNLISTED_AT_DEFAULT[k])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BeltConfig:
        """Build a config from :meth:`to_dict` output (unknown keys are an error).

        Args:
            data: Field names to values; missing fields take their defaults.

        Returns:
            The config.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"belt config: unknown option(s) {', '.join(unknown)}")
        return cls(**data)


@dataclasses.dataclass
class RenderedVideo:
    """One rendered video of one camera.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        illegal: ``(T, H, W)`` bool, visible illegal pixels (the ground truth).
        legal: ``(T, H, W)`` bool, visible legal-object pixels (not written to disk).
        stats: Per-video facts (speed, object counts, illegal pixel fraction).
    """

    frames: np.ndarray
    illegal: np.ndarray
    legal: np.ndarray
    stats: dict[str, Any]


@dataclasses.dataclass
class _Object:
    """A sprite on the belt: premultiplied RGB + alpha + coverage, and its trajectory."""

    layers: np.ndarray  # (c, c, 5): premultiplied RGB (0..255), alpha, coverage (0..1)
    illegal: bool
    x0: float
    y0: float
    vx: float
    vy: float
    angle: float
    spin: float
    removed: bool = False


# -- sprites ----------------------------------------------------------------------------------
def _shape(rng: np.random.Generator, size: float) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a random polygon, ellipse or bottle, long axis along x."""
    c = int(math.ceil(size)) + 6
    img = np.zeros((c, c), np.uint8)
    sh, f = 4, 16.0  # sub-pixel drawing: coordinates scaled by 2**shift

    def pts(xy: np.ndarray) -> np.ndarray:
        return np.round((xy + c / 2) * f).astype(np.int32)

    kind = rng.integers(3)
    if kind == 0:  # crushed container: irregular polygon
        n = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = size / 2 * rng.uniform(0.6, 1.0, n)
        xy = np.stack([rad * np.cos(ang), rad * np.sin(ang) * rng.uniform(0.55, 1.0)], 1)
        cv2.fillPoly(img, [pts(xy)], 255, cv2.LINE_AA, sh)
    elif kind == 1:  # tub / lid
        axes = (size / 2, size / 2 * rng.uniform(0.45, 1.0))
        cv2.ellipse(img, (round(c / 2 * f), round(c / 2 * f)),
                    (round(axes[0] * f), round(axes[1] * f)), 0, 0, 360, 255, -1, cv2.LINE_AA, sh)
    else:  # bottle: rounded body, shoulder, neck, cap
        half_len, hw = size / 2, size * rng.uniform(0.16, 0.24)
        neck, nw = size * 0.18, hw * 0.45
        body_end = half_len - neck - hw * 0.6
        rr = hw * 0.4
        outline = [(-half_len, -hw + rr), (-half_len + rr, -hw), (body_end, -hw),
                   (half_len - neck, -nw), (half_len - 2, -nw), (half_len - 2, -nw * 1.2),
                   (half_len, -nw * 1.2), (half_len, nw * 1.2), (half_len - 2, nw * 1.2),
                   (half_len - 2, nw), (half_len - neck, nw), (body_end, hw),
                   (-half_len + rr, hw), (-half_len, hw - rr)]
        cv2.fillPoly(img, [pts(np.array(outline))], 255, cv2.LINE_AA, sh)
    return img.astype(np.float32) / 255.0


def _shading(rng: np.random.Generator, c: int, amp: float) -> np.ndarray:
    """Multiplicative light gradient plus low-frequency crinkle, around 1."""
    yy, xx = np.mgrid[0:c, 0:c].astype(np.float32) / (c / 2) - 1
    a = rng.uniform(0, 2 * np.pi)
    lowf = cv2.resize(rng.normal(0, 1, (4, 4)).astype(np.float32), (c, c),
                      interpolation=cv2.INTER_CUBIC)
    return 1 + amp * (xx * np.cos(a) + yy * np.sin(a)) + 0.5 * amp * lowf


def _highlight(rng: np.random.Generator, cov: np.ndarray) -> np.ndarray:
    """A blurred specular streak along the long axis, clipped to the shape (0..1)."""
    c = cov.shape[0]
    hl = np.zeros((c, c), np.float32)
    y = c / 2 + rng.choice([-1, 1]) * rng.uniform(0.08, 0.2) * c
    x = rng.uniform(0.2, 0.45) * c
    x1, y1 = x + rng.uniform(0.2, 0.4) * c, y + rng.uniform(-2, 2)
    cv2.line(hl, (int(x), int(y)), (int(x1), int(y1)), 1.0, 2, cv2.LINE_AA)
    return cv2.GaussianBlur(hl, (0, 0), 1.0) * (cov > 0.5)


def _print_pattern(rng: np.random.Generator, c: int) -> np.ndarray:
    """Print on an opaque object or a label: stripes, dots, blocks or a band (0..1)."""
    p = np.zeros((c, c), np.float32)
    kind = rng.integers(4)
    if kind == 0:
        yy, xx = np.mgrid[0:c, 0:c].astype(np.float32)
        a, period = rng.uniform(0, np.pi), rng.uniform(4, 9)
        p = np.float32(np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period) > 0.2)
    elif kind == 1:
        for _ in range(int(rng.integers(3, 9))):
            cv2.circle(p, tuple(int(v) for v in rng.integers(0, c, 2)), int(rng.integers(2, 5)),
                       1.0, -1, cv2.LINE_AA)
    elif kind == 2:
        for _ in range(int(rng.integers(2, 6))):
            x, y = (int(v) for v in rng.integers(0, c, 2))
            cv2.rectangle(p, (x, y), (x + int(rng.integers(4, 12)), y + int(rng.integers(2, 5))),
                          1.0, -1)
    else:
        x = int(rng.uniform(0.3, 0.6) * c)
        p[:, x:x + int(rng.uniform(0.15, 0.3) * c)] = 1.0
    return cv2.GaussianBlur(p, (0, 0), 0.5)


def _sprite(rng: np.random.Generator, config: BeltConfig, size: float, illegal: bool) -> np.ndarray:
    """Render one object: ``(c, c, 5)`` layers (premultiplied RGB, alpha, coverage)."""
    cov = _shape(rng, size)
    c = cov.shape[0]
    inside = (cov >= 0.5).astype(np.float32)
    rim = inside - cv2.erode(inside, np.ones((3, 3), np.uint8))  # 1-px rim inside the outline
    hl = _highlight(rng, cov)
    if illegal:
        # the grey-matching options draw only when set, so the default belt's random stream is unchanged
        matched = config.grey_matched_prob > 0 and rng.random() < config.grey_matched_prob
        palette = _GREY_MATCHED if matched else _PALETTE
        base = palette[rng.integers(len(palette))] * rng.uniform(0.9, 1.05)
        base = base + rng.normal(0, 6, 3)
        second = palette[rng.integers(len(palette))]  # print: another colour or a light tone
        if rng.random() < 0.5 and not matched:
            second = (base + 255 * 0.9) / 1.9
        pat = _print_pattern(rng, c)[..., None]
        rgb = base * (1 - pat) + second * pat
        if config.grey_stripes_prob > 0 and rng.random() < config.grey_stripes_prob:
            period = rng.uniform(4.0, 5.0)
            rows = (np.arange(c, dtype=np.float32) + rng.uniform(0, period)) % period < 2.0
            belt_grey = np.array(_CAMERAS["before"]["belt"], np.float32) + rng.normal(0, 3, 3)
            rgb = np.where(rows[:, None, None], belt_grey, rgb)
        rgb = rgb * _shading(rng, c, 0.10)[..., None] * (1 - 0.15 * rim[..., None])
        alpha = np.ones((c, c), np.float32)
        hl = 0.6 * hl
    else:
        if config.shared_palette:  # the illegal objects' colours, kept translucent
            tint = _PALETTE[rng.integers(len(_PALETTE))] + rng.normal(0, 5, 3)
        else:
            tint = _PET_TINTS[int(rng.random() < 0.4)] + rng.normal(0, 5, 3)
        opacity = float(rng.uniform(*config.legal_opacity))
        rgb = tint * _shading(rng, c, 0.08)[..., None] * (1 - 0.2 * rim[..., None])
        alpha = opacity + (0.92 - opacity) * rim
        if rng.random() < config.label_prob:  # coloured label band: a distractor
            x, w = int(rng.uniform(0.3, 0.5) * c), int(rng.uniform(0.2, 0.35) * c)
            band = np.zeros((c, c), np.float32)
            band[:, x:x + w] = 1.0
            colour = _PALETTE[rng.integers(len(_PALETTE))]
            pat = _print_pattern(rng, c)[..., None] * 0.5
            label = colour * (1 - pat) + 255 * pat
            rgb = rgb * (1 - band[..., None]) + label * band[..., None]
            alpha = np.maximum(alpha, band)
    rgb = rgb * (1 - hl[..., None]) + 250 * hl[..., None]
    alpha = np.maximum(alpha, 0.9 * hl) * cov
    layers = np.dstack([np.clip(rgb, 0, 255) * alpha[..., None], alpha, cov]).astype(np.float32)
    return layers


# -- belt and scene ---------------------------------------------------------------------------
def _belt_strip(rng: np.random.Generator, camera: str, h: int, w: int) -> np.ndarray:
    """A ribbed, grainy, stained belt strip ``(h, w, 3)`` float32 RGB (before the camera gain)."""
    xx = np.arange(w, dtype=np.float32)
    period, amp = rng.uniform(5, 9), rng.uniform(9, 13)
    ribs = amp * ((0.5 + 0.5 * np.cos(2 * np.pi * xx / period)) ** 3 - 0.31)
    relief = np.broadcast_to(ribs, (h, w)).copy()
    relief += cv2.GaussianBlur(rng.normal(0, 5, (h, w)).astype(np.float32), (0, 0), 0.7)
    lowf = rng.normal(0, 4, (max(h // 16, 2), max(w // 16, 2))).astype(np.float32)
    relief += cv2.resize(lowf, (w, h), interpolation=cv2.INTER_CUBIC)
    stains = np.zeros((h, w), np.float32)
    for _ in range(int(rng.poisson(w * h / 4000))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(3, 14)), int(rng.integers(2, 9)))
        cv2.ellipse(stains, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    float(rng.uniform(-14, 8)), -1)
    relief += cv2.GaussianBlur(stains, (0, 0), 2.5)
    base = np.array(_CAMERAS[camera]["belt"], np.float32) + rng.normal(0, 5, 3)
    return base + relief[..., None].astype(np.float32)


def _objects(rng: np.random.Generator, config: BeltConfig, speed: float) -> list[_Object]:
    """The object stream of one video, bottom-most first; every object is in view at times."""
    w, h = config.size
    r = config.object_size[1] / 2
    span = w + 2 * r + speed * (config.frames - 1)  # start positions that come into view
    visible = rng.uniform(config.objects_visible[0], config.objects_visible[1] + 1)
    # ``visible`` counts objects with any part in view; positions are stratified in x and in y
    # (Latin hypercube) so that no belt row stays crowded for the whole video.
    n = max(1, round(visible * span / (w + sum(config.object_size) / 2)))
    xs = (np.arange(n) + rng.uniform(0, 1, n)) / n * span - r - speed * (config.frames - 1)
    ys = (rng.permutation(n) + rng.uniform(0, 1, n)) / n * h
    # Illegal objects are a systematic sample of the objects sorted by size: legal and illegal
    # objects share the size distribution within every video, not only on average.
    sizes = rng.uniform(*config.object_size, n)
    n_ill = round(n * rng.uniform(*config.illegal_fraction))
    illegal = np.zeros(n, bool)
    if n_ill:
        picks = ((np.arange(n_ill) + rng.uniform()) * n / n_ill).astype(int)
        illegal[np.argsort(sizes)[picks]] = True
    objs = []
    for i in rng.permutation(n):  # random stacking order
        layers = _sprite(rng, config, float(sizes[i]), bool(illegal[i]))
        objs.append(_Object(
            layers, bool(illegal[i]), float(xs[i]), float(ys[i]),
            float(rng.normal(0, config.drift)), float(rng.normal(0, config.drift)),
            float(rng.uniform(0, 360)), float(rng.normal(0, config.spin)),
            removed=bool(illegal[i]) and rng.random() >= config.leftover_prob))
    return objs


def _camera_frame(rng: np.random.Generator, config: BeltConfig, camera: str, canvas: np.ndarray,
                  masks: np.ndarray, exposure: float) -> tuple[np.ndarray, np.ndarray]:
    """Apply light, jitter, blur and noise to a canvas; returns uint8 RGB and warped masks."""
    w, h = config.size
    light = config.after_light if camera == "after" else (1.0, 1.0, 1.0)
    gain = np.array(light, np.float32) * exposure
    jx, jy = np.clip(rng.normal(0, config.jitter, 2), -2 * config.jitter, 2 * config.jitter)
    m = np.array([[1, 0, _MARGIN + jx], [0, 1, _MARGIN + jy]], np.float32)
    img = cv2.warpAffine(canvas * gain, m, (w, h), flags=_INVERSE)
    if config.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), config.blur)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(config.noise)
    mk = cv2.warpAffine(masks, m, (w, h), flags=_INVERSE) >= 0.5
    return np.clip(np.round(img), 0, 255).astype(np.uint8), mk


def render_pair(config: BeltConfig, index: int) -> tuple[RenderedVideo, RenderedVideo]:
    """Render video ``index`` of both cameras (the after twin of the before video).

    Args:
        config: The data set config.
        index: Video number, ``0 <= index < config.n_videos``; selects its random stream.

    Returns:
        ``(before, after)``; the after video shows the same stream minus removed objects.
    """
    scene_ss, *cam_ss = np.random.SeedSequence([config.seed, index]).spawn(3)
    rng = np.random.default_rng(scene_ss)
    cam_rng = [np.random.default_rng(s) for s in cam_ss]
    w, h = config.size
    cw, ch = w + 2 * _MARGIN, h + 2 * _MARGIN
    t_n = config.frames
    speed = float(rng.uniform(*config.belt_speed))
    objs = _objects(rng, config, speed)
    travel = speed * (t_n - 1)
    strips = [_belt_strip(cam_rng[k], cam, ch, cw + int(math.ceil(travel)) + 2) * np.float32(config.belt_gain)
              for k, cam in enumerate(("before", "after"))]
    exposure = [float(cam_rng[k].uniform(0.97, 1.03)) for k in range(2)]
    out = [{"frames": np.zeros((t_n, h, w, 3), np.uint8), "illegal": np.zeros((t_n, h, w), bool),
            "legal": np.zeros((t_n, h, w), bool)} for _ in range(2)]
    visible = [0, 0]
    for t in range(t_n):
        shift = np.array([[1, 0, travel - speed * t], [0, 1, 0]], np.float32)  # belt moves along +x
        canvases = [cv2.warpAffine(s, shift, (cw, ch), flags=_INVERSE) for s in strips]
        ill = [np.zeros((ch, cw), bool) for _ in range(2)]
        leg = [np.zeros((ch, cw), bool) for _ in range(2)]
        for ob in objs:
            c = ob.layers.shape[0]
            cx = ob.x0 + (speed + ob.vx) * t + _MARGIN
            cy = ob.y0 + ob.vy * t + _MARGIN
            half = c * 0.71 + 1
            x0, y0 = max(math.floor(cx - half), 0), max(math.floor(cy - half), 0)
            x1, y1 = min(math.ceil(cx + half) + 1, cw), min(math.ceil(cy + half) + 1, ch)
            if x1 <= x0 or y1 <= y0:
                continue
            rot = cv2.getRotationMatrix2D((c / 2, c / 2), ob.angle + ob.spin * t, 1.0)
            rot[:, 2] += (cx - x0 - c / 2, cy - y0 - c / 2)
            lay = cv2.warpAffine(ob.layers, rot, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
            keep, covered = 1 - lay[..., 3:4], lay[..., 4] >= 0.5
            hides = covered & (lay[..., 3] >= 0.5)  # opaque enough to hide what lies below
            in_view = covered[max(_MARGIN - y0, 0):_MARGIN + h - y0,
                              max(_MARGIN - x0, 0):_MARGIN + w - x0].any()
            for k in range(2):
                if k == 1 and ob.removed:
                    continue
                visible[k] += int(in_view)
                reg = canvases[k][y0:y1, x0:x1]
                reg *= keep
                reg += lay[..., :3]
                if ob.illegal:
                    ill[k][y0:y1, x0:x1] |= covered
                    leg[k][y0:y1, x0:x1] &= ~covered
                else:
                    leg[k][y0:y1, x0:x1] |= covered
                    ill[k][y0:y1, x0:x1] &= ~hides
        for k, cam in enumerate(("before", "after")):
            masks = np.dstack([ill[k], leg[k] & ~ill[k]]).astype(np.float32)
            img, mk = _camera_frame(cam_rng[k], config, cam, canvases[k], masks, exposure[k])
            out[k]["frames"][t] = img
            out[k]["illegal"][t], out[k]["legal"][t] = mk[..., 0], mk[..., 1] & ~mk[..., 0]
    n_ill = sum(o.illegal for o in objs)
    leftovers = sum(o.illegal and not o.removed for o in objs)
    result = []
    for k in range(2):
        stats = {"speed": round(speed, 4), "objects": len(objs) - (n_ill - leftovers) * k,
                 "illegal_objects": n_ill if k == 0 else leftovers,
                 "objects_in_view": round(visible[k] / t_n, 2),
                 "illegal_pixel_fraction": round(float(out[k]["illegal"].mean()), 6)}
        result.append(RenderedVideo(stats=stats, **out[k]))
    return result[0], result[1]


# -- writing ----------------------------------------------------------------------------------
def _write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB or single-channel uint8 image as PNG."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())


def _manifest(config: BeltConfig) -> dict[str, Any]:
    """The part of belt.json that identifies a data set."""
    return {"generator": "wsbench.data.synthetic", "version": GENERATOR_VERSION,
            "config": config.to_dict()}


def generator_tag(config: BeltConfig) -> str:
    """Short name of a config and generator version, e.g. ``v1-3fa2c1d0`` (names cache folders)."""
    return f"v{GENERATOR_VERSION}-{config_hash(config.to_dict(), 8)}"


def _is_same(root: Path, config: BeltConfig) -> bool:
    """Whether ``root`` holds the complete data set of ``config`` (same generator version)."""
    try:
        stored = json.loads((root / "belt.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = _manifest(config)
    return all(stored.get(key) == value for key, value in want.items())


def _write_pair(tmp: Path, config: BeltConfig, index: int, vid: str) -> dict[str, Any]:
    """Render video pair ``index`` and write its frames and masks; returns its statistics."""
    before, after = render_pair(config, index)
    digits = max(4, len(str(config.frames - 1)))
    for folder, images in (("before", before.frames), ("after", after.frames),
                           ("masks/before", before.illegal.astype(np.uint8) * 255)):
        (tmp / folder / vid).mkdir(parents=True)
        for t, image in enumerate(images):
            _write_png(tmp / folder / vid / f"frame_{t:0{digits}d}.png", image)
    return {"before": before.stats, "after": after.stats}


def generate_belt(out: str | os.PathLike, config: BeltConfig = BeltConfig(),
                  workers: int | None = None) -> Path:
    """Generate the synthetic belt data set into ``out`` (or reuse it if already there).

    Args:
        out: The data set root ``ROOT``; built in ``ROOT.tmp-<random>`` and renamed at the end.
        config: The generator config.
        workers: Processes rendering videos in parallel; ``None`` picks one per CPU core (at
            most 8) for big data sets and none for tiny ones. The output does not depend on it.
            Workers are spawned, so a calling script needs the usual ``__main__`` guard.

    Returns:
        The root path.

    Raises:
        UserError: ``out`` exists but is not this config's complete data set.
    """
    root = Path(out)
    if root.exists():
        if _is_same(root, config):
            return root
        raise UserError(f"{root} exists but is not a belt data set with this config; "
                        "remove it or choose another folder")
    if workers is None:
        pixels = config.n_videos * config.frames * config.size[0] * config.size[1]
        workers = min(os.cpu_count() or 1, 8) if pixels > 4_000_000 else 1
    workers = max(1, min(workers, config.n_videos))
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f"{root.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir()
    vids = [f"v{i:0{max(3, len(str(config.n_videos - 1)))}d}" for i in range(config.n_videos)]
    bounds = np.cumsum([config.train_videos, config.val_videos, config.test_videos])
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    manifest = {**_manifest(config), "videos": {}}
    with disk_errors(root.parent):  # a full or read-only disk: one line naming the folder
        try:
            if workers == 1:
                stats = [_write_pair(tmp, config, i, vid) for i, vid in enumerate(vids)]
            else:  # spawn: no fork of a process that may hold OpenCV / BLAS threads
                ctx = multiprocessing.get_context("spawn")
                with concurrent.futures.ProcessPoolExecutor(
                        workers, mp_context=ctx, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
                    stats = list(pool.map(_write_pair, [tmp] * len(vids), [config] * len(vids),
                                          range(len(vids)), vids))
            for index, (vid, stat) in enumerate(zip(vids, stats, strict=True)):
                split = ("train", "val", "test")[int(np.searchsorted(bounds, index, side="right"))]
                splits[split] += [f"before/{vid}", f"after/{vid}"]
                manifest["videos"][vid] = {"split": split, **stat}
            (tmp / "splits.json").write_text(json.dumps(splits, indent=2) + "\n", encoding="utf-8")
            (tmp / "belt.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")
            try:
                os.rename(tmp, root)
            except OSError:
                if not _is_same(root, config):  # another process created ROOT meanwhile
                    raise UserError(f"{root} appeared during generation and is not this data set") from None
                shutil.rmtree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root
