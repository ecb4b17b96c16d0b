"""``[sweep.METHOD]``: of every swept run, keep the grid point chosen on validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..runs import RunRecord, recorded_split_seed
from .plan import grid_points
from .spec import SuiteSpec

__all__ = ["apply_sweeps"]


def _grid_text(grid: dict[str, list[Any]]) -> str:
    return " × ".join(f"{k} ∈ {{{', '.join(str(v) for v in values)}}}" for k, values in grid.items())


def apply_sweeps(spec: SuiteSpec, records: list[RunRecord], runs_dir: Path) -> tuple[list[RunRecord], list[str]]:
    """Keep, of every swept run, the grid point chosen on validation; record the grid and the choice.

    For every ``[[runs]]`` entry of a method with a ``[sweep.METHOD]`` grid, on every data set
    (name, root and options) and split seed, each grid point's runs (one per training seed) are
    scored by their mean ``metrics.val_iou_illegal`` (the validation IoU at the validation-chosen
    threshold); the point with the highest mean is kept (ties: the first in grid order) and the
    other points' runs leave the suite's tables. Only validation decides; the kept runs' test
    scores are what the tables show, under the entry's label (else the method's name and
    "tuned on val"). A point without a validation IoU never wins. The grid, every point's mean
    validation IoU and the choice are written to ``RUNS_DIR/sweeps/<suite name>.json``.

    Args:
        spec: the suite.
        records: its finished runs (as :func:`run_suite` returns them).
        runs_dir: the runs directory.

    Returns:
        ``(records to tabulate, footnotes)``: one footnote per swept entry naming its grid and
        choices. Without sweeps, ``(records, [])`` unchanged and nothing written.
    """
    import json

    from ..files import atomic_write_json
    from ..methods import METHODS

    if not spec.sweep:
        return records, []
    kept: list[RunRecord] = []
    groups: dict[tuple[int, str], dict[str, list[RunRecord]]] = {}
    for record in records:
        config = record.config
        entry = _swept_entry(spec, config)
        if entry is None:
            kept.append(record)
            continue
        data = json.dumps([config.get("dataset"), config.get("data_root"), config.get("dataset_options"),
                           recorded_split_seed(config)], sort_keys=True, default=str)
        point = {k: config["method_options"].get(k) for k in spec.sweep[spec.runs[entry].method]}
        groups.setdefault((entry, data), {}).setdefault(json.dumps(point, sort_keys=True), []).append(record)
    choices, notes = [], []
    for (entry, data), points in groups.items():
        run = spec.runs[entry]
        scored: list[tuple[str, float | None, list[RunRecord]]] = []
        for key, runs in points.items():
            values = [(r.result or {}).get("metrics", {}).get("val_iou_illegal") for r in runs]
            mean = None if any(v is None for v in values) else sum(values) / len(values)
            scored.append((key, mean, runs))
        order = [json.dumps(p, sort_keys=True) for p in grid_points(spec, run.method)]
        scored.sort(key=lambda s: order.index(s[0]) if s[0] in order else len(order))
        valid = [(k, m, rs) for k, m, rs in scored if m is not None]
        best = max(valid, key=lambda s: s[1], default=None)
        label = run.label or f"{METHODS.entry(run.method).meta.display_name} (tuned on val)"
        if best is not None:
            kept += [_as_tuned(r, label, json.loads(best[0])) for r in best[2]]
        dataset, _, _, split_seed = json.loads(data)
        choices.append({"entry": entry, "method": run.method, "label": label, "dataset": dataset,
                        "split_seed": split_seed, "grid": spec.sweep[run.method],
                        "points": [{"options": json.loads(k), "val_iou_illegal": m, "runs": [r.run_id for r in rs]}
                                   for k, m, rs in scored],
                        "chosen": json.loads(best[0]) if best else None})
        chosen = (", ".join(f"{k}={v}" for k, v in json.loads(best[0]).items())
                  + f" (val IoU ×100 {100 * best[1]:.2f})" if best else "none (no validation IoU)")
        split = "" if split_seed is None else f" split seed {split_seed}"
        notes.append(f"{label}: tuned on validation over {_grid_text(spec.sweep[run.method])} ({len(order)} "
                     f"configurations × {max(len(rs) for _, _, rs in scored)} seed(s)) on {dataset}{split}; chosen "
                     f"{chosen}; only its test score is shown.")
    atomic_write_json(Path(runs_dir) / "sweeps" / f"{spec.name}.json",
                      {"suite": spec.name, "sweep": spec.sweep, "choices": choices})
    return kept, notes


def _as_tuned(record: RunRecord, label: str, chosen: dict[str, Any]) -> RunRecord:
    """A chosen grid point's run as the suite's tables read it: under the entry's label, and with the chosen
    values as its method's defaults (``method_info.default_options``), so that tables which take a method's
    default configuration (the ablation's modules) take the tuned one."""
    config = {**record.config, "label": label}
    info = config.get("method_info")
    if isinstance(info, dict):  # older records get theirs from the installed methods, untuned
        config["method_info"] = {**info, "default_options": {**(info.get("default_options") or {}), **chosen}}
    return dataclasses.replace(record, config=config)


def _swept_entry(spec: SuiteSpec, config: dict[str, Any]) -> int | None:
    """The ``[[runs]]`` entry (index) a finished run of the suite came from, if its method is swept: of the
    entries of its method and label whose own options (other than the grid's) it has, the most specific."""
    method = config.get("method")
    grid = spec.sweep.get(method) if isinstance(method, str) else None
    if not grid:
        return None
    options = config.get("method_options") or {}
    matches = []
    for i, run in enumerate(spec.runs):
        fixed = {k: v for k, v in run.options.items() if k not in grid}
        if run.method == method and run.label == config.get("label") and \
                all(options.get(k) == v for k, v in fixed.items()):
            matches.append((len(fixed), -i))
    return -max(matches)[1] if matches else None

