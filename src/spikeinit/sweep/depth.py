r"""``spikeinit depth``: train plain deep MLPs over a grid of depth x init, and measure what
their layers carry about the input at init (the measures:
:mod:`spikeinit.experiments.depth`).

The trainings are runs of the sweep machinery (task ``train``, one result file each), so a
grid that is stopped resumes at the first unfinished run; the measures at init are kept one
file per (depth, init) and are not recomputed either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeinit._validation import check_positive_int
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.depth import contraction_per_layer, information_at_init
from spikeinit.experiments.training import TrainConfig
from spikeinit.init.registry import get_method
from spikeinit.io import save_figure_atomic, write_json_atomic, write_text_atomic
from spikeinit.sweep.aggregate import collect_rows, heatmap_figure, rows_to_csv
from spikeinit.sweep.runner import SweepSummary, run_sweep
from spikeinit.sweep.spec import Run, make_run

DEFAULT_DEPTHS = (20, 50)
DEFAULT_INITS = ("deep", "paper", "kaiming", "orthogonal")


@dataclass(frozen=True)
class DepthGrid:
    """A grid of plain MLP trainings: ``depths`` x ``inits`` x ``seeds`` over ``base``.

    ``base`` holds every other :class:`TrainConfig` field (dataset, width, encoding, epochs,
    ...); ``probe_samples`` images (a quarter held out) give the measures at init.
    """

    depths: tuple[int, ...] = DEFAULT_DEPTHS
    inits: tuple[str, ...] = DEFAULT_INITS
    seeds: tuple[int, ...] = (0, 1, 2)
    base: dict[str, Any] = field(default_factory=dict)
    probe_samples: int = 2000

    def __post_init__(self) -> None:
        if not self.depths or not self.inits or not self.seeds:
            raise InvalidArgumentError("depths, inits and seeds each need at least one value")
        for depth in self.depths:
            check_positive_int("depth", depth)
        for init in self.inits:
            get_method(init)
        if "model" in self.base and self.base["model"] != "mlp":
            raise InvalidArgumentError(f"spikeinit depth trains the plain MLP; got model "
                             f"{self.base['model']!r}")
        for name in ("depth", "init", "seed"):
            if name in self.base:
                raise InvalidArgumentError(
                    f"{name} is a grid axis of spikeinit depth, not a base option")
        check_positive_int("probe_samples", self.probe_samples)
        if self.probe_samples < 40:
            raise InvalidArgumentError(f"probe_samples must be >= 40, got {self.probe_samples}")

    def config(self, depth: int, init: str, seed: int = 0) -> TrainConfig:
        """The :class:`TrainConfig` of one cell."""
        return TrainConfig(**{**self.base, "model": "mlp", "depth": depth,
                              "init": init, "seed": seed})

    def runs(self) -> list[Run]:
        """The training runs of the grid (sweep task ``train``), depth-major."""
        return [make_run("train", asdict(self.config(d, i, s)))
                for d in self.depths for i in self.inits for s in self.seeds]


@dataclass(frozen=True)
class DepthResult:
    """What :func:`run_depth` wrote: the table, the figures and the sweep's summary."""

    table: list[dict[str, Any]]
    csv: Path
    figures: list[Path]
    summary: SweepSummary


def run_depth(grid: DepthGrid, out: str | Path, workers: int = 1, threads: int | None = None,
              progress: bool | None = None) -> DepthResult:
    """Train every cell of ``grid`` (skipping finished runs), measure every (depth, init) at
    init (skipping measured ones), and write ``depth.csv``, ``accuracy.png`` (heatmap),
    ``class_gap.png`` and ``probe.png`` into ``out``."""
    out = Path(out)
    summary = run_sweep(grid.runs(), out / "runs", workers=workers, threads=threads,
                        progress=progress)
    information = {}
    for depth in grid.depths:
        for init in grid.inits:
            path = out / "init" / f"depth{depth}-{init}.json"
            stored = _read_measures(path)
            if stored is None:
                stored = information_at_init(grid.config(depth, init), grid.probe_samples)
                write_json_atomic(path, stored)
            information[(depth, init)] = stored
    rows = [row for row in collect_rows(out / "runs")
            if row.get("depth") in grid.depths and row.get("init") in grid.inits]
    table = depth_table(rows, information, grid)
    csv = write_text_atomic(out / "depth.csv", rows_to_csv(table))
    figures = []
    if rows:
        figures.append(heatmap_figure(rows, "depth", "init", "test_accuracy", None,
                                      "test accuracy (mean over seeds)", out / "accuracy.png"))
    figures += information_figures(information, out)
    return DepthResult(table, csv, figures, summary)


def _read_measures(path: Path) -> dict[str, list[float]] | None:
    """A stored measure file, or ``None`` when it is missing or damaged (then remeasured)."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    keys = ("rate", "class_gap", "probe")
    if not isinstance(stored, dict) or not all(isinstance(stored.get(k), list) for k in keys):
        return None
    return stored


def depth_table(rows: Sequence[dict[str, Any]], information: dict[tuple[int, str], dict],
                grid: DepthGrid) -> list[dict[str, Any]]:
    """One row per (depth, init): accuracy mean and std over the finished seeds, and the
    class-gap contraction per layer and the last hidden layer's probe accuracy at init."""
    table = []
    for depth in grid.depths:
        for init in grid.inits:
            accuracies = [float(r["test_accuracy"]) for r in rows
                          if r["depth"] == depth and r["init"] == init]
            measured = information[(depth, init)]  # per layer: the hidden ones, then the output
            gaps, probes = measured["class_gap"], measured["probe"]
            table.append({
                "depth": depth, "init": init, "seeds": len(accuracies),
                "accuracy_mean": float(np.mean(accuracies)) if accuracies else math.nan,
                "accuracy_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1
                else math.nan,
                "gap_first": gaps[0],
                "gap_last_hidden": gaps[-2],
                "gap_ratio_per_layer": contraction_per_layer(gaps),
                "probe_last_hidden": probes[-2],
            })
    return table


def information_figures(information: dict[tuple[int, str], dict], out: Path) -> list[Path]:
    """``class_gap.png`` and ``probe.png``: per-layer curves at init, a panel per depth."""
    import matplotlib.pyplot as plt

    depths = sorted({depth for depth, _ in information})
    paths = []
    for measure, label in (("class_gap", "class gap at init"),
                           ("probe", "linear-probe accuracy at init")):
        figure, axes = plt.subplots(1, len(depths), squeeze=False, constrained_layout=True,
                                    figsize=(4.2 * len(depths), 3.2))
        for axis, depth in zip(axes[0], depths):
            for (d, init), info in sorted(information.items()):
                if d == depth:
                    values = info[measure]
                    axis.plot(range(1, len(values) + 1), values, marker=".", label=init)
            axis.set_title(f"depth {depth}", fontsize=10)
            axis.set_xlabel("LIF layer (last: output)")
            axis.set_ylabel(label)
            if measure == "class_gap":
                axis.set_yscale("symlog", linthresh=1e-3)
            axis.legend(fontsize=8)
        paths.append(save_figure_atomic(figure, out / f"{measure}.png", dpi=110))
        plt.close(figure)
    return paths
