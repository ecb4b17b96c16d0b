"""CAM methods: the registry, :func:`create_method` and :func:`list_methods`.

Built-in methods, one small file each: ``cam``, ``gradcam``, ``f2f``, ``puzzlecam``, ``tccam``.
Third-party methods come from the ``wsbench.methods`` entry-point group (see CONTRIBUTING.md).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from ..errors import UserError
from ..registry import Registry
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
    "create_method",
    "create_trainer",
    "has_raw_maps",
    "list_methods",
    "method_options",
    "register_method",
]


@dataclasses.dataclass(frozen=True)
class MethodMeta:
    """Metadata of a registered method.

    Attributes:
        description: one line for ``wsbench list methods``.
        trains: trains a classifier recipe of its own (``False``: reuses another method's).
        needs_grad: its maps need autograd (GradCAM family).
        needs_video: uses neighbouring frames (clips in training, or temporal fusion at inference).
    """

    description: str = ""
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
