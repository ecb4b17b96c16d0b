"""CAM methods: the registry, :func:`create_method` and :func:`list_methods`.

Built-in methods, one small file each: ``cam``, ``gradcam``, ``f2f``, ``puzzlecam``, ``tccam``.
Third-party methods come from the ``wsbench.methods`` entry-point group (see CONTRIBUTING.md).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from ..errors import UserError
from ..registry import Registry, RegistryError
from .base import Batch, Fusion, LossTerm, Method, NoOptions, Progress, has_raw_maps

__all__ = [
    "METHODS",
    "Batch",
    "Fusion",
    "LossTerm",
    "Method",
    "MethodMeta",
    "NoOptions",
    "Progress",
    "complete_method_info",
    "create_method",
    "create_trainer",
    "has_raw_maps",
    "list_methods",
    "method_info",
    "method_options",
    "register_method",
]


@dataclasses.dataclass(frozen=True)
class MethodMeta:
    """Metadata of a registered method.

    Attributes:
        description: one line for ``wsbench list methods``.
        display_name: how tables name it (``""``: its registry name).
        trains: trains a classifier recipe of its own (``False``: reuses another method's).
        needs_grad: its maps need autograd (GradCAM family).
        needs_video: uses neighbouring frames (clips in training, or temporal fusion at inference).
    """

    description: str = ""
    display_name: str = ""
    trains: bool = True
    needs_grad: bool = False
    needs_video: bool = False


METHODS: Registry[MethodMeta] = Registry("method", "wsbench.methods", MethodMeta, builtins="wsbench.methods._builtins")
register_method = METHODS.register


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching an fnmatch pattern (plugins included)."""
    return METHODS.list(pattern)


def create_method(name: str, **options: Any) -> Method:
    """Instantiate a registered method with its options.

    Args:
        name: registry name.
        **options: fields of the method's ``Options`` dataclass.

    Returns:
        The method, with ``.name`` set.

    Raises:
        UserError: an option the method does not take, or a bad value.
    """
    entry = METHODS.entry(name)
    cls = entry.obj
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UserError(f"method {name!r} ({entry.source}) is not a wsbench.methods.Method subclass")
    fields = {f.name for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(options) - fields)
    if unknown:
        taken = ", ".join(sorted(fields)) or "none"
        raise UserError(f"method {name!r} takes no option {unknown[0]!r} (its options: {taken})")
    try:
        method = cls(**options)
    except (TypeError, ValueError) as err:
        raise UserError(f"method {name!r}: {err}") from None
    method.name = name
    return method


def create_trainer(method: Method) -> Method:
    """The method whose recipe trains ``method``'s classifier (named by :meth:`Method.classifier`).

    It supplies the loss terms and the model's :attr:`Method.head`; often ``method``'s own kind.
    """
    name, options = method.classifier()
    return create_method(name, **options)


def method_info(method: Method, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the tables need to know about a run's method, recorded in its ``config.json``.

    The tables (:mod:`wsbench.report`) read this instead of the registry, so they never import
    a method (nor torch).

    Args:
        method: the run's method, with its options (``.name`` set).
        defaults: the option defaults the run's recipe sets for it
            (:meth:`~wsbench.recipes.NamedRecipe.options_for`).

    Returns:
        ``display_name`` (how tables name it), ``modules`` (``[spatial, temporal]`` or ``None``,
        see :meth:`Method.modules`), ``default_options`` (its options' defaults under the recipe),
        ``own_fusion`` (the fusion its options choose, ``Fusion.as_config()`` or ``None``) and
        ``trains_on_clips`` (its classifier trains on clips, so it needs after videos).
    """
    entry = METHODS.entry(method.name)
    fusion = method.fusion()
    modules = method.modules()
    return {
        "display_name": entry.meta.display_name or method.name,
        "modules": list(modules) if modules is not None else None,
        "default_options": dataclasses.asdict(create_method(method.name, **(defaults or {})).options),
        "own_fusion": fusion.as_config() if fusion else None,
        "trains_on_clips": create_trainer(method).clip_length() > 1,
    }


def complete_method_info(records: Iterable[Any]) -> list[Any]:
    """Fill in ``method_info`` for run records written before ``config.json`` kept it, from the registry.

    Only the records in memory change, never a file. Light: the registry and the methods' option
    classes, no torch.

    Args:
        records: :class:`~wsbench.runs.RunRecord` objects.

    Returns:
        The records, as a list.

    Raises:
        UserError: an old record whose method is not installed, or that it cannot be built with,
            naming the record's ``config.json`` and why.
    """
    from ..recipes import RECIPES

    records = list(records)
    for record in records:
        configs = [c for c in (record.config, (record.result or {}).get("config")) if isinstance(c, dict)]
        if not configs or any("method_info" in c for c in configs):
            continue
        config = {k: v for c in reversed(configs) for k, v in c.items()}
        name = str(config.get("method") or (record.result or {}).get("method") or "?")
        recipe = RECIPES.get(config.get("recipe_name") or "")
        try:
            method = create_method(name, **(config.get("method_options") or {}))
            info = method_info(method, recipe.options_for(name) if recipe else {})
        except (UserError, RegistryError) as err:  # a method not installed, or options of another version
            why = f"{name!r} is not an installed method" if isinstance(err, RegistryError) else str(err)
            raise UserError(f"{record.path / 'config.json'}: recorded before config.json kept method_info (what "
                            f"the tables read), and {why} to supply it; install it, or move the run out of the "
                            "runs directory") from None
        for c in configs:
            c["method_info"] = info
    return records


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """A method option as the CLI sees it."""

    name: str
    type: Any
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


def method_options(name: str) -> list[OptionSpec]:
    """The options of method ``name``, from its ``Options`` dataclass."""
    cls = METHODS.get(name)
    hints = typing.get_type_hints(cls.Options)
    specs = []
    for f in dataclasses.fields(cls.Options):
        hint = hints.get(f.name, str)
        choices = None
        if typing.get_origin(hint) is typing.Literal:
            choices = tuple(str(c) for c in typing.get_args(hint))
            hint = str
        default = f.default if f.default is not dataclasses.MISSING else None
        specs.append(OptionSpec(f.name, hint, default, f.metadata.get("help", ""), choices))
    return specs
