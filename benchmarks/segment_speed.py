"""Deployment speed: ``wsbench segment``'s stream with a distilled segmenter vs with the CAM run it came from.

    python benchmarks/segment_speed.py --runs-dir runs/two-stage [--frames 128] [--rounds 3] [--device cpu]

For every finished distilled run in RUNS_DIR and its source CAM run, both segment the same frames
(a test video of the source run's data set, repeated to ``--frames``) through the functions
``wsbench segment`` uses: the segmenter one forward pass per frame (no background, no flow), the CAM
run its whole pipeline (the stream's median background from its first 32 frames, background
removal, the method's maps, its fusion and flow if it has them). Rounds alternate the two, so a
change of machine load hits both alike; each keeps its best round. Prints one markdown row per pair
and the mean ratio per method: segmenter frames/s / CAM frames/s. Loading is not timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's wsbench

BACKGROUND_FRAMES = 32


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return platform.processor() or "unknown CPU"
    return platform.processor() or "unknown CPU"


def main() -> None:
    """Time both streams for every distilled run of ``--runs-dir`` and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from wsbench.distill import load_distilled
    from wsbench.inference import load_run, open_data
    from wsbench.runs import is_distilled, iter_runs
    from wsbench.segment import segment_stream, segmenter_stream, stream_background

    records = list(iter_runs(args.runs_dir))
    by_id = {r.run_id: r for r in records}
    pairs = [(r, by_id.get(r.config["distill"]["source_run"])) for r in records if is_distilled(r.config)]
    pairs = [(d, s) for d, s in pairs if s is not None]
    if not pairs:
        raise SystemExit(f"{args.runs_dir}: no finished distilled run whose source run is in the same runs directory")
    print(f"{_cpu()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, device {args.device}; "
          f"{args.frames} frames a stream, batch {args.batch_size}, best of {args.rounds} alternating rounds\n")
    print("| method | seed | CAM run frames/s | segmenter frames/s | segmenter / CAM |")
    print("|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {}
    frames_of: dict[str, list] = {}
    for distilled, source in sorted(pairs, key=lambda p: (p[1].config["method"], p[1].config.get("seed", 0))):
        cam = load_run(source.path, device=args.device)
        segmenter = load_distilled(distilled, args.device)
        data_key = source.config.get("data_fingerprint", source.run_id)
        if data_key not in frames_of:
            data = open_data(cam, args.cache_dir)
            video = next(v for v in data.index.videos if v.split == "test" and v.label == "before")
            one = [video.frames.read(i) for i in range(len(video.frames))]
            frames_of[data_key] = (one * (args.frames // len(one) + 1))[:args.frames]
        frames = frames_of[data_key]
        best_cam = best_seg = float("inf")
        for _ in range(args.rounds):
            started = time.perf_counter()
            assert sum(1 for _ in segmenter_stream(segmenter, iter(frames), args.batch_size)) == len(frames)
            best_seg = min(best_seg, time.perf_counter() - started)
            started = time.perf_counter()
            background = stream_background(iter(frames[:BACKGROUND_FRAMES]), BACKGROUND_FRAMES)
            assert sum(1 for _ in segment_stream(cam, iter(frames), background, args.batch_size)) == len(frames)
            best_cam = min(best_cam, time.perf_counter() - started)
        cam_fps, seg_fps = len(frames) / best_cam, len(frames) / best_seg
        method = source.config["method"]
        ratios.setdefault(method, []).append(seg_fps / cam_fps)
        print(f"| {method} | {source.config.get('seed', 0)} | {cam_fps:.0f} | {seg_fps:.0f} | "
              f"{seg_fps / cam_fps:.2f} |")
    print()
    for method, values in ratios.items():
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        print(f"{method}: segmenter / CAM frames/s {statistics.mean(values):.2f}{spread} over {len(values)} seed(s)")


if __name__ == "__main__":
    main()
