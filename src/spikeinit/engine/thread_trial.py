"""The thread count a training loop measures on its own steps (:class:`ThreadTrial`), kept per
machine and workload through :mod:`spikeinit.engine.tuning`."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from spikeinit.engine import tuning
from spikeinit.errors import InvalidArgumentError


class ThreadTrial:
    """Choose torch's intra-op thread count by timing real steps.

    Small models (the paper's 784 - 10 x 100 - 10 MLP) gain little from a second thread, and on
    a machine shared with other jobs a parallel region waits for every thread to be scheduled,
    which can make them many times slower (docs/engine.md, "Training loop"). So the count is
    measured, not assumed: wrap each training step in :meth:`step`. The first
    ``(1 + steps_each) * len(candidates)`` steps cycle through the candidates (one untimed
    warm-up step each, then ``steps_each`` timed ones, interleaved); then the count with the
    lowest median wall time is set for the following steps (wall time: waiting for a busy core
    is exactly the cost). With
    ``recheck_every``, the trial runs again after that many steps, following the load. The
    steps are the real training steps, so nothing is computed twice; the cost is the slower
    count's excess over a few steps (a count :data:`HOPELESS` times slower than another after
    one timed step each is not tried further). Results depend on the thread count through float
    rounding of reductions.

    **Kept.** With a ``key`` (the workload: what the training loop passes is the model and batch
    shape), the trial is reproducible: its schedule is fixed (no count is dropped early, no
    recheck), and the count chosen is kept per machine and key like every other choice
    (:func:`~spikeinit.engine.tuning.decide`); a later process with the same key runs the
    same scheduled steps and then the kept count, whatever its own timings say, so both give
    the same numbers.

    Example:
        >>> trial = ThreadTrial(candidates=(1,))  # a single candidate: nothing to measure
        >>> with trial.step():
        ...     pass
        >>> trial.chosen
        1
    """

    def __init__(self, candidates: tuple[int, ...] | None = None, steps_each: int = 3,
                 recheck_every: int = 0, key: str | None = None) -> None:
        found = candidates or (1, torch.get_num_threads())
        self.candidates = tuple(dict.fromkeys(max(1, int(c)) for c in found))
        self.steps_each = steps_each
        if key is not None and recheck_every:
            raise InvalidArgumentError("recheck_every: a kept trial (key given) runs once; use 0")
        self.recheck_every = recheck_every
        self.key = key
        self.chosen: int | None = self.candidates[0] if len(self.candidates) == 1 else None
        self.times: dict[int, list[float]] = {}
        self._schedule: list[tuple[int, bool]] = []
        self._since_choice = 0
        if self.chosen is None:
            self._start_trial()

    def _start_trial(self) -> None:
        self.times = {threads: [] for threads in self.candidates}
        order = list(self.candidates)
        self._schedule = []
        for round_ in range(self.steps_each + 1):
            for threads in order if round_ % 2 == 0 else order[::-1]:
                self._schedule.append((threads, round_ > 0))

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Run one step at the thread count of the trial, or at the chosen one."""
        if not self._schedule:
            if self.chosen is not None:
                torch.set_num_threads(self.chosen)
            yield
            self._since_choice += 1
            if self.recheck_every and self._since_choice >= self.recheck_every:
                self._since_choice = 0
                self._start_trial()
            return
        threads, timed = self._schedule.pop(0)
        torch.set_num_threads(threads)
        start = wall_clock()
        yield
        elapsed = wall_clock() - start
        if timed:
            self.times[threads].append(elapsed)
            if self.key is None:
                self._drop_hopeless()
        if not self._schedule:
            self._choose()

    def finish(self) -> int:
        """End a running trial now and set its choice: the count with the lowest median among
        those timed so far, or the first candidate when none was (a caller that needs a decision
        before the trial's steps are over, e.g. before a checkpoint). Returns :attr:`chosen`;
        after a finished trial it only returns it."""
        if self._schedule or self.chosen is None:
            self._schedule = []
            self._choose()
        assert self.chosen is not None
        return self.chosen

    def _measured_choice(self) -> int:
        timed = [t for t in self.candidates if self.times.get(t)]
        return (min(timed, key=lambda t: statistics.median(self.times[t])) if timed
                else self.candidates[0])

    def _choose(self) -> None:
        if self.key is None:
            self.chosen = self._measured_choice()
        else:
            self.chosen = self._kept_choice()
        torch.set_num_threads(self.chosen)

    def _kept_choice(self) -> int:
        """The count kept for :attr:`key` on this machine, else the measured one (then kept)."""
        machine = tuning.machine_key(max(self.candidates))
        name = f"{self.key} of {','.join(map(str, self.candidates))}"
        with tuning.lock, tuning.machine_lock():
            kept = tuning.read_choices(machine).get("threads", {}).get(name, {}).get("threads")
            if kept in self.candidates:
                return int(kept)
            chosen = self._measured_choice()
            tuning.write_choice(machine, "threads", name, {"threads": chosen})
            return chosen

    def _drop_hopeless(self) -> None:
        """Stop trying a count whose best step took :data:`HOPELESS` times the best step of
        another: each trial step of a count that slow costs more than the trial can win back."""
        timed = {t: min(times) for t, times in self.times.items() if times}
        if len(timed) < 2:
            return
        fastest = min(timed.values())
        hopeless = {t for t, best in timed.items() if best > HOPELESS * fastest}
        self._schedule = [(t, is_timed) for t, is_timed in self._schedule if t not in hopeless]


HOPELESS = 3.0
"""A thread count whose best timed step is this many times slower than another's is dropped
from the rest of a :class:`ThreadTrial`."""

wall_clock: Callable[[], float] = time.perf_counter
"""The timer of :class:`ThreadTrial` (tests replace it)."""
