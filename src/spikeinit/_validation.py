"""Argument checks shared by the public API.

Every check raises ``ValueError`` whose message names the parameter, the value received and
the allowed range, so that the CLI can print it as a one-line error.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

from spikeinit.errors import InvalidArgumentError


def check_finite_nonnegative(name: str, value: float) -> float:
    """Return ``value`` as float if it is finite and >= 0."""
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as float if it is finite and > 0."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_unit_interval(name: str, value: float) -> float:
    """Return ``value`` as float if it lies in the closed interval [0, 1]."""
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgumentError(f"{name} must lie in [0, 1], got {value!r}")
    return value


def check_open_unit_interval(name: str, value: float) -> float:
    """Return ``value`` as float if it lies in the open interval (0, 1)."""
    value = float(value)
    if not math.isfinite(value) or not 0.0 < value < 1.0:
        raise InvalidArgumentError(f"{name} must lie in (0, 1), got {value!r}")
    return value


def _integer(name: str, value: Any, rule: str) -> int:
    """``value`` as ``int`` (an integral float counts), or a ``ValueError`` "``name`` must be
    ``rule``" for a bool, a string or anything else."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name} must be {rule}, got {value!r}") from None


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as ``int`` if it is an integer >= 1 (an integral float counts; a bool,
    a string or anything else raises :class:`ValueError` naming ``name``)."""
    number = _integer(name, value, "an integer >= 1")
    if number < 1:
        raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
    return number


#: The largest seed: torch's generators take a 64-bit signed integer.
MAX_SEED = 2**63 - 1


def check_seed(value: Any, name: str = "seed") -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[0, 2**63 - 1]`` (what
    ``torch.manual_seed`` accepts); else a :class:`ValueError` naming ``name``."""
    rule = f"an integer in [0, {MAX_SEED}]"
    number = _integer(name, value, rule)
    if not 0 <= number <= MAX_SEED:
        raise InvalidArgumentError(f"{name} must be {rule}, got {value!r}")
    return number


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise InvalidArgumentError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_module(name: str, value: Any) -> Any:
    """Return ``value`` if it is a ``torch.nn.Module`` (the models spikeinit reads)."""
    from torch import nn  # torch is heavy; the other checks do not need it

    if not isinstance(value, nn.Module):
        raise InvalidArgumentError(
            f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    return value
