"""Resumable parameter sweeps over ``propagate``, ``conditions`` and ``train``.

>>> from spikeinit.sweep import expand, run_sweep
>>> runs = expand("propagate", {"threshold": [0.5, 1.0]}, {"depth": 3, "width": 20})
>>> run_sweep(runs, "results", workers=2)  # doctest: +SKIP

Every run's result is its own atomic file ``results/<key>.json``; a rerun skips finished runs,
failures are recorded as ``<key>.failed.json`` and retried with ``retry_failed=True``.
"""

from spikeinit.sweep.aggregate import aggregate, collect_rows
from spikeinit.sweep.runner import BACKENDS, SweepSummary, execute, run_sweep
from spikeinit.sweep.spec import (
    TASKS,
    Run,
    SweepSpec,
    build_spec,
    canonical_config,
    expand,
    make_run,
    run_key,
)

__all__ = [
    "BACKENDS", "TASKS", "Run", "SweepSpec", "SweepSummary", "aggregate", "build_spec",
    "canonical_config", "collect_rows", "execute", "expand", "make_run", "run_key",
    "run_sweep",
]
