"""Choices measured on this machine at run time, remembered per CPU in the kernel cache.

Which GEMM is faster (oneDNN or ``torch.mm``, :mod:`spikeinit.engine.gemm`), below which
input rate the event-driven synapses beat it (:mod:`spikeinit.engine.event_linear`), which
memory layout suits a convolution (:mod:`spikeinit.engine.conv_layout`) and how many threads a
training step should use (:class:`ThreadTrial`) depend on the CPU (docs/engine.md lists the
CPUs measured). So they are not constants: the first time a process meets a shape, it times the
candidates a few times, interleaved, and keeps the faster.

- **Kept (reproducible).** Under ``SPIKEINIT_TUNING=kept`` (the default) a decision, once made
  on this machine, is final: it is written to ``choices-<hash>.json`` in the kernel cache folder
  (:func:`spikeinit.engine.kernels.loader.cache_dir`), one file per machine key (the CPU model,
  a hash of its feature flags, the torch version and the thread count), whatever the
  measurement was like (noisy, on a busy machine, or skipped because the budget was spent), and
  every later process on the machine reads it and measures nothing. Deciding is serialized
  between processes by a lock file (:func:`machine_lock`): the first process to meet a class
  decides it for all. So two processes with the same seed make the same choices, cold cache or
  warm, quiet machine or busy, and give the same numbers bit for bit. Deleting the file
  forgets the choices (the next process measures again).
- **Exact.** ``SPIKEINIT_TUNING=exact`` makes no choice that changes rounding: ``torch.mm``,
  dense synapses, contiguous convolutions, no thread-count trial; runs are bit-identical to
  PyTorch's own layers on any machine (:func:`exact`).
- **Budget.** All measurements of a process together stop after :data:`BUDGET_S` seconds of
  measuring (:func:`budget`, ``$SPIKEINIT_TUNING_BUDGET``); a class met after that gets the
  safe default of its caller (``torch.mm``; the fixed event thresholds; contiguous), which is
  kept like a measured choice (except with a budget of 0, which keeps nothing that is not
  :func:`is_measured`).
- **Files.** The file is written atomically; a file that does not parse, holds another
  machine's key, or is not private to the user (as the compiled kernels,
  :func:`spikeinit.engine.kernels.loader.is_private`) is ignored and rewritten. Each entry
  holds the decision's fields, ``decided`` (the text shown as ``source``) and, for a decision
  that measured something, ``"measured": true`` (:data:`MEASURED`). Where no
  private cache folder can be had, choices live in the process only (and are not reproducible
  across processes).
- **Seeing them.** :func:`spikeinit.engine.decisions.all_choices` lists the decisions in force.

Nothing here changes a result beyond float32 rounding: both GEMMs and the event path compute
the same sums, in another order.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from spikeinit.engine import settings
from spikeinit.engine.kernels.loader import _cpu_signature, _private_folder, cache_dir, is_private
from spikeinit.engine.threads import single_threaded
from spikeinit.io import folder_lock, write_atomic
from spikeinit.machine import cpu_model

FORMAT = 1
"""Version of the choices file; a file of another version is ignored."""

BUDGET_S = 0.3
"""Seconds one process may spend measuring, all shapes together (``$SPIKEINIT_TUNING_BUDGET``
overrides it; ``0`` measures nothing: ``torch.mm`` and the fixed event rates)."""

REPEATS = 2
"""Timed runs per candidate (after one untimed warm-up run each); the fastest run counts,
since other work on the machine can only add time."""

STABLE_SPREAD = 1.25
"""A measurement is cached only when each candidate's timed runs agree within this factor
(slowest / fastest), and, on several threads, the machine is not busy (:func:`machine_quiet`);
otherwise it serves this process only."""

def _default_clock() -> float:
    """This thread's CPU time: a run that other work preempts is not charged the time it
    waited for a core (the machine may be shared). On several threads the calling thread takes
    part in every parallel region and spins briefly at its end, so its CPU time follows the
    region's length while it runs."""
    return time.thread_time()


clock: Callable[[], float] = _default_clock
"""The timer of every measurement (tests replace it with a fake one)."""

lock = threading.RLock()
"""Held while a decision is looked up or measured (measurements nest: the event threshold
measures the GEMM it competes with)."""


class Budget:
    """Measuring time spent by this process, against a limit (seconds)."""

    def __init__(self, limit: float = BUDGET_S) -> None:
        self.limit = limit
        self.spent = 0.0

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit

    def charge(self, seconds: float) -> None:
        self.spent += max(seconds, 0.0)


_budget: Budget | None = None


def budget() -> Budget:
    """This process's measuring budget: :data:`BUDGET_S` seconds, or
    ``$SPIKEINIT_TUNING_BUDGET`` as read at the first measurement. A program that wants every
    shape measured before it times anything (``benchmarks/engine.py``) may raise ``limit``."""
    global _budget
    if _budget is None:
        limit = settings.TUNING_BUDGET.value()
        _budget = Budget(BUDGET_S if limit is None else limit)
    return _budget


def time_interleaved(functions: dict[str, Callable[[], object]],
                     repeats: int = REPEATS) -> dict[str, list[float]] | None:
    """The seconds of each function in up to ``repeats`` timed rounds, after one untimed
    warm-up round; the functions are interleaved (the order alternates each round), so a slow
    spell of a shared machine hits all of them. :func:`best` and :func:`stable` read them.

    Every call is charged to :func:`budget`, a warm-up call at most as much as the function's
    first timed call (a process's first backward pass, say, pays a one-time set-up that is no
    cost of the measurement). Returns ``None``, running nothing, when the budget is already
    exhausted; otherwise at least one timed round runs, and no further round starts once the
    budget is exhausted.
    """
    spent = budget()
    if spent.exhausted:
        return None
    names = list(functions)
    warmup: dict[str, float] = {}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats + 1):
        if round_ > 1 and spent.exhausted:
            break
        for name in names if round_ % 2 == 0 else names[::-1]:
            start = clock()
            functions[name]()
            elapsed = clock() - start
            if round_ == 0:
                warmup[name] = elapsed
                continue
            spent.charge(elapsed)
            if round_ == 1:
                spent.charge(min(warmup[name], elapsed))
            samples[name].append(elapsed)
    return samples


def machine_quiet() -> bool:
    """Whether a measurement may be cached: on one thread always (its CPU time does not see
    other work); on several, only while the 1-minute load average leaves a core free for each
    thread (a parallel region waits for its slowest thread, and a busy machine decides that)."""
    threads = torch.get_num_threads()
    if threads == 1 or not hasattr(os, "getloadavg"):
        return True
    return os.getloadavg()[0] <= max((os.cpu_count() or 1) - threads, 0) + 0.5


def best(samples: dict[str, list[float]]) -> dict[str, float]:
    """The fastest run of each function: other work on the machine can only add time."""
    return {name: min(times) for name, times in samples.items()}


def stable(samples: dict[str, list[float]]) -> bool:
    """Whether every function's runs agree within :data:`STABLE_SPREAD` (and there were at
    least two of each)."""
    return all(len(times) >= 2 and max(times) <= STABLE_SPREAD * min(times)
               for times in samples.values())


def size_class(n: int) -> int:
    """``n`` rounded to the nearest power of two (in log scale): the size classes that share a
    measured choice."""
    return 1 << max(0, round(math.log2(max(n, 1))))


# ----------------------------------------------------------------------------- the cache


@functools.lru_cache(maxsize=1)
def machine_identity() -> tuple[tuple[str, str], ...]:
    """CPU model, a hash of the CPU's feature flags and the torch version (cached)."""
    features = hashlib.sha256(_cpu_signature().encode()).hexdigest()[:16]
    return (("cpu", cpu_model()), ("cpu_features", features), ("torch", torch.__version__))


def machine_key(threads: int) -> dict[str, Any]:
    """What a cached choice is valid for: :func:`machine_identity` and the thread count."""
    return {**dict(machine_identity()), "threads": threads}


def choices_path(key: dict[str, Any]) -> Path:
    """The cache file of ``key``: ``choices-<hash>.json`` in the kernel cache folder."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"choices-{digest}.json"


def _trusted_folder(path: Path) -> bool:
    return _private_folder(path.parent)


def read_choices(key: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sections (``{"gemm": {...}, "event": {...}}``) cached for ``key``; empty when the
    file is missing, unreadable, corrupt, not private, or written for another key."""
    path = choices_path(key)
    try:
        if not (path.is_file() and is_private(path) and is_private(path.parent)):
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("machine") != key:
        return {}
    sections = data.get("choices")
    if not isinstance(sections, dict):
        return {}
    return {name: entries for name, entries in sections.items() if isinstance(entries, dict)}


def write_choice(key: dict[str, Any], section: str, name: str, value: dict[str, Any]) -> bool:
    """Add one decision to the cache file of ``key`` (read, merge, atomic rewrite); whether it
    was written. Failures (no private folder, disk errors) are silent: the choice then lives
    in this process only."""
    path = choices_path(key)
    if not _trusted_folder(path):
        return False
    with lock:
        sections = read_choices(key)
        sections.setdefault(section, {})[name] = value
        try:
            text = json.dumps({"format": FORMAT, "machine": key, "choices": sections},
                              indent=1, sort_keys=True, allow_nan=False)
            write_atomic(path, lambda tmp: tmp.write_text(text + "\n"))
        except (OSError, ValueError):  # ValueError: a non-finite number is not stored
            return False
    return True


def valid_entry(entry: Any, field: str, allowed: tuple[Any, ...],
                numbers: tuple[str, ...] = ()) -> bool:
    """Whether a kept ``entry`` holds a decision: ``entry[field]`` one of ``allowed``, and each
    of ``numbers`` a number where present. A decision taken without timings (budget spent, a
    candidate that failed in the vetting child) has none, and is kept all the same."""
    return (isinstance(entry, dict) and entry.get(field) in allowed
            and all(isinstance(entry[k], (int, float)) for k in numbers if k in entry))


MEASURED = "measured"
"""The field of an entry that says, as ``true``, that the decision rests on something this
machine did (candidates timed, or run in the vetting child). A caller's default taken without
either (the budget spent) has no such field; nor do entries of files written before the field
existed, which are read and used all the same."""


def is_measured(entry: dict[str, Any]) -> bool:
    """Whether ``entry`` was decided by a measurement on this machine (:data:`MEASURED`).

    Example:
        >>> is_measured({"backend": "torch", MEASURED: True}), is_measured({"backend": "torch"})
        (True, False)
    """
    return entry.get(MEASURED) is True


def _well_formed(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get(MEASURED, False), bool)


class Choices:
    """One section of decisions per thread count (``"gemm"``, ``"event"``, ``"conv"``,
    ``"vetted"``): measured in this process, read from the cache file, or (``persist=False``)
    this process's fallbacks.

    ``valid`` checks an entry read from disk; entries that fail it, or whose :data:`MEASURED`
    field is not a boolean, are ignored (and measured again). An entry in memory carries a
    ``source`` text for display (``"cache"`` when read from the file); the file stores it as
    ``decided``."""

    def __init__(self, section: str, valid: Callable[[Any], bool]) -> None:
        self.section = section
        self.valid = valid
        self._tables: dict[int, dict[str, dict[str, Any]]] = {}

    def _table(self) -> dict[str, dict[str, Any]]:
        threads = torch.get_num_threads()
        table = self._tables.get(threads)
        if table is None:
            cached = read_choices(machine_key(threads)).get(self.section, {})
            table = {name: {**entry, "source": "cache"} for name, entry in cached.items()
                     if self._readable(entry)}
            self._tables[threads] = table
        return table

    def _readable(self, entry: Any) -> bool:
        return _well_formed(entry) and self.valid(entry)

    def get(self, name: str) -> dict[str, Any] | None:
        """The entry ``name`` for the current thread count, or ``None``."""
        with lock:
            return self._table().get(name)

    def reread(self, name: str) -> dict[str, Any] | None:
        """The entry ``name`` as the cache file holds it now (another process may have decided
        it since this one read the file), taken into memory; ``None`` if it holds none."""
        with lock:
            entry = read_choices(machine_key(torch.get_num_threads())).get(
                self.section, {}).get(name)
            if entry is None or not self._readable(entry):
                return None
            entry = {**entry, "source": "cache"}
            self._table()[name] = entry
            return entry

    def put(self, name: str, entry: dict[str, Any], persist: bool = True) -> None:
        """Take ``entry`` as the decision ``name``; with ``persist``, also write it to the cache
        file (its ``source`` stored as ``decided``)."""
        with lock:
            self._table()[name] = entry
            if persist:
                stored = {k: v for k, v in entry.items() if k != "source"}
                stored["decided"] = entry.get("source", "")
                write_choice(machine_key(torch.get_num_threads()), self.section, name, stored)

    def items(self) -> dict[str, dict[str, Any]]:
        """The decisions for the current thread count (a copy)."""
        with lock:
            return {name: dict(entry) for name, entry in sorted(self._table().items())}

    def clear(self) -> None:
        """Forget everything in memory (the cache file stays)."""
        with lock:
            self._tables.clear()


def exact() -> bool:
    """Whether ``SPIKEINIT_TUNING=exact``: every caller takes its bit-exact default (``torch.mm``,
    dense synapses, contiguous frames, no thread trial) and nothing is measured."""
    return settings.TUNING.value() == "exact"


_machine_lock_depth = 0


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Hold the cache folder's ``choices.lock`` (an exclusive ``flock``, waited for) while a
    decision is read, measured and written, so that two processes meeting a new class at once
    make one decision between them. Re-entrant within the process (decisions nest); without a
    private cache folder it holds nothing."""
    global _machine_lock_depth
    outer = _machine_lock_depth == 0 and _private_folder(cache_dir())
    with folder_lock(cache_dir(), "choices.lock", busy=None) if outer \
            else contextlib.nullcontext():
        _machine_lock_depth += 1
        try:
            yield
        finally:
            _machine_lock_depth -= 1


def _keep(entry: dict[str, Any]) -> bool:
    """Every decision is kept, except one not :func:`is_measured` under a budget of 0 (which a
    user sets to measure nothing, not to pin every class to its default)."""
    return is_measured(entry) or budget().limit != 0


def _without_rng(measure: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``measure`` run with torch's CPU random state saved and restored: the random probes of a
    measurement must not shift the user's random stream (a process that measures would
    otherwise draw other dropout masks and batches than one that read the kept choice)."""

    def run() -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):
            return measure()

    return run


def decide(choices: Choices, name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The entry ``name`` of ``choices`` for the current thread count: in memory, else kept on
    disk by an earlier decision of this machine, else ``measure()``d now and kept.

    On several threads while the machine is busy (:func:`machine_quiet` is false), timings
    measure the scheduler more than the code, so the choice of one thread is used instead
    (measured now, at one thread, if it is new), and kept for the current thread count too.
    """
    with lock:
        entry = choices.get(name)
        if entry is not None:
            return entry
        measure = _without_rng(measure)
        with machine_lock():
            entry = choices.reread(name)
            if entry is not None:
                return entry
            if torch.get_num_threads() > 1 and not machine_quiet():
                with single_threaded():
                    single = choices.get(name) or choices.reread(name)
                    if single is None:
                        single = measure()
                        choices.put(name, single, persist=_keep(single))
                entry = {**single, "source": f"{single['source']}, on 1 thread (machine busy)"}
            else:
                entry = measure()
            choices.put(name, entry, persist=_keep(entry))
            return entry
