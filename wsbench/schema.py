"""Small declarative schemas for the files wsbench reads back: suite specs, run records, caches.

A schema is built from the constructors below and applied with :meth:`Schema.check`, which raises
:class:`~wsbench.errors.UserError` naming the file, the key (``runs[2].options``) and what was
expected, so a wrong type is one line instead of a traceback deep inside wsbench::

    SPEC = Record({"seeds": ListOf(Int(0)), "runs": ListOf(Record({"method": Str()}), min_len=1)},
                  required=("runs",))
    SPEC.check(raw, "bench.toml")

:func:`load_json` reads a JSON file strictly (UTF-8, no duplicate keys, bounded nesting) and
checks it against a schema; :func:`decode_text` does the first part for other text formats.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = ["AnyValue", "Bool", "Int", "ListOf", "MapOf", "Number", "OneOf", "Optional", "Record", "Schema", "Str",
           "decode_text", "from_dataclass", "load_json"]


def _kind(value: Any) -> str:
    """How a value is named in messages: its JSON/TOML kind and a short repr."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             tuple: "a list", dict: "a table/object", type(None): "null"}
    text = repr(value)
    return f"{kinds.get(type(value), type(value).__name__)} ({text[:40] + '...' if len(text) > 40 else text})"


class Schema:
    """What a value must look like; subclasses implement :meth:`problem`."""

    #: what is expected, for messages ("an integer >= 0")
    describe = "a value"

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """``(key path, message)`` of the first violation, or ``None`` if ``value`` fits."""
        raise NotImplementedError

    def check(self, value: Any, source: str | os.PathLike, where: str = "", hint: str = "") -> Any:
        """Return ``value`` if it fits, else raise.

        Args:
            value: the parsed document (or part of it).
            source: the file, named first in the message.
            where: key path of ``value`` inside the document (empty: the whole document).
            hint: appended to the message (e.g. how to rebuild a cache file).

        Raises:
            UserError: ``<source>: <key>: expected <what>, got <kind (value)>[; hint]``.
        """
        found = self.problem(value, where)
        if found is not None:
            key, message = found
            raise UserError(f"{source}: {key + ': ' if key else ''}{message}{'; ' + hint if hint else ''}")
        return value

    def _expected(self, value: Any, where: str) -> tuple[str, str]:
        return where, f"expected {self.describe}, got {_kind(value)}"


class AnyValue(Schema):
    """Anything."""

    describe = "any value"

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """Never a problem."""
        return None


class Str(Schema):
    """A string."""

    describe = "a string"

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """A problem unless ``value`` is a ``str``."""
        return None if isinstance(value, str) else self._expected(value, where)


class Bool(Schema):
    """``true`` or ``false``."""

    describe = "true or false"

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """A problem unless ``value`` is a ``bool``."""
        return None if isinstance(value, bool) else self._expected(value, where)


def _in_range(noun: str, lo: float | None, hi: float | None, spec: str) -> str:
    """``noun`` with its bounds (``spec``: their format), as ``describe`` says it: ``a number in 0..1``, ``>= 0``."""
    if lo is not None and hi is not None:
        return f"{noun} in {lo:{spec}}..{hi:{spec}}"
    return noun + (f" >= {lo:{spec}}" if lo is not None else "") + (f" <= {hi:{spec}}" if hi is not None else "")


@dataclasses.dataclass
class Int(Schema):
    """An integer (not a boolean) in ``[lo, hi]``."""

    lo: int | None = None
    hi: int | None = None

    @property
    def describe(self) -> str:  # type: ignore[override]
        """``an integer``, with its range."""
        return _in_range("an integer", self.lo, self.hi, "")

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """A problem unless ``value`` is an ``int`` in range."""
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)
        return None if ok else self._expected(value, where)


@dataclasses.dataclass
class Number(Schema):
    """An integer or floating-point number (not a boolean); ``finite`` also refuses NaN and ±inf, ``lo`` and
    ``hi`` bound it (inclusive; a bound implies ``finite``)."""

    finite: bool = False
    lo: float | None = None
    hi: float | None = None

    @property
    def describe(self) -> str:  # type: ignore[override]
        """``a number`` or ``a finite number``, with its range."""
        if self.lo is None and self.hi is None:
            return "a finite number" if self.finite else "a number"
        return _in_range("a number", self.lo, self.hi, "g")

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """A problem unless ``value`` is a number (finite and in range if asked)."""
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        bounded = self.finite or self.lo is not None or self.hi is not None
        ok = ok and (not bounded or isinstance(value, int) or math.isfinite(value))  # huge ints overflow a float
        ok = ok and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)
        return None if ok else self._expected(value, where)


class OneOf(Schema):
    """One of the given values."""

    def __init__(self, *values: Any) -> None:
        self.values = values
        self.describe = "one of " + ", ".join(repr(v) for v in values)

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """A problem unless ``value`` equals one of the values (and has its type)."""
        ok = any(type(value) is type(v) and value == v for v in self.values)
        return None if ok else self._expected(value, where)


class Optional(Schema):
    """``null`` or what ``inner`` accepts."""

    def __init__(self, inner: Schema) -> None:
        self.inner = inner
        self.describe = f"{inner.describe} or null"

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """A problem of ``inner`` unless ``value`` is ``None``."""
        return None if value is None else self.inner.problem(value, where)


class ListOf(Schema):
    """A list whose items all fit ``item``, with at least ``min_len`` items (exactly ``length`` if given)."""

    def __init__(self, item: Schema, min_len: int = 0, length: int | None = None) -> None:
        self.item, self.min_len, self.length = item, min_len, length
        if length is not None:
            self.describe = f"a list of {length} items, each {item.describe}"
        else:
            self.describe = f"a {'non-empty ' if min_len else ''}list, each item {item.describe}"

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """The first item that does not fit, or a wrong type or length."""
        if not isinstance(value, (list, tuple)):
            return self._expected(value, where)
        if len(value) < self.min_len or (self.length is not None and len(value) != self.length):
            return where, f"expected {self.describe}, got {len(value)} item(s)"
        for i, item in enumerate(value):
            found = self.item.problem(item, f"{where}[{i}]")
            if found:
                return found
        return None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class MapOf(Schema):
    """A table/object with string keys whose values all fit ``value``."""

    def __init__(self, value: Schema) -> None:
        self.value = value
        self.describe = "a table/object"

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """The first value that does not fit, or a wrong type."""
        if not isinstance(value, dict):
            return self._expected(value, where)
        for key, item in value.items():
            found = self.value.problem(item, _join(where, str(key)))
            if found:
                return found
        return None


class Record(Schema):
    """A table/object with known keys.

    Args:
        fields: key → schema of its value.
        required: keys that must be present.
        extra: schema of keys not in ``fields`` (``None``: such a key is an error naming it).
    """

    describe = "a table/object"

    def __init__(self, fields: Mapping[str, Schema], required: Iterable[str] = (), extra: Schema | None = None) -> None:
        self.fields, self.required, self.extra = dict(fields), tuple(required), extra

    def problem(self, value: Any, where: str) -> tuple[str, str] | None:
        """A missing or unknown key, or the first value that does not fit."""
        if not isinstance(value, dict):
            return self._expected(value, where)
        for key in self.required:
            if key not in value:
                return where, f"missing key {key!r}"
        for key, item in value.items():
            schema = self.fields.get(key, self.extra)
            if schema is None:
                return _join(where, str(key)), f"unknown key (allowed: {', '.join(sorted(self.fields))})"
            found = schema.problem(item, _join(where, str(key)))
            if found:
                return found
        return None


def from_dataclass(cls: type) -> Record:
    """A :class:`Record` of a dataclass's fields from their type hints (all keys optional).

    Understands ``str``, ``int``, ``float``, ``bool``, ``Literal[...]``, ``X | None`` and
    ``tuple[int, int]``; other types accept any value.
    """
    hints = typing.get_type_hints(cls)

    def convert(hint: Any) -> Schema:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Literal:
            return OneOf(*args)
        if type(None) in args:
            rest = [a for a in args if a is not type(None)]
            return Optional(convert(rest[0]) if len(rest) == 1 else AnyValue())
        if origin is tuple and args and Ellipsis not in args:
            return ListOf(convert(args[0]), length=len(args))
        return {str: Str(), int: Int(), float: Number(), bool: Bool()}.get(hint, AnyValue())

    return Record({f.name: convert(hints[f.name]) for f in dataclasses.fields(cls)})


def decode_text(data: bytes, source: str | os.PathLike, what: str) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark is dropped).

    Raises:
        UserError: not UTF-8, naming the byte offset.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{source}: {what} is not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r})"
                        ) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_json(path: str | os.PathLike, schema: Schema, what: str, hint: str = "") -> Any:
    """Read a JSON file strictly and check it against ``schema``.

    Strict: UTF-8, no key twice in one object (JSON would keep the last silently), nesting no
    deeper than Python's recursion limit allows.

    Args:
        path: the file.
        schema: what the document must look like.
        what: what the file is, for messages (``"splits"``, ``"cached accuracy"``).
        hint: appended to every message (e.g. ``"delete X to rebuild it"``).

    Raises:
        UserError: unreadable file, invalid JSON or a document that does not fit, in one line
            naming the file (and the key).
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read {what} ({err.strerror or err}){tail}") from None
    try:
        doc = json.loads(decode_text(data, path, what), object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise UserError(f"{path}: {what} JSON is nested too deeply{tail}") from None
    except ValueError as err:  # JSONDecodeError or a duplicate key
        raise UserError(f"{path}: not valid {what} JSON ({err}){tail}") from None
    return schema.check(doc, path, hint=hint)
