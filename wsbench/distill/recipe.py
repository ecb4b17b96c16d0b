"""The distill recipe: how the segmenter is built and trained, the named recipes, and their checks."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import UserError
from ..recipes import MAX_IMAGE_SIZE
from ..schema import Int, ListOf, Optional, from_dataclass

__all__ = ["DISTILL_RECIPES", "DistillRecipe", "check_recipe", "distill_recipe"]


@dataclasses.dataclass(frozen=True)
class DistillRecipe:
    """How the segmenter is built and trained (recorded in ``config.json``, hashed).

    Attributes:
        architecture: smp architecture name (``Unet``, ``UnetPlusPlus``, ``FPN``, ``DeepLabV3Plus``, ...).
        encoder: smp encoder name; ``tu-<name>`` is any timm backbone.
        encoder_depth: encoder stages used (3–5; fewer is faster at low resolution).
        decoder_channels: U-Net-family decoder widths, one per stage (empty: the architecture's default).
        pretrained: a local ``.pt`` state dict for the encoder (``None``: from scratch).
        epochs: training epochs.
        batch_size: frames per step.
        lr: peak learning rate (AdamW, one-cycle).
        weight_decay: AdamW weight decay.
        image_size: ``(w, h)`` training and inference resolution (``None``: the source run's).
        ignore_band: ``(low, high)``: foreground pixels of before frames whose map lies in
            ``[low, high)`` are not trained on (``None``: all pixels are).
        dice_weight: weight of smp's Dice loss next to cross-entropy (0: cross-entropy only).
    """

    architecture: str = "Unet"
    encoder: str = "tu-resnet10t"
    encoder_depth: int = 3
    decoder_channels: tuple[int, ...] = (32, 16, 8)
    pretrained: str | None = None
    epochs: int = 4
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    image_size: tuple[int, int] | None = None
    ignore_band: tuple[float, float] | None = None
    dice_weight: float = 0.5

    def as_config(self) -> dict[str, Any]:
        """The recipe as JSON (tuples as lists)."""
        out = dataclasses.asdict(self)
        for key in ("decoder_channels", "image_size", "ignore_band"):
            out[key] = list(out[key]) if out[key] is not None else None
        return out


#: named distill recipes: ``cpu`` trains from scratch on 2 CPU cores in minutes (the synthetic belt's
#: default), ``smoke`` checks the pipeline in seconds (its numbers mean nothing)
DISTILL_RECIPES = {
    "cpu": DistillRecipe(),
    "smoke": DistillRecipe(encoder="tu-resnet10t", encoder_depth=3, decoder_channels=(16, 8, 8), epochs=1,
                           batch_size=8, image_size=(32, 32)),
}


#: the types of a distill recipe's fields (the range checks are :func:`check_recipe`'s)
_RECIPE_SCHEMA = from_dataclass(DistillRecipe)
_RECIPE_SCHEMA.fields["decoder_channels"] = Optional(ListOf(Int(1), min_len=1))


def distill_recipe(name: str = "cpu", source: str = "distill", **overrides: Any) -> DistillRecipe:
    """A named recipe (:data:`DISTILL_RECIPES`) with some fields replaced (``None`` values are ignored).

    Args:
        name: the named recipe.
        source: what the overrides come from, named in messages (a run's ``config.json``).
        **overrides: field values.

    Raises:
        UserError: unknown recipe or field, a value of the wrong type or out of range.
    """
    if name not in DISTILL_RECIPES:
        raise UserError(f"unknown distill recipe {name!r}; available: {', '.join(DISTILL_RECIPES)}")
    fields = {f.name for f in dataclasses.fields(DistillRecipe)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"unknown distill option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    values = {k: v for k, v in overrides.items() if v is not None}
    _RECIPE_SCHEMA.check(values, source)
    for key in ("decoder_channels", "image_size", "ignore_band"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    recipe = dataclasses.replace(DISTILL_RECIPES[name], **values)
    check_recipe(recipe)
    return recipe


def check_recipe(recipe: DistillRecipe) -> None:
    """Check a recipe's ranges and sizes.

    Raises:
        UserError: the first value out of range, in one line.
    """
    if recipe.epochs < 1 or recipe.batch_size < 1:
        raise UserError("distill: epochs and batch_size must be at least 1")
    if not 1 <= recipe.encoder_depth <= 5:
        raise UserError(f"distill: encoder_depth must be 1..5, not {recipe.encoder_depth}")
    if recipe.decoder_channels and len(recipe.decoder_channels) != recipe.encoder_depth:
        raise UserError(f"distill: decoder_channels needs one width per encoder stage ({recipe.encoder_depth}), "
                        f"got {len(recipe.decoder_channels)}")
    if not (recipe.lr > 0 and recipe.weight_decay >= 0 and recipe.dice_weight >= 0):
        raise UserError("distill: lr must be above 0, weight_decay and dice_weight at least 0")
    for key, size in (("image_size", 2), ("ignore_band", 2)):
        value = getattr(recipe, key)
        if value is not None and (not isinstance(value, (tuple, list)) or len(value) != size):
            raise UserError(f"distill: {key} must be {size} numbers, not {value!r}")
    if recipe.image_size is not None:
        stride = 2 ** recipe.encoder_depth
        w, h = recipe.image_size
        if not all(isinstance(v, int) and 16 <= v <= MAX_IMAGE_SIZE for v in (w, h)):
            raise UserError(f"--image-size {w}x{h}: sides must be whole numbers of 16 to {MAX_IMAGE_SIZE} pixels")
        if w < stride or h < stride or w % stride or h % stride:
            raise UserError(f"--image-size {w}x{h}: both sides must be multiples of {stride} "
                            f"(2^encoder_depth) for the segmenter")
    if recipe.ignore_band is not None:
        low, high = recipe.ignore_band
        if not 0 <= low <= high <= 1:
            raise UserError(f"--ignore-band {low},{high}: need 0 <= LOW <= HIGH <= 1")
