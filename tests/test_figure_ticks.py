"""The experiments' figures label whole-number axes (layers, epochs) with whole numbers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from spikeinit.experiments import figures, training_figures


@pytest.fixture
def saved_axes(monkeypatch: pytest.MonkeyPatch) -> list:
    """The axes of every figure the plotting functions would write (nothing is written)."""
    axes: list = []

    def keep(figure, path, **kwargs) -> None:  # noqa: ANN001 - save_figure_atomic's stand-in
        axes.extend((ax.get_xlim(), list(ax.get_xticks())) for ax in figure.axes)

    monkeypatch.setattr(figures, "save_figure_atomic", keep)
    monkeypatch.setattr(training_figures, "save_figure_atomic", keep)
    yield axes
    plt.close("all")


def visible_ticks(limits: tuple[float, float], ticks: list[float]) -> list[float]:
    return [tick for tick in ticks if limits[0] <= tick <= limits[1]]


def test_one_epoch_curves_span_one_unit_with_an_integer_tick(saved_axes: list) -> None:
    history = [{"epoch": 1, "train_loss": 0.5, "test_loss": 0.6, "train_accuracy": 0.9,
                "test_accuracy": 0.88, "firing_rates": {"a": 0.1, "b": 0.2},
                "grad_norms": {"a": 0.01, "b": 0.02}}]
    config = dict(dataset="mnist", model="mlp", init="trainable", steps=3, threshold=1.0,
                  beta=0.5, seed=0)
    training_figures.plot_training_curves({"history": history, "config": config}, "c.png")
    assert len(saved_axes) == 4
    for limits, ticks in saved_axes:
        assert limits == pytest.approx((0.5, 1.5))
        assert visible_ticks(limits, ticks) == [1.0]


@pytest.mark.parametrize("depth", [2, 5, 10])
def test_propagation_layer_ticks_are_integers(saved_axes: list, depth: int) -> None:
    config = dict(depth=depth, width=8, steps=1, threshold=1.0, beta=0.5, reset="subtract",
                  input="constant")
    data = {"variance": [1.0] * depth, "rate": [0.1] * depth}
    figures.plot_propagation({"config": config, "results": {"paper": data}}, "p.png")
    for limits, ticks in saved_axes:
        shown = visible_ticks(limits, ticks)
        assert shown and all(float(tick).is_integer() for tick in shown)
