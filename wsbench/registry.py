"""One small registry for methods, datasets and optical-flow estimators.

Built-in entries register themselves with a decorator when their module is imported::

    @METHODS.register("cam", trains=True)
    class Cam(Method): ...

Third-party packages declare entry points in their ``pyproject.toml``::

    [project.entry-points."wsbench.methods"]
    tcam = "wsbench_tcam:TemporalMaxCam"

Entry points are listed without importing anything; the module is imported the first time the
entry is asked for, and it registers itself with the same decorator. A plugin that fails to
import gives a warning naming it, never a broken command. ``WSBENCH_DISABLE_PLUGIN_AUTOLOAD=1``
turns discovery off (like pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).

This module must stay light: it imports nothing heavier than the standard library.
"""

from __future__ import annotations

import builtins
import dataclasses
import fnmatch
import importlib.metadata
import os
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Entry", "Registry", "RegistryError", "UnknownEntryError", "PluginWarning"]

T = TypeVar("T")
M = TypeVar("M")

BUILTIN = "built-in"
DISABLE_ENV = "WSBENCH_DISABLE_PLUGIN_AUTOLOAD"


class RegistryError(Exception):
    """A registry was used wrongly (duplicate name, plugin that registers nothing, ...)."""


class UnknownEntryError(RegistryError, KeyError):
    """A name that is not in the registry. The message lists what is available."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class PluginWarning(UserWarning):
    """A third-party plugin could not be loaded; everything else keeps working."""


@dataclasses.dataclass(frozen=True)
class Entry(Generic[M]):
    """One registered object with its frozen metadata record and where it came from.

    Attributes:
        name: registry name (what users type).
        obj: the registered class or function.
        meta: the registry's metadata record for this entry.
        source: ``"built-in"`` or ``"<distribution> <version>"`` for plugins.
    """

    name: str
    obj: Any
    meta: M
    source: str


class Registry(Generic[M]):
    """A name → object table with wildcard listing and lazy entry-point plugins.

    Args:
        kind: singular noun used in messages (``"method"``).
        group: entry-point group scanned for plugins (``"wsbench.methods"``).
        meta_type: frozen dataclass whose fields are the metadata keywords of :meth:`register`.
        builtins: module imported before the first lookup, whose import registers the
            built-in entries (keeps ``import wsbench.registry`` cheap).
    """

    def __init__(self, kind: str, group: str, meta_type: type[M], builtins: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self.meta_type = meta_type
        self._builtins = builtins
        self._builtins_loaded = builtins is None
        self._entries: dict[str, Entry[M]] = {}
        self._plugins: dict[str, importlib.metadata.EntryPoint] | None = None
        self._loading: tuple[str, str] | None = None  # (name, source) of the plugin being imported
        self._failed: dict[str, str] = {}

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator that registers a class or function under ``name``.

        Args:
            name: the registry name; must not be taken already.
            **meta: fields of the registry's metadata record.

        Returns:
            The decorator; it returns the object unchanged.

        Raises:
            RegistryError: if ``name`` is taken or a metadata field is unknown.
        """
        try:
            record = self.meta_type(**meta)
        except TypeError as err:
            raise RegistryError(f"bad metadata for {self.kind} {name!r}: {err}") from None

        def decorator(obj: T) -> T:
            if name in self._entries:
                other = self._entries[name]
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered (from {other.source}); "
                    "choose another name"
                )
            source = self._loading[1] if self._loading is not None else BUILTIN
            self._entries[name] = Entry(name=name, obj=obj, meta=record, source=source)
            return obj

        return decorator

    # -- lookup -------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """Return the object registered under ``name`` (importing its plugin if needed)."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[M]:
        """Return the full :class:`Entry` for ``name``.

        Raises:
            UnknownEntryError: with the list of available names.
        """
        self._load_builtins()
        if name not in self._entries:
            plugins = self._discover()
            if name in plugins and name not in self._failed:
                self._load_plugin(name, plugins[name])
        if name not in self._entries:
            reason = f" (its plugin failed to load: {self._failed[name]})" if name in self._failed else ""
            available = ", ".join(self.list()) or "none"
            raise UnknownEntryError(f"unknown {self.kind} {name!r}{reason}; available: {available}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.list()

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching an fnmatch ``pattern``, plugins included, without importing them."""
        self._load_builtins()
        names = set(self._entries) | (set(self._discover()) - set(self._failed))
        return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))

    def entries(self, pattern: str = "*") -> builtins.list[Entry[M]]:
        """Entries matching ``pattern``; imports matching plugins (a failing one only warns)."""
        out = []
        for name in self.list(pattern):
            try:
                out.append(self.entry(name))
            except UnknownEntryError:
                continue
        return out

    # -- plugins ------------------------------------------------------------------------------
    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            importlib.import_module(self._builtins)  # type: ignore[arg-type]

    def _discover(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self._plugins is None:
            self._plugins = {}
            if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
                return self._plugins
            for ep in importlib.metadata.entry_points(group=self.group):
                self._plugins.setdefault(ep.name, ep)
        return self._plugins

    def _load_plugin(self, name: str, ep: importlib.metadata.EntryPoint) -> None:
        dist = getattr(ep, "dist", None)
        source = f"{dist.name} {dist.version}" if dist is not None else ep.value
        self._loading = (name, source)
        try:
            obj = ep.load()
        except SystemExit as err:  # sys.exit() in a plugin's module must not end wsbench either
            self._fail(name, source, f"it called sys.exit({err.code!r}) while being imported")
            return
        except Exception as err:  # a broken plugin must not break wsbench
            self._fail(name, source, f"{type(err).__name__}: {err}")
            return
        finally:
            self._loading = None
        if name not in self._entries:
            self._fail(
                name,
                source,
                f"entry point {ep.value!r} was imported but registered no {self.kind} named {name!r}; "
                f"decorate {getattr(obj, '__name__', obj)!r} with register_{self.kind}({name!r})",
            )

    def _fail(self, name: str, source: str, reason: str) -> None:
        self._failed[name] = reason
        warnings.warn(f"wsbench {self.kind} plugin {name!r} from {source} was not loaded: {reason}",
                      PluginWarning, stacklevel=3)

    def reset_plugins(self) -> None:
        """Forget discovered plugins so the next lookup scans entry points again (for tests)."""
        self._plugins = None
        self._failed.clear()
        for name in [n for n, e in self._entries.items() if e.source != BUILTIN]:
            del self._entries[name]
