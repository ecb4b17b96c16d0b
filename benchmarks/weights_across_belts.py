"""One default loss weight for several belts, chosen on their validation splits (issue 29).

A default must hold off the belt it was tuned on. This reads the finished runs of a method's weight
grid on several belts (``benchmarks/fair.toml`` on the built-in belt, ``benchmarks/tccam-belts.toml``
on others), and prints per belt and grid point the mean validation IoU over seeds, the seeds whose
run collapsed (``result.json`` → ``collapse``) and, for reading only, the test IoU. The default is
the point with the best validation IoU averaged over the belts (each belt weighs the same), among
the points with no collapsed seed on any belt. Test scores never enter the choice.

    python benchmarks/weights_across_belts.py runs/fair runs/chosen --method tccam --option beta_max
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from wsbench.runs.records import iter_runs


def _belt(config: dict[str, Any]) -> str:
    """A belt's name: the data set, and its folder for ``video-folder``."""
    root = config.get("data_root")
    return config["dataset"] if not root else f"{config['dataset']}:{Path(root).name}"


def _plain(config: dict[str, Any], method: str, option: str) -> bool:
    """An unlabelled run of ``method`` with its other options at their defaults (e.g. TC-CAM with both modules)."""
    defaults = config.get("method_info", {}).get("default_options", {})
    options = config.get("method_options", {})
    return (config["method"] == method and not config.get("label") and config.get("fusion") is None
            and config.get("split_seed") in (None, 0) and config["recipe"].get("background_removal", True)
            and all(options.get(k) == v for k, v in defaults.items() if k != option))


def main() -> None:
    """Print the per-belt table and the choice."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dirs", nargs="+", type=Path, help="runs directories holding the grids' runs")
    parser.add_argument("--method", default="tccam")
    parser.add_argument("--option", default="beta_max", help="the swept loss weight")
    args = parser.parse_args()

    cells: dict[tuple[str, float], dict[int, dict[str, Any]]] = defaultdict(dict)
    for runs_dir in args.runs_dirs:
        for record in iter_runs(runs_dir):
            config, result = record.config, record.finished_result
            if not _plain(config, args.method, args.option):
                continue
            cells[_belt(config), float(config["method_options"][args.option])].setdefault(config["seed"], {
                "val": result["metrics"]["val_iou_illegal"], "test": result["metrics"].get("iou_illegal"),
                "collapsed": bool(result.get("collapse")), "accuracy": result["metrics"].get("accuracy")})
    belts = sorted({b for b, _ in cells})
    values = sorted({v for _, v in cells})
    print(f"{args.method}, {args.option}: validation IoU ×100, mean over seeds (test IoU, val accuracy per seed; "
          "‡ collapsed)\n")
    print(f"| {args.option} | " + " | ".join(belts) + " | mean val over belts |")
    print("|---|" + "---|" * (len(belts) + 1))
    ranked = []
    for value in values:
        row, means, collapsed = [], [], 0
        for belt in belts:
            runs = cells.get((belt, value), {})
            if not runs:
                row.append("–")
                continue
            val = float(np.mean([r["val"] for r in runs.values()])) * 100
            means.append(val)
            collapsed += sum(r["collapsed"] for r in runs.values())
            tests = ", ".join(f"{r['test'] * 100:.2f}{'‡' if r['collapsed'] else ''} ({r['accuracy']:.2f})"
                              for _, r in sorted(runs.items()))
            row.append(f"{val:.2f} [{len(runs)} seeds: {tests}]")
        complete = len(means) == len(belts)
        mean = float(np.mean(means)) if complete else float("nan")
        print(f"| {value:g} | " + " | ".join(row) + f" | {mean:.2f} |")
        if complete and not collapsed:
            ranked.append((mean, value))
    if ranked:
        best = max(ranked)
        print(f"\nchosen: {args.option} = {best[1]:g} (mean validation IoU ×100 over {len(belts)} belts {best[0]:.2f}; "
              "no collapsed seed)")
    else:
        print("\nno grid point has runs on every belt without a collapsed seed")


if __name__ == "__main__":
    main()
