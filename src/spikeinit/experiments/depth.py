r"""``spikeinit depth``: train plain deep MLPs over a grid of depth x init, and measure what
their layers carry about the input at init.

Two measures per layer, on spike patterns :math:`s \in \{0,1\}^{T \times n}` of a batch of
images at init (docs/depth.md, docs/results.md):

- the **class gap**: mean cosine of centred patterns over same-class pairs minus over
  different-class pairs (:func:`class_gap`);
- a **linear probe**: the held-out accuracy of a ridge regression from the flattened pattern
  to the one-hot label (:func:`linear_probe_accuracy`).

The trainings are runs of the sweep machinery (task ``train``, one result file each), so a
grid that is stopped resumes at the first unfinished run; the measures at init are kept one
file per (depth, init) and are not recomputed either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from spikeinit._validation import check_positive_int
from spikeinit.data import dataset_info
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training import (
    TrainConfig,
    build_model,
    encode,
    initialize_model,
    load_data,
)
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


def class_gap(spikes: Tensor, labels: Tensor) -> float:
    r"""Mean cosine of centred spike patterns, same-class pairs minus different-class pairs.

    ``spikes`` is ``(T, B, n)``; each image's pattern is its ``T n`` spikes, centred by the
    batch's mean pattern:

    .. math::

        \Delta = \overline{\cos(p_i, p_j)}_{y_i = y_j,\,i \ne j}
               - \overline{\cos(p_i, p_j)}_{y_i \ne y_j}.

    Example:
        >>> s = torch.tensor([[[1., 0.], [1., 0.], [0., 1.], [0., 1.]]])
        >>> round(class_gap(s, torch.tensor([0, 0, 1, 1])), 9)
        2.0
    """
    pattern = torch.cat(list(spikes), 1).double()
    pattern = F.normalize(pattern - pattern.mean(0), dim=1)
    cosine = pattern @ pattern.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    if not bool((same & off_diagonal).any()) or not bool((~same).any()):
        raise InvalidArgumentError(
            "class_gap needs at least two images of one class and two classes")
    return float(cosine[same & off_diagonal].mean() - cosine[~same].mean())


def linear_probe_accuracy(spikes: Tensor, labels: Tensor, held_out: float = 0.25,
                          ridge: float = 1.0) -> float:
    r"""Held-out accuracy of a ridge regression from spike patterns to one-hot labels.

    The first ``1 - held_out`` of the ``B`` images fit
    :math:`W = (X^\top X + \lambda I)^{-1} X^\top Y` on their centred patterns
    :math:`X` (``(B, T n)``); the rest are classified by :math:`\arg\max_k (x W)_k`.

    Example:
        >>> s = torch.tensor([[[1., 0.], [0., 1.]] * 20])
        >>> linear_probe_accuracy(s, torch.tensor([0, 1] * 20))
        1.0
    """
    if not 0.0 < held_out < 1.0:
        raise InvalidArgumentError(f"held_out must be in (0, 1), got {held_out}")
    pattern = torch.cat(list(spikes), 1).double()
    split = int(round(pattern.shape[0] * (1.0 - held_out)))
    if split < 1 or split >= pattern.shape[0]:
        raise InvalidArgumentError(f"{pattern.shape[0]} images leave no training or held-out part")
    mean = pattern[:split].mean(0)
    train, test = pattern[:split] - mean, pattern[split:] - mean
    classes = int(labels.max()) + 1
    target = F.one_hot(labels[:split], classes).double()
    gram = train.T @ train + ridge * torch.eye(train.shape[1], dtype=torch.double)
    weights = torch.linalg.solve(gram, train.T @ target)
    predicted = (test @ weights).argmax(1)
    return float((predicted == labels[split:]).double().mean())


def information_at_init(config: TrainConfig, samples: int = 2000) -> dict[str, list[float]]:
    """Per LIF layer of ``config``'s network at init: rate, class gap and linear probe.

    The network is built and initialized as :func:`~spikeinit.experiments.training.train`
    does (seeded by ``config.seed``); ``samples`` training images are encoded and run through
    it. Layer 0 is the first hidden layer, the last entry the output layer.
    """
    config = replace(config, limit_train=samples, limit_test=10)
    train_data, _ = load_data(config)
    model = build_model(config, train_data.inputs.shape[1:],
                        dataset_info(config.dataset).n_classes)
    inputs, labels = train_data.batch(torch.arange(len(train_data)))
    currents = encode(inputs, config.steps, config.encoding, flatten=True)
    generator = torch.Generator().manual_seed(config.seed)
    initialize_model(model, config.init, currents, config.steps, generator)
    with torch.no_grad():
        layers = list(model.iter_layers(currents))
    return {
        "rate": [float(s.mean()) for s in layers],
        "class_gap": [class_gap(s, labels) for s in layers],
        "probe": [linear_probe_accuracy(s, labels) for s in layers],
    }


def contraction_per_layer(gaps: Sequence[float]) -> float:
    r"""The geometric mean ratio of consecutive class gaps, :math:`(\Delta_L/\Delta_1)^{1/(L-1)}`,
    over the hidden layers (the output layer, whose width differs, is left out).

    Example:
        >>> round(contraction_per_layer([0.2, 0.1, 0.05, 0.9]), 6)
        0.5
    """
    hidden = [float(g) for g in gaps[:-1]]
    if len(hidden) < 2 or hidden[0] <= 0:
        return math.nan
    last = max(hidden[-1], 0.0)
    return (last / hidden[0]) ** (1.0 / (len(hidden) - 1))


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
