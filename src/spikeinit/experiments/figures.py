"""Figures of the experiments (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from spikeinit.io import save_figure_atomic  # noqa: E402

_FLOOR = 1e-7


def _positive(values: Sequence[float]) -> np.ndarray:
    """Values for a log axis: zeros become NaN (a gap) instead of breaking the scale."""
    array = np.asarray(values, dtype=float)
    return np.where(array > _FLOOR, array, np.nan)


def integer_x_axis(axis: Axes, values: Sequence[float]) -> None:
    """An x axis of whole numbers (layers, epochs): ticks only at integers, and at least one
    unit wide, ``[v - 0.5, v + 0.5]`` around a single value ``v`` (matplotlib would otherwise
    zoom to a few hundredths around it)."""
    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if len(values) and min(values) == max(values):
        axis.set_xlim(float(values[0]) - 0.5, float(values[0]) + 0.5)


def plot_propagation(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Membrane variance and rate against layer (log scale), dashed mean-field predictions."""
    config = result["config"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    layers = np.arange(1, config["depth"] + 1)
    for index, (init, data) in enumerate(result["results"].items()):
        color = f"C{index}"
        for axis, key in zip(axes, ("variance", "rate")):
            axis.plot(layers, _positive(data[key]), color=color, label=init)
            prediction = data.get("prediction", {}).get(key)
            if prediction is not None:
                axis.plot(layers, _positive(prediction), color=color, linestyle="--", alpha=0.8)
    axes[0].set_ylabel("membrane variance")
    axes[1].set_ylabel("rate (spikes / neuron / step)")
    for axis in axes:
        axis.set_yscale("log")
        axis.set_xlabel("layer")
        integer_x_axis(axis, layers)
        axis.grid(alpha=0.3, which="both")
    axes[1].legend(title="init (dashed: mean-field)", fontsize=8)
    figure.suptitle(
        f"width {config['width']}, T={config['steps']}, θ={config['threshold']}, "
        f"β={config['beta']}, reset={config['reset']}, input={config['input']}"
    )
    save_figure_atomic(figure, path, dpi=120)
    plt.close(figure)


def plot_rate_by_step(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """One heatmap per init: rate against layer (rows) and time step (columns)."""
    inits = list(result["results"])
    figure, axes = plt.subplots(1, len(inits), figsize=(4.2 * len(inits), 4.4),
                                constrained_layout=True, squeeze=False)
    vmax = max(float(np.max(result["results"][i]["rate_by_step"])) for i in inits) or 1.0
    for axis, init in zip(axes[0], inits):
        image = axis.imshow(np.asarray(result["results"][init]["rate_by_step"]), aspect="auto",
                            origin="lower", cmap="magma", vmin=0.0, vmax=vmax,
                            extent=(-0.5, result["config"]["steps"] - 0.5, 0.5,
                                    result["config"]["depth"] + 0.5))
        axis.set_title(init)
        axis.set_xlabel("time step")
        axis.set_ylabel("layer")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.colorbar(image, ax=axes[0].tolist(), label="rate (spikes / neuron)")
    save_figure_atomic(figure, path, dpi=120)
    plt.close(figure)


def plot_gradients(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Mean-square gradient on each layer's input current (log), dashed mean-field prediction."""
    config = result["config"]
    figure, axis = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    layers = np.arange(1, config["depth"] + 1)
    for index, (init, data) in enumerate(result["results"].items()):
        grads = data["gradients"]
        axis.plot(layers, _positive(grads["current_gradient_square"]), color=f"C{index}",
                  label=init)
        axis.plot(layers, _positive(grads["predicted_current_gradient_square"]),
                  color=f"C{index}", linestyle="--", alpha=0.8)
    axis.set_yscale("log")
    axis.set_xlabel("layer")
    integer_x_axis(axis, layers)
    axis.set_ylabel("E[(∂L/∂I)²] per neuron and step")
    axis.grid(alpha=0.3, which="both")
    axis.legend(title="init (dashed: mean-field)", fontsize=8)
    axis.set_title(f"surrogate gradients at init, T={config['steps']}, θ={config['threshold']}, "
                   f"β={config['beta']}", fontsize=10)
    save_figure_atomic(figure, path, dpi=120)
    plt.close(figure)


def plot_heatmap(
    values: np.ndarray,
    rows: Sequence[float],
    columns: Sequence[float],
    path: str | os.PathLike[str],
    row_label: str,
    column_label: str,
    title: str,
    colorbar_label: str,
    vmin: float | None = None,
    vmax: float | None = None,
) -> None:
    """A labelled heatmap of ``values[row, column]`` with the numbers written in the cells."""
    figure, axis = plt.subplots(figsize=(1.0 + 0.75 * len(columns), 1.2 + 0.5 * len(rows)),
                                constrained_layout=True)
    image = axis.imshow(values, aspect="auto", origin="lower", cmap="viridis", vmin=vmin,
                        vmax=vmax)
    axis.set_xticks(range(len(columns)), [f"{c:g}" for c in columns])
    axis.set_yticks(range(len(rows)), [f"{r:g}" for r in rows])
    axis.set_xlabel(column_label)
    axis.set_ylabel(row_label)
    axis.set_title(title, fontsize=10)
    for (i, j), value in np.ndenumerate(values):
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w")
    figure.colorbar(image, ax=axis, label=colorbar_label)
    save_figure_atomic(figure, path, dpi=120)
    plt.close(figure)
