"""Deep plain SNNs (docs/depth.md): the pair (correlation) mean-field against simulation, the
copy window, the ``deep`` init, and ``spikeinit depth``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import spikeinit
from spikeinit.experiments.depth import (
    class_gap,
    contraction_per_layer,
    information_at_init,
    linear_probe_accuracy,
)
from spikeinit.experiments.training import TrainConfig, train
from spikeinit.experiments.training.config import PRESETS
from spikeinit.init.context import LayerContext
from spikeinit.init.deep import deep_structure
from spikeinit.models import SpikingMLP
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.sweep.depth import DepthGrid, run_depth
from spikeinit.theory.copy_chain import (
    copies_patterns,
    copy_path_gain,
    copy_window,
    isometric_copy_slope,
)
from spikeinit.theory.correlation import (
    WeightStructure,
    correlation_fixed_point,
    correlation_map,
    correlation_mean_field,
    pattern_correlation,
)
from test_adapters_acceptance import (
    BATCH,
    BUILDERS,
    DEPTH,
    INPUTS,
    rates,
    snntorch_mlp,
)
from test_adapters_acceptance import STEPS as STEPS_FRAMEWORK

LIF = LIFParameters(beta=0.5, threshold=1.0)
STEPS = 3
#: n Var[w] of ``paper`` for spikes of a sigma = 1, theta = 1 population: 1 / Q(1).
PAPER_GAIN = 6.3


def _simulate(structure: WeightStructure, correlation: float, depth: int, width: int,
              draws: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer pattern correlation and rate of a pair in real networks of ``width``
    neurons (mean over ``draws`` networks); layer 1 sees currents of ``correlation``."""
    correlations, rates = [], []
    for draw in range(draws):
        generator = torch.Generator().manual_seed(100 + draw)
        z = torch.randn(2, width, generator=generator)
        pair = torch.stack([z[0], correlation * z[0] + (1 - correlation**2) ** 0.5 * z[1]])
        spikes, _ = lif_multistep(pair[None].repeat(STEPS, 1, 1), LIF)
        layer_c, layer_r = [pattern_correlation(spikes[:, 0], spikes[:, 1])], [spikes.mean()]
        for _ in range(depth - 1):
            weights = (torch.randn(width, width, generator=generator)
                       * (structure.gain / width) ** 0.5 + structure.mean_gain / width
                       + structure.diagonal * torch.eye(width))
            spikes, _ = lif_multistep(spikes @ weights.T, LIF)
            layer_c.append(pattern_correlation(spikes[:, 0], spikes[:, 1]))
            layer_r.append(spikes.mean())
        correlations.append(layer_c)
        rates.append([float(r) for r in layer_r])
    return np.mean(correlations, 0), np.mean(rates, 0)


@pytest.mark.parametrize("structure, correlation", [
    (WeightStructure(gain=PAPER_GAIN), 0.5),
    (WeightStructure(gain=PAPER_GAIN), 0.9),
    (WeightStructure(gain=2.0, mean_gain=1.0), 0.7),
    (WeightStructure(gain=0.22, diagonal=1.79), 0.5),
    (WeightStructure(gain=0.09, diagonal=1.2), 0.8),
])
def test_pair_mean_field_matches_networks_of_width_1000(structure, correlation) -> None:
    """The issue's check: the predicted per-layer correlation within 0.05 of simulation at
    width 1000, for i.i.d., mean-shifted and identity-plus-noise weights."""
    depth = 8
    theory = correlation_mean_field(depth, structure, LIF, STEPS, correlation, samples=32768)
    measured, rates = _simulate(structure, correlation, depth, 1000)
    assert np.abs(theory.correlation - measured).max() < 0.05, (theory.correlation, measured)
    assert np.abs(theory.rate - rates).max() < 0.02


def test_iid_weights_pull_every_pair_to_one_correlation() -> None:
    """i.i.d. zero-mean weights (paper's variance): C(c*) = c* > 0 with slope < 1, and
    slope > 1 at c = 1: distinct inputs end up equally similar."""
    point = correlation_fixed_point(WeightStructure(gain=PAPER_GAIN), LIF, STEPS,
                                    samples=16384, grid=11)
    assert point.correlation is not None and 0.02 < point.correlation < 0.4
    assert point.slope_at_fixed_point < 0.7
    assert point.slope_at_one > 1.5


def test_deep_structure_keeps_the_correlation_map_near_the_identity() -> None:
    """deep's map stays within 0.1 of C(c) = c, and at its fixed point its slope is ~1 (a
    class difference shrinks by ~1% per layer); the variance-only map's slope there is ~0.4."""
    ctx = LayerContext(100, 100, LIF, steps=STEPS)
    structure = deep_structure(ctx)
    grid = np.linspace(0.0, 1.0, 6)
    mapped = correlation_map(grid, structure, LIF, STEPS, samples=16384)
    assert np.abs(mapped - grid).max() < 0.1, mapped
    iid = correlation_map(grid, WeightStructure(gain=PAPER_GAIN), LIF, STEPS, samples=16384)
    assert np.abs(iid - grid).max() > 0.2  # the variance-only map is far from it
    point = correlation_fixed_point(structure, LIF, STEPS, samples=16384, grid=11)
    assert point.slope_at_fixed_point > 0.9


def test_copy_window_closed_form_and_edges() -> None:
    """Delayed subtractive reset, T = 3: alpha (1 + beta + beta^2) > (2 + beta) theta."""
    window = copy_window(LIF, STEPS)
    assert window.low == pytest.approx(2.5 / 1.75, rel=1e-5)
    assert copies_patterns(window.diagonal, LIF, STEPS)
    assert not copies_patterns(window.low * 0.99, LIF, STEPS)
    assert not copies_patterns(window.high * 1.01, LIF, STEPS)
    assert window.low < window.diagonal < window.high and window.margin > 0.1
    # an immediate reset (SpikingJelly, Norse) copies from just above the threshold
    immediate = copy_window(LIFParameters(beta=0.5, threshold=1.0, reset_order="immediate"),
                            STEPS)
    assert immediate.low == pytest.approx(1.0, rel=1e-5)


def test_copy_window_refuses_a_neuron_that_cannot_copy() -> None:
    with pytest.raises(ValueError, match="copies every"):
        copy_window(LIFParameters(beta=1.0, threshold=1.0, reset="none"), STEPS)


def test_deep_init_draws_identity_plus_noise_in_square_layers() -> None:
    model = SpikingMLP([784, 100, 100, 100, 10], input_layer=False, beta=0.5, threshold=1.0)
    sample = torch.rand(STEPS, 64, 784)
    spikeinit.initialize(model, method="deep", sample=sample, steps=STEPS,
                         generator=torch.Generator().manual_seed(0))
    structure = deep_structure(LayerContext(100, 100, LIF, steps=STEPS))
    hidden = model.blocks[1][0].weight.detach()
    assert float(torch.diagonal(hidden).mean()) == pytest.approx(structure.diagonal, abs=0.15)
    off = hidden[~torch.eye(100, dtype=torch.bool)]
    assert float(off.std()) == pytest.approx((structure.gain / 100) ** 0.5, rel=0.1)
    first = model.blocks[0][0].weight.detach()
    assert float(torch.diagonal(first[:, :100]).mean()) < 0.1  # no identity where n changes


def test_spikeinit_methods_lists_deep_with_its_parameters(capsys) -> None:
    from spikeinit.cli.main import main

    assert main(["methods"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("deep"))
    for option in ("diagonal", "noise_gain", "position", "z"):
        assert option in line


def test_probe_and_gap_measures() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    separable = torch.nn.functional.one_hot(labels, 4).float()[None]
    noise = (torch.rand(1, 200, 4, generator=generator) < 0.5).float()
    assert linear_probe_accuracy(separable, labels) == 1.0
    assert linear_probe_accuracy(noise, labels) < 0.6
    assert class_gap(separable, labels) > 0.9 > abs(class_gap(noise, labels)) * 5
    assert contraction_per_layer([0.2, 0.1, 0.05, 0.3]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="held_out"):
        linear_probe_accuracy(separable, labels, held_out=1.0)


def test_depth_grid_rejects_bad_axes() -> None:
    with pytest.raises(ValueError, match="init must be one of"):
        DepthGrid(inits=("nope",))
    with pytest.raises(ValueError, match="depth must be"):
        DepthGrid(depths=(0,))
    with pytest.raises(ValueError, match="grid axis"):
        DepthGrid(base={"depth": 3})
    with pytest.raises(ValueError, match="plain MLP"):
        DepthGrid(base={"model": "cnn"})


@pytest.mark.data
def test_deep_keeps_the_class_gap_through_50_layers(data_dir: Path, one_thread: None) -> None:
    """Acceptance: with deep the class gap shrinks by <= 5% per layer over 50 layers;
    with paper by ~40%."""
    deep = information_at_init(TrainConfig(data_dir=str(data_dir), depth=50, init="deep"), 600)
    paper = information_at_init(TrainConfig(data_dir=str(data_dir), depth=50, init="paper"), 600)
    assert contraction_per_layer(deep["class_gap"]) > 0.95
    assert min(deep["rate"]) > 0.05
    assert contraction_per_layer(paper["class_gap"][:6]) < 0.75
    assert deep["probe"][-2] > paper["probe"][-2] + 0.2


@pytest.mark.data
@pytest.mark.parametrize("seed", [0, 1])
def test_depth_50_learns_with_the_deep_chain_recipe_not_with_paper(data_dir: Path,
                                                                   one_thread: None,
                                                                   seed: int) -> None:
    """The deep-chain preset (immediate reset, atan slope 2, hidden lr 3e-5), depth 50, 6000
    MNIST images, one epoch: deep=0.1 reaches 0.74-0.75 (seeds 0, 1 measured), paper stays
    at chance (0.08-0.09)."""
    def accuracy(init: str) -> float:
        config = TrainConfig(**{**PRESETS["deep-chain"], "epochs": 1}, data_dir=str(data_dir),
                             depth=50, init=init, limit_train=6000, limit_test=1000,
                             seed=seed)
        return train(config, None, device="cpu", progress=False, log=None).final[
            "test_accuracy"]

    assert accuracy("deep=0.1") > 0.6
    assert accuracy("paper") < 0.2


@pytest.mark.data
@pytest.mark.parametrize("seed", [0, 1])
def test_depth_20_learns_with_deep_not_with_paper(data_dir: Path, one_thread: None,
                                                   seed: int) -> None:
    """2000 MNIST images, one epoch (32 steps), depth 20: deep leaves chance (0.37-0.40
    measured), paper does not (0.09-0.10)."""
    def accuracy(init: str) -> float:
        config = TrainConfig(data_dir=str(data_dir), depth=20, init=init, epochs=1,
                             limit_train=2000, limit_test=1000, seed=seed)
        return train(config, None, device="cpu", progress=False, log=None).final[
            "test_accuracy"]

    assert accuracy("deep") > 0.25
    assert accuracy("paper") < 0.15


@pytest.mark.data
def test_spikeinit_depth_writes_the_grid_and_resumes(data_dir: Path, tmp_path: Path,
                                                     one_thread: None) -> None:
    grid = DepthGrid(depths=(3,), inits=("deep", "paper"), seeds=(0, 1),
                     base={"data_dir": str(data_dir), "epochs": 1, "limit_train": 256,
                           "limit_test": 128}, probe_samples=120)
    first = run_depth(grid, tmp_path, progress=False)
    assert first.summary.done == 4
    assert {row["init"] for row in first.table} == {"deep", "paper"}
    assert all(row["seeds"] == 2 and 0 <= row["accuracy_mean"] <= 1 for row in first.table)
    assert all(path.exists() for path in first.figures) and len(first.figures) == 3
    (tmp_path / "init" / "depth3-paper.json").write_text("{damaged")
    again = run_depth(grid, tmp_path, progress=False)
    assert again.summary.skipped_done == 4 and again.summary.done == 0
    stored = json.loads((tmp_path / "init" / "depth3-paper.json").read_text())
    assert len(stored["class_gap"]) == 4  # remeasured: 3 hidden layers and the output


@pytest.mark.parametrize("build", BUILDERS)
def test_deep_on_framework_models_follows_their_reset(build) -> None:
    """initialize(method="deep") on snnTorch (delayed reset), SpikingJelly and Norse
    (immediate reset) MLPs: each square layer gets the diagonal of its own neurons' copy
    window, activity survives 20 layers, and calibrate then levels every layer."""
    torch.manual_seed(0)
    model, forward = build()
    x = torch.rand(STEPS_FRAMEWORK, BATCH, INPUTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = spikeinit.initialize(model, method="deep", sample=x, forward=forward,
                                       generator=torch.Generator().manual_seed(1))
    assert len(records) == DEPTH
    reset_order = "delayed" if build is snntorch_mlp else "immediate"
    # in weight units: the window of the unit-gain neuron with the effective threshold
    # theta / g (SpikingJelly's decay_input=True halves the input: theta / g = 2)
    neuron = LIFParameters(beta=0.5, threshold=records[-1].threshold, reset_order=reset_order)
    expected = copy_window(neuron, STEPS_FRAMEWORK).diagonal
    square = [m for m in model.modules() if isinstance(m, torch.nn.Linear)
              and m.in_features == m.out_features]
    assert len(square) == DEPTH - 1
    for layer in square:
        assert float(torch.diagonal(layer.weight.detach()).mean()) == pytest.approx(
            expected, abs=0.1)
    measured = rates(model, x, forward)
    assert min(measured) > 0.02, measured
    result = spikeinit.calibrate(model, x, forward=forward)
    assert result.converged
    for layer in result.layers:
        assert abs(layer.after - layer.target) <= 0.1 * layer.target, layer


def test_spikeinit_depth_cli_rejects_bad_input_in_one_line(capsys, tmp_path: Path) -> None:
    from spikeinit.cli.main import main

    assert main(["depth", "--inits", "nope", "--out", str(tmp_path / "d")]) == 2
    assert "init must be one of" in capsys.readouterr().err
    assert main(["depth", "--depths", "0", "--out", str(tmp_path / "d")]) == 2
    assert "depth must be" in capsys.readouterr().err


@pytest.mark.parametrize(("reset_order", "diagonal", "slope"),
                         [("immediate", 1.1, 2.0), ("delayed", 1.786, 1.0)])
def test_copy_path_gain_is_the_gradient_through_a_copy_chain(reset_order: str, diagonal: float,
                                                             slope: float) -> None:
    params = LIFParameters(beta=0.5, threshold=1.0, reset_order=reset_order, surrogate="atan",
                           surrogate_slope=slope)
    depth = 6
    first = torch.tensor([[1.0], [0.0], [0.0]], requires_grad=True)  # one spike, T = 3
    spikes = first
    for _ in range(depth):
        spikes, _ = lif_multistep(diagonal * spikes, params)
    assert spikes.tolist() == [[1.0], [0.0], [0.0]]  # copied unchanged
    spikes[0].sum().backward()
    expected = copy_path_gain(diagonal, params) ** depth
    assert first.grad[0].item() == pytest.approx(expected, rel=1e-5)


def test_isometric_copy_slope_solves_the_copy_gain_and_knows_the_atan_bound() -> None:
    bound = 2 * np.pi / (2 * np.pi - 1)  # alpha <= 1.19 theta for atan
    for diagonal in (1.05, 1.1, 1.15, 1.18):
        params = LIFParameters(threshold=1.0, reset_order="immediate", surrogate="atan")
        slope = isometric_copy_slope(diagonal, params)
        d = diagonal - 1.0
        closed = (diagonal - np.sqrt(diagonal**2 - 4 * np.pi**2 * d**2)) / (np.pi**2 * d**2)
        assert slope == pytest.approx(closed, rel=1e-6)
        tuned = LIFParameters(threshold=1.0, surrogate="atan", surrogate_slope=slope)
        assert copy_path_gain(diagonal, tuned) == pytest.approx(1.0, rel=1e-6)
    assert isometric_copy_slope(bound + 0.01, LIFParameters(threshold=1.0,
                                                            surrogate="atan")) is None
    fast = LIFParameters(threshold=1.0, surrogate="fast-sigmoid")
    assert isometric_copy_slope(1.786, fast) == pytest.approx((np.sqrt(1.786) - 1) / 0.786,
                                                               rel=1e-6)
    assert isometric_copy_slope(0.9, fast) is None  # alpha < 1 never has gain 1
