"""Every ``SPIKEINIT_*`` environment variable, read one way.

Each variable is one :class:`Setting`: its name, what its value may be (a parser that raises
an error naming the variable and the allowed values), its default, and a stack of in-process
overrides (:meth:`Setting.use`). :data:`SETTINGS` lists them all, so that ``docs/engine.md``
and ``spikeinit inspect`` can show them, and a test checks the docs name every one.

Example:
    >>> setting = Setting("SPIKEINIT_EXAMPLE_MODE", "mode", choice("auto", "fast", "exact"),
    ...                   "an example", register=False)
    >>> with setting.use("exact"):
    ...     setting.value()
    'exact'
    >>> setting.value()  # the variable is not set
    'auto'
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from spikeinit.errors import InvalidArgumentError

Parser = Callable[[str, str], Any]
"""``parse(text, source)``: the value of ``text`` (``""`` for unset), or a ``ValueError`` that
names ``source`` (the variable, or the parameter of :meth:`Setting.use`)."""


def choice(*choices: str) -> Parser:
    """A parser for one of ``choices`` (case-insensitive; empty means the first)."""

    def parse(text: str, source: str) -> str:
        value = text.strip().lower() or choices[0]
        if value not in choices:
            raise InvalidArgumentError(
                f"{source} must be one of {', '.join(choices)}, got {text!r}")
        return value

    parse.allowed = ", ".join(choices)  # type: ignore[attr-defined]
    return parse


def auto_or_fraction(text: str, source: str) -> float | None:
    """``auto`` (or empty) -> ``None``; else a number in [0, 1]."""
    value = text.strip().lower()
    if value in ("", "auto"):
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise InvalidArgumentError(f"{source} must be auto or a rate in [0, 1], got {text!r}")
    return number


auto_or_fraction.allowed = "auto or a rate in [0, 1]"  # type: ignore[attr-defined]


def _number_of_seconds(text: str, source: str, positive: bool) -> float | None:
    """Empty -> ``None`` (the caller's default); else a number of seconds >= 0, or finite and
    > 0 when ``positive``."""
    value = text.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if positive and not (math.isfinite(number) and number > 0):
        raise InvalidArgumentError(
            f"{source} must be a positive number of seconds, got {text!r}")
    if not number >= 0:
        raise InvalidArgumentError(f"{source} must be a number of seconds >= 0, got {text!r}")
    return number


def seconds(text: str, source: str) -> float | None:
    """Empty -> ``None`` (the caller's default); else a number of seconds >= 0."""
    return _number_of_seconds(text, source, positive=False)


seconds.allowed = "a number of seconds >= 0"  # type: ignore[attr-defined]


def positive_seconds(text: str, source: str) -> float | None:
    """Empty -> ``None`` (the caller's default); else a finite number of seconds > 0."""
    return _number_of_seconds(text, source, positive=True)


positive_seconds.allowed = "a number of seconds > 0"  # type: ignore[attr-defined]


def text(value: str, source: str) -> str | None:
    """Any text; empty -> ``None`` (the caller's default)."""
    return value.strip() or None


text.allowed = "a path or text"  # type: ignore[attr-defined]


class Setting:
    """One ``SPIKEINIT_*`` environment variable (``variable``), parsed by ``parse``, which
    :meth:`use` overrides for a block of code (errors there name ``label``).

    ``old_name`` is a former name of the variable, still read (with a
    ``DeprecationWarning``) when the new one is unset.
    """

    def __init__(self, variable: str, label: str, parse: Parser, doc: str,
                 old_name: str | None = None, register: bool = True) -> None:
        self.variable = variable
        self.label = label
        self.parse = parse
        self.doc = doc
        self.old_name = old_name
        self._override: list[Any] = []
        if register:
            if variable in SETTINGS:
                raise InvalidArgumentError(f"{variable} is registered twice")
            SETTINGS[variable] = self

    @property
    def allowed(self) -> str:
        """The allowed values, in words."""
        return str(getattr(self.parse, "allowed", ""))

    def environment_value(self) -> Any:
        """The variable's value (parsed), ignoring :meth:`use`."""
        raw = os.environ.get(self.variable)
        source = self.variable
        if raw is None and self.old_name and os.environ.get(self.old_name) is not None:
            warnings.warn(f"{self.old_name} is now called {self.variable}", DeprecationWarning,
                          stacklevel=3)
            raw, source = os.environ[self.old_name], self.old_name
        return self.parse(raw or "", source)

    def value(self) -> Any:
        """The innermost :meth:`use`, else the environment variable, else the default."""
        if self._override:
            return self._override[-1]
        return self.environment_value()

    @contextlib.contextmanager
    def use(self, value: Any) -> Iterator[None]:
        """Run the enclosed code with ``value`` (checked; the error names :attr:`label`)."""
        parsed = self.parse("" if value is None else str(value), self.label)
        self._override.append(parsed)
        try:
            yield
        finally:
            self._override.pop()


SETTINGS: dict[str, Setting] = {}
"""Every registered setting, by variable name."""


def describe() -> list[tuple[str, str, str]]:
    """``(variable, allowed values, what it does)`` of every setting, sorted by name."""
    return [(name, setting.allowed, setting.doc) for name, setting in sorted(SETTINGS.items())]


# ----------------------------------------------------------------------------- the engine's

GEMM_BACKENDS = ("auto", "onednn", "torch")
CONV_LAYOUTS = ("auto", "channels_last", "contiguous")
KERNEL_PREFERENCES = ("auto", "compiled", "python")

TUNING = Setting(
    "SPIKEINIT_TUNING", "tuning", choice("kept", "exact"),
    "kept (default): speed choices that change float rounding (GEMM backend, event-path rate, "
    "conv layout, training thread count) are measured once per machine and kept, so the same "
    "seed gives the same numbers in every process on this machine; exact: no such choice is "
    "made (torch.mm, dense synapses, contiguous convolutions), bit-identical to PyTorch's own "
    "layers on any machine")
GEMM = Setting(
    "SPIKEINIT_GEMM", "backend", choice(*GEMM_BACKENDS),
    "the dense GEMM of the synapses: auto (measured, kept), onednn, or torch (torch.mm)")
CONV_LAYOUT = Setting(
    "SPIKEINIT_CONV_LAYOUT", "layout", choice(*CONV_LAYOUTS),
    "memory layout of the convolutions: auto (measured, kept; never a known-bad kernel), "
    "channels_last, or contiguous")
EVENT_RATE = Setting(
    "SPIKEINIT_EVENT_RATE", "rate", auto_or_fraction,
    "input rate up to which synapses run event-driven: auto (measured, kept) or a fixed rate")
TUNING_BUDGET = Setting(
    "SPIKEINIT_TUNING_BUDGET", "budget", seconds,
    "seconds one process may spend measuring speed choices (default 0.3)")
KERNEL = Setting(
    "SPIKEINIT_KERNEL", "kernel", choice(*KERNEL_PREFERENCES),
    "the compiled C++ kernels: auto (built on first use, else the PyTorch loops), compiled "
    "(a build failure is an error) or python", old_name="SPIKEINIT_ENGINE")
DATA_DIR = Setting(
    "SPIKEINIT_DATA_DIR", "data_dir", text,
    "the data root the loaders read when data_dir is not given")
DOWNLOAD_URL = Setting(
    "SPIKEINIT_DOWNLOAD_URL", "base_url", text,
    "one base URL that replaces the loaders' mirror list")
DOWNLOAD_TIMEOUT = Setting(
    "SPIKEINIT_DOWNLOAD_TIMEOUT", "timeout", seconds,
    "seconds a download may wait for the server (default 30)")
CACHE_DIR = Setting(
    "SPIKEINIT_CACHE_DIR", "cache_dir", text,
    "folder of the compiled kernels and the kept choices (default ~/.cache/spikeinit)")
TIME_BUDGET = Setting(
    "SPIKEINIT_TIME_BUDGET", "time_budget", positive_seconds,
    "seconds of estimated work a command may start (default a day: 86400); a larger run is "
    "refused before it starts, with its estimate")
TRACEBACK = Setting(
    "SPIKEINIT_TRACEBACK", "traceback", choice("0", "1"),
    "1: the CLI prints the full traceback of an internal error (a bug) after its one line")
