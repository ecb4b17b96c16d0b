"""Background removal without training: how much of the GT each background rule keeps.

    python benchmarks/foreground.py DATA_ROOT [DATA_ROOT ...] [--split test]

For every data root (the video-folder layout, e.g. written by ``wsbench data synth``) and every
rule below, the foreground of each masked *before* frame of the split is computed exactly as the
frame caches do (per-video median over 64 evenly spaced frames at the analysis size, the rule's
threshold and cleaning), and the illegal GT pixels are counted inside it. Prints one markdown
table: foreground recall (``baselines.foreground_recall`` of a run: the ceiling of every method's
recall), the all-foreground IoU (``baselines.all_foreground.iou_illegal``: every foreground pixel
called illegal) and the share of pixels that are foreground. ``gray, close before open`` is not a
wsbench option: it shows what the lab rule's cleaning order alone would do to the paper's rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's wsbench

from wsbench.data import background as bg  # noqa: E402
from wsbench.data import create_dataset  # noqa: E402
from wsbench.data.io import read_mask  # noqa: E402

RULES = {
    "gray (paper: 22 grey levels, open then close)": bg.BackgroundRule(),
    "gray, close before open": None,
    "gray, otsu": bg.BackgroundRule(threshold_mode="otsu"),
    f"lab (delta E {bg.DEFAULT_LAB_THRESHOLD:g}, close then open)": bg.BackgroundRule("lab"),
    "lab, otsu": bg.BackgroundRule("lab", threshold_mode="otsu"),
}


def measure(root: Path, split: str) -> dict[str, tuple[float, float, float]]:
    """rule name → (foreground recall, all-foreground IoU, foreground share) on ``split``'s masked before frames."""
    index = create_dataset("video-folder", root=root)
    counts = {name: np.zeros(4) for name in RULES}  # GT ∩ fg, GT, fg, pixels
    for video in index.videos:
        if video.split != split or video.label != "before" or not video.masks:
            continue
        n = len(video)
        sample = np.linspace(0, n - 1, min(n, bg.MEDIAN_FRAMES)).round().astype(int)
        first = video.frames.read(0)
        size = bg.analysis_size(first.shape[1], first.shape[0])
        for name, rule in RULES.items():
            paper = rule or bg.BackgroundRule()
            background = paper.fit([paper.convert(video.frames.read(int(i)), size) for i in sample])
            for t in range(n):
                if video.masks[t] is None:
                    continue
                frame = video.frames.read(t)
                if rule is None:
                    raw = (paper.distance(paper.convert(frame, size), background.image) > background.threshold)
                    fg = bg.clean_mask(raw.astype(np.uint8), paper.morph, close_first=True)
                else:
                    fg = background.mask(frame)
                fg = fg.astype(bool)  # the belt's frames are at the analysis size already
                gt = read_mask(video.masks[t], (frame.shape[1], frame.shape[0]))
                counts[name] += (np.sum(gt & fg), gt.sum(), fg.sum(), fg.size)
    return {name: (c[0] / c[1], c[0] / (c[1] + c[2] - c[0]), c[2] / c[3]) for name, c in counts.items()}


def main() -> None:
    """Print the table for every data root given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = parser.parse_args()
    print(f"| data root ({args.split}) | rule | foreground recall | all-foreground IoU | foreground share |")
    print("|---|---|---|---|---|")
    for root in args.roots:
        for name, (recall, iou, share) in measure(root, args.split).items():
            print(f"| {root} | {name} | {recall:.4f} | {iou:.4f} | {share:.4f} |")


if __name__ == "__main__":
    main()
