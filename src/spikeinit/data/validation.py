"""Argument checks shared by the loaders (they raise :class:`ValueError`)."""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["SPLITS", "check_limit", "check_positive_int", "check_split"]

SPLITS: tuple[str, ...] = ("train", "test")


def check_split(split: Any) -> str:
    """Return ``split`` if it is ``"train"`` or ``"test"``, else raise :class:`ValueError`."""
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))} (got {split!r})")
    return split


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as ``int`` if it is an integer >= 1, else raise :class:`ValueError`."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= 1 (got {value!r})") from None
    if number < 1:
        raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")
    return number


def check_limit(limit: Any) -> int | None:
    """Validate ``limit``: ``None`` (all samples) or an integer >= 1."""
    return None if limit is None else check_positive_int(limit, "limit")
