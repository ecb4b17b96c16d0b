"""How wide is a paired interval on the built-in belt, as a function of the test split's size?

Issue 27: the built-in belt's former 24 test videos per class gave wide paired intervals; inference is cheap
next to training. This study keeps the trained classifiers of a finished suite (e.g.
``benchmarks/fair.toml``'s runs on ``synthetic-belt``) and scores them, at each run's own
val-chosen threshold, on a belt generated with the **same** generator config but more test
videos: the synthetic belt renders video *i* from the random stream ``(seed, i)`` alone, so its
train and validation videos (indices below ``train_videos + val_videos``) are exactly the ones the
classifiers were trained and tuned on, and only the test split grows. No test mask is used for
any choice.

For every number of test videos ``n`` (the first ``n`` per class) and every number of frames per
test video ``k`` (each video's first ``k`` frames: what a belt of ``k``-frame test videos scores),
it prints the mean difference A − B and wsbench's own paired bootstrap interval
(:func:`wsbench.bootstrap.difference_interval`, the ``--table pairs`` interval) over the runs of one
seed and over all seeds, and the test *before* frames scored (the cost of the evaluation grows with
them). As a check of the interval itself, the grown split is also cut into disjoint blocks of ``n``
videos: the standard deviation of A − B across the blocks (all seeds) is what the bootstrap's
standard error (half-width / 1.96) claims to estimate.

    python benchmarks/test_split_size.py --runs-dir runs/fair --belt-dir /tmp/belt-test192 \\
        --test-videos 192 --a tccam:beta_max=12 --b puzzlecam:alpha_max=2 --json study.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from wsbench.bootstrap import difference_interval
from wsbench.data.cache import prepare
from wsbench.data.io import read_mask
from wsbench.data.synthetic import BeltConfig, generate_belt
from wsbench.data.video_folder import read_video_folder
from wsbench.inference import TrainedRun, load_run
from wsbench.maps.producer import upsample
from wsbench.masks import predict_mask
from wsbench.runs.records import iter_runs


def _parse_column(text: str) -> tuple[str, dict[str, float]]:
    """``tccam:beta_max=12,spatial=1`` → ``("tccam", {"beta_max": 12.0, "spatial": 1.0})``."""
    method, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key] = float(value)
    return method, options


def _matches(config: dict[str, Any], method: str, options: dict[str, float]) -> bool:
    """A plain (unlabelled, per-frame, default-recipe) run of ``method`` with ``options`` on the built-in belt."""
    got = config.get("method_options", {})
    return (config["method"] == method and config["dataset"] == "synthetic-belt" and not config.get("label")
            and config.get("fusion") is None and config["recipe"].get("background_removal", True)
            and got.get("spatial", True) is not False
            and all(float(got.get(k, float("nan"))) == v for k, v in options.items()))


def _frame_counts(trained: TrainedRun, data: Any) -> dict[str, np.ndarray]:
    """Per test *before* video, the (frames, 2) intersection and union of the run's masks at its threshold."""
    producer = trained.producer
    flows = producer.fusion_flows(data)
    producer.model.eval()
    out = {}
    for pos, video in enumerate(data.index.videos):
        if video.split != "test" or video.label != "before" or not video.has_masks:
            continue
        maps = producer.video(data, pos, flows)
        size = data.slices[pos].frame_size
        rows = []
        for i, mask_path in enumerate(video.masks or []):
            if mask_path is None:
                continue
            pred = predict_mask(upsample(maps[i], size), data.fg_full(pos, i), trained.threshold)
            gt = read_mask(mask_path, size)
            rows.append((int((pred & gt).sum()), int((pred | gt).sum())))
        out[video.key] = np.array(rows, np.int64)
    return out


def _runs(counts: list[dict[str, np.ndarray]], n: int, k: int) -> list[dict[str, dict[str, float]]]:
    """The runs' per-video counts as :mod:`wsbench.bootstrap` reads them, on the first n videos and k frames."""
    keys = sorted(counts[0])[:n]
    return [_block(c, keys, k) for c in counts]


def _block(counts: dict[str, np.ndarray], keys: list[str], frames: int | None = None) -> dict[str, dict[str, float]]:
    """One run's counts on the given videos, their first ``frames`` frames (``None``: all)."""
    return {k: {"intersection": float(counts[k][:frames, 0].sum()), "union": float(counts[k][:frames, 1].sum())}
            for k in keys}


def _iou(run: dict[str, dict[str, float]]) -> float:
    return sum(v["intersection"] for v in run.values()) / sum(v["union"] for v in run.values())


def _difference(counts: dict[str, dict[int, dict[str, np.ndarray]]], seeds: list[int], keys: list[str],
                ) -> tuple[float, list[dict[str, dict[str, float]]], list[dict[str, dict[str, float]]]]:
    """A − B (×100, mean over seeds) on the given videos, and the two cells' runs on them."""
    a = [_block(counts["A"][s], keys) for s in seeds]
    b = [_block(counts["B"][s], keys) for s in seeds]
    return float(np.mean([_iou(r) for r in a]) - np.mean([_iou(r) for r in b])) * 100, a, b


def _check_interval(counts: dict[str, dict[int, dict[str, np.ndarray]]], seeds: list[int], sizes: list[int],
                    rows: list[dict[str, Any]], subsets: int = 300) -> None:
    """Print whether the bootstrap's standard error is the spread of A − B over other draws of n test videos.

    Two checks, all seeds: random subsets of n of the N scored videos (the spread, corrected for the
    finite population by sqrt((N − 1) / (N − n))), and the disjoint blocks v[0:n], v[n:2n], ...
    Also the correlation of each video's A − B with its position, which a drifting generator would show.
    """
    everything = sorted(counts["A"][seeds[0]])
    total = len(everything)
    rng = np.random.default_rng(0)
    print("\nIs the interval right? A − B over other draws of n test videos per class (all seeds, all frames)")
    print("| n | bootstrap standard error (half-width / 1.96): mean (per block) | std over random subsets "
          "(finite-population corrected) | disjoint blocks: A − B | std over blocks |")
    print("|---|---|---|---|---|")
    for n in sizes:
        if n >= total:
            continue
        blocks, errors = [], []
        for start in range(0, total - n + 1, n):
            diff, a, b = _difference(counts, seeds, everything[start:start + n])
            low, high = difference_interval(a, b) or (float("nan"), float("nan"))
            blocks.append(diff)
            errors.append((high - low) * 50 / 1.96)
        if len(blocks) < 2:
            continue
        draws = [_difference(counts, seeds, [everything[i] for i in rng.choice(total, n, replace=False)])[0]
                 for _ in range(subsets)]
        spread = float(np.std(draws)) / float(np.sqrt((total - n) / (total - 1)))
        rows.append({"check_videos": n, "bootstrap_se": errors, "subset_std": spread, "block_differences": blocks})
        print(f"| {n} | {np.mean(errors):.2f} ({', '.join(f'{e:.2f}' for e in errors)}) | {spread:.2f} | "
              f"{', '.join(f'{d:+.2f}' for d in blocks)} | {np.std(blocks, ddof=1):.2f} |")
    per_video = [_difference(counts, seeds, [key])[0] for key in everything]
    r = float(np.corrcoef(np.arange(total), per_video)[0, 1])
    print(f"\ncorrelation of a video's A − B with its position in the split: r = {r:+.3f} over {total} videos")
    rows.append({"position_correlation": r})


def main() -> None:
    """Parse the arguments, score the runs on the grown test split and print the interval widths."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, required=True, help="runs of a finished suite on synthetic-belt")
    parser.add_argument("--belt-dir", type=Path, required=True, help="where the grown belt is written (reused)")
    parser.add_argument("--test-videos", type=int, default=192, help="test videos per class of the grown belt")
    parser.add_argument("--a", default="tccam:beta_max=12", help="column A: method[:option=value,...]")
    parser.add_argument("--b", default="puzzlecam:alpha_max=2", help="column B")
    parser.add_argument("--sizes", default="24,48,96,144,192", help="numbers of test videos per class to score")
    parser.add_argument("--frames", default="32,16,8", help="frames per test video to score")
    parser.add_argument("--json", type=Path, help="write the table here too")
    parser.add_argument("--counts", type=Path, help="keep the scored per-frame counts in this .npz (reused if present)")
    args = parser.parse_args()

    config = dataclasses.replace(BeltConfig(), test_videos=args.test_videos)
    started = time.perf_counter()
    root = generate_belt(args.belt_dir, config)
    index = read_video_folder(root, name="synthetic-belt")
    print(f"belt with {args.test_videos} test videos per class: {root} ({time.perf_counter() - started:.0f} s)")
    columns = {"A": _parse_column(args.a), "B": _parse_column(args.b)}
    counts: dict[str, dict[int, dict[str, np.ndarray]]] = {"A": {}, "B": {}}
    if args.counts and args.counts.exists():
        with np.load(args.counts) as stored:
            for name in stored.files:
                column, seed, key = name.split("|")
                counts[column].setdefault(int(seed), {})[key] = stored[name]
    for record in ([] if counts["A"] else iter_runs(args.runs_dir)):
        for name, (method, options) in columns.items():
            if _matches(record.config, method, options) and record.config["seed"] not in counts[name]:
                trained = load_run(record.path, device="cpu")
                data = prepare(index, trained.recipe.image_size, background=trained.recipe)
                started = time.perf_counter()
                counts[name][record.config["seed"]] = _frame_counts(trained, data)
                seconds = time.perf_counter() - started
                print(f"{name} {record.run_id} seed {record.config['seed']}: scored "
                      f"{len(counts[name][record.config['seed']])} test videos in {seconds:.0f} s")
    if args.counts and not args.counts.exists():
        arrays: dict[str, Any] = {f"{c}|{seed}|{key}": v for c, by_seed in counts.items()
                                  for seed, videos in by_seed.items() for key, v in videos.items()}
        np.savez_compressed(args.counts, **arrays)
    seeds = sorted(set(counts["A"]) & set(counts["B"]))
    if not seeds:
        raise SystemExit(f"{args.runs_dir}: no seed has finished runs of both {args.a} and {args.b} on synthetic-belt")
    rows = []
    print(f"\nA = {args.a}, B = {args.b}; paired 95 % bootstrap interval of A − B (IoU ×100) over test videos")
    print("| test videos / class | frames / video | scored test frames | seeds | A − B | interval | half-width |")
    print("|---|---|---|---|---|---|---|")
    for k in map(int, args.frames.split(",")):
        for n in map(int, args.sizes.split(",")):
            for chosen in [[s] for s in seeds] + ([seeds] if len(seeds) > 1 else []):
                a = _runs([counts["A"][s] for s in chosen], n, k)
                b = _runs([counts["B"][s] for s in chosen], n, k)
                low, high = difference_interval(a, b) or (float("nan"), float("nan"))
                diff = float(np.mean([_iou(r) for r in a]) - np.mean([_iou(r) for r in b]))
                row = {"videos": n, "frames": k, "test_frames": n * k, "seeds": chosen, "difference": diff * 100,
                       "low": low * 100, "high": high * 100, "half_width": (high - low) * 50}
                rows.append(row)
                print(f"| {n} | {k} | {n * k} | {','.join(map(str, chosen))} | {row['difference']:+.2f} | "
                      f"[{row['low']:.2f}, {row['high']:.2f}] | {row['half_width']:.2f} |")
    _check_interval(counts, seeds, [int(n) for n in args.sizes.split(",")], rows)
    if args.json:
        args.json.write_text(json.dumps({"a": args.a, "b": args.b, "test_videos": args.test_videos, "rows": rows},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
