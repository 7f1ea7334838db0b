"""Argument checks shared by the loaders (they raise :class:`ValueError`)."""

from __future__ import annotations

from typing import Any

from spikeinit._validation import check_positive_int
from spikeinit.errors import InvalidArgumentError

__all__ = ["SPLITS", "check_limit", "check_positive_int", "check_split"]

SPLITS: tuple[str, ...] = ("train", "test")


def check_split(split: Any) -> str:
    """Return ``split`` if it is ``"train"`` or ``"test"``, else raise :class:`ValueError`."""
    if not isinstance(split, str) or split not in SPLITS:
        raise InvalidArgumentError(
            f"split must be one of {', '.join(map(repr, SPLITS))} (got {split!r})")
    return split


def check_limit(limit: Any) -> int | None:
    """Validate ``limit``: ``None`` (all samples) or an integer >= 1."""
    return None if limit is None else check_positive_int("limit", limit)
