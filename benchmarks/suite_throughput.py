"""Suite throughput: the paper spec on the synthetic belt (1 seed), sequential vs ``--jobs N``.

    python benchmarks/suite_throughput.py [--quick] [--jobs 2] [--threads 1] [--workdir DIR]

Runs ``wsbench suite benchmarks/paper.toml --seeds 1`` twice, each in its own subprocess with a
fresh runs directory and a fresh cache directory (so both build the frame and flow caches):
once sequentially (torch's default thread count: all cores) and once with ``--jobs N --threads T``
(N runs at once, T torch threads each; default 2 and 1, for a 2-core machine). Prints the wall
time of both, their ratio, and whether the two suites printed identical tables.

``--quick`` runs the same spec with the ``smoke`` recipe (seconds per run; the numbers mean nothing)
to check that the benchmark works. The full benchmark takes about as long as ``make demo`` twice.
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
SPEC = REPO / "benchmarks" / "paper.toml"


def _suite(spec: Path, runs: Path, cache: Path, extra: list[str]) -> tuple[float, str]:
    """Run one suite in a subprocess; its wall time and its stdout."""
    env = dict(os.environ, WSBENCH_PROGRESS="0", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
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
        if args.quick:
            spec = work / "paper-smoke.toml"
            spec.write_text('recipe = "smoke"\n' + SPEC.read_text())
        load = os.getloadavg()[0]
        sequential, seq_out = _suite(spec, work / "sequential" / "runs", work / "sequential" / "cache", [])
        parallel, par_out = _suite(spec, work / "parallel" / "runs", work / "parallel" / "cache",
                                   ["--jobs", str(args.jobs), "--threads", str(args.threads)])
        same = bool(_tables(seq_out)) and _tables(seq_out) == _tables(par_out)
        runs = sum(1 for line in seq_out.splitlines() if line.endswith(": running"))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"| suite ({spec.name}, 1 seed, {runs} runs{', smoke recipe' if args.quick else ''}) | wall s |")
        print("|---|---:|")
        print(f"| sequential (one process, default threads) | {sequential:.1f} |")
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
