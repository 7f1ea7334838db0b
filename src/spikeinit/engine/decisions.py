"""The engine's measured decisions, all together: for ``spikeinit inspect``, the benchmarks'
reports and the tests."""

from __future__ import annotations

from typing import Any

from spikeinit.engine import conv_layout, event_linear, gemm, vet


def all_choices() -> dict[str, dict[str, dict[str, Any]]]:
    """The decisions in force for the current thread count:
    ``{"gemm": ..., "event": ..., "conv": ..., "vetted": ...}``
    (:func:`spikeinit.engine.gemm.backend_choices`,
    :func:`spikeinit.engine.event_linear.event_rate_choices`,
    :func:`spikeinit.engine.conv_layout.layout_choices`, :func:`spikeinit.engine.vet.verdicts`).
    """
    return {"gemm": gemm.backend_choices(), "event": event_linear.event_rate_choices(),
            "conv": conv_layout.layout_choices(), "vetted": vet.verdicts()}


def forget_all() -> None:
    """Drop this process's decisions of every kind (the kept file stays)."""
    gemm.forget_choices()
    event_linear.forget_event_choices()
    conv_layout.forget_choices()
    vet.forget_verdicts()


def _times(entry: dict[str, Any], labels: dict[str, str], extra: str = "") -> str:
    """`` (label a ms, label b ms[, extra])`` from an entry's measured seconds, or ``""``."""
    if not all(key in entry for key in labels):
        return ""
    parts = [f"{label} {entry[key] * 1e3:.3f} ms" for key, label in labels.items()]
    return f" ({', '.join([*parts, extra] if extra else parts)})"


def format_choices(choices: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """:func:`all_choices` as lines of text, one per decision."""
    lines = []
    for name, entry in choices.get("gemm", {}).items():
        times = _times(entry, {"onednn_s": "oneDNN", "torch_s": "torch.mm"})
        lines.append(f"GEMM {name:20s} -> {entry['backend']}{times} [{entry['source']}]")
    for name, entry in choices.get("event", {}).items():
        rate = entry.get("max_rate")
        limit = f"events up to rate {rate:.3f}" if rate is not None else "fixed fallback rate"
        lines.append(f"event path {name:30s} -> {limit} [{entry['source']}]")
    for name, entry in choices.get("conv", {}).items():
        times = _times(entry, {"channels_last_s": "channels-last", "contiguous_s": "contiguous"},
                       f"{entry.get('frames')} frames")
        lines.append(f"conv {name:36s} -> {entry['layout']}{times} [{entry['source']}]")
    vetted = choices.get("vetted", {})
    if vetted:
        rejected = {name: entry for name, entry in vetted.items() if not entry["safe"]}
        lines.append(f"vetted in a child process: {len(vetted)} candidate kernels, "
                     f"{len(rejected)} rejected")
        lines += [f"vetted {name} -> rejected: {entry.get('why', '')} [{entry['source']}]"
                  for name, entry in rejected.items()]
    return lines or ["none yet (no product large enough to measure)"]
