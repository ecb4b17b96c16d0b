"""The progress switch: one setting, ``$WSBENCH_PROGRESS`` its default, ``-q`` scoped to its command."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from wsbench import progress
from wsbench.cli import cli
from wsbench.flow import flo
from wsbench.progress import (
    PROGRESS_ENV,
    no_bars_unless,
    progress_bars,
    progress_enabled,
    set_progress,
    show_progress,
)


@pytest.fixture(autouse=True)
def _switch_restored():
    yield
    set_progress(None)


def test_environment_is_the_default_and_code_overrides_it(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert progress_enabled() and show_progress() and not show_progress(False)
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert not progress_enabled() and not show_progress()
    set_progress(True)
    assert show_progress() and not show_progress(False)  # a caller can still decline its own bar
    set_progress(None)
    assert not show_progress()


def test_progress_bars_is_scoped_and_restores_on_error(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    with progress_bars(False):
        assert not show_progress()
        with progress_bars(True):
            assert show_progress()
        assert not show_progress()
    assert show_progress() and progress._setting is None
    with pytest.raises(RuntimeError), progress_bars(False):
        raise RuntimeError("boom")
    assert show_progress()


def test_a_function_asked_for_no_bars_turns_them_off_inside_only(monkeypatch):
    """``progress=False`` of execute/run_suite: off for the body; ``True`` never turns bars on against the switch."""
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    with no_bars_unless(False):
        assert not show_progress()
    assert show_progress()
    with no_bars_unless(True):
        assert show_progress()
    monkeypatch.setenv(PROGRESS_ENV, "0")
    with no_bars_unless(True):
        assert not show_progress()


def test_quiet_lasts_for_its_command_only(video_folder, tmp_path, monkeypatch):
    """-q turns bars off inside the command and leaves no trace (the environment is not written)."""
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    seen = []
    real = flo.write_flo

    def spy(path, flow):
        seen.append(show_progress())
        real(path, flow)

    monkeypatch.setattr(flo, "write_flo", spy)
    result = CliRunner().invoke(cli, ["data", "flow", "-d", "video-folder", "--data-root", str(video_folder),
                                      "--out", str(tmp_path / "flo"), "--flow", "farneback", "-q"])
    assert result.exit_code == 0, result.output
    assert seen and not any(seen), "a bar would have been drawn inside a -q command"
    assert show_progress() and PROGRESS_ENV not in os.environ
