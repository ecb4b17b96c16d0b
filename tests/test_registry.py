"""The registry: duplicates, wildcard listing, lazy entry-point plugins, broken plugins."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
import textwrap

import pytest

from wsbench.registry import PluginWarning, Registry, RegistryError, UnknownEntryError


@dataclasses.dataclass(frozen=True)
class Meta:
    trains: bool = True


def make(group: str = "wsbench.test_group") -> Registry:
    return Registry("widget", group, Meta)


def test_register_and_get_with_metadata():
    reg = make()

    @reg.register("alpha", trains=False)
    def alpha():
        return 1

    entry = reg.entry("alpha")
    assert entry.obj is alpha and entry.meta == Meta(trains=False) and entry.source == "built-in"
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.meta.trains = True  # type: ignore[misc]


def test_duplicate_name_refused():
    reg = make()
    reg.register("alpha")(lambda: 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha")(lambda: 2)


def test_unknown_metadata_field_refused():
    with pytest.raises(RegistryError, match="bad metadata"):
        make().register("x", colour="red")


def test_wildcard_listing_is_sorted():
    reg = make()
    for name in ("resnet50", "resnet18", "vit", "resnext"):
        reg.register(name)(object())
    assert reg.list("resnet*") == ["resnet18", "resnet50"]
    assert reg.list("res*") == ["resnet18", "resnet50", "resnext"]
    assert reg.list() == ["resnet18", "resnet50", "resnext", "vit"]
    assert reg.list("nothing*") == []


def test_unknown_name_lists_available():
    reg = make()
    reg.register("b")(object())
    reg.register("a")(object())
    with pytest.raises(UnknownEntryError) as err:
        reg.get("x")
    assert str(err.value) == "unknown widget 'x'; available: a, b"


def _fake_eps(monkeypatch, group: str, eps: list[importlib.metadata.EntryPoint]) -> None:
    real = importlib.metadata.entry_points

    def fake(**params):
        if params.get("group") == group:
            return importlib.metadata.EntryPoints(eps)
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)


def _plugin_module(tmp_path, monkeypatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_plugins_listed_without_import_and_loaded_on_get(tmp_path, monkeypatch):
    reg = make("wsbench.test_plugins")
    import tests.test_registry as this

    monkeypatch.setattr(this, "PLUGIN_REGISTRY", reg, raising=False)
    _plugin_module(tmp_path, monkeypatch, "wsb_fake_plugin", """
        import tests.test_registry as t
        @t.PLUGIN_REGISTRY.register("gamma", trains=False)
        class Gamma:
            pass
    """)
    ep = importlib.metadata.EntryPoint("gamma", "wsb_fake_plugin:Gamma", "wsbench.test_plugins")
    _fake_eps(monkeypatch, "wsbench.test_plugins", [ep])
    assert reg.list() == ["gamma"]
    assert "wsb_fake_plugin" not in sys.modules  # listing imported nothing
    entry = reg.entry("gamma")
    assert entry.obj.__name__ == "Gamma" and entry.meta.trains is False
    assert entry.source == "wsb_fake_plugin:Gamma"  # no distribution behind a hand-made entry point


def test_broken_plugin_warns_and_others_work(tmp_path, monkeypatch):
    reg = make("wsbench.test_broken")
    reg.register("builtin")(object())
    _plugin_module(tmp_path, monkeypatch, "wsb_broken_plugin", "raise RuntimeError('boom at import')\n")
    ep = importlib.metadata.EntryPoint("broken", "wsb_broken_plugin:X", "wsbench.test_broken")
    _fake_eps(monkeypatch, "wsbench.test_broken", [ep])
    assert reg.list() == ["broken", "builtin"]
    with pytest.warns(PluginWarning, match="'broken'.*boom at import"):
        entries = reg.entries()
    assert [e.name for e in entries] == ["builtin"]
    assert reg.list() == ["builtin"]  # a failed plugin is no longer offered
    with pytest.raises(UnknownEntryError, match="failed to load: RuntimeError: boom at import"):
        reg.get("broken")


def test_plugin_that_registers_nothing(tmp_path, monkeypatch):
    reg = make("wsbench.test_silent")
    _plugin_module(tmp_path, monkeypatch, "wsb_silent_plugin", "class X:\n    pass\n")
    ep = importlib.metadata.EntryPoint("silent", "wsb_silent_plugin:X", "wsbench.test_silent")
    _fake_eps(monkeypatch, "wsbench.test_silent", [ep])
    with pytest.warns(PluginWarning, match="registered no widget named 'silent'.*with register_widget\\('silent'\\)"):
        with pytest.raises(UnknownEntryError):
            reg.get("silent")


def test_registry_names_the_decorator_users_call():
    """The hint in the registers-nothing warning is a function that exists (register_method, ...)."""
    import wsbench.data
    import wsbench.flow
    import wsbench.methods

    for module, registry in ((wsbench.methods, wsbench.methods.METHODS), (wsbench.data, wsbench.data.DATASETS),
                             (wsbench.flow, wsbench.flow.FLOWS)):
        assert getattr(module, f"register_{registry.kind}") == registry.register


def test_autoload_can_be_disabled(monkeypatch):
    reg = make("wsbench.test_disabled")
    ep = importlib.metadata.EntryPoint("never", "does_not_exist:X", "wsbench.test_disabled")
    _fake_eps(monkeypatch, "wsbench.test_disabled", [ep])
    monkeypatch.setenv("WSBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert reg.list() == []


def test_builtin_registries_are_populated():
    from wsbench.data import list_datasets
    from wsbench.flow import list_flows
    from wsbench.methods import list_methods

    assert {"cam", "gradcam", "f2f", "puzzlecam", "tccam"} <= set(list_methods())
    assert {"synthetic-belt", "video-folder", "zerowaste-w"} <= set(list_datasets())
    assert {"dis", "farneback", "raft"} <= set(list_flows())
    assert list_datasets("zero*") == ["zerowaste-w"]
