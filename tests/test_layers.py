"""The import graph of ``wsbench/`` follows its layers: every arrow points down, so there is no cycle.

Every ``import`` in every module counts, also those inside functions and under ``TYPE_CHECKING``
(an import hidden in a function is still an arrow). A package (``wsbench.data``, ``wsbench.methods``,
``wsbench.flow``) is one unit: imports inside it are its own business. CONTRIBUTING.md ("Layers")
draws the same table.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wsbench"

#: top to bottom; a module may import modules of lower layers only (never its own layer or above)
LAYERS: dict[str, tuple[str, ...]] = {
    "contracts for tests and plugins (nothing in wsbench imports them)": ("wsbench.testing",),
    "python -m wsbench": ("wsbench.__main__",),
    "command line": ("wsbench.cli",),
    "public Python API": ("wsbench.api",),
    "a suite end to end: plan once, choose the launcher, tables": ("wsbench.orchestrate",),
    "suite launchers": ("wsbench.launch", "wsbench.slurm"),
    "suites": ("wsbench.suite",),
    "one run as launchers start it (execute, TensorBoard)": ("wsbench.runner",),
    "one run": ("wsbench.pipeline",),
    "products of runs": ("wsbench.classifiers", "wsbench.export", "wsbench.segment", "wsbench.figures",
                         "wsbench.leaderboard"),
    "second stage": ("wsbench.distill",),
    "the two-stage table (grouped by the comparison's code)": ("wsbench.stages",),
    "training, finished runs, tables": ("wsbench.train", "wsbench.inference", "wsbench.report"),
    "metrics": ("wsbench.evaluate", "wsbench.sanity"),
    "map production": ("wsbench.maps",),
    "methods": ("wsbench.methods",),
    "run records": ("wsbench.runs",),
    "data, losses, downloads": ("wsbench.data", "wsbench.losses", "wsbench.fetch"),
    "flow, networks": ("wsbench.flow", "wsbench.model"),
    "the mask rule, a training's state on disk": ("wsbench.masks", "wsbench.checkpoint"),
    "leaves": ("wsbench", "wsbench.files", "wsbench.registry", "wsbench.schema", "wsbench.progress",
               "wsbench.recipes", "wsbench.texts", "wsbench.tblog", "wsbench.device", "wsbench.distributed",
               "wsbench.bootstrap", "wsbench.backbones", "wsbench.collapse"),
    "errors": ("wsbench.errors",),
}

#: ``wsbench.report`` builds tables from run records: nothing heavier than these (and pandas)
REPORT_MAY_IMPORT = {"wsbench.runs", "wsbench.bootstrap", "wsbench.collapse", "wsbench.schema", "wsbench.errors",
                     "wsbench.files", "wsbench.recipes", "wsbench.texts"}


#: what a run never needs: the deploy layer (pseudo-label export, streaming segmentation) consumes finished runs
PIPELINE_NEVER_REACHES = {"wsbench.export", "wsbench.segment"}


def _rank() -> dict[str, int]:
    return {unit: depth for depth, units in enumerate(reversed(LAYERS.values())) for unit in units}


def unit_of(module: str, rank: dict[str, int]) -> str | None:
    """The table entry a module belongs to: itself or its package (``wsbench.flow.raft`` → ``wsbench.flow``)."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in rank:
            return ".".join(parts[:n])
    return module if module in rank else None


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module under ``root`` (a package's ``__init__`` is the package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(module: str, source: str, known: set[str], is_package: bool = False) -> set[str]:
    """The wsbench modules that ``source`` (the text of ``module``) imports anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # ``from . import x`` imports the submodule x when there is one, else a name of the package
            names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: wsbench modules it imports}`` for every module of the package."""
    files = modules(root)
    return {m: imports_of(m, f.read_text(), set(files), f.name == "__init__.py") for m, f in files.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that ``start`` imports, directly or through other modules of ``graph``."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def violations(graph: dict[str, set[str]], skip: tuple[str, ...] = ()) -> list[str]:
    """Arrows that do not point to a lower layer, and modules the table does not place."""
    rank = _rank()
    out = []
    for module, targets in sorted(graph.items()):
        unit = unit_of(module, rank)
        if unit is None:
            out.append(f"{module}: not in the layer table (add it to LAYERS and to CONTRIBUTING.md)")
            continue
        if unit in skip:
            continue
        for target in sorted(targets):
            other = unit_of(target, rank)
            if other is None or other == unit:
                continue  # unplaced modules are reported on their own; a package's insides are its own
            if rank[other] >= rank[unit]:
                out.append(f"{module} imports {target}: {other} is not below {unit}")
    return out


def test_every_import_points_down_the_layers():
    assert violations(import_graph()) == []


def test_report_reads_run_records_only():
    rank = _rank()
    graph = import_graph()
    for table in ("wsbench.report", "wsbench.stages"):
        used = {unit_of(t, rank) for m, targets in graph.items() if unit_of(m, rank) == table for t in targets}
        assert used <= REPORT_MAY_IMPORT | {"wsbench.report"}, sorted(used - REPORT_MAY_IMPORT)


def test_the_graph_covers_the_whole_package():
    """The checks above see every module: the graph has a node for each ``.py`` file, counted here on its own."""
    files = sum(name.endswith(".py") for folder, _, names in os.walk(PACKAGE) if "__pycache__" not in folder
                for name in names)
    graph = import_graph()
    assert files > 50 and len(graph) >= files, f"{len(graph)} modules in the graph, {files} .py files in {PACKAGE}"
    assert {"wsbench", "wsbench.pipeline", "wsbench.data.synthetic", "wsbench.methods.tccam"} <= set(graph)


def test_loading_a_finished_run_does_not_import_the_trainer():
    assert not reachable(import_graph(), "wsbench.inference") & {"wsbench.train", "wsbench.pipeline",
                                                                  "wsbench.classifiers"}


def test_pipeline_never_imports_the_deploy_layer():
    """A run produces a result and maps; exporting pseudo-labels or segmenting streams consumes finished runs, so
    ``wsbench.pipeline`` reaches neither ``export`` nor ``segment``, not even through another module."""
    assert sorted(reachable(import_graph(), "wsbench.pipeline") & PIPELINE_NEVER_REACHES) == []


def test_the_pipeline_rule_can_fail():
    graph = {"wsbench.pipeline": {"wsbench.classifiers"}, "wsbench.classifiers": {"wsbench.export"},
             "wsbench.export": set()}
    assert reachable(graph, "wsbench.pipeline") & PIPELINE_NEVER_REACHES == {"wsbench.export"}


def test_contributing_draws_the_same_layers():
    text = (PACKAGE.parent / "CONTRIBUTING.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    rows = [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines() if line.strip() not in ("", "↓")]
    drawn = [sorted("wsbench." + name.strip().rstrip("/") for name in row.split(" · ")) for row in rows]
    table = [sorted(units) for units in LAYERS.values()]
    table = [[u for u in units if u != "wsbench"] for units in table]  # the package's own __init__ is not drawn
    assert drawn == table


def test_the_check_catches_a_wrong_way_import():
    """A synthetic graph, and a synthetic module whose upward import hides in a function."""
    ok = {"wsbench.maps": {"wsbench.methods", "wsbench.flow.warping"},
          "wsbench.flow.raft": {"wsbench.flow", "wsbench.files"}}
    assert violations(ok) == []
    assert violations({"wsbench.data.cache": {"wsbench.runs"}}) == [
        "wsbench.data.cache imports wsbench.runs: wsbench.runs is not below wsbench.data"]
    assert violations({"wsbench.evaluate": {"wsbench.inference"}})  # the cycle this table removed
    assert violations({"wsbench.flow.raft": {"wsbench.data.io"}})  # flow sits below data
    assert violations({"wsbench.model": {"wsbench.model2"}, "wsbench.model2": set()}) == [
        "wsbench.model2: not in the layer table (add it to LAYERS and to CONTRIBUTING.md)"]
    source = "import numpy\n\ndef f():\n    from ..pipeline import execute\n    return execute\n"
    known = {"wsbench.pipeline", "wsbench.data", "wsbench.data.synthetic"}
    found = imports_of("wsbench.data.synthetic", source, known)
    assert found == {"wsbench.pipeline"}
    assert violations({"wsbench.data.synthetic": found}) == [
        "wsbench.data.synthetic imports wsbench.pipeline: wsbench.pipeline is not below wsbench.data"]
