"""The intra-op thread count of a training run: fixed by the caller, kept from the resumed
checkpoint, or measured on the run's first steps (:class:`ThreadPlan`, :func:`thread_plan`)."""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from spikeinit.engine import thread_trial, tuning
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training.config import TrainConfig

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that fix a process's thread count: when one is set, ``train``'s
default (``threads=None``) measures nothing and leaves torch's count alone."""


def check_threads(threads: object) -> None:
    """Check ``train``'s ``threads``: an integer >= 1, ``"auto"`` or ``None``.

    Raises:
        ValueError: any other value.
    """
    if threads is None or (isinstance(threads, str) and threads == "auto"):
        return
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise InvalidArgumentError(
            f"threads must be an integer >= 1, 'auto' or None, got {threads!r}")


def _measure_by_default(device: str) -> bool:
    """Whether ``threads=None`` measures the count: on the CPU, when no variable of
    :data:`THREAD_VARIABLES` fixes it, the process has more than one thread and
    ``SPIKEINIT_TUNING`` is not ``exact``."""
    fixed = any(os.environ.get(name, "").strip() for name in THREAD_VARIABLES)
    return (device.startswith("cpu") and not fixed and torch.get_num_threads() > 1
            and not tuning.exact())


def workload_key(model: nn.Module, config: TrainConfig) -> str:
    """What a kept thread-count choice is for: the architecture, the batch and the steps."""
    text = f"{model!r} batch={config.batch} steps={config.steps} data={config.dataset}"
    return "train " + hashlib.sha256(text.encode()).hexdigest()[:16]


class ThreadPlan:
    """The intra-op thread count of a run's training steps: fixed (set at construction), or
    measured over the first steps by a :class:`~spikeinit.engine.thread_trial.ThreadTrial` between
    one thread and the current count (``measure``; with one thread there is nothing to
    measure)."""

    def __init__(self, fixed: int | None = None, measure: bool = False,
                 key: str | None = None) -> None:
        if fixed is not None:
            torch.set_num_threads(fixed)
        current = torch.get_num_threads()
        self.trial = (thread_trial.ThreadTrial(candidates=(1, current), key=key)
                      if measure and current > 1 else None)
        self._fixed = current

    @property
    def threads(self) -> int:
        """The count of the run's steps: the fixed or chosen one (while a trial has not
        decided, the count the run started with)."""
        if self.trial is not None and self.trial.chosen is not None:
            return self.trial.chosen
        return self._fixed

    def step(self) -> AbstractContextManager[None]:
        """Wrap one training step: a step of the trial while it runs, else nothing."""
        if self.trial is not None and self.trial.chosen is None:
            return self.trial.step()
        return contextlib.nullcontext()

    def settle(self) -> int:
        """End a trial still running (with the steps timed so far) and return the count of
        the rest of the run."""
        if self.trial is not None:
            return self.trial.finish()
        return self._fixed


def thread_plan(threads: int | str | None, saved: int | None, resumed: bool, device: str,
                 say: Callable[[str], None], key: str | None = None) -> ThreadPlan:
    """The thread count of the run's steps, as :func:`train` documents it (an integer
    ``threads`` is already set; ``saved`` is the resumed checkpoint's count, ``resumed``
    whether a checkpoint was loaded)."""
    if isinstance(threads, numbers.Integral):
        if saved is not None and saved != threads:
            say(f"threads: running on {threads} thread(s) where the checkpoint's steps ran on "
                f"{saved}; the numbers may differ from an uninterrupted run by float rounding")
        return ThreadPlan()
    if saved is not None:
        return ThreadPlan(fixed=saved)
    if threads == "auto" or (threads is None and not resumed and _measure_by_default(device)):
        return ThreadPlan(measure=True, key=key)
    return ThreadPlan()
