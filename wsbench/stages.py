"""The "two stages" table (``wsbench leaderboard --table stages``), read from stored run records only.

One row per source method (and segmenter, when several were distilled): the CAM run's test IoU,
the IoU of its pseudo-labels on the train split (frames with GT masks; an evaluation of the CAM
run, never used for training), the distilled segmenter's test IoU, and the maps frames/s of the
CAM run and of the segmenter, each mean ± std over seeds. Everything comes from the distilled
runs' ``result.json`` (``distill`` holds the source run's numbers as they were when it was
distilled); nothing is computed again, and no torch is imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from .collapse import REASONS
from .runs import RunRecord

__all__ = ["STAGES_COLUMNS", "stages_frame", "stages_table"]

#: columns of the table: (key of a row's values, header)
STAGES_COLUMNS = (
    ("cam", "CAM IoU ×100 (test)"),
    ("pseudo", "pseudo-label IoU ×100 (train)"),
    ("segmenter", "segmenter IoU ×100 (test)"),
    ("cam_fps", "CAM maps frames/s"),
    ("segmenter_fps", "segmenter maps frames/s"),
)


def _latest(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Finished distilled runs, the latest of each configuration (a re-run with the same options counts once)."""
    latest: dict[str, RunRecord] = {}
    for record in sorted((r for r in records if r.finished and isinstance(r.config.get("distill"), dict)),
                         key=lambda r: r.run_id):
        latest[str(record.config.get("config_hash", record.run_id))] = record
    return list(latest.values())


def _label(result: dict[str, Any], recipes: int) -> str:
    info = result["distill"]
    if recipes <= 1:
        return str(info["source_method"])
    recipe = (result.get("config") or {}).get("recipe") or {}
    return f"{info['source_method']} → {recipe.get('architecture')} {recipe.get('encoder')}"


def _percent(x: Any) -> float | None:
    return None if x is None else 100 * float(x)


def stages_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per finished distilled run: its source method, dataset, seeds and the five stage numbers.

    Returns:
        A DataFrame with columns ``method``, ``dataset``, ``seed``, ``source_seed``, the keys of
        :data:`STAGES_COLUMNS` (IoUs ×100; ``None`` becomes NaN) and ``source_collapse`` (what failed
        in a collapsed source run, comma-separated keys of :data:`wsbench.collapse.REASONS`; empty if none).
    """
    rows = []
    records = list(records)
    by_id = {r.run_id: r for r in records}
    chosen = _latest(records)
    recipes = {str(sorted(((r.result or {}).get("config") or {}).get("recipe", {}).items())) for r in chosen}
    for record in chosen:
        result = record.result or {}
        info = result["distill"]
        # recorded with the distilled run since source_collapse exists; else the source run's own record
        source = by_id.get(str(info.get("source_run")))
        flagged = info.get("source_collapse") or ((source.result or {}).get("collapse") if source else None) or {}
        rows.append({
            "method": _label(result, len(recipes)), "dataset": result.get("dataset"), "seed": result.get("seed"),
            "source_seed": info.get("source_seed"),
            "cam": _percent(info.get("source_iou_illegal")),
            "pseudo": _percent((info.get("pseudo_labels_train") or {}).get("iou_illegal")),
            "segmenter": _percent((result.get("metrics") or {}).get("iou_illegal")),
            "cam_fps": info.get("source_maps_frames_per_second"),
            "segmenter_fps": (result.get("timings") or {}).get("maps_frames_per_second"),
            "source_collapse": ",".join(flagged.get("reasons") or []),
        })
    columns = ["method", "dataset", "seed", "source_seed"] + [k for k, _ in STAGES_COLUMNS] + ["source_collapse"]
    return pd.DataFrame(rows, columns=columns).astype({k: float for k, _ in STAGES_COLUMNS})


def _cell(values: pd.Series, digits: int) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def stages_table(records: Iterable[RunRecord], fmt: str = "markdown") -> str:
    """The two-stage table as text.

    Args:
        records: run records (any; only finished distilled runs are used).
        fmt: ``markdown``, ``csv`` or ``json`` (the last two: one row per method and data set with
            mean, std and count of each column).

    Returns:
        The table, or a line saying there is nothing to show.
    """
    df = stages_frame(records)
    if df.empty:
        return "**stages**: no finished distilled runs (wsbench distill --run RUN)\n"
    groups = df.groupby(["dataset", "method"], sort=True)
    if fmt in ("csv", "json"):
        stats = []
        for (dataset, method), group in groups:
            row: dict[str, Any] = {"dataset": dataset, "method": method, "runs": len(group)}
            for key, _ in STAGES_COLUMNS:
                row[f"{key}_mean"] = group[key].mean()
                row[f"{key}_std"] = group[key].std(ddof=1) if group[key].count() > 1 else None
            stats.append(row)
        out = pd.DataFrame(stats)
        return out.to_csv(index=False) if fmt == "csv" else out.to_json(orient="records", indent=2) + "\n"
    lines = []
    for dataset, part in df.groupby("dataset", sort=True):
        seeds = part.groupby("method")["seed"].count()
        counts = sorted(set(seeds.tolist()))
        runs_text = f"{counts[0]} run(s)" if len(counts) == 1 else f"{min(counts)}–{max(counts)} runs"
        table = pd.DataFrame([{"method": method + ("‡" if (group.source_collapse != "").any() else ""),
                               "runs": len(group),
                               **{header: _cell(group[key], 1 if "fps" in key else 2)
                                  for key, header in STAGES_COLUMNS}}
                              for method, group in part.groupby("method", sort=True)])
        notes = []
        for method, group in part[part.source_collapse != ""].groupby("method", sort=True):
            what = "; ".join(REASONS.get(r, r) for r in dict.fromkeys(",".join(group.source_collapse).split(",")))
            notes.append(f"‡ {method}: {len(group)} of {(part.method == method).sum()} source run(s) collapsed "
                         f"({what}): their maps, pseudo-labels and segmenter are a trivial output's")
        lines.append(f"**Two stages on {dataset}: the CAM run's test IoU → its pseudo-labels' IoU on the train "
                     f"split (frames with GT masks; an evaluation only) → the segmenter trained on them, test IoU "
                     f"(threshold chosen on val); maps frames/s of each; mean ± std over {runs_text} per method.**\n")
        lines.append(table.to_markdown(index=False) + "\n" + "".join(f"\n{note}\n" for note in notes))
    return "\n".join(lines)
