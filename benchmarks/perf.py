"""Performance benchmark: training and map speed per method, flow cost and caching, peak memory.

    python benchmarks/perf.py [--quick] [--json PATH] [--device auto|cpu|cuda] [--workdir DIR]

Prints one markdown table and the ratios of issue 7, all measured in this one invocation:

- per method, a real ``wsbench run`` (the CLI, in-process) in its own subprocess on the same
  generated data, model and recipe: map inference frames/s (the evaluator's
  ``maps_frames_per_second``: maps and fusion, without IoU accounting; cold, so GradCAM's first
  batch includes importing pytorch-grad-cam) and the peak RSS of the whole run. The runs share one
  runs directory, so ``f2f`` explains the standard classifier ``gradcam`` trained, and every run
  after the first one that needs flows reads them from the cache (estimations are counted per run);
- training images/s and seconds per epoch of each training recipe, from one warm process that
  alternates one-epoch trainings (the trainer itself) of all of them and keeps each one's best of
  three rounds, so a change of machine load hits all alike;
- map frames/s of ``cam`` and ``gradcam`` on the same classifier (the CAM network ``cam`` trained:
  Grad-CAM costs the same on either head), warm, alternating, best of three;
- per flow estimator (``dis``, ``farneback``; ``raft`` only when its weights are on disk), the
  one-off flow cost in ms/frame, and the cost of asking for the same flows again (cache hit);
- peak RSS of training + evaluation (cache building included) on a 200-frame and a 2,000-frame
  video-folder data set of 1920×1080 JPEGs (``--quick``: 40 and 400 frames), each in its own process;
- the ratios: tccam epoch / puzzlecam epoch (target ≤ 1.3), triplet / clip batching, cam / gradcam
  map frames/s, 2,000-frame / 200-frame peak RSS (target ≤ 1.2).

Wall-clock budget: under 10 minutes on 2 idle CPU cores, ``--quick`` about 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: (label, extra ``wsbench run`` arguments); gradcam before f2f: f2f explains the classifier gradcam trained.
METHODS = [
    ("cam", ["--method", "cam"]),
    ("gradcam", ["--method", "gradcam"]),
    ("puzzlecam", ["--method", "puzzlecam"]),
    ("tccam (clip)", ["--method", "tccam"]),
    ("tccam (triplet)", ["--method", "tccam", "--batching", "triplet"]),
    ("f2f", ["--method", "f2f"]),
]


# -- worker side: one measurement in this process, reported as JSON -----------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _count_flow_calls() -> dict[str, int]:
    """Count every call of the flow estimation the data layer makes (0 = served from the cache)."""
    from wsbench import flow

    counter = {"videos": 0}
    original = flow.estimate_video_flows

    def counted(*args: Any, **kwargs: Any) -> Any:
        counter["videos"] += 1
        return original(*args, **kwargs)

    flow.estimate_video_flows = counted
    return counter


def worker_run(out: Path, args: list[str]) -> None:
    """``wsbench run ARGS`` in this process; writes its run record path, flow calls and peak RSS."""
    from wsbench.cli import cli
    from wsbench.runs import iter_runs

    runs_dir = Path(args[args.index("--runs-dir") + 1])
    before = {r.run_id for r in iter_runs(runs_dir)} if runs_dir.exists() else set()
    calls = _count_flow_calls()
    started = time.perf_counter()
    cli.main(args=["run", *args], prog_name="wsbench", standalone_mode=False)
    wall = time.perf_counter() - started
    new = [r for r in iter_runs(runs_dir) if r.run_id not in before]
    out.write_text(json.dumps({"result": new[-1].result, "flow_calls": calls["videos"], "wall": wall,
                               "peak_rss_mb": _peak_rss_mb()}))


def worker_flow(out: Path, data_root: str, cache_dir: str, size: int, names: list[str]) -> None:
    """One-off flow cost per estimator, then the same request again on a fresh ``prepare``."""
    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare

    index = create_dataset("video-folder", root=data_root)
    report: dict[str, Any] = {}
    for name in names:
        data = prepare(index, (size, size), cache_dir)
        calls = _count_flow_calls()
        data.flows(name)
        first, first_calls = data.timings["flow"], calls["videos"]
        again = prepare(index, (size, size), cache_dir)  # what a second run or a later epoch sees
        calls = _count_flow_calls()
        started = time.perf_counter()
        again.flows(name)
        report[name] = {"frames": data.num_frames, "seconds": first, "videos": first_calls,
                        "ms_per_frame": 1000 * first / data.num_frames,
                        "again_ms": 1000 * (time.perf_counter() - started), "again_calls": calls["videos"],
                        "again_timing": again.timings["flow"]}
    out.write_text(json.dumps(report))


def worker_maps(out: Path, data_root: str, cache_dir: str, runs_dir: str, device: str, rounds: int = 3) -> None:
    """Map frames/s of ``cam`` and ``gradcam`` on the same (cam) classifier, warm, alternating.

    Both go through the evaluator's :meth:`~wsbench.maps.MapProducer.video` (native CAM under
    ``torch.inference_mode``; GradCAM with autograd) over every scored frame; each method is warmed up
    on one video, then timed ``rounds`` times alternating with the other, and its best round is kept
    (on a shared machine the minimum is the least disturbed measurement).
    """
    import torch

    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.data.torch_data import classes_for
    from wsbench.maps import MapProducer
    from wsbench.methods import create_method
    from wsbench.model import build_model
    from wsbench.recipes import Recipe

    (folder,) = [p.parent for p in Path(runs_dir, "classifiers").glob("*/train.json")
                 if json.loads(p.read_text())["key"]["method"] == "cam"]
    key = json.loads((folder / "train.json").read_text())["key"]
    recipe = Recipe(**dict(key["recipe"], image_size=tuple(key["recipe"]["image_size"])))
    model = build_model(recipe, classes_for(recipe.background_removal))
    model.load_state_dict(torch.load(folder / "final.pt", map_location="cpu", weights_only=True))
    dev = torch.device(device)
    model.to(dev).eval()
    data = prepare(create_dataset("video-folder", root=data_root), recipe.image_size, cache_dir,
                   background=recipe)
    videos = [pos for pos, v in enumerate(data.index.videos) if v.label == "before" and v.split in ("val", "test")]
    frames = sum(data.slices[pos].length for pos in videos)
    producers = {name: MapProducer(create_method(name), model, dev) for name in ("cam", "gradcam")}
    best = {name: float("inf") for name in producers}
    for producer in producers.values():
        producer.video(data, videos[0])
    for _ in range(rounds):
        for name, producer in producers.items():
            started = time.perf_counter()
            for pos in videos:
                producer.video(data, pos)
            best[name] = min(best[name], time.perf_counter() - started)
    out.write_text(json.dumps({"frames": frames, "rounds": rounds,
                               "fps": {name: frames / seconds for name, seconds in best.items()}}))


def worker_epochs(out: Path, data_root: str, cache_dir: str, device: str, rounds: int = 3) -> None:
    """Seconds per training epoch of every training recipe (cam, gradcam, puzzlecam, tccam clip and triplet).

    One warm process; each round trains one epoch of each (the trainer itself, fresh folders, cached
    flows), so a change of machine load hits all alike; each keeps its best round.
    """
    import tempfile

    import torch

    from wsbench.data import create_dataset
    from wsbench.data.cache import prepare
    from wsbench.methods import create_method
    from wsbench.progress import no_bars_unless
    from wsbench.recipes import Recipe
    from wsbench.train import Hardware, train_classifier

    recipe = Recipe(backbone="wsbench_resnet_tiny", output_stride=8, image_size=(96, 96), epochs=1, batch_size=32,
                    lr=2e-3)
    data = prepare(create_dataset("video-folder", root=data_root), recipe.image_size, cache_dir,
                   background=recipe)
    data.flows(recipe.flow)
    methods = {"cam": create_method("cam"), "gradcam": create_method("gradcam"),
               "puzzlecam": create_method("puzzlecam"),
               "tccam (clip)": create_method("tccam"),
               "tccam (triplet)": create_method("tccam", batching="triplet")}
    best = {name: float("inf") for name in methods}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds + 1):  # round 0 warms up
            for name, method in methods.items():
                folder = Path(tmp) / f"{r}-{name}"
                with no_bars_unless(False):
                    train_classifier(method, recipe, data, 0, folder, Hardware(torch.device(device)))
                if r:
                    best[name] = min(best[name], json.loads((folder / "train.json").read_text())["train_seconds"])
    out.write_text(json.dumps({"rounds": rounds, "epoch_seconds": best}))


# -- generated data -----------------------------------------------------------------------------
def make_belt(root: Path, quick: bool) -> Path:
    """The training/evaluation data of the method rows: a small synthetic belt (video-folder layout)."""
    from wsbench.data.synthetic import BeltConfig, generate_belt

    if quick:
        config = BeltConfig(train_videos=3, val_videos=1, test_videos=1, frames=16, size=(128, 128), seed=3)
    else:
        config = BeltConfig(train_videos=6, val_videos=3, test_videos=3, frames=24, size=(128, 128), seed=3)
    return generate_belt(root, config)


def make_large_frames(root: Path, frames: int, sources: Path) -> Path:
    """A video-folder data set of ``frames`` 1920×1080 JPEGs in 20 videos (10 per camera).

    Four distinct frames per camera are encoded once and hard-linked (copied if links fail) as
    every frame of every video, so generating 2,000 frames costs seconds; decoding still happens
    once per frame, as for real data. Before frames carry GT masks (val/test are scored).
    """
    import cv2
    import numpy as np

    if not sources.exists():
        sources.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for label in ("before", "after"):
            for k in range(4):
                frame = np.full((1080, 1920, 3), (70, 75, 80) if label == "before" else (60, 85, 75), np.uint8)
                frame += rng.integers(0, 12, frame.shape, dtype=np.uint8)
                mask = np.zeros((1080, 1920), np.uint8)
                for j in range(12):
                    x, y = 150 * j + 40 * k + 20, 200 + 60 * ((j + k) % 10)
                    cv2.rectangle(frame, (x, y), (x + 90, y + 140), (210, 210, 215), -1)
                    if label == "before" and j % 3 == 0:
                        cv2.circle(frame, (x + 45, y + 240), 50, (40, 60, 220), -1)
                        cv2.circle(mask, (x + 45, y + 240), 50, 255, -1)
                cv2.imwrite(str(sources / f"{label}{k}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
                cv2.imwrite(str(sources / f"{label}{k}.png"), mask)
    per_video = max(1, frames // 20)
    for label in ("before", "after"):
        for v in range(10):
            vdir = root / label / f"vid{v}"
            vdir.mkdir(parents=True)
            mdir = root / "masks" / label / f"vid{v}"
            if label == "before":
                mdir.mkdir(parents=True)
            for t in range(per_video):
                _link(sources / f"{label}{t % 4}.jpg", vdir / f"frame_{t:05d}.jpg")
                if label == "before":
                    _link(sources / f"{label}{t % 4}.png", mdir / f"frame_{t:05d}.png")
    ids = [f"vid{v}" for v in range(10)]
    (root / "splits.json").write_text(json.dumps({"train": ids[:6], "val": ids[6:8], "test": ids[8:]}))
    return root


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# -- parent side --------------------------------------------------------------------------------
def _spawn(worker_args: list[str], work: Path, tag: str) -> dict[str, Any]:
    out = work / f"{tag}.json"
    env = dict(os.environ, WSBENCH_PROGRESS="0", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, __file__, *worker_args, "--out", str(out)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark step {tag!r} failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def _machine(device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version(), "device": device,
            "load_average_start": os.getloadavg()[0]}
    if device != "cpu" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_benchmark(quick: bool, device: str, work: Path) -> dict[str, Any]:
    """All measurements; returns the report (rows, flows, memory, ratios, machine)."""
    started = time.perf_counter()
    report: dict[str, Any] = {"quick": quick, "machine": _machine(device)}
    belt = make_belt(work / "belt", quick)
    epochs = 2 if quick else 3
    common = ["--dataset", "video-folder", "--data-root", str(belt), "--backbone", "wsbench_resnet_tiny",
              "--output-stride", "8", "--image-size", "96", "--batch-size", "32", "--lr", "2e-3",
              "--epochs", str(epochs), "--device", device, "--quiet",
              "--runs-dir", str(work / "runs"), "--cache-dir", str(work / "cache")]

    # flows first, in their own cache: the one-off cost per estimator and a second request
    from wsbench.flow import RAFT_WEIGHTS_ENV, raft_cache_path

    names = ["dis", "farneback"]
    if os.environ.get(RAFT_WEIGHTS_ENV) or raft_cache_path("raft_small").is_file():
        names.append("raft")
    report["flows"] = _spawn(["--worker-flow", str(belt), str(work / "flow-cache"), "96", *names], work, "flows")

    rows = []
    for label, args in METHODS:
        res = _spawn(["--worker-run", *args, *common], work, re.sub(r"\W+", "-", label).strip("-"))
        result = res["result"]
        # the record's classifier path is relative to the runs directory
        train = json.loads((work / "runs" / result["classifier"]["path"] / "train.json").read_text())
        trained = result["classifier"]["method"] == result["method"]
        rows.append({"method": label, "trained": trained, "train_seconds": train["train_seconds"] if trained else None,
                     "epochs": train["epochs"], "steps": train["steps"], "samples": train["samples"],
                     "clip_len": train["clip_len"], "maps_fps": result["timings"]["maps_frames_per_second"],
                     "flow_seconds": result["timings"]["flow"], "flow_calls": res["flow_calls"],
                     "peak_rss_mb": res["peak_rss_mb"], "iou_illegal": result["metrics"]["iou_illegal"]})
    report["epochs"] = _spawn(["--worker-epochs", str(belt), str(work / "cache"), device], work, "epochs")
    report["maps"] = _spawn(["--worker-maps", str(belt), str(work / "cache"), str(work / "runs"), device],
                            work, "maps")
    images = next(r["samples"] for r in rows if r["method"] == "cam")  # training images per epoch
    for r in rows:
        if r["trained"]:  # the warm, alternating measurement (the run's own is r["train_seconds"])
            r["epoch_seconds"] = report["epochs"]["epoch_seconds"][r["method"]]
            r["train_images_per_s"] = images / r["epoch_seconds"]
    report["rows"] = rows

    sizes = (40, 400) if quick else (200, 2000)
    sources = work / "large-sources"
    report["memory"] = []
    for n in sizes:
        root = make_large_frames(work / f"large-{n}", n, sources)
        args = ["--method", "cam", "--dataset", "video-folder", "--data-root", str(root),
                "--backbone", "wsbench_resnet_tiny", "--output-stride", "8", "--image-size", "96",
                "--batch-size", "32", "--epochs", "1", "--device", device, "--quiet",
                "--runs-dir", str(work / f"runs-{n}"), "--cache-dir", str(work / f"cache-{n}")]
        res = _spawn(["--worker-run", *args], work, f"memory-{n}")
        report["memory"].append({"frames": n, "frame_size": "1920x1080", "peak_rss_mb": res["peak_rss_mb"],
                                 "wall_seconds": res["wall"]})

    epochs = report["epochs"]["epoch_seconds"]
    report["ratios"] = {
        "tccam_over_puzzlecam_epoch": epochs["tccam (clip)"] / epochs["puzzlecam"],
        "triplet_over_clip_epoch": epochs["tccam (triplet)"] / epochs["tccam (clip)"],
        "cam_over_gradcam_maps_fps": report["maps"]["fps"]["cam"] / report["maps"]["fps"]["gradcam"],
        "memory_large_over_small": report["memory"][1]["peak_rss_mb"] / report["memory"][0]["peak_rss_mb"],
    }
    report["machine"]["load_average_end"] = os.getloadavg()[0]
    report["wall_seconds"] = time.perf_counter() - started
    return report


def render(report: dict[str, Any]) -> str:
    """The markdown table and the ratio list."""
    f = lambda x, fmt: "—" if x is None else format(x, fmt)  # noqa: E731
    lines = ["| measurement | train images/s | s/epoch | maps frames/s (run) | flow ms/frame | peak RSS MB (run) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        name = r["method"] if r["trained"] else f"{r['method']} (gradcam's classifier)"
        lines.append(f"| {name} | {f(r.get('train_images_per_s'), '.0f')} | {f(r.get('epoch_seconds'), '.2f')} "
                     f"| {f(r['maps_fps'], '.0f')} | — | {r['peak_rss_mb']:.0f} |")
    for name, fl in report["flows"].items():
        lines.append(f"| flow {name}, {fl['frames']} frames at 96² (one-off) | — | — | — "
                     f"| {fl['ms_per_frame']:.2f} | — |")
    for m in report["memory"]:
        lines.append(f"| cam train + eval, {m['frames']} frames of {m['frame_size']} JPEG | — | — | — | — "
                     f"| {m['peak_rss_mb']:.0f} |")
    ratios = report["ratios"]
    again = ", ".join(f"{n}: {fl['again_calls']} estimator calls, {fl['again_ms']:.1f} ms"
                      for n, fl in report["flows"].items())
    mem = report["memory"]
    calls = ", ".join(f"{r['method']} {r['flow_calls']} ({r['flow_seconds']:.1f} s)" for r in report["rows"])
    epochs_text = ", ".join(f"{name} {sec:.2f} s" for name, sec in report["epochs"]["epoch_seconds"].items())
    lines += [
        "",
        f"- tccam (clip) epoch / puzzlecam epoch: **{ratios['tccam_over_puzzlecam_epoch']:.2f}** (target ≤ 1.3); "
        f"tccam triplet epoch / clip epoch: **{ratios['triplet_over_clip_epoch']:.2f}** ({epochs_text}; one warm "
        f"process, best of {report['epochs']['rounds']} alternating one-epoch trainings each)",
        f"- cam / gradcam maps frames/s on the same classifier: **{ratios['cam_over_gradcam_maps_fps']:.1f}×** "
        f"({report['maps']['fps']['cam']:.0f} vs {report['maps']['fps']['gradcam']:.0f} frames/s, warm, best of "
        f"{report['maps']['rounds']} alternating rounds over {report['maps']['frames']} frames; the table's column "
        "is each run's own evaluation)",
        f"- peak RSS {mem[1]['frames']} / {mem[0]['frames']} frames: **{ratios['memory_large_over_small']:.2f}** "
        "(target ≤ 1.2)",
        f"- flow cache: the same flows asked for again → {again}; videos whose flow was estimated, per run: "
        f"{calls} (the first run that needs flows computes them once; every later run, and every training epoch, "
        f"reads the cache)",
    ]
    m = report["machine"]
    lines.append(f"- machine: {m['cpu']}, {m['cores']} cores, {m.get('gpu', 'no GPU used')}, device {m['device']}, "
                 f"torch {m['torch']}; load average {m['load_average_start']:.1f} at start, "
                 f"{m['load_average_end']:.1f} at end; benchmark wall time {report['wall_seconds']:.0f} s"
                 + (" (--quick)" if report["quick"] else ""))
    return "\n".join(lines)


def main() -> None:
    """Command line: the benchmark, or (internally) one worker measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (about 2 minutes)")
    parser.add_argument("--json", type=Path, help="also write the full report as JSON to this file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--workdir", type=Path, help="keep generated data and runs here (default: a temporary folder)")
    parser.add_argument("--worker-run", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--worker-flow", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--worker-maps", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--worker-epochs", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    if argv and argv[0] == "--worker-run":  # REMAINDER would swallow --out: split it off first
        out = Path(argv[argv.index("--out") + 1])
        worker_run(out, argv[1:argv.index("--out")])
        return
    args = parser.parse_args(argv)
    if args.worker_flow:
        data_root, cache_dir, size, *names = args.worker_flow
        worker_flow(args.out, data_root, cache_dir, int(size), names)
        return
    if args.worker_epochs:
        worker_epochs(args.out, *args.worker_epochs)
        return
    if args.worker_maps:
        worker_maps(args.out, *args.worker_maps)
        return

    sys.path.insert(0, str(ROOT))
    from wsbench.device import resolve_device

    device = str(resolve_device(args.device))
    if args.workdir:
        if args.workdir.exists() and any(args.workdir.iterdir()):
            sys.exit(f"--workdir {args.workdir}: not empty (cached classifiers would skip training); use a new folder")
        args.workdir.mkdir(parents=True, exist_ok=True)
        report = run_benchmark(args.quick, device, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="wsbench-perf-") as tmp:
            report = run_benchmark(args.quick, device, Path(tmp))
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
