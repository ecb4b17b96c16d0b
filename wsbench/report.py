"""Tables from stored results: run records → long-form table → wide tables.

Nothing here recomputes a metric; every number comes from a ``result.json``.
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from .runs import RunRecord

__all__ = ["column_label", "comparison", "long_form"]


def column_label(result: dict[str, Any]) -> str:
    """How a run is named in a table: its method plus non-default options and fusion."""
    config = result.get("config", {})
    label = result.get("method", "?")
    from .methods import METHODS, create_method

    method = None
    try:
        method = create_method(label, **config.get("method_options", {})) if label in METHODS else None
        defaults = vars(create_method(label).options) if label in METHODS else {}
    except Exception:  # a method whose defaults cannot be built: show every option
        defaults = {}
    changed = {k: v for k, v in config.get("method_options", {}).items() if defaults.get(k, object()) != v}
    for key, value in sorted(changed.items()):
        flag = key.replace("_", "-")
        label += f" --{flag}" if value is True else f" --no-{flag}" if value is False else f" --{flag} {value}"
    # inference-time fusion other than the method's own (--fuse-neighbours / --fuse-mode)
    fusion = result.get("fusion", config.get("fusion"))
    own = method.fusion() if method is not None else None
    own = {"neighbours": own.neighbours, "mode": own.mode} if own is not None else None
    if fusion != own:
        label += (f" --fuse-neighbours {fusion['neighbours']} --fuse-mode {fusion['mode']}" if fusion
                  else " --fuse-neighbours 0")
    return label


def long_form(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per finished run × metric: run id, method, label, dataset, seed, metric, value, hash."""
    rows = []
    for record in records:
        r = record.result or {}
        base = {"run_id": record.run_id, "method": r.get("method"), "label": column_label(r),
                "dataset": r.get("dataset"), "seed": r.get("seed"), "config_hash": r.get("config_hash"),
                "commit": (r.get("config", {}).get("environment", {}) or {}).get("git_commit")}
        for metric, value in (r.get("metrics") or {}).items():
            if isinstance(value, (int, float)) or value is None:
                rows.append({**base, "metric": metric, "value": value})
        for name, values in (r.get("baselines") or {}).items():
            rows.append({**base, "metric": f"baseline:{name}", "value": values.get("iou_illegal")})
    return pd.DataFrame(rows, columns=["run_id", "method", "label", "dataset", "seed", "metric", "value",
                                       "config_hash", "commit"])


def _mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{100 * values.iloc[0]:.2f}"
    return f"{100 * values.mean():.2f} ± {100 * values.std(ddof=1):.2f}"


def comparison(records: Iterable[RunRecord], metric: str = "iou_illegal") -> pd.DataFrame:
    """Rows datasets, columns methods (+ the all-foreground reference), cells mean ± std × 100 over seeds."""
    df = long_form(records)
    if df.empty:
        return pd.DataFrame()
    cells = df[df.metric == metric].groupby(["dataset", "label"], sort=False)["value"].apply(_mean_std).unstack()
    # the reference depends on the test set only: one value per dataset (and seed's split), not per run
    ref = (df[df.metric == "baseline:all_foreground"].drop_duplicates(["dataset", "value"])
           .groupby("dataset")["value"].apply(_mean_std))
    cells["all-foreground"] = ref
    seeds = df.groupby("dataset")["seed"].nunique()
    cells.insert(0, "seeds", seeds)
    return cells
