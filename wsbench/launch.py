"""``wsbench suite SPEC --jobs N``: up to N runs of a suite at once on one machine.

Each of the N *slots* is a worker process (``spawn``, so no CUDA or thread state is inherited)
that runs one run after another through :func:`wsbench.pipeline.execute`, exactly as the
sequential suite does. Runs sharing a classifier (a *classifier group*,
:attr:`wsbench.suite.PlannedRun.group`) wait for the group's first run, which trains it, and then
run on any free slot, reusing it instead of waiting on its lock (:class:`_Schedule`; the lock in
:func:`wsbench.train.obtain_classifier` still guards other suites or ``wsbench run`` processes
writing to the same runs directory). Every cache the runs read, the flows of the temporal
stability score included, is built by this process before the slots start (:func:`warm_caches`).

Devices: with ``--device cuda`` (or ``auto`` with GPUs present) slot ``i`` sees only GPU
``i mod G`` (``CUDA_VISIBLE_DEVICES``, round-robin over the visible GPUs, so N > G shares GPUs);
on the CPU the cores are divided between the slots (``torch.set_num_threads`` and
``OMP_NUM_THREADS`` = cores // N, at least 1). A run that fails is reported and the others go on.
Workers end with the suite process, also when it is killed (:func:`_exit_with_parent`).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runs import RunRecord
from .suite import PlannedRun, done_line, finished_line, suite_record

__all__ = ["Failure", "SlotSetup", "run_parallel", "slot_setups", "warm_caches"]


@dataclasses.dataclass(frozen=True)
class Failure:
    """A suite run that did not finish: its status label and the one-line reason."""

    label: str
    message: str


@dataclasses.dataclass(frozen=True)
class SlotSetup:
    """What one worker process sees: extra environment variables and its torch thread count."""

    env: dict[str, str]
    threads: int | None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def slot_setups(jobs: int, device: str, threads: int | None = None) -> list[SlotSetup]:
    """Per slot: the GPU it is pinned to (CUDA) or its share of the CPU cores.

    Args:
        jobs: number of slots.
        device: the suite's ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        threads: torch threads per slot (``None``: cores // jobs, at least 1).

    Raises:
        UserError: ``--device cuda`` without a visible GPU.
    """
    from .errors import UserError

    per_slot = threads if threads is not None else max(1, _cores() // jobs)
    cpu_env = {"OMP_NUM_THREADS": str(per_slot), "MKL_NUM_THREADS": str(per_slot)}
    if device == "cpu" or device.startswith("cuda:"):  # cuda:N: every slot on that one GPU
        return [SlotSetup(dict(cpu_env), per_slot) for _ in range(jobs)]
    gpus = _visible_gpus()
    if not gpus:
        if device == "cuda":
            raise UserError("--device cuda: no CUDA device is visible (CUDA_VISIBLE_DEVICES, nvidia-smi)")
        return [SlotSetup(dict(cpu_env), per_slot) for _ in range(jobs)]
    return [SlotSetup({**cpu_env, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]}, per_slot) for i in range(jobs)]


#: prctl option: the signal this process gets when its parent dies (linux/prctl.h)
_PR_SET_PDEATHSIG = 1


def _exit_with_parent(parent: int) -> None:
    """End this worker when the suite process ``parent`` dies (``kill -9`` included), instead of
    finishing its run and then waiting forever for work.

    On Linux the kernel sends SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread looks
    at the parent pid every second.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = sys.platform.startswith("linux") and libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if armed:
        return

    def watch() -> None:  # pragma: no cover - not Linux
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="wsbench-parent-watch").start()


def _init_slot(setup: SlotSetup, parent: int | None = None) -> None:
    """Worker start: exit with the suite process ``parent``; apply the slot's environment before torch
    picks a device or thread count."""
    if parent is not None:
        _exit_with_parent(parent)
    os.environ.update(setup.env)
    if setup.threads is not None:
        import torch

        torch.set_num_threads(setup.threads)


def _run_one(run_spec: Any, runs_dir: Path) -> tuple[str, Any]:
    """Execute one run in a worker: ``("ok", record)`` or ``("error", one-line reason)``."""
    from .errors import UserError
    from .runner import run_logged

    try:
        return "ok", run_logged(run_spec, runs_dir)
    except UserError as err:
        return "error", str(err)
    except Exception as err:  # noqa: BLE001 - any failure of one run is reported, the others go on
        where = traceback.extract_tb(err.__traceback__)[-1]
        return "error", f"{type(err).__name__}: {err} ({Path(where.filename).name}:{where.lineno})"


def warm_caches(planned: list[PlannedRun], echo: Callable[[str], None] = print) -> int:
    """Build the frame and flow caches the runs still to do will read, once, in this process.

    Without it the first runs of every slot build the same caches at the same time (each build
    is atomic, so the result is right, but the work is done once per slot).

    Args:
        planned: :func:`wsbench.suite.plan_suite` of the suite.
        echo: where the status line goes.

    Returns:
        The number of distinct caches looked at (built now or found).
    """
    from .data.cache import prepare
    from .device import resolve_device
    from .pipeline import resolve

    seen: set[tuple[Any, ...]] = set()
    started = time.perf_counter()
    for item in planned:
        if item.done is not None:
            continue
        spec = item.run_spec
        resolved = item.resolved or resolve(spec, resolve_device(spec.device).type)  # planned in this process
        recipe = resolved.recipe
        # every run reads flows: clip training and fusion, and always the temporal stability score
        key = (resolved.config.get("data_fingerprint"), tuple(recipe.image_size), repr(recipe.background_options()),
               spec.cache_dir, recipe.flow, repr(recipe.flow_options()))
        if key in seen:
            continue
        seen.add(key)
        data = prepare(resolved.index, recipe.image_size, spec.cache_dir, background=recipe)
        data.flows(recipe.flow, **recipe.flow_options())
    if seen:
        echo(f"caches ready for {len(seen)} data/flow configuration(s) ({time.perf_counter() - started:.0f} s)")
    return len(seen)


class _Schedule:
    """Which run a free slot takes next.

    The first run of each classifier group trains the group's classifier; the group's other runs
    reuse it, so they wait until that run has ended and then go to any free slot (not all to the
    slot of the first run, which left the other slots idle at the end of a suite). First runs come
    first, those of the largest groups earliest, as they release the most work.

    Args:
        groups: the runs still to do, grouped by :attr:`wsbench.suite.PlannedRun.group`, each in
            spec order.
    """

    def __init__(self, groups: list[list[PlannedRun]]) -> None:
        ordered = sorted((g for g in groups if g), key=lambda g: -len(g))
        self._ready = [g[0] for g in ordered]
        self._waiting = {g[0].index: g[1:] for g in ordered}  # a first run's index: the runs after it
        self._changed = threading.Condition()

    def take(self) -> PlannedRun | None:
        """The next run, waiting while the only runs left wait on a running first run; ``None`` when
        nothing is left for this slot."""
        with self._changed:
            while not self._ready and any(self._waiting.values()):
                self._changed.wait()
            return self._ready.pop(0) if self._ready else None

    def done(self, item: PlannedRun) -> None:
        """``item`` ended (finished or failed): the runs of its group that waited on it are ready."""
        with self._changed:
            self._ready += self._waiting.pop(item.index, [])
            self._changed.notify_all()


def run_parallel(planned: list[PlannedRun], runs_dir: Path, jobs: int, setups: list[SlotSetup],
                 echo: Callable[[str], None] = print) -> tuple[list[RunRecord], list[Failure]]:
    """Run the runs of ``planned`` that are not done yet in ``jobs`` worker processes.

    Args:
        planned: :func:`wsbench.suite.plan_suite` of the suite.
        runs_dir: runs directory (shared by every worker).
        jobs: slots (worker processes) at most.
        setups: one :class:`SlotSetup` per slot (:func:`slot_setups`).
        echo: where status lines go (from this process only).

    Returns:
        ``(records, failures)``: the finished records in spec order (done ones included) and the
        runs that failed.
    """
    started = time.perf_counter()
    records: dict[int, RunRecord] = {}
    for item in planned:
        if item.done is not None:
            echo(done_line(item.label, item.done))
            records[item.index] = suite_record(item)
    warm_caches(planned, echo)
    groups: dict[str, list[PlannedRun]] = {}
    for item in planned:
        if item.done is None:
            groups.setdefault(item.group, []).append(item)
    schedule = _Schedule(list(groups.values()))
    failures: dict[int, Failure] = {}
    lock = threading.Lock()
    context = multiprocessing.get_context("spawn")

    def slot(setup: SlotSetup) -> None:
        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=_init_slot,
                                                      initargs=(setup, os.getpid()))
        try:
            while (item := schedule.take()) is not None:
                with lock:
                    echo(f"{item.label}: running")
                try:
                    status, value = pool.submit(_run_one, item.run_spec, runs_dir).result()
                except concurrent.futures.process.BrokenProcessPool:  # the worker died (killed, segfault)
                    status, value = "error", "the worker process died (killed or crashed)"
                    pool.shutdown(wait=False)
                    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=_init_slot,
                                                                  initargs=(setup, os.getpid()))
                with lock:
                    if status == "ok":
                        records[item.index] = value
                        echo(finished_line(item.label, value))
                    else:
                        failures[item.index] = Failure(item.label, value)
                        echo(f"{item.label}: FAILED: {value}")
                schedule.done(item)
        finally:
            pool.shutdown(wait=True)

    todo = sum(len(g) for g in groups.values())
    threads = [threading.Thread(target=slot, args=(setups[i],), daemon=True) for i in range(min(jobs, todo))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = [records[i.index] for i in planned if i.index in records]
    echo(f"{len(ordered)} runs finished, {len(failures)} failed, {time.perf_counter() - started:.0f} s "
         f"({len(threads)} at once)")
    return ordered, [failures[i] for i in sorted(failures)]
