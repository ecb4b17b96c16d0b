"""Suite throughput: the paper spec on the synthetic belt (1 seed), sequential vs ``--jobs N``.

    python benchmarks/suite_throughput.py [--quick] [--jobs 2] [--threads 1] [--workdir DIR]

Runs ``wsbench suite benchmarks/paper.toml --seeds 1`` twice, each in its own subprocess with a
fresh runs directory and a fresh cache directory (so both build the frame and flow caches):
once sequentially and once with ``--jobs N`` (N runs at once), every run with ``--threads T`` torch
threads (default N = 2, T = 1, for a 2-core machine; the same T in both, since on the CPU the thread
count changes floating-point sums and can move a chosen threshold). Prints the wall time of both,
their ratio, and whether the two suites printed identical tables.

``--quick`` runs the same runs on a small generated belt (4 train videos per class, 8 frames of
64×64) with the ``smoke`` recipe, to check that the benchmark works (the numbers mean nothing).
The full benchmark takes about as long as ``make demo`` twice.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's wsbench (for --quick's generated belt)
SPEC = REPO / "benchmarks" / "paper.toml"


def _suite(spec: Path, runs: Path, cache: Path, extra: list[str]) -> tuple[float, str]:
    """Run one suite in a subprocess; its wall time and its stdout."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, WSBENCH_PROGRESS="0", PYTHONPATH=path)
    command = [sys.executable, "-m", "wsbench", "suite", str(spec), "--seeds", "1", "--device", "cpu",
               "--runs-dir", str(runs), "--cache-dir", str(cache), "-q", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done.stdout


def _tables(output: str) -> str:
    start = output.find("**")
    return output[start:] if start >= 0 else ""


def main() -> None:
    """Parse the options, run both suites, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smoke recipe: checks the benchmark runs")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once in the parallel suite")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run in the parallel suite")
    parser.add_argument("--workdir", type=Path, help="keep the runs and caches here (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wsbench-suite-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        spec = SPEC
        if args.quick:  # the paper's runs on a small generated belt with the smoke recipe
            from wsbench.data.synthetic import BeltConfig, generate_belt

            belt = generate_belt(work / "belt", BeltConfig(train_videos=4, val_videos=2, test_videos=2, frames=8,
                                                           size=(64, 64), seed=1))
            text = SPEC.read_text().replace('datasets = ["synthetic-belt"]', 'datasets = ["video-folder"]')
            spec = work / "paper-smoke.toml"
            spec.write_text(f'recipe = "smoke"\n{text}\n[datasets_options."video-folder"]\ndata_root = "{belt}"\n')
        load = os.getloadavg()[0]
        sequential, seq_out = _suite(spec, work / "sequential" / "runs", work / "sequential" / "cache",
                                     ["--threads", str(args.threads)])
        parallel, par_out = _suite(spec, work / "parallel" / "runs", work / "parallel" / "cache",
                                   ["--jobs", str(args.jobs), "--threads", str(args.threads)])
        same = bool(_tables(seq_out)) and _tables(seq_out) == _tables(par_out)
        runs = sum(1 for line in seq_out.splitlines() if line.endswith(": running"))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"| suite ({spec.name}, 1 seed, {runs} runs{', smoke recipe' if args.quick else ''}) | wall s |")
        print("|---|---:|")
        print(f"| sequential, --threads {args.threads} | {sequential:.1f} |")
        print(f"| --jobs {args.jobs} --threads {args.threads} | {parallel:.1f} |")
        print()
        print(f"- sequential / parallel wall time: **{sequential / parallel:.2f}×**")
        print(f"- tables identical: **{'yes' if same else 'NO'}**")
        print(f"- machine: {platform.processor() or platform.machine()}, {cores} cores, CPU only; load average "
              f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at end")
        if not same:
            sys.exit("the tables differ:\n--- sequential\n" + _tables(seq_out) + "\n--- parallel\n" + _tables(par_out))


if __name__ == "__main__":
    main()
