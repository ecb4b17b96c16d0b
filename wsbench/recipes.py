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
import re
import typing
from typing import Any, Literal

from .errors import UserError

__all__ = ["BACKGROUND_RULE_DEFAULTS", "MAX_CAM_SCALE", "MAX_IMAGE_SIZE", "RECIPES", "NamedRecipe", "Recipe",
           "RecipeOption", "choose_recipe", "named_recipe", "MOVED_TO_METHODS", "parse_recipe_option",
           "recipe_options", "recipe_record", "recorded_fields"]

#: the largest training resolution a side (--image-size); the paper trains at 512
MAX_IMAGE_SIZE = 4096
#: largest input scale of multi-scale map inference (the authors' benchmark code goes up to 6)
MAX_CAM_SCALE = 8.0
#: recipe fields of runs recorded before the loss weights became options of the methods that have those losses
MOVED_TO_METHODS = ("alpha_max", "beta_max", "weight_ramp")
#: background-rule fields added after runs were first recorded, with the values those runs had: at these
#: values they are left out of the recorded recipe (:func:`recipe_record`), so those runs keep their hashes
BACKGROUND_RULE_DEFAULTS = {"bg_rule": "gray", "bg_threshold_mode": "fixed"}


def _field(default: Any, help: str, **cli: Any) -> Any:
    """A :class:`Recipe` field whose metadata makes its ``wsbench run`` option (see :func:`recipe_options`).

    ``help`` is the option's help; ``cli`` may hold ``choices`` (the values allowed) and ``low`` /
    ``high`` (an integer range).
    """
    return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that determines how a classifier is trained, shared by all methods.

    Loss weights are not here: they belong to the methods that have those losses (``puzzlecam``'s
    and ``tccam``'s ``--alpha-max``, ``--beta-max`` and ``--weight-ramp`` options), so they are
    part of those methods' classifier keys only. A named recipe can still set them, see
    :attr:`NamedRecipe.method_options`. Each field's ``metadata["help"]`` is its ``wsbench run``
    option's help (:func:`recipe_options`).

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
        background_removal: three classes on background-removed frames (paper) or two classes
            on the original frames.
        bg_threshold: background-removal threshold (grey levels).
        bg_morph: side in pixels (at the analysis resolution) of the opening/closing square that
            cleans the foreground; ≤ 1 for none (the paper's rule). Objects narrower than it vanish.
        bg_rule: ``"gray"`` (the paper's grey-level distance to the median belt) or ``"lab"``
            (CIELAB ΔE to the median belt, closing before opening; :mod:`wsbench.data.background`).
        bg_lab_threshold: ΔE threshold of the ``lab`` rule.
        bg_threshold_mode: ``"fixed"`` (``bg_threshold`` / ``bg_lab_threshold``) or ``"otsu"``
            (per video, Otsu's method on the distances; no ground truth).
        augment: flips, small shifts and colour gain on training batches.
        flow: optical-flow estimator for clip training.
        flow_root: where the ``files`` estimator reads ``.flo`` files (``None``: the data set's
            own locations).
    """

    backbone: str = _field("resnet50", "timm backbone [default: from the recipe]")
    pretrained: str | None = _field(None, "weights: a local file, or 'timm' for the local timm cache "
                                          "[default: from scratch]")
    output_stride: int = _field(16, "backbone output stride", choices=(8, 16, 32))
    pool: Literal["gap", "lse"] = _field("gap", "logit pooling [default: gap]")
    image_size: tuple[int, int] = _field((512, 512), "training resolution N or WxH [default: from the recipe]")
    epochs: int = _field(25, "training epochs")
    batch_size: int = _field(16, "frames per batch")
    optimizer: Literal["adamw", "sgd"] = _field("adamw", "optimiser [default: adamw]")
    lr: float = _field(1e-3, "peak learning rate")
    weight_decay: float = _field(1e-4, "weight decay")
    schedule: Literal["onecycle", "poly", "constant"] = _field("onecycle", "lr schedule")
    background_removal: bool = _field(True, "3 classes on background-removed frames (paper) or 2 on originals "
                                            "[default: on]")
    bg_threshold: float = _field(22.0, "background-removal threshold in grey levels [default: 22]")
    bg_morph: int = _field(3, "opening/closing square of background removal, px at <=1024 px analysis size; "
                              "objects narrower vanish; 0: none (the paper's rule) [default: 3]", low=0, high=255)
    bg_rule: Literal["gray", "lab"] = _field("gray", "background rule: gray (the paper's grey-level distance) or lab "
                                                     "(CIELAB colour distance, closing before opening) [default: gray]")
    bg_lab_threshold: float = _field(10.0, "colour distance (CIE76 delta E) above which a pixel is foreground "
                                           "under --bg-rule lab [default: 10]")
    bg_threshold_mode: Literal["fixed", "otsu"] = _field("fixed", "background threshold: fixed (--bg-threshold / "
                                                                  "--bg-lab-threshold) or otsu (per video, no GT) "
                                                                  "[default: fixed]")
    augment: bool = _field(True, "flips, shifts, colour gain [default: on]")
    flow: str = _field("dis", "optical-flow estimator (wsbench list flows) [default: dis]")
    flow_root: str | None = _field(None, "folder of .flo files for --flow files [default: the dataset's own]")

    def background_options(self) -> dict[str, Any]:
        """The background-removal fields (``bg_*``) and their values, as records and keys list them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name.startswith("bg_")}

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
            (isinstance(self.bg_morph, int) and 0 <= self.bg_morph <= 255,
             f"--bg-morph must be a whole number of pixels in [0, 255], not {self.bg_morph}"),
            (finite(self.bg_threshold) and 0 <= self.bg_threshold < 255,
             f"--bg-threshold must be a number of grey levels in [0, 255), not {self.bg_threshold}"),
            (self.bg_rule in ("gray", "lab"), f"--bg-rule must be gray or lab, not {self.bg_rule!r}"),
            (finite(self.bg_lab_threshold) and 0 <= self.bg_lab_threshold < 400,
             f"--bg-lab-threshold must be a colour distance in [0, 400), not {self.bg_lab_threshold}"),
            (self.bg_threshold_mode in ("fixed", "otsu"),
             f"--bg-threshold-mode must be fixed or otsu, not {self.bg_threshold_mode!r}"),
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
        method_options: method name → (option → value): defaults of a method's own options under
            this recipe (e.g. ``tccam``'s ``beta_max``). They are applied to the method's options
            before options given one by one, so they enter that method's configuration and
            classifier key only: a recipe that sets ``tccam``'s β shares ``cam``'s and
            ``puzzlecam``'s classifiers with a recipe that does not.
    """

    name: str
    description: str
    fields: tuple[tuple[str, Any], ...] = ()
    method_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def options_for(self, method: str) -> dict[str, Any]:
        """The option defaults this recipe sets for ``method`` (``{}``: none; the method's own defaults hold)."""
        return dict(dict(self.method_options).get(method, ()))

    def recipe(self, **overrides: Any) -> Recipe:
        """The :class:`Recipe` of this name with ``overrides`` (field → value; ``None`` values ignored).

        Raises:
            UserError: an unknown field or a bad value.
        """
        names = {f.name for f in dataclasses.fields(Recipe)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            moved = " (loss weights are options of the methods that have those losses: puzzlecam's and tccam's " \
                "--alpha-max, --beta-max, --weight-ramp)" if unknown[0] in MOVED_TO_METHODS else ""
            raise UserError(f"unknown recipe option {unknown[0]!r}{moved}")
        values = dict(self.fields)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "image_size" in values:
            values["image_size"] = tuple(values["image_size"])
        return Recipe(**values)


#: The named recipes, in the order ``wsbench list recipes`` shows them.
RECIPES: dict[str, NamedRecipe] = {r.name: r for r in (
    NamedRecipe("paper", "the paper's recipe (§5.2), for a GPU; --pretrained timm for ImageNet weights"),
    # tccam's beta_max 12: the best validation IoU averaged over three belts (built-in, generator seed 1, hard4;
    # 3 seeds each, no collapsed seed), benchmarks/weights_across_belts.py and README "TC-CAM's default β"
    NamedRecipe("cpu", "trains from scratch on a CPU in minutes (the synthetic belt's default)",
                (("backbone", "wsbench_resnet_tiny"), ("output_stride", 8), ("image_size", (96, 96)),
                 ("epochs", 8), ("batch_size", 32), ("lr", 2e-3)),
                (("tccam", (("beta_max", 12.0),)),)),
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


def recipe_record(recipe: Recipe) -> dict[str, Any]:
    """A recipe as ``config.json`` records it and configuration and classifier keys hash it.

    Every field, except the background-rule fields (:data:`BACKGROUND_RULE_DEFAULTS`) while they
    have the values runs had before those fields existed, and ``bg_lab_threshold`` under the
    ``gray`` rule (which never reads it): runs of the paper's rule keep their hashes and caches,
    and a missing field reads back as its default.
    """
    fields = dataclasses.asdict(recipe)
    for name, default in BACKGROUND_RULE_DEFAULTS.items():
        if fields[name] == default:
            del fields[name]
    if recipe.bg_rule == "gray":
        del fields["bg_lab_threshold"]
    return fields


def recorded_fields(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recorded ``config.json`` recipe as :class:`Recipe` fields: without the loss weights that older runs
    recorded there (:data:`MOVED_TO_METHODS`; they only shaped training, whose classifier the record names)."""
    return {k: v for k, v in recipe.items() if k not in MOVED_TO_METHODS}


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


@dataclasses.dataclass(frozen=True)
class RecipeOption:
    """A :class:`Recipe` field as a command-line option (``wsbench run``, ``wsbench suite``).

    Attributes:
        name: the field (``--name-with-dashes`` on the command line).
        type: ``bool`` (a ``--name/--no-name`` flag), ``int``, ``float`` or ``str``.
        help: the help text (the field's ``metadata["help"]``).
        choices: the values allowed (``Literal`` fields and ``choices`` metadata), as strings.
        low, high: an integer range (``None``: open).
        size: the value is a size ``N`` or ``WxH`` (``image_size``).
    """

    name: str
    type: type
    help: str
    choices: tuple[str, ...] | None = None
    low: int | None = None
    high: int | None = None
    size: bool = False


def recipe_options() -> list[RecipeOption]:
    """The :class:`Recipe` fields as command-line options, from their types and metadata, in field order."""
    hints = typing.get_type_hints(Recipe)
    out = []
    for f in dataclasses.fields(Recipe):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        choices = f.metadata.get("choices")
        if typing.get_origin(hint) is Literal:
            choices, kind = args, str
        elif typing.get_origin(hint) is tuple:
            kind = str
        else:
            kind = args[0] if args else hint
        out.append(RecipeOption(f.name, kind, f.metadata.get("help", ""),
                                tuple(str(c) for c in choices) if choices else None,
                                f.metadata.get("low"), f.metadata.get("high"),
                                size=typing.get_origin(hint) is tuple))
    return out


def parse_recipe_option(option: RecipeOption, value: Any) -> Any:
    """A command-line value of ``option`` as the :class:`Recipe` field takes it (``None``: not given).

    Raises:
        UserError: a size that is not ``N`` or ``WxH``.
    """
    if value is None:
        return None
    if option.size:
        match = re.fullmatch(r"(\d+)(?:[x,](\d+))?", str(value).strip())
        if not match:
            raise UserError(f"--{option.name.replace('_', '-')}: {value!r} is not N or WxH")
        return int(match[1]), int(match[2] or match[1])
    if option.choices and option.type is int:
        return int(value)
    return value
