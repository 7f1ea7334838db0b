"""Deterministic, class-balanced ordering of samples (used for ``limit``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["round_robin_order", "take_first"]


def round_robin_order(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return indices that visit the classes round-robin.

    The result lists the first sample of every class (in ascending label order), then the
    second sample of every class, and so on; within a class the original order is kept.
    Classes that run out are skipped. Any prefix of the result is therefore as
    class-balanced as possible, so ``order[:limit]`` is a deterministic stratified subset.

    Example:
        >>> round_robin_order([0, 0, 0, 1, 1, 2]).tolist()
        [0, 3, 5, 1, 4, 2]
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    by_class = np.argsort(labels, kind="stable")
    sorted_labels = labels[by_class]
    first_of_class = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank_in_class = np.arange(labels.size) - first_of_class
    return by_class[np.lexsort((sorted_labels, rank_in_class))]


def take_first(order: np.ndarray, limit: int | None) -> np.ndarray:
    """Return ``order[:limit]`` (all of it when ``limit`` is ``None``)."""
    return order if limit is None else order[:limit]
