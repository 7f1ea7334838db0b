"""Wall-clock timing shared by the benchmark scripts (run from this folder or its parent)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_times(function: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Call ``function`` ``warmup`` times untimed, then ``repeats`` times; the wall times (s)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def best_time(function: Callable[[], object], repeats: int) -> float:
    """The least disturbed of ``repeats`` runs after one warm-up call, in seconds."""
    return min(wall_times(function, repeats))
