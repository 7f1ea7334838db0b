"""``TrainResult`` and the files a run writes: ``metrics.json``, ``metrics.csv``, ``curves.png``."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spikeinit.io import write_json_atomic, write_text_atomic


@dataclass
class TrainResult:
    """What :func:`~spikeinit.experiments.training.train` returns: the metrics of every epoch
    and where outputs went."""

    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    synapses: list[str] = field(default_factory=list)
    init_records: list[dict[str, Any]] = field(default_factory=list)
    world_size: int = 1
    device: str = "cpu"
    threads: int = 1
    n_train: int = 0
    n_test: int = 0
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (what ``metrics.json`` holds)."""
        return asdict(self)

    @property
    def final(self) -> dict[str, Any]:
        """Metrics of the last epoch."""
        return self.history[-1]


def metrics_rows(result: TrainResult) -> list[dict[str, Any]]:
    """One flat row per epoch: scalars, then ``rate/<layer>`` and ``grad/<layer>`` columns."""
    rows = []
    for record in result.history:
        row = {k: v for k, v in record.items() if not isinstance(v, dict)}
        row.update({f"rate/{k}": v for k, v in record["firing_rates"].items()})
        row.update({f"grad/{k}": v for k, v in record["grad_norms"].items()})
        rows.append(row)
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of a list of flat dicts (columns of the first row)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_outputs(result: TrainResult, out: Path) -> None:
    """Write ``metrics.json``, ``metrics.csv`` and ``curves.png`` into ``out`` atomically."""
    from spikeinit.experiments.training_figures import plot_training_curves

    write_json_atomic(out / "metrics.json", result.to_dict())
    write_text_atomic(out / "metrics.csv", rows_to_csv(metrics_rows(result)))
    plot_training_curves(result.to_dict(), out / "curves.png")
