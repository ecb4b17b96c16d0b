"""The docs stay true: README.md and CONTRIBUTING.md blocks marked runnable are run, every other
``wsbench ...`` command line in them parses with the current CLI.

A fenced block preceded by ``<!-- test: run -->`` or ``<!-- test: slow -->`` (the latter under
pytest's ``slow`` marker) is run: ``python`` blocks with the current interpreter, ``bash`` blocks
with ``bash -e`` in an empty temporary folder whose ``PATH`` starts with ``wsbench``, ``python``
and ``pip`` of the current interpreter. Substitutions ``; OLD -> NEW`` after the kind are applied
to the block first (tiny data, a temporary install target). The blocks get
``$WSBENCH_TEST_VIDEOS`` (a video-folder data set of small MP4 files with masks) and
``$WSBENCH_TEST_SITE`` (on ``PYTHONPATH``), and ``plugins/`` copied into their folder.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.conftest import write_mp4_folder
from wsbench.cli import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md"]
MARKER = re.compile(r"^<!--\s*test:\s*(?P<kind>\w+)(?P<subs>(?:\s*;[^;]*?->[^;]*?)*)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>\w*)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced block of a markdown file: where it is, its language, text and test marker."""

    path: Path
    line: int
    lang: str
    text: str
    kind: str | None = None
    subs: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"

    def substituted(self) -> str:
        """The text with the marker's substitutions applied, in order."""
        text = self.text
        for old, new in self.subs:
            assert old in text, f"{self.id}: substitution {old!r} matches nothing in its block"
            text = text.replace(old, new)
        return text


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, with the test marker on the line before it, if any.

    Raises:
        AssertionError: a marker that is not followed by a fenced block, or of an unknown kind.
    """
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        if lines[i].lstrip().startswith("<!-- test") and not marker:
            raise AssertionError(f"{path.name}:{i + 1}: malformed test marker {lines[i]!r}")
        if marker:
            assert marker["kind"] in ("run", "slow"), f"{path.name}:{i + 1}: unknown kind {marker['kind']!r}"
            assert i + 1 < len(lines) and FENCE.match(lines[i + 1]), \
                f"{path.name}:{i + 1}: a test marker must be followed by a fenced block"
        fence = FENCE.match(lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            previous = MARKER.match(lines[i - 1]) if i else None
            subs = tuple(tuple(part.strip() for part in item.split("->", 1))
                         for item in previous["subs"].split(";") if item.strip()) if previous else ()
            out.append(Block(path, i + 1, fence["lang"], "\n".join(lines[i + 1:end]) + "\n",
                             previous["kind"] if previous else None, subs))
            i = end
        i += 1
    return out


ALL = [b for path in DOCS for b in blocks(path)]
RUNNABLE = [b for b in ALL if b.kind]


def test_docs_have_runnable_blocks():
    """The docs test tests something: both files have marked blocks, and both kinds of language."""
    assert {b.path.name for b in RUNNABLE} == {"README.md", "CONTRIBUTING.md"}
    assert {b.lang for b in RUNNABLE} == {"bash", "python"}
    assert all(b.lang in ("bash", "python") for b in RUNNABLE), [b.id for b in RUNNABLE]


# -- running the marked blocks --------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_videos(tmp_path_factory) -> Path:
    """A video-folder data set of MP4 files: 3 recordings per camera, 20 frames at 10 fps, masks."""
    return write_mp4_folder(tmp_path_factory.mktemp("docs") / "videos", frames=20)


def _shims(folder: Path) -> Path:
    """``wsbench``, ``python`` and ``pip`` of this interpreter, as executables in ``folder``."""
    folder.mkdir(parents=True)
    for name, command in (("wsbench", "-m wsbench.cli"), ("python", ""), ("pip", "-m pip")):
        path = folder / name
        path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {command} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def _run_block(block: Block, work: Path, videos: Path) -> None:
    site = work.parent / "site"
    site.mkdir(exist_ok=True)
    shutil.copytree(REPO / "plugins", work / "plugins", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env = dict(os.environ, PATH=f"{_shims(work.parent / 'bin')}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), WSBENCH_TEST_VIDEOS=str(videos),
               WSBENCH_TEST_SITE=str(site), WSBENCH_DISABLE_PLUGIN_AUTOLOAD="")
    text = block.substituted()
    command = [sys.executable, "-c", text] if block.lang == "python" else ["bash", "-e", "-o", "pipefail", "-c", text]
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{block.id} failed ({proc.returncode}):\n{text}\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"


def _params(kind: str) -> list:
    return [pytest.param(b, id=b.id) for b in RUNNABLE if b.kind == kind]


@pytest.mark.parametrize("block", _params("run"))
def test_runnable_block(block, tmp_path, test_videos):
    (tmp_path / "work").mkdir()
    _run_block(block, tmp_path / "work", test_videos)


@pytest.mark.slow
@pytest.mark.parametrize("block", _params("slow"))
def test_slow_block(block, tmp_path, test_videos):
    if "pip install" in block.text:
        from tests.test_plugins import _offline_build_problem

        problem = _offline_build_problem()
        if problem:
            pytest.skip(f"cannot build plugins offline: {problem}")
    (tmp_path / "work").mkdir()
    _run_block(block, tmp_path / "work", test_videos)


# -- every other command line parses ----------------------------------------------------------------
def command_lines(block: Block) -> list[list[str]]:
    """The ``wsbench`` argument lists of a bash block's lines (also ``python -m wsbench`` and torchrun's)."""
    out = []
    for line in block.text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words[:1] == ["wsbench"]:
            out.append(words[1:])
        elif "-m" in words and words[words.index("-m") + 1:words.index("-m") + 2] == ["wsbench"]:
            out.append(words[words.index("-m") + 2:])
    return out


PARSED = [(b, args) for b in ALL if b.lang == "bash" and not b.kind for args in command_lines(b)]


def test_docs_have_command_lines_to_parse():
    assert len(PARSED) >= 40, len(PARSED)


@pytest.mark.parametrize("block,args", [pytest.param(b, a, id=f"{b.id}:{' '.join(a)[:60]}") for b, a in PARSED])
def test_command_line_parses(block, args, monkeypatch):
    """The command parses with the current CLI (options exist, choices are valid, required ones given);
    nothing runs: every command's callback is replaced."""
    calls = []

    def patch(command: click.Command) -> None:
        monkeypatch.setattr(command, "callback", lambda *a, **k: calls.append(command.name))
        for sub in getattr(command, "commands", {}).values():
            patch(sub)

    patch(cli)
    try:
        cli.main(args, prog_name="wsbench", standalone_mode=False)
    except click.ClickException as err:
        pytest.fail(f"{block.id}: wsbench {' '.join(args)}: {err.format_message()}")
    assert calls or "--help" in args or "-h" in args, f"{block.id}: wsbench {' '.join(args)} ran nothing"
