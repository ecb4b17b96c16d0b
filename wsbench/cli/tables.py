"""``wsbench leaderboard``, ``wsbench figures`` and ``wsbench suite``: tables, figures and suites of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from .base import (
    _METRIC_CHOICES,
    CACHE_DIR_HELP,
    RUNS_DIR_HELP,
    _cache_dir,
    _run_folders,
    _runs_dir,
    _write_or_echo,
    cli,
    overwrite_option,
    quiet_option,
)


@cli.command("leaderboard")
@click.option("--table", "table", type=click.Choice(["comparison", "ablation", "background", "all", "pairs", "long",
                                                    "stages", "sanity", "explanations"]),
              default="all", show_default=True,
              help="comparison (Table 1), ablation (Table 2), background (Table 3), all three, pairs: every pair of "
                   "comparison columns (mean difference, paired bootstrap interval, seeds won), long: one row "
                   "per run, metric and split (csv, json or markdown; not latex), stages: CAM → pseudo-labels → "
                   "distilled segmenter (wsbench distill), with a supervised reference row where one was run "
                   "(wsbench distill --supervised-reference, also a comparison column), sanity: the "
                   "randomisation test and same-maps check per column, or explanations: ROAD faithfulness of each "
                   "column's maps to the classifier it explains")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "json"]), default="markdown",
              show_default=True, help="GitHub markdown, LaTeX booktabs (needs booktabs, amssymb), tidy CSV, JSON")
@click.option("--metric", type=click.Choice(_METRIC_CHOICES), default="iou_illegal",
              show_default=True, help="test metric of the comparison and ablation: iou_illegal pooled over test "
                                      "frames, iou_illegal_per_frame the mean of per-frame IoUs, miou a two-class "
                                      "mean, iou_illegal_wsws the authors' code's protocol, pxap the "
                                      "threshold-free pixel average precision")
@click.option("--ci", is_flag=True, help="add a 95% bootstrap interval over test videos to each illegal-IoU or PxAP "
                                        "cell (1000 resamples; see the caption)")
@click.option("--suite", "suite_spec", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="apply this suite spec's [sweep] choices as `wsbench suite` does: of each grid only the point "
                   "chosen on validation, the grid footnoted (other runs in RUNS_DIR are shown as they are)")
@click.option("--out", type=click.Path(path_type=Path), help="write to FILE instead of printing")
@overwrite_option
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
def leaderboard_cmd(table: str, fmt: str, metric: str, ci: bool, suite_spec: Path | None, out: Path | None,
                    overwrite: bool, runs_dir: Path | None) -> None:
    """Tables from every finished run: mean ± std over seeds × split seeds, best bold, second underlined.

    Runs without result.json (still running or interrupted) are ignored; a configuration re-run
    with the same seed counts once (its latest finished run).
    """
    from ..files import check_output
    from ..leaderboard import stages_text, tables_text
    from ..report import TABLES
    from ..runs import iter_runs

    runs = _runs_dir(runs_dir)
    records, notes = list(iter_runs(runs)), list[str]()
    if suite_spec is not None:  # what wsbench suite shows: of each [sweep] grid the point chosen on validation
        from ..suite import apply_sweeps, load_spec

        records, notes = apply_sweeps(load_spec(suite_spec), records, runs)
    if out is not None:
        check_output(out, "--out", inputs=_run_folders(runs), overwrite=overwrite)
    if table == "stages":  # distilled runs only
        _write_or_echo(stages_text(records, fmt), out)
        return
    text = tables_text(records, list(TABLES) if table == "all" else [table], fmt, metric, ci, footnotes=notes)
    if text is None:
        click.echo("no finished runs")
        return
    _write_or_echo(text, out)


@cli.command("figures")
@click.option("--out", type=click.Path(path_type=Path), help="output folder [default: RUNS_DIR/figures]")
@click.option("--format", "fmt", type=click.Choice(["png", "pdf"]), default="png", show_default=True)
@click.option("--examples", type=int, default=3, show_default=True,
              help="test frames in the qualitative figure (0: skip it; it reloads each run's stored classifier)")
@click.option("--metric", type=click.Choice(_METRIC_CHOICES), default="iou_illegal",
              show_default=True, help="metric of the ablation bar chart")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (masks for the figure)")
@overwrite_option
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@quiet_option
def figures_cmd(out: Path | None, runs_dir: Path | None, cache_dir: Path | None, **options: Any) -> None:
    """Figures from the finished runs: qualitative masks (paper Fig. 7), ablation bars, val threshold sweeps.

    Writes qualitative-<dataset>, ablation, threshold_sweep and training_curves (.png or .pdf) into --out. Nothing is
    trained: masks are recomputed from each run's stored classifier at its threshold (chosen on val,
    or the fixed one its result records).
    """
    from ..data.cache import resolve_cache_dir
    from ..figures import write_figures
    from ..files import check_output, check_outside
    from ..leaderboard import table_runs
    from ..runs import iter_runs

    runs_dir = _runs_dir(runs_dir)
    out = check_output(out or runs_dir / "figures", "--out", "dir", inputs=_run_folders(runs_dir))
    records = table_runs(iter_runs(runs_dir))  # distilled runs are in --table stages
    examples = options["examples"]
    data_roots = {r.config.get("data_root") for r in records} if examples else set()  # qualitative: reads frames
    check_outside(out, "--out", data_roots)
    check_outside(resolve_cache_dir(cache_dir), "--cache-dir", data_roots)
    written = write_figures(records, out, options["fmt"], examples, options["metric"], _cache_dir(cache_dir),
                            options["device"], overwrite=options["overwrite"])
    click.echo("\n".join(f"wrote {p}" for p in written) if written else "no finished runs: no figures")


@cli.command("suite")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--seeds", type=click.IntRange(min=1), help="run seeds 0..N-1 instead of the spec's seeds")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--workers", type=click.IntRange(min=0),
              help="data-loader worker processes [default: 0 on CPU, min(8, cores) on CUDA]")
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_DIR_HELP)
@click.option("--data-root", "data_roots", multiple=True, metavar="DATASET=PATH",
              help="data folder of a dataset of the spec (replaces its data_root; repeatable)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="runs at once on this machine, each in its own process: with CUDA one GPU each "
                   "(round-robin), on the CPU cores // N threads each")
@click.option("--threads", type=click.IntRange(min=1),
              help="torch threads per run [default: cores // N with --jobs N, else torch's]; on the CPU the "
                   "thread count changes floating-point sums, so compare suites run with the same")
@click.option("--launcher", type=click.Choice(["local", "slurm", "submitit-local"]), default="local",
              show_default=True, help="local: this machine (--jobs); slurm: one SLURM job per run through submitit; "
                                      "submitit-local: the same jobs as local processes (no SLURM)")
@click.option("--status", is_flag=True,
              help="with --launcher slurm: each run's state (done, or its job's), submit nothing")
@click.option("--metric", type=click.Choice(_METRIC_CHOICES), default="iou_illegal", show_default=True,
              help="test metric of the tables printed at the end (as wsbench leaderboard --metric)")
@click.option("--no-wait", is_flag=True, help="with --launcher slurm: submit and return (tables: wsbench leaderboard)")
@click.option("--partition", help="SLURM partition [default: the spec's [slurm] table, else the cluster's]")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs per SLURM job [default: [slurm] gpus, else 1]")
@click.option("--tasks", type=click.IntRange(min=1),
              help="processes per SLURM job, one per GPU, joined by torch.distributed like torchrun [default: 1]")
@click.option("--cpus", type=click.IntRange(min=1), help="CPUs per task of a SLURM job [default: 8]")
@click.option("--mem-gb", type=click.FloatRange(min=0, min_open=True), help="memory per SLURM job [default: 32]")
@click.option("--time-min", type=click.IntRange(min=1),
              help="time limit of a SLURM job in minutes; a job reaching it is requeued and resumes [default: 240]")
@quiet_option
def suite_cmd(spec: Path, runs_dir: Path | None, cache_dir: Path | None, data_roots: tuple[str, ...],
              seeds: int | None, no_wait: bool, quiet: bool, **options: Any) -> None:
    """Run a benchmark SPEC (TOML, see benchmarks/), skipping runs finished on unchanged data, then print its tables.

    A run is done when a finished run has its configuration hash and the same data fingerprint
    (names, sizes and mtimes of its frames, masks and .flo files). With --jobs or --launcher slurm a
    failing run does not stop the others; the command then exits with status 1 naming them.
    """
    from ..api import suite

    runs, cache = _runs_dir(runs_dir), _cache_dir(cache_dir)
    roots = {}
    for item in data_roots:
        dataset, sep, path = item.partition("=")
        if not sep or not dataset or not path:
            raise click.BadParameter(f"{item!r} is not DATASET=PATH", param_hint="--data-root")
        roots[dataset] = str(Path(path).expanduser())
    slurm = {key: options.pop(key) for key in ("partition", "gpus", "tasks", "cpus", "mem_gb", "time_min")}
    outcome = suite(spec, runs_dir=runs, seeds=list(range(seeds)) if seeds else None, cache_dir=cache,
                    data_roots=roots, slurm=slurm, wait=not no_wait, progress=not quiet, echo=click.echo, **options)
    for label, state in outcome.states or []:
        click.echo(f"{label}: {state}")
    if outcome.submitted is not None:
        click.echo(f"{outcome.submitted} job(s) queued or running; wsbench suite {spec} --launcher "
                   f"{options['launcher']} --status shows their state, wsbench leaderboard the tables")
    if outcome.tables is not None:
        click.echo("")
        if outcome.tables:
            click.echo(outcome.tables)
    if outcome.failures:
        raise UserError(f"{len(outcome.failures)} run(s) of {spec} failed: " + "; ".join(outcome.failures))
