"""The "two stages" table (``wsbench leaderboard --table stages``), read from stored run records only.

Grouped exactly like the comparison table (:func:`wsbench.report.grouped`): one section per data set
identity (name, resolved root, options, content), one row per configuration — the source run's
(method, options, fusion, recipe, map inference) plus the segmenter's recipe — and one sample per
configuration and seed pair (source seed, distill seed): a re-run of either counts once, its latest
finished run, and a footnote counts the re-runs ignored. The columns: the CAM run's test IoU, the IoU
of its pseudo-labels on the train split (frames with GT masks; an evaluation of the CAM run, never
used for training), the distilled segmenter's test IoU, and the maps frames/s of the CAM run and of
the segmenter, each mean ± std over the samples. Everything comes from the distilled runs'
``result.json`` (``distill`` holds the source run's numbers as they were when it was distilled) and
their ``config.json`` (``distill.source_config``: the source run's configuration); nothing is
computed again, and no torch is imported. A supervised reference (``wsbench distill --supervised-reference``:
the segmenter trained on the val split's GT masks) is a row of its own in its data set's section, with its
segmenter's numbers only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from .collapse import REASONS
from .report import grouped
from .report.reference import REFERENCE_COLUMN, reference_rows
from .runs import RunRecord, is_distilled

__all__ = ["STAGES_COLUMNS", "stages_frame", "stages_table"]

#: columns of the table: (key of a row's values, header)
STAGES_COLUMNS = (
    ("cam", "CAM IoU ×100 (test)"),
    ("pseudo", "pseudo-label IoU ×100 (train)"),
    ("segmenter", "segmenter IoU ×100 (test)"),
    ("cam_fps", "CAM maps frames/s"),
    ("segmenter_fps", "segmenter maps frames/s"),
)


#: the stages table's footnote on the supervised reference row (wsbench distill --supervised-reference)
_REFERENCE_NOTE = (f"{REFERENCE_COLUMN}: the same segmenter trained on the val split's GT masks (labels as the "
                   "pseudo-labels') instead of a CAM run's pseudo-labels, scored on test at the fixed threshold 0.5 "
                   "(val is its training data); no CAM, no pseudo-labels (–); not a weakly supervised method")


def _as_sample(record: RunRecord, sources: dict[str, RunRecord]) -> RunRecord:
    """A finished distilled run as a record of its two-stage configuration, for the comparison's grouping.

    Its config is the source run's (``distill.source_config``; for runs distilled before that was
    recorded, the source run's own record when it is among the records, else the source method's name
    alone) with the segmenter's recipe, its seed the pair (source seed, distill seed).
    """
    config, result = record.config, record.result or {}
    info = result["distill"]
    found = sources.get(str(info["source_run"]))
    source = config["distill"].get("source_config") or (dict(found.config) if found is not None else {
        **{k: config.get(k) for k in ("dataset", "data_root", "dataset_options", "resplit", "split_seed",
                                      "data_fingerprint", "data_content")}, "method": info["source_method"]})
    if "method_info" not in source:  # a source recorded before config.json kept it: its name stands for it
        source = {**source, "method_info": (found.config.get("method_info") if found is not None else None)
                  or {"display_name": info["source_method"]}}
    seed = [info.get("source_seed", source.get("seed")), result.get("seed", config.get("seed"))]
    sample = {**source, "dataset": config.get("dataset", source.get("dataset")), "seed": seed,
              "segmenter": config.get("recipe") or {}}
    return RunRecord(path=record.path, config=sample,
                     result={**result, "method": info["source_method"], "seed": seed, "config": sample})


def stages_frame(records: Iterable[RunRecord]) -> tuple[pd.DataFrame, list[str]]:
    """One row per sample of the two-stage table: its data set row, its configuration and the five numbers.

    Returns:
        ``(frame, footnotes)``: a DataFrame with columns ``data`` (the data set identity's row name),
        ``method`` (the configuration's name, as a comparison column), ``seed``, ``source_seed``,
        ``run_id``, the keys of :data:`STAGES_COLUMNS` (IoUs ×100; ``None`` becomes NaN) and
        ``source_collapse`` (what failed in a collapsed source run, comma-separated keys of
        :data:`wsbench.collapse.REASONS`; empty if none); the footnotes of the comparison's grouping
        (re-runs ignored).
    """
    records = list(records)
    sources = {r.run_id: r for r in records if r.finished and not is_distilled(r.config)}
    distilled = {r.run_id: r for r in records if r.finished and is_distilled(r.config)}
    samples = [_as_sample(r, sources) for r in distilled.values()]
    groups, notes = grouped(samples)
    rows = [{"data": ref["data"], "method": REFERENCE_COLUMN, "seed": ref["seed"], "source_seed": None,
             "run_id": run_id, "segmenter": ref["segmenter"], "segmenter_fps": ref["segmenter_fps"],
             "source_collapse": ""} for run_id, ref in reference_rows(records, samples).items()]
    for run_id, row, column in zip(groups.run_id, groups.row, groups.column, strict=True):
        result = distilled[run_id].result or {}
        info = result["distill"]
        # recorded with the distilled run since source_collapse exists; else the source run's own record
        source = sources.get(str(info.get("source_run")))
        flagged = info.get("source_collapse") or ((source.result or {}).get("collapse") if source else None) or {}
        rows.append({
            "data": row, "method": column, "seed": result.get("seed"), "source_seed": info.get("source_seed"),
            "run_id": run_id,
            "cam": _percent(info.get("source_iou_illegal")),
            "pseudo": _percent((info.get("pseudo_labels_train") or {}).get("iou_illegal")),
            "segmenter": _percent((result.get("metrics") or {}).get("iou_illegal")),
            "cam_fps": info.get("source_maps_frames_per_second"),
            "segmenter_fps": (result.get("timings") or {}).get("maps_frames_per_second"),
            "source_collapse": ",".join(flagged.get("reasons") or []),
        })
    columns = (["data", "method", "seed", "source_seed", "run_id"] + [k for k, _ in STAGES_COLUMNS]
               + ["source_collapse"])
    return pd.DataFrame(rows, columns=columns).astype({k: float for k, _ in STAGES_COLUMNS}), notes


def _percent(x: Any) -> float | None:
    return None if x is None else 100 * float(x)


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
    df, notes = stages_frame(records)
    if df.empty:
        return "**stages**: no finished distilled runs (wsbench distill --run RUN)\n"
    groups = df.groupby(["data", "method"], sort=True)
    if fmt in ("csv", "json"):
        stats = []
        for (data, method), group in groups:
            row: dict[str, Any] = {"dataset": data, "method": method, "runs": len(group)}
            for key, _ in STAGES_COLUMNS:
                row[f"{key}_mean"] = group[key].mean()
                row[f"{key}_std"] = group[key].std(ddof=1) if group[key].count() > 1 else None
            stats.append(row)
        out = pd.DataFrame(stats)
        return out.to_csv(index=False) if fmt == "csv" else out.to_json(orient="records", indent=2) + "\n"
    lines = []
    for dataset, part in df.groupby("data", sort=True):
        seeds = part.groupby("method")["seed"].count()
        counts = sorted(set(seeds.tolist()))
        runs_text = f"{counts[0]} run(s)" if len(counts) == 1 else f"{min(counts)}–{max(counts)} runs"
        table = pd.DataFrame([{"method": method + ("‡" if (group.source_collapse != "").any() else ""),
                               "runs": len(group),
                               **{header: _cell(group[key], 1 if "fps" in key else 2)
                                  for key, header in STAGES_COLUMNS}}
                              for method, group in part.groupby("method", sort=True)])
        marks = []
        for method, group in part[part.source_collapse != ""].groupby("method", sort=True):
            what = "; ".join(REASONS.get(r, r) for r in dict.fromkeys(",".join(group.source_collapse).split(",")))
            marks.append(f"‡ {method}: {len(group)} of {(part.method == method).sum()} source run(s) collapsed "
                         f"({what}): their maps, pseudo-labels and segmenter are a trivial output's")
        if (part.method == REFERENCE_COLUMN).any():
            marks.append(_REFERENCE_NOTE)
        lines.append(f"**Two stages on {dataset}: the CAM run's test IoU → its pseudo-labels' IoU on the train "
                     f"split (frames with GT masks; an evaluation only) → the segmenter trained on them, test IoU "
                     f"(threshold chosen on val); maps frames/s of each; mean ± std over {runs_text} per method.**\n")
        lines.append(table.to_markdown(index=False) + "\n" + "".join(f"\n{mark}\n" for mark in marks))
    return "\n".join(lines + [note + "\n" for note in notes])
