"""Rendering tables: GitHub markdown, LaTeX (booktabs), tidy CSV and JSON."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from typing import Any

from .model import Cell, Table

__all__ = ["latex_escape", "render"]


def _markdown(table: Table) -> str:
    from tabulate import tabulate

    def fmt(cell: Cell) -> str:
        return {"best": f"**{cell.text}**", "second": f"<u>{cell.text}</u>"}.get(cell.mark or "", cell.text)

    headers = list(table.columns)
    if table.groups:
        spans = [g for g, n in table.groups for _ in range(n)]
        headers = [f"{g.removeprefix('tested ')}: {c}" for g, c in zip(spans, headers, strict=True)]
    body = [[name] + [fmt(c) for c in cells] for name, cells in table.rows]
    text = f"**{table.caption}**\n\n" + tabulate(body, headers=[table.corner] + headers, tablefmt="github",
                                                  disable_numparse=True)
    return text + "".join(f"\n\n{note}" for note in table.footnotes)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$", "✓": r"\checkmark{}",
                  "✗": r"$\times$", "†": r"\textsuperscript{\dag}", "‡": r"\textsuperscript{\ddag}",
                  "§": r"\S{}", "¶": r"\P{}", "–": "--",
                  "<": r"\textless{}",
                  ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and turn the tables' Unicode symbols into LaTeX (needs amssymb).

    Hyphens stay hyphens: ``--cam`` becomes ``-{}-cam`` (TeX would set ``--`` as an en dash).
    """
    return "".join("-{}" if ch == "-" and text[i + 1:i + 2] == "-" else _LATEX_ESCAPES.get(ch, ch)
                   for i, ch in enumerate(text))


def _latex(table: Table) -> str:
    def fmt(cell: Cell) -> str:
        text = latex_escape(cell.text)
        return {"best": f"\\textbf{{{text}}}", "second": f"\\underline{{{text}}}"}.get(cell.mark or "", text)

    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(table.caption)}}}",
             f"\\label{{tab:wsbench-{table.name}}}", f"\\begin{{tabular}}{{l{'c' * len(table.columns)}}}", "\\toprule"]
    if table.groups:
        parts, rules, start = [""], [], 2
        for text, span in table.groups:
            parts.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(text)}}}")
            rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines.append(" & ".join(parts) + " \\\\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(latex_escape(h) for h in [table.corner] + table.columns) + " \\\\")
    lines.append("\\midrule")
    for name, cells in table.rows:
        lines.append(" & ".join([latex_escape(name)] + [fmt(c) for c in cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.footnotes:
        lines.append("\\par\\smallskip\\footnotesize " + " \\\\ ".join(latex_escape(f) for f in table.footnotes))
    lines.append("\\end{table}")
    return "\n".join(lines)


def _tidy(tables: list[Table]) -> list[dict[str, Any]]:
    rows = []
    for table in tables:
        spans = [g for g, n in (table.groups or []) for _ in range(n)] or [""] * len(table.columns)
        for name, cells in table.rows:
            for group, column, cell in zip(spans, table.columns, cells, strict=True):
                rows.append({"table": table.name, "row": name, "column": f"{group}: {column}" if group else column,
                             "text": cell.text, "mean": None if cell.mean is None else round(cell.mean, 4),
                             "std": None if cell.std is None else round(cell.std, 4), "runs": cell.n,
                             "seeds": cell.seeds, "split_seeds": cell.split_seeds,
                             "ci_low": None if cell.ci_low is None else round(cell.ci_low, 4),
                             "ci_high": None if cell.ci_high is None else round(cell.ci_high, 4),
                             "mark": cell.mark or "", "collapsed": cell.collapsed})
    return rows


def render(tables: list[Table], fmt: str = "markdown") -> str:
    """Render tables as ``markdown`` (GitHub), ``latex`` (booktabs; needs booktabs and amssymb),
    ``csv`` (one tidy row per cell) or ``json``.

    Args:
        tables: from :func:`build_tables`.
        fmt: output format.

    Returns:
        The text (empty tables are rendered with a one-line note in markdown and LaTeX).
    """
    if fmt == "markdown":
        return "\n\n".join(_markdown(t) if not t.empty else f"**{t.name}**: no finished runs for this table"
                           for t in tables) + "\n"
    if fmt == "latex":
        return "\n\n".join(_latex(t) if not t.empty else f"% {t.name}: no finished runs for this table"
                           for t in tables) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, ["table", "row", "column", "text", "mean", "std", "runs", "seeds", "split_seeds",
                                      "ci_low", "ci_high", "mark", "collapsed"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(_tidy(tables))
        return out.getvalue()
    if fmt == "json":
        payload = [{"name": t.name, "caption": t.caption, "corner": t.corner, "columns": t.columns,
                    "groups": t.groups, "footnotes": t.footnotes,
                    "rows": [{"row": name, "cells": [dataclasses.asdict(c) | {"text": c.text, "note": _json_note(c)}
                                                       for c in cells]}
                             for name, cells in t.rows]} for t in tables]
        return json.dumps(payload, indent=2, ensure_ascii=False, default=_nan_to_none) + "\n"
    raise ValueError(f"unknown format {fmt!r} (markdown, latex, csv, json)")


def _json_note(cell: Cell) -> str | None:
    """A cell's note where it has no value (``n/a``, ``–``), else ``None``."""
    return cell.note if cell.mean is None else None


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    raise TypeError(type(obj).__name__)
