"""The figure modules write PNGs of the expected size that plot exactly the data they are given.

Each figure is caught as it is saved (the real writer still runs), and its lines, images and
texts are read back through matplotlib's objects.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

from spikeinit.experiments import figures, training_figures


@pytest.fixture
def saved(monkeypatch):
    """The figures saved through either module, in order."""
    caught = []
    for module in (figures, training_figures):
        real = module.save_figure_atomic

        def catch(figure, path, _real=real, **kwargs):
            caught.append(figure)
            return _real(figure, path, **kwargs)

        monkeypatch.setattr(module, "save_figure_atomic", catch)
    return caught


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def expected_size(figure, dpi: int) -> tuple[int, int]:
    width, height = figure.get_size_inches()
    return round(width * dpi), round(height * dpi)


def gaps(values) -> np.ndarray:
    """What a log axis is given: values at or below the floor become NaN."""
    array = np.asarray(values, dtype=float)
    return np.where(array > 1e-7, array, np.nan)


def propagation_result() -> dict:
    return {
        "config": {"depth": 4, "width": 100, "steps": 3, "threshold": 1.0, "beta": 0.5,
                   "reset": "subtract", "input": "constant"},
        "results": {
            "paper": {"rate": [0.2, 0.18, 0.0, 0.17], "variance": [1.0, 0.9, 1.1, 1.05],
                      "rate_by_step": [[0.1, 0.2, 0.3], [0.2, 0.1, 0.0], [0.0, 0.0, 0.1],
                                       [0.4, 0.3, 0.2]],
                      "prediction": {"rate": [0.16] * 4, "variance": [1.0] * 4},
                      "gradients": {"current_gradient_square": [1e-2, 5e-3, 0.0, 1e-3],
                                    "predicted_current_gradient_square": [1e-2] * 4}},
            "kaiming": {"rate": [0.3, 0.01, 1e-9, 0.0], "variance": [2.0, 0.5, 0.1, 0.01],
                        "rate_by_step": [[0.5, 0.6, 0.7], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                         [0.0, 0.0, 0.0]],
                        "gradients": {"current_gradient_square": [1.0, 0.1, 0.01, 0.001],
                                      "predicted_current_gradient_square": [1.0] * 4}},
        },
    }


def test_propagation_plots_every_init_and_its_prediction(tmp_path, saved):
    result = propagation_result()
    path = tmp_path / "propagation.png"
    figures.plot_propagation(result, path)
    (figure,) = saved
    assert png_size(path) == expected_size(figure, 120) == (1320, 504)
    variance_axis, rate_axis = figure.axes
    assert variance_axis.get_yscale() == rate_axis.get_yscale() == "log"
    for axis, key in ((variance_axis, "variance"), (rate_axis, "rate")):
        lines = axis.get_lines()
        # paper: measured + dashed prediction; kaiming: measured only (no prediction given)
        assert [line.get_linestyle() for line in lines] == ["-", "--", "-"]
        np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3, 4])
        np.testing.assert_array_equal(lines[0].get_ydata(), gaps(result["results"]["paper"][key]))
        np.testing.assert_array_equal(lines[1].get_ydata(),
                                      result["results"]["paper"]["prediction"][key])
        np.testing.assert_array_equal(lines[2].get_ydata(),
                                      gaps(result["results"]["kaiming"][key]))
        assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert [text.get_text() for text in rate_axis.get_legend().get_texts()] == [
        "paper", "kaiming"]
    assert "width 100, T=3, θ=1.0" in figure._suptitle.get_text()


def test_rate_by_step_shows_each_init_on_one_colour_scale(tmp_path, saved):
    result = propagation_result()
    path = tmp_path / "rate_by_step.png"
    figures.plot_rate_by_step(result, path)
    (figure,) = saved
    assert png_size(path) == expected_size(figure, 120)
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == ["paper", "kaiming"]
    for axis, init in zip(panels, ("paper", "kaiming")):
        (image,) = axis.get_images()
        np.testing.assert_array_equal(image.get_array(), result["results"][init]["rate_by_step"])
        assert image.get_clim() == (0.0, 0.7)  # the largest rate of both
        assert tuple(image.get_extent()) == (-0.5, 2.5, 0.5, 4.5)


def test_gradients_plot_measured_and_predicted_squares(tmp_path, saved):
    result = propagation_result()
    path = tmp_path / "gradients.png"
    figures.plot_gradients(result, path)
    (figure,) = saved
    assert png_size(path) == expected_size(figure, 120) == (780, 504)
    (axis,) = figure.axes
    lines = axis.get_lines()
    assert len(lines) == 4
    for index, init in enumerate(("paper", "kaiming")):
        grads = result["results"][init]["gradients"]
        np.testing.assert_array_equal(lines[2 * index].get_ydata(),
                                      gaps(grads["current_gradient_square"]))
        np.testing.assert_array_equal(lines[2 * index + 1].get_ydata(),
                                      grads["predicted_current_gradient_square"])
        assert lines[2 * index + 1].get_linestyle() == "--"


def test_heatmap_shows_the_values_and_writes_them_in_the_cells(tmp_path, saved):
    values = np.array([[0.5, 1.25, np.nan], [1.0, 2.0, 0.75]])
    path = tmp_path / "heatmap.png"
    figures.plot_heatmap(values, [0.5, 1.0], [20, 50, 100], path, row_label="θ",
                         column_label="n", title="grid", colorbar_label="relative", vmin=0.0,
                         vmax=2.0)
    (figure,) = saved
    assert png_size(path) == expected_size(figure, 120) == (390, 264)
    axis = figure.axes[0]
    (image,) = axis.get_images()
    np.testing.assert_array_equal(image.get_array().filled(np.nan), values)
    assert image.get_clim() == (0.0, 2.0)
    assert [t.get_text() for t in axis.get_xticklabels()] == ["20", "50", "100"]
    assert [t.get_text() for t in axis.get_yticklabels()] == ["0.5", "1"]
    cells = {(text.get_position(), text.get_text()) for text in axis.texts}
    assert cells == {((j, i), f"{values[i, j]:.2f}") for i in range(2) for j in range(3)}
    assert axis.get_xlabel() == "n" and axis.get_ylabel() == "θ" and axis.get_title() == "grid"


def test_training_curves_plot_the_history(tmp_path, saved):
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.2 / e,
                "train_accuracy": 0.3 * e, "test_accuracy": 0.28 * e,
                "firing_rates": {"l1": 0.1 * e, "l2": 0.0 if e == 1 else 0.05},
                "grad_norms": {"l1": 1e-3 * e, "l2": 2e-3}} for e in (1, 2, 3)]
    result = {"history": history, "config": {"dataset": "mnist", "model": "mlp", "init": "paper",
                                             "steps": 3, "threshold": 1.0, "beta": 0.5,
                                             "seed": 0}}
    path = tmp_path / "curves.png"
    training_figures.plot_training_curves(result, path)
    (figure,) = saved
    assert png_size(path) == expected_size(figure, 110) == (1870, 418)
    loss, accuracy, rates, grads = figure.axes[:4]
    for axis, key in ((loss, "loss"), (accuracy, "accuracy")):
        train, test = axis.get_lines()
        np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
        np.testing.assert_allclose(train.get_ydata(), [r[f"train_{key}"] for r in history])
        np.testing.assert_allclose(test.get_ydata(), [r[f"test_{key}"] for r in history])
    first, second = rates.get_lines()
    np.testing.assert_allclose(first.get_ydata(), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(second.get_ydata(), [np.nan, 0.05, 0.05])  # 0: a gap
    np.testing.assert_allclose(grads.get_lines()[0].get_ydata(), [1e-3, 2e-3, 3e-3])
    assert "mnist mlp init=paper" in figure._suptitle.get_text()


def test_compare_plots_the_seed_mean_a_one_std_band_and_chance(tmp_path, saved):
    curves = [[0.5, 0.7, 0.8], [0.6, 0.7, 0.9]]
    summary = {"inits": {"paper": {"test_accuracy": curves},
                         "kaiming": {"test_accuracy": [[0.1, 0.1, 0.2]]}},
               "chance": 0.1, "title": "mnist"}
    path = tmp_path / "compare.png"
    training_figures.plot_compare(summary, path)
    (figure,) = saved
    assert png_size(path) == expected_size(figure, 120) == (768, 528)
    (axis,) = figure.axes
    lines = axis.get_lines()
    # paper: two thin seed curves and the mean; kaiming: its one seed; chance
    assert len(lines) == 5
    np.testing.assert_allclose(lines[2].get_ydata(), np.mean(curves, axis=0))
    assert lines[2].get_label() == "paper (2 seeds)" and lines[3].get_label() == "kaiming (1 seed)"
    np.testing.assert_allclose(lines[3].get_ydata(), [0.1, 0.1, 0.2])
    assert lines[4].get_label() == "chance" and list(lines[4].get_ydata()) == [0.1, 0.1]
    (band,) = axis.collections  # one band: kaiming has one seed, no std
    lower_upper = band.get_paths()[0].vertices[:, 1]
    std = np.std(curves, axis=0, ddof=1)
    mean = np.mean(curves, axis=0)
    for value in (*(mean - std), *(mean + std)):
        assert np.isclose(lower_upper, value).any(), value
    assert math.isclose(axis.get_ylim()[1], 1.0) and axis.get_title() == "mnist"
