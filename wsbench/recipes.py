"""Training recipes: the :class:`Recipe` dataclass and the named recipes ``--recipe NAME`` picks.

A recipe is everything that determines how a classifier is trained. A run's recipe is resolved in
two steps: the named recipe (``--recipe NAME``, a suite's ``recipe = "NAME"``, else the data set's
default, shown by ``wsbench list datasets``, with ``cpu`` for ``paper`` on a CPU without pretrained
weights, see :func:`choose_recipe`), then each recipe option given on its own (``--epochs 3``) over
that recipe's fields. Only the resolved fields are hashed into a run's
configuration; the name is recorded beside them, so a run keeps its hash whichever name (or
none) produced the same fields.

This module is light (standard library only): ``wsbench list recipes`` imports it without torch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from .errors import UserError

__all__ = ["MAX_IMAGE_SIZE", "RECIPES", "NamedRecipe", "Recipe", "choose_recipe", "named_recipe"]

#: the largest training resolution a side (--image-size); the paper trains at 512
MAX_IMAGE_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that determines how a classifier is trained (shared by all methods).

    Attributes:
        backbone: timm model name.
        pretrained: ``None``, a local weights file, or ``"timm"`` (local timm cache only).
        output_stride: 8, 16 or 32.
        pool: ``"gap"`` (paper) or ``"lse"``.
        image_size: training resolution ``(w, h)``, 16 to :data:`MAX_IMAGE_SIZE` pixels a side.
        epochs: training epochs.
        batch_size: frames per batch (clips count their frames).
        optimizer: ``"adamw"`` or ``"sgd"`` (momentum 0.9, 10× learning rate on the head, as in
            the reference code).
        lr: peak learning rate.
        weight_decay: weight decay.
        schedule: learning-rate schedule ``"onecycle"``, ``"poly"`` (power 0.9) or ``"constant"``.
        alpha_max: maximum weight of the spatial loss.
        beta_max: maximum weight of the temporal loss.
        weight_ramp: ``"ramp"`` (paper: 0 for the first epoch, then linear to the maximum by
            mid-training) or ``"constant"`` (the authors' code).
        background_removal: three classes on background-removed frames (paper) or two classes
            on the original frames.
        bg_threshold: background-removal threshold (grey levels).
        bg_morph: side in pixels (at the analysis resolution) of the opening/closing square that
            cleans the foreground; ≤ 1 for none (the paper's rule). Objects narrower than it vanish.
        augment: flips, small shifts and colour gain on training batches.
        flow: optical-flow estimator for clip training.
        flow_root: where the ``files`` estimator reads ``.flo`` files (``None``: the data set's
            own locations).
    """

    backbone: str = "resnet50"
    pretrained: str | None = None
    output_stride: int = 16
    pool: Literal["gap", "lse"] = "gap"
    image_size: tuple[int, int] = (512, 512)
    epochs: int = 25
    batch_size: int = 16
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: Literal["onecycle", "poly", "constant"] = "onecycle"
    alpha_max: float = 4.0
    beta_max: float = 4.0
    weight_ramp: Literal["ramp", "constant"] = "ramp"
    background_removal: bool = True
    bg_threshold: float = 22.0
    bg_morph: int = 3
    augment: bool = True
    flow: str = "dis"
    flow_root: str | None = None

    def flow_options(self) -> dict[str, Any]:
        """Options of the flow estimator (``root`` when ``flow_root`` is set)."""
        return {"root": self.flow_root} if self.flow_root else {}

    def __post_init__(self) -> None:
        finite = lambda x: isinstance(x, (int, float)) and math.isfinite(x)  # noqa: E731 (NaN passes every >)
        checks = [
            (self.output_stride in (8, 16, 32), f"--output-stride must be 8, 16 or 32, not {self.output_stride}"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (finite(self.lr) and self.lr > 0, f"--lr must be a positive number, not {self.lr}"),
            (finite(self.weight_decay) and self.weight_decay >= 0,
             f"--weight-decay must be a number >= 0, not {self.weight_decay}"),
            (finite(self.alpha_max) and self.alpha_max >= 0, f"--alpha-max must be a number >= 0, not {self.alpha_max}"),
            (finite(self.beta_max) and self.beta_max >= 0, f"--beta-max must be a number >= 0, not {self.beta_max}"),
            (isinstance(self.bg_morph, int) and 0 <= self.bg_morph <= 255,
             f"--bg-morph must be a whole number of pixels in [0, 255], not {self.bg_morph}"),
            (finite(self.bg_threshold) and 0 <= self.bg_threshold < 255,
             f"--bg-threshold must be a number of grey levels in [0, 255), not {self.bg_threshold}"),
            (16 <= min(self.image_size) and max(self.image_size) <= MAX_IMAGE_SIZE,
             f"--image-size must be 16 to {MAX_IMAGE_SIZE} pixels a side, not "
             f"{self.image_size[0]}x{self.image_size[1]}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


@dataclasses.dataclass(frozen=True)
class NamedRecipe:
    """A recipe with a name: the fields it sets over :class:`Recipe`'s defaults.

    Attributes:
        name: what ``--recipe`` takes.
        description: one line for ``wsbench list recipes``.
        fields: ``Recipe`` field → value; the other fields keep :class:`Recipe`'s defaults.
    """

    name: str
    description: str
    fields: tuple[tuple[str, Any], ...] = ()

    def recipe(self, **overrides: Any) -> Recipe:
        """The :class:`Recipe` of this name with ``overrides`` (field → value; ``None`` values ignored).

        Raises:
            UserError: an unknown field or a bad value.
        """
        names = {f.name for f in dataclasses.fields(Recipe)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise UserError(f"unknown recipe option {unknown[0]!r}")
        values = dict(self.fields)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "image_size" in values:
            values["image_size"] = tuple(values["image_size"])
        return Recipe(**values)


#: The named recipes, in the order ``wsbench list recipes`` shows them.
RECIPES: dict[str, NamedRecipe] = {r.name: r for r in (
    NamedRecipe("paper", "the paper's recipe (§5.2), for a GPU; --pretrained timm for ImageNet weights"),
    # beta_max 12 was chosen on the belt's validation split (tccam seeds 0 and 1: val IoU 0.356 vs 0.339 at 4)
    NamedRecipe("cpu", "trains from scratch on a CPU in minutes (the synthetic belt's default)",
                (("backbone", "wsbench_resnet_tiny"), ("output_stride", 8), ("image_size", (96, 96)),
                 ("epochs", 8), ("batch_size", 32), ("lr", 2e-3), ("beta_max", 12.0))),
    NamedRecipe("smoke", "seconds on a CPU: checks that data and a method run (the numbers mean nothing)",
                (("backbone", "wsbench_resnet_tiny"), ("output_stride", 8), ("image_size", (32, 32)),
                 ("epochs", 1), ("batch_size", 8))),
)}


def named_recipe(name: str) -> NamedRecipe:
    """The named recipe ``name``.

    Raises:
        UserError: an unknown name, listing the known ones.
    """
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; available: {', '.join(RECIPES)} (wsbench list recipes)")
    return RECIPES[name]


def choose_recipe(name: str | None, dataset_default: str, overrides: dict[str, Any],
                  device_type: str | None = None) -> tuple[Recipe, str, str | None]:
    """Resolve a run's recipe: a name, else the data set's default, with individual options over it.

    On a CPU the ``paper`` recipe is never taken as a default without ``pretrained`` weights
    (ResNet-50 from scratch at 512x512 for 25 epochs takes hours to days there): ``cpu`` is taken
    instead and a note says so. A name given explicitly is always used.

    Args:
        name: ``--recipe NAME`` (``None``: not given).
        dataset_default: the data set's default recipe name.
        overrides: recipe options given one by one (field → value; ``None`` means not given).
        device_type: ``"cpu"``, ``"cuda"``, ... of the device the run trains on (``None``: unknown,
            then no default is replaced).

    Returns:
        ``(recipe, name of the recipe used, note)``; the note is one line saying why the default
        was replaced, or ``None``.

    Raises:
        UserError: an unknown recipe name or option, or a bad value.
    """
    note = None
    if name is None:
        name = dataset_default
        if name == "paper" and device_type == "cpu" and not overrides.get("pretrained"):
            name = "cpu"
            note = ("training recipe 'cpu' (wsbench list recipes), not the data set's default 'paper': "
                    "ResNet-50 from scratch at 512x512 for 25 epochs takes hours to days on a CPU; "
                    "--recipe paper (or --pretrained) trains it anyway")
    return named_recipe(name).recipe(**overrides), name, note
