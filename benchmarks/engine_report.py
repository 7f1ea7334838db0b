"""The reporting side of ``benchmarks/engine.py``: the rows and report it measures, the
tables and checks it prints and the JSON it writes."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine_references import SEMANTICS, SPIKE_TOLERANCE


@dataclass
class Row:
    """One engine's line in a workload table."""

    engine: str
    seconds: float
    best: float
    throughput: float
    peak_bytes: int | None = None
    saved_bytes: int | None = None
    note: str = ""


@dataclass
class Report:
    """Everything the run measured (written by ``--json``)."""

    meta: dict[str, Any]
    tables: dict[str, list[Row]] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    split: dict[str, float] = field(default_factory=dict)


def print_forward_backward_memory(memory: dict[str, dict[str, int]]) -> None:
    print("\n  B memory, forward + backward only (no optimizer step):")
    print(f"    {'engine':26s} {'peak MB':>9s} {'saved MB':>9s} {'grads MB':>9s} "
          f"{'peak/(saved+grads)':>19s}")
    for name, m in memory.items():
        ratio = m["peak"] / (m["saved"] + m["parameter_grads"])
        print(f"    {name:26s} {_mb(m['peak'])} {_mb(m['saved'])} {_mb(m['parameter_grads'])} "
              f"{ratio:19.2f}")


def _mb(value: int | None) -> str:
    return f"{'-':>9s}" if value is None else f"{value / 2**20:9.1f}"


def print_table(title: str, rows: Sequence[Row]) -> None:
    """Times, throughput, memory, and ratios to gemm-only and to spikeinit."""
    gemm = next((r.seconds for r in rows if r.engine == "gemm-only"), float("nan"))
    ours = next((r.seconds for r in rows if r.engine == "spikeinit"), float("nan"))
    print(f"\n  {title}")
    print(f"  {'engine':26s} {'median s':>9s} {'min s':>9s} {'samples/s':>10s} "
          f"{'x gemm':>7s} {'x spikeinit':>11s} {'peak MB':>9s} {'saved MB':>9s} "
          f"{'peak/saved':>10s}  note")
    for row in rows:
        ratio = "-"
        if row.peak_bytes is not None and row.saved_bytes:
            ratio = f"{row.peak_bytes / row.saved_bytes:.2f}"
        print(f"  {row.engine:26s} {row.seconds:9.4f} {row.best:9.4f} {row.throughput:10.1f} "
              f"{row.seconds / gemm:7.2f} {row.seconds / ours:11.2f} {_mb(row.peak_bytes)} "
              f"{_mb(row.saved_bytes)} {ratio:>10s}  {row.note}")


def print_checks(checks: dict[str, Any]) -> None:
    print(f"\n  spike agreement. {SEMANTICS}")
    forced = checks.get("A_teacher_forced", {})
    for name, fraction in checks.get("A_end_to_end", {}).items():
        line = f"  {name:26s} end-to-end (full A, last layer) {fraction:.6f}"
        if name in forced:
            f = forced[name]
            same = f["teacher_forced_min"] >= 1.0 - SPIKE_TOLERANCE
            line += (f"; check ({f['layers']} layers): teacher-forced min "
                     f"{f['teacher_forced_min']:.6f} mean {f['teacher_forced_mean']:.6f} "
                     f"({f['mismatched_spikes']} spikes differ), "
                     f"end-to-end {f['end_to_end_last']:.6f} -> "
                     f"{'same spikes' if same else 'SPIKES DIFFER'}")
        print(line)
    print("  (teacher-forced: every layer gets spikeinit's previous-layer spikes, so a rounding "
          f"flip cannot propagate; 'same' means >= 1 - {SPIKE_TOLERANCE:g} identical)")


def print_split(split: dict[str, float]) -> None:
    total = split["total"]
    print("\n  spikeinit training step split (B, the fastest of the timed steps, each part timed "
          "inside it; the parts add up to the total):")
    width = max(map(len, split))
    for name, seconds in split.items():
        print(f"    {name:{width}s} {seconds * 1e3:9.2f} ms  {seconds / total:6.1%}")


def write_json(report: Report, path: Path) -> None:
    """Write ``report`` atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(report)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=2, default=str)
        temporary = f.name
    os.replace(temporary, path)
