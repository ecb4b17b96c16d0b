"""Figures from stored runs (matplotlib, Agg backend; PNG or PDF by the file extension).

- :func:`qualitative` — the paper's Fig. 7: for a few test frames, the frame, its GT mask and each
  method's mask overlaid. Masks are recomputed from each run's stored classifier
  (``RUNS_DIR/classifiers/<hash>/final.pt``) with the run's own threshold (chosen on val) and
  fusion, through :func:`example_masks`, so they are exactly what was scored and
  runs stay small; nothing is trained.
- :func:`ablation_bars` — the ablation table as bars with ± std over seeds as error bars.
- :func:`threshold_sweeps` — each method's validation IoU over the threshold grid (mean over seeds),
  with the chosen thresholds marked.
- :func:`training_curves` — each logged loss term (and loss weight) over training steps from the
  classifiers' ``log.csv``, mean ± std over seeds per method.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UserError
from .runs import RunRecord

if TYPE_CHECKING:
    from .data.cache import PreparedData
    from .inference import TrainedRun

__all__ = ["ablation_bars", "example_masks", "overlay", "pick_examples", "qualitative", "threshold_sweeps",
           "training_curves", "write_figures"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return out


def ablation_bars(records: Iterable[RunRecord], out: Path, metric: str = "iou_illegal") -> Path | None:
    """Bar chart of the ablation (one group of four bars per table row), error bars = std over seeds.

    Args:
        records: finished runs.
        out: image file (``.png`` or ``.pdf``).
        metric: see :data:`wsbench.report.METRICS`.

    Returns:
        ``out``, or ``None`` when there are no ablation runs.
    """
    from .report import ablation
    from .report.model import _seeds_text

    table = ablation(records, metric)
    if table.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 2.4 * len(table.rows), 3.2))
    width = 0.8 / len(table.columns)
    for j, column in enumerate(table.columns):
        means = [cells[j].mean if cells[j].mean is not None else np.nan for _, cells in table.rows]
        stds = [cells[j].std or 0.0 for _, cells in table.rows]
        x = np.arange(len(table.rows)) + (j - (len(table.columns) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=3, label=column)
    ax.set_xticks(np.arange(len(table.rows)), [name for name, _ in table.rows])
    ax.set_ylabel(table.corner.replace(" ↑", "").replace(" ↓", ""))
    ax.set_title(f"Ablation: bars {_seeds_text(c for _, cells in table.rows for c in cells)}", fontsize=9)
    ax.legend(fontsize=8, frameon=False, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)


def threshold_sweeps(records: Iterable[RunRecord], out: Path) -> Path | None:
    """Validation illegal-class IoU over the threshold grid, one line per method, one panel per data set.

    Curves are averaged over seeds; a dot marks each seed's chosen (val-best) threshold.

    Returns:
        ``out``, or ``None`` when no run stored a validation curve.
    """
    from .report import method_columns

    columns = method_columns(records)
    datasets = list(dict.fromkeys(r.finished_result["dataset"] for _, runs in columns for r in runs
                                  if r.finished_result.get("curves", {}).get("val_iou_illegal")))
    if not datasets:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for name, runs in columns:
            runs = [r for r in runs
                    if r.finished_result["dataset"] == dataset
                    and r.finished_result.get("curves", {}).get("val_iou_illegal")]
            if not runs:
                continue
            thresholds = np.asarray(runs[0].finished_result["curves"]["thresholds"], np.float64)
            curves = np.array([[np.nan if v is None else v for v in r.finished_result["curves"]["val_iou_illegal"]]
                               for r in runs], np.float64)
            (line,) = ax.plot(thresholds, 100 * np.nanmean(curves, axis=0), label=f"{name} (n={len(runs)})", lw=1.2)
            for r, curve in zip(runs, curves, strict=True):
                t = r.finished_result["metrics"]["threshold"]
                ax.plot([t], [100 * curve[int(np.argmin(np.abs(thresholds - t)))]], "o", color=line.get_color(), ms=3)
        ax.set_title(f"{dataset}: validation sweep (dots: chosen thresholds)", fontsize=9)
        ax.set_xlabel("threshold")
        ax.set_ylabel("val illegal IoU ×100")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    return _save(fig, out)


def _training_log(record: RunRecord) -> dict[str, np.ndarray] | None:
    """The columns of the run's classifier's ``log.csv`` as float arrays, or ``None`` if it has none."""
    import csv

    path = Path(record.path).parent / str(record.finished_result.get("classifier", {}).get("path", "")) / "log.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else np.nan
        except ValueError:
            return np.nan

    return {name: np.array([number(r.get(name)) for r in rows]) for name in rows[0]}


def training_curves(records: Iterable[RunRecord], out: Path) -> Path | None:
    """Every logged training term over steps, one panel per term and data set, mean ± std over seeds per method.

    The terms are the columns of the classifiers' ``log.csv`` (each loss term, the total and the loss
    weights the step logged) except ``epoch``, ``step`` and ``lr``. Runs of one method column that share a
    classifier (same seed) count once.

    Returns:
        ``out``, or ``None`` when no run's classifier has a ``log.csv``.
    """
    from .report import method_columns

    curves: dict[tuple[str, str], list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for name, runs in method_columns(records):
        by_dataset: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for r in runs:
            log = _training_log(r)
            if log is not None:  # keyed by classifier: two runs explaining one classifier are one seed
                result = r.finished_result
                by_dataset.setdefault(str(result["dataset"]), {})[str(result["classifier"].get("path"))] = log
        for dataset, logs in by_dataset.items():
            terms = sorted({t for log in logs.values() for t in log} - {"epoch", "step", "lr"})
            for term in terms:
                series = [log[term] for log in logs.values() if term in log]
                n = min(len(s) for s in series)
                stack = np.stack([s[:n] for s in series])
                steps = next(iter(logs.values()))["step"][:n]
                curves.setdefault((dataset, term), []).append((f"{name} (n={len(series)})", steps, stack))
    if not curves:
        return None
    plt = _pyplot()
    datasets = sorted({d for d, _ in curves})
    terms = sorted({t for _, t in curves}, key=lambda t: (t != "total", t))
    fig, axes = plt.subplots(len(datasets), len(terms), figsize=(3.2 * len(terms), 2.6 * len(datasets)),
                             squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, term in enumerate(terms):
            ax = axes[i][j]
            for label, steps, stack in curves.get((dataset, term), []):
                mean, std = np.nanmean(stack, axis=0), np.nanstd(stack, axis=0)
                (line,) = ax.plot(steps, mean, lw=1, label=label)
                ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
            ax.set_title(f"{dataset}: {term}", fontsize=8)
            ax.set_xlabel("step", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=5, frameon=False)
    fig.suptitle("Training curves from log.csv: mean ± std over seeds (band)", fontsize=9, y=1.02)
    return _save(fig, out)


def pick_examples(index: Any, count: int) -> list[tuple[str, int]]:
    """``count`` test *before* frames with GT, spread evenly over the test videos (middle annotated frame).

    Args:
        index: the data set's :class:`~wsbench.data.VideoIndex`.
        count: how many frames.

    Returns:
        ``(video key, frame index)`` pairs; deterministic for a given index.
    """
    videos = [v for v in index.videos if v.split == "test" and v.label == "before" and v.has_masks]
    if not videos or count <= 0:
        return []
    picks = []
    for k in np.linspace(0, len(videos) - 1, min(count, len(videos))).round().astype(int):
        annotated = [i for i, m in enumerate(videos[k].masks) if m is not None]
        picks.append((videos[k].key, annotated[len(annotated) // 2]))
    return picks


def example_masks(trained: TrainedRun, data: PreparedData, frames: list[tuple[str, int]],
                  batch_size: int = 32) -> list[dict[str, Any]]:
    """A run's masks of chosen frames next to their GT, exactly as the evaluator scored them (for figures).

    Args:
        trained: the finished run (:func:`wsbench.inference.load_run`): its method, classifier,
            input variant, multi-scale/flip inference, fusion and val-chosen threshold.
        data: the run's prepared data (:func:`wsbench.inference.open_data`).
        frames: ``(video key, frame index)`` pairs, e.g. ``("before/vid3", 12)``; frames without GT get
            an empty ``gt``.
        batch_size: frames per forward pass.

    Returns:
        Per frame ``{"video", "frame", "image" (H, W, 3) uint8, "gt" (H, W) bool, "pred" (H, W) bool,
        "iou" (float or None)}`` at the frame's original size.
    """
    from .data.io import read_mask
    from .maps import upsample
    from .masks import predict_mask

    flows = trained.producer.fusion_flows(data)
    threshold = trained.threshold
    positions = {v.key: pos for pos, v in enumerate(data.index.videos)}
    out, cached = [], {}
    for key, i in frames:
        pos = positions[key]
        if pos not in cached:
            cached[pos] = trained.producer.video(data, pos, flows, batch_size)
        video = data.index.videos[pos]
        w, h = data.slices[pos].frame_size
        pred = predict_mask(upsample(cached[pos][i], (w, h)), data.fg_full(pos, i), threshold)
        mask_path = video.masks[i] if video.masks else None
        gt = read_mask(mask_path, (w, h)) if mask_path is not None else np.zeros((h, w), bool)
        union = int((gt | pred).sum())
        out.append({"video": key, "frame": i, "image": video.frames.read(i), "gt": gt, "pred": pred,
                    "iou": (int((gt & pred).sum()) / union if union else None) if mask_path is not None else None})
    return out


def qualitative(records: Iterable[RunRecord], out_dir: Path, fmt: str = "png", examples: int = 3,
                cache_dir: str | None = None, device: str = "auto") -> list[Path]:
    """The paper's Fig. 7 per data set: rows test frames; columns frame, GT, each method's mask.

    Each method column uses its run with the lowest seed. Predicted masks are red over the frame
    with the GT outline in green; panel titles give the frame's IoU.

    Args:
        records: finished runs.
        out_dir: folder for ``qualitative-<dataset>.<fmt>``.
        fmt: ``png`` or ``pdf``.
        examples: frames per figure (see :func:`pick_examples`).
        cache_dir: cache root (frames, foreground, flows) the runs used.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The files written.
    """
    import cv2

    from .inference import load_run, open_data
    from .report import method_columns
    from .texts import threshold_text

    columns = method_columns(records)
    datasets = list(dict.fromkeys(r.finished_result["dataset"] for _, runs in columns for r in runs))
    if examples <= 0 or not datasets:
        return []
    plt = _pyplot()
    written = []
    for dataset in datasets:
        panels: list[tuple[str, list[dict]]] = []
        sources: set[str] = set()  # where the shown runs' thresholds came from
        frames = None
        for name, runs in columns:
            runs = sorted((r for r in runs if r.finished_result["dataset"] == dataset),
                          key=lambda r: r.finished_result["seed"])
            if not runs:
                continue
            trained = load_run(runs[0].path, device=device)
            data = open_data(trained, cache_dir)
            frames = frames if frames is not None else pick_examples(data.index, examples)
            if not frames:
                break
            panels.append((f"{name} (seed {runs[0].finished_result['seed']})", example_masks(trained, data, frames)))
            metrics = runs[0].finished_result["metrics"]
            source = metrics.get("threshold_source")
            sources.add(threshold_text(source, metrics.get("threshold") if str(source).startswith("fixed") else None))
        if not panels or frames is None:  # panels are made of frames
            continue
        rows, cols = len(frames), 2 + len(panels)
        fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows + 0.3), squeeze=False)
        for i in range(rows):
            first = panels[0][1][i]
            image, gt = first["image"], first["gt"]
            outline = cv2.morphologyEx(gt.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            shows = [(f"{first['video']} #{first['frame']}", image), ("GT (illegal)", overlay(image, gt, (0, 200, 0)))]
            for name, masks in panels:
                m = masks[i]
                iou = "" if m["iou"] is None else f"IoU {100 * m['iou']:.1f}"
                head = textwrap.fill(name, 22)  # long labels would run into the next column
                shows.append((f"{head}\n{iou}" if i == 0 else iou, overlay(image, m["pred"], (230, 30, 30), outline)))
            for ax, (title, picture) in zip(axes[i], shows, strict=True):
                ax.imshow(picture)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(title, fontsize=7)
        what = (f"each run's {sources.pop()}" if len(sources) == 1
                else f"each run's threshold ({'; '.join(sorted(sources))})")
        fig.suptitle(f"{dataset}: test frames, masks at {what}", fontsize=9)
        written.append(_save(fig, Path(out_dir) / f"qualitative-{dataset}.{fmt}"))
    return written


def overlay(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int],
             outline: np.ndarray | None = None) -> np.ndarray:
    """``mask`` blended into ``image`` in ``colour``; ``outline`` (the GT edge) drawn in green."""
    out = image.astype(np.float32)
    out[mask] = 0.45 * out[mask] + 0.55 * np.asarray(colour, np.float32)
    if outline is not None:
        out[outline] = (0, 255, 0)
    return out.clip(0, 255).astype(np.uint8)


def write_figures(records: Iterable[RunRecord], out_dir: Path, fmt: str = "png", examples: int = 3,
                  metric: str = "iou_illegal", cache_dir: str | None = None, device: str = "auto",
                  overwrite: bool = False) -> list[Path]:
    """All figures into ``out_dir``: ``qualitative-<dataset>``, ``ablation``, ``threshold_sweep``, ``training_curves``.

    Args:
        records: finished runs (unfinished ones are ignored).
        out_dir: output folder.
        fmt: ``png`` or ``pdf``.
        examples: frames in the qualitative figure (0: skip it; it needs the stored classifiers).
        metric: metric of the ablation chart.
        cache_dir: cache root the runs used.
        device: device for recomputing masks.
        overwrite: replace figures that exist (otherwise refused before anything is drawn). If
            drawing fails, the figures this call added are removed, so the same call can run again.

    Returns:
        The files written.
    """
    if fmt not in ("png", "pdf"):
        raise UserError(f"figure format must be png or pdf, not {fmt!r}")
    records = [r for r in records if r.finished]
    out_dir = Path(out_dir)
    names = ["ablation", "threshold_sweep", "training_curves"]
    if examples > 0:
        names += [f"qualitative-{d}" for d in sorted({str(r.finished_result["dataset"]) for r in records})]
    existing = [out_dir / f"{name}.{fmt}" for name in names if (out_dir / f"{name}.{fmt}").exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} other figure(s))" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]}: exists{more}; pass --overwrite to replace it")
    new = [out_dir / f"{name}.{fmt}" for name in names if not (out_dir / f"{name}.{fmt}").exists()]
    try:
        written = qualitative(records, out_dir, fmt, examples, cache_dir, device)
        for path in (ablation_bars(records, out_dir / f"ablation.{fmt}", metric),
                     threshold_sweeps(records, out_dir / f"threshold_sweep.{fmt}"),
                     training_curves(records, out_dir / f"training_curves.{fmt}")):
            if path is not None:
                written.append(path)
    except BaseException:  # the figures this call added would refuse its retry (they exist): remove them
        for path in new:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return written

