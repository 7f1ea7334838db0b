"""Figures of training runs: curves of one run, and accuracy per init for ``compare``."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikeinit.experiments.figures import integer_x_axis  # noqa: E402
from spikeinit.io import save_figure_atomic  # noqa: E402


def plot_training_curves(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Loss, accuracy, per-layer firing rate and gradient norm against epoch (one run)."""
    history = result["history"]
    epochs = [r["epoch"] for r in history]
    figure, axes = plt.subplots(1, 4, figsize=(17, 3.8), constrained_layout=True)
    for split, style in (("train", "-"), ("test", "--")):
        axes[0].plot(epochs, [r[f"{split}_loss"] for r in history], style, marker="o",
                     label=split)
        axes[1].plot(epochs, [r[f"{split}_accuracy"] for r in history], style, marker="o",
                     label=split)
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_ylabel("accuracy")
    axes[1].set_ylim(0, 1)
    cmap = plt.get_cmap("viridis")
    for axis, key, label in ((axes[2], "firing_rates", "firing rate (spikes/neuron/step)"),
                             (axes[3], "grad_norms", "mean weight-gradient norm")):
        names = list(history[0][key]) if history else []
        for index, name in enumerate(names):
            values = np.array([r[key][name] for r in history], dtype=float)
            axis.plot(epochs, np.where(values > 0, values, np.nan), marker=".",
                      color=cmap(index / max(len(names) - 1, 1)),
                      label=name if index in (0, len(names) - 1) else None)
        axis.set_yscale("log")
        axis.set_ylabel(label)
        if names:
            axis.legend(fontsize=7, title="layer (dark: first)", title_fontsize=7)
    for axis in axes:
        axis.set_xlabel("epoch")
        integer_x_axis(axis, epochs)
        axis.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    config = result["config"]
    figure.suptitle(
        f"{config['dataset']} {config['model']} init={config['init']} T={config['steps']} "
        f"θ={config['threshold']} β={config['beta']} seed={config['seed']}"
    )
    save_figure_atomic(figure, path, dpi=110)
    plt.close(figure)


def plot_compare(summary: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Test accuracy against epoch per init: seed-mean line, band of ± one std over seeds.

    Uses ``mean_curve`` and ``std_curve`` of each init in ``summary["inits"]`` (computed from
    ``test_accuracy`` with ddof=1 when absent); each seed's curve is drawn as a thin line, the
    chance level (``summary["chance"]``) as a dotted line. Written atomically to ``path``.
    """
    figure, axis = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for index, (init, data) in enumerate(summary["inits"].items()):
        curves = np.asarray(data["test_accuracy"], dtype=float)  # (seeds, epochs)
        n_seeds = curves.shape[0]
        epochs = np.arange(1, curves.shape[1] + 1)
        mean = np.asarray(data.get("mean_curve", curves.mean(axis=0)), dtype=float)
        if "std_curve" in data:
            std = np.asarray(data["std_curve"], dtype=float)
        else:
            std = curves.std(axis=0, ddof=1) if n_seeds > 1 else np.zeros_like(mean)
        color = f"C{index}"
        if n_seeds > 1:
            for curve in curves:
                axis.plot(epochs, curve, color=color, linewidth=0.6, alpha=0.35)
            axis.fill_between(epochs, mean - std, mean + std, alpha=0.2, color=color,
                              linewidth=0)
        axis.plot(epochs, mean, marker="o", color=color,
                  label=f"{init} ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
    chance = summary.get("chance")
    if chance is not None:
        axis.axhline(chance, color="grey", linestyle=":", label="chance")
    axis.set_xlabel("epoch")
    integer_x_axis(axis, [1, max((len(data["test_accuracy"][0])
                                  for data in summary["inits"].values()), default=1)])
    axis.set_ylabel("test accuracy (mean; band: ± 1 std over seeds)")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(summary.get("title", ""), fontsize=9)
    save_figure_atomic(figure, path, dpi=120)
    plt.close(figure)
