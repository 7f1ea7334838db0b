"""Run a sweep: skip finished runs, execute the rest on a local process pool or on Ray.

Local backend: a ``ProcessPoolExecutor`` (spawned workers) where each **worker** writes its
run's result file atomically, so a run that finished is on disk even if the runner is killed a
moment later. Workers die with the runner (``PR_SET_PDEATHSIG`` on Linux, set by a launcher
before the worker's interpreter imports anything, then a watchdog thread), so a restarted sweep
never races an orphan on the same run.

Ray backend: every run is a Ray task (``num_cpus``/``num_gpus`` per task); the task returns its
record and the driver writes the same result files (so the cluster needs no shared file
system with the driver).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context, spawn
from pathlib import Path
from typing import Any

from tqdm import TqdmWarning, tqdm

from spikeinit.errors import InvalidArgumentError
from spikeinit.io import remove_temporaries, write_json_atomic
from spikeinit.sweep import store
from spikeinit.sweep.spec import Run, check_task

BACKENDS = ("local", "ray")


def execute(task: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration of ``task`` in this process and return its JSON-ready result."""
    check_task(task)
    config = dict(config)
    if task == "propagate":
        from spikeinit.experiments.propagation import PropagationConfig, run_propagation

        gradients = config.pop("gradients", False)
        surrogate = config.pop("surrogate", "atan")
        config["inits"] = tuple(config["inits"])
        result = run_propagation(PropagationConfig(**config), gradients=gradients,
                                 surrogate=surrogate)
        return result["results"]
    if task == "conditions":
        from spikeinit.experiments.conditions import ConditionsConfig, run_conditions

        config["widths"] = tuple(config["widths"])
        config["thresholds"] = tuple(config["thresholds"])
        result = run_conditions(ConditionsConfig(**config))
        result.pop("config")
        return result
    import torch

    from spikeinit.data import DatasetError
    from spikeinit.experiments.training import TrainConfig, train

    device = config.pop("device", "cpu")
    try:  # the worker's thread count is the sweep's (--threads): kept, not measured
        trained = train(TrainConfig.from_dict(config), None, device=device, progress=False,
                        log=None, threads=torch.get_num_threads())
    except DatasetError as error:
        raise InvalidArgumentError(str(error)) from error
    result = trained.to_dict()
    result.pop("config", None)
    return result


def _record(run: Run, started: float) -> dict[str, Any]:
    finished = time.time()
    return {"key": run.key, "task": run.task, "config": run.config,
            "timing": {"started": started, "finished": finished, "seconds": finished - started},
            "host": socket.gethostname(), "pid": os.getpid()}


def compute_record(run: Run) -> dict[str, Any]:
    """Execute ``run`` and return its done or failed record (never raises for run errors)."""
    started = time.time()
    try:
        result = execute(run.task, run.config)
    except Exception as error:  # a failed run is recorded, not fatal to the sweep
        record = _record(run, started)
        record.update(status="failed", error=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc())
        return record
    record = _record(run, started)
    record.update(status="done", result=result)
    return record


def run_and_write(results: str, run: Run) -> str:
    """Worker entry: log the start, execute ``run``, write its record atomically; the status."""
    results_path = Path(results)
    store.log_event(results_path, "start", run.key)
    record = compute_record(run)
    if record["status"] == "done":
        store.write_done(results_path, record)
    else:
        store.write_failed(results_path, record)
    store.log_event(results_path, record["status"], run.key)
    return record["status"]


def _die_with_parent(threads: int, parent: int | None = None) -> None:
    """Worker initializer: exit when the runner (process ``parent``, default the current
    parent) dies, also when it died before this ran; limit torch's intra-op threads."""
    parent = os.getppid() if parent is None else parent
    if platform.system() == "Linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watchdog() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.2)

    threading.Thread(target=watchdog, daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)
    import torch

    torch.set_num_threads(threads)


@dataclass
class SweepSummary:
    """What :func:`run_sweep` did."""

    total: int
    skipped_done: int = 0
    skipped_failed: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        """A one-line summary for the CLI."""
        return (f"{self.total} runs: {self.skipped_done} already done, {self.done} done now, "
                f"{self.failed} failed now, {self.skipped_failed} failed before (not retried); "
                f"{self.seconds:.1f} s")


class _Progress:
    def __init__(self, total: int, initial: int, failed: int, enabled: bool | None) -> None:
        self.done, self.failed, self.running = initial, failed, 0
        self.bar = tqdm(total=total, initial=initial + failed, desc="sweep", unit="run",
                        disable=None if enabled is None else not enabled,
                        file=sys.stderr)
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix(done=self.done, running=self.running, failed=self.failed,
                             refresh=True)

    def set_running(self, running: int) -> None:
        self.running = running
        self._show()

    def finish(self, status: str) -> None:
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        self.bar.update(1)
        self._show()

    def close(self) -> None:
        self.bar.close()


#: Times a run may kill its worker process when it runs alone before it is recorded as failed.
SOLO_DEATHS = 2


def _local(results: Path, todo: list[Run], workers: int, threads: int | None,
           progress: _Progress, summary: SweepSummary) -> None:
    """Run ``todo`` on a pool of ``workers`` processes. When a worker process dies (killed, as
    the out-of-memory killer does), the pool breaks and every run in flight is a suspect: each
    runs again *alone* in a fresh process, so that only a run that kills its worker by itself
    (:data:`SOLO_DEATHS` times) is recorded as failed, and its innocent neighbours are not."""
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    pending = list(reversed(todo))
    suspects: list[Run] = []
    deaths: dict[str, int] = {}
    while pending or suspects:
        alone = bool(suspects)
        queue = [suspects.pop()] if alone else pending
        for run in _pool_pass(results, queue, 1 if alone else workers, threads, progress,
                              summary):
            if store.is_done(results, run.key):  # it finished just before the break
                _count(summary, progress, run, "done")
                continue
            store.log_event(results, "worker-died", run.key, alone=alone)
            if not alone:
                suspects.insert(0, run)
                continue
            deaths[run.key] = deaths.get(run.key, 0) + 1
            if deaths[run.key] < SOLO_DEATHS:
                suspects.append(run)
                continue
            record = _record(run, time.time())
            record.update(status="failed", error=(
                f"its worker process died {SOLO_DEATHS} times while it ran alone (killed, e.g. "
                "by the out-of-memory killer); rerun with --retry-failed once it can fit"))
            store.write_failed(results, record)
            _count(summary, progress, run, "failed")


#: The worker launcher: it asks Linux to kill the process when its parent (the runner) dies,
#: then becomes the Python interpreter (``execv`` keeps that request), so that a worker killed
#: while it still imports torch dies too.
_LAUNCHER = """#!{python} -S
import ctypes, os, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
except (OSError, AttributeError):
    pass
if os.getppid() != {parent}:
    os._exit(1)
os.execv({python!r}, [{python!r}] + sys.argv[1:])
"""


@contextlib.contextmanager
def _launched_workers() -> Iterator[None]:
    """Spawn the pool's workers through :data:`_LAUNCHER` (Linux, where the interpreter's path
    fits a ``#!`` line); elsewhere as they are, with the initializer's watchdog alone."""
    python = spawn.get_executable()
    python = python.decode() if isinstance(python, bytes) else python
    if platform.system() != "Linux" or not python or len(python) > 100 or any(
            char.isspace() for char in python):
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="spikeinit-workers-"))
    launcher = folder / "worker"
    launcher.write_text(_LAUNCHER.format(python=python, parent=os.getpid()))
    launcher.chmod(0o700)
    spawn.set_executable(str(launcher))
    try:
        yield
    finally:
        spawn.set_executable(python)
        shutil.rmtree(folder, ignore_errors=True)


def _pool_pass(results: Path, queue: list[Run], workers: int, threads: int,
               progress: _Progress, summary: SweepSummary) -> list[Run]:
    """Run the runs of ``queue`` (popped from its end) on a fresh pool until it is empty or a
    worker dies; the runs that were in flight when it died (none if it did not)."""
    in_flight: dict[Future[str], Run] = {}
    with _launched_workers(), ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_die_with_parent,
            initargs=(threads, os.getpid())) as pool:
        while queue or in_flight:
            try:
                while queue and len(in_flight) < workers:
                    run = queue.pop()
                    in_flight[pool.submit(run_and_write, str(results), run)] = run
            except BrokenProcessPool:
                queue.append(run)
                return list(in_flight.values())
            progress.set_running(len(in_flight))
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    status = future.result()
                except BrokenProcessPool:
                    return list(in_flight.values())
                except Exception as error:  # the run's result could not come back
                    run = in_flight[future]
                    record = _record(run, time.time())
                    record.update(status="failed", error=f"{type(error).__name__}: {error}",
                                  traceback="".join(traceback.format_exception(error)))
                    store.write_failed(results, record)
                    status = "failed"
                _count(summary, progress, in_flight.pop(future), status)
            progress.set_running(len(in_flight))
    return []


def _count(summary: SweepSummary, progress: _Progress, run: Run, status: str) -> None:
    if status == "done":
        summary.done += 1
    else:
        summary.failed += 1
        summary.failures.append(run.key)
    progress.finish(status)


def import_ray() -> Any:
    """``import ray``, or a ``ValueError`` saying how to install it."""
    try:
        with warnings.catch_warnings():
            # Ray imports tqdm.auto, which in a notebook without ipywidgets warns that its bars
            # fall back to text: a remark on the notebook, not on the sweep.
            warnings.filterwarnings("ignore", "IProgress not found", TqdmWarning)
            import ray
    except ImportError as error:
        raise InvalidArgumentError("backend 'ray' needs Ray: pip install 'spikeinit[ray]' "
                         "(or pip install ray)") from error
    return ray


def _ray_compute(run: Run, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    return compute_record(run)


def _ray(results: Path, todo: list[Run], address: str | None, workers: int,
         cpus_per_task: float, gpus_per_task: float, progress: _Progress,
         summary: SweepSummary) -> None:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(workers, int(cpus_per_task) or 1), log_to_driver=False,
                     include_dashboard=False)
    try:
        cpus = float(ray.cluster_resources().get("CPU", workers))
        concurrency = max(1, int(cpus // cpus_per_task) if cpus_per_task > 0 else len(todo))
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task)(_ray_compute)
        threads = max(1, int(cpus_per_task))
        pending = list(reversed(todo))
        in_flight: dict[Any, Run] = {}
        while pending or in_flight:
            while pending and len(in_flight) < concurrency:
                run = pending.pop()
                store.log_event(results, "start", run.key, backend="ray")
                in_flight[remote.remote(run, threads)] = run
            progress.set_running(len(in_flight))
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                run = in_flight.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as error:  # the task or its worker died
                    record = _record(run, time.time())
                    record.update(status="failed", error=f"{type(error).__name__}: {error}",
                                  traceback="".join(traceback.format_exception(error)))
                if record["status"] == "done":
                    store.write_done(results, record)
                else:
                    store.write_failed(results, record)
                store.log_event(results, record["status"], run.key, backend="ray")
                _count(summary, progress, run, record["status"])
            progress.set_running(len(in_flight))
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(
    runs: Sequence[Run],
    results: str | os.PathLike[str],
    backend: str = "local",
    workers: int = 1,
    retry_failed: bool = False,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    threads: int | None = None,
    progress: bool | None = None,
    on_plan: Callable[[list[Run]], None] | None = None,
) -> SweepSummary:
    """Execute every run of ``runs`` that has no result in ``results`` yet.

    Args:
        runs: the runs (see :func:`spikeinit.sweep.spec.expand`).
        results: the results directory (created).
        backend: ``"local"`` (process pool) or ``"ray"``.
        workers: local worker processes (ray: CPUs of a locally started Ray instance).
        retry_failed: also run the runs that have a failure record.
        address: Ray address (``None``: start a local Ray instance).
        cpus_per_task, gpus_per_task: Ray resources of each task.
        threads: torch threads per local worker (default: CPU count / workers).
        progress: show the tqdm bar (``None``: only on a terminal).
        on_plan: called with the runs about to execute (for tests and logging).

    Raises:
        ValueError: a bad backend or count, ray missing, or a results directory in use.
    """
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, "
                         f"got {backend!r}")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise InvalidArgumentError(f"workers must be an integer >= 1, got {workers!r}")
    if cpus_per_task < 0 or gpus_per_task < 0:
        raise InvalidArgumentError("cpus_per_task and gpus_per_task must be >= 0")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise InvalidArgumentError(f"threads must be an integer >= 1, got {threads!r}")
    if backend == "ray":
        import_ray()
    results = Path(results)
    start = time.time()
    summary = SweepSummary(total=len(runs))
    with store.sweep_lock(results):
        remove_temporaries(results)
        write_json_atomic(results / "sweep.json", {
            "keys": [run.key for run in runs], "tasks": sorted({run.task for run in runs}),
        })
        todo = []
        for run in runs:
            if store.is_done(results, run.key):
                summary.skipped_done += 1
            elif store.is_failed(results, run.key) and not retry_failed:
                summary.skipped_failed += 1
            else:
                todo.append(run)
        if on_plan is not None:
            on_plan(todo)
        bar = _Progress(len(runs), summary.skipped_done, summary.skipped_failed, progress)
        try:
            if todo and backend == "local":
                _local(results, todo, workers, threads, bar, summary)
            elif todo:
                _ray(results, todo, address, workers, cpus_per_task, gpus_per_task, bar,
                     summary)
        finally:
            bar.close()
    summary.seconds = time.time() - start
    return summary
