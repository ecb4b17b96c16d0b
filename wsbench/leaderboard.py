"""The tables of a runs directory as ``wsbench leaderboard`` prints them, for the command, suites and the API.

The table builders (:mod:`wsbench.report`, :mod:`wsbench.stages`) read run records only; this
module chooses which records each of them gets: distilled runs (:func:`wsbench.runs.is_distilled`)
go to the two-stage table only, and records written before ``config.json`` kept ``method_info``
have it filled in from the installed methods (:func:`wsbench.methods.complete_method_info`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import UserError
from .runs import RunRecord, is_distilled, is_reference

__all__ = ["reference_runs", "stage_runs", "stages_text", "table_runs", "tables_text"]


def table_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The records the comparison, ablation, background and pairs tables read: every run but the distilled ones,
    each with its ``method_info`` (filled in for runs recorded before ``config.json`` kept it).

    Raises:
        UserError: an old record whose method is not installed (see :func:`wsbench.methods.complete_method_info`).
    """
    from .methods import complete_method_info

    return complete_method_info(r for r in records if not is_distilled(r.config) and not is_reference(r.config))


def reference_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The supervised reference runs (``wsbench distill --supervised-reference``): a column of the comparison and
    a row of the stages table, never a method."""
    return [r for r in records if is_reference(r.config)]


def stage_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The records the two-stage table reads: the source runs (as :func:`table_runs`), then the distilled runs."""
    records = list(records)
    return table_runs(records) + [r for r in records if is_distilled(r.config) or is_reference(r.config)]


def tables_text(records: Iterable[RunRecord], names: list[str], fmt: str = "markdown", metric: str = "iou_illegal",
                ci: bool = False, footnotes: list[str] | None = None) -> str | None:
    """The named tables of ``records`` rendered as ``wsbench leaderboard --table`` prints them.

    Args:
        records: run records (distilled runs are left out: they are the ``stages`` table's).
        names: tables of :func:`wsbench.report.build_tables`, or ``["long"]`` (one row per run and metric).
        fmt: ``markdown``, ``latex``, ``csv`` or ``json``.
        metric: the comparison and ablation metric.
        ci: add bootstrap intervals over test videos.
        footnotes: lines added under every table but the background one (a suite's sweep choices).

    Returns:
        The text, or ``None`` when no run is finished.

    Raises:
        UserError: ``--table long`` with ``--ci`` or LaTeX.
    """
    from .report import build_tables, long_form, render

    records = list(records)
    references = reference_runs(records)
    records = table_runs(records)
    if not any(r.finished for r in records):
        return None
    if names == ["long"]:
        if ci:
            raise UserError("--ci adds intervals to table cells; --table long has one row per run and metric")
        if fmt == "latex":
            raise UserError("--table long has one row per run and metric: use --format csv, json or markdown")
        df = long_form(records)
        return {"csv": lambda: df.to_csv(index=False), "json": lambda: df.to_json(orient="records", indent=2) + "\n",
                "markdown": lambda: df.to_markdown(index=False) + "\n"}[fmt]()
    tables = build_tables(records, names, metric, ci, references)
    for table in tables:  # a suite's [sweep] choices, under the tables that show the chosen runs
        if table.name != "background":
            table.footnotes += footnotes or []
    return render(tables, fmt)


def stages_text(records: Iterable[RunRecord], fmt: str = "markdown") -> str:
    """``wsbench leaderboard --table stages``: the two-stage table of the distilled runs among ``records``.

    Raises:
        UserError: ``fmt`` is ``latex``.
    """
    from .stages import stages_table

    if fmt == "latex":
        raise UserError("--table stages: use --format markdown, csv or json")
    return stages_table(stage_runs(records), fmt)
