"""spikeinit.calibrate: LSUV-style, layer by layer, bounded, reported; on spikeinit's models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.calibration import theory_target
from spikeinit.models import SpikingMLP, deep_network
from spikeinit.neurons import LIF
from spikeinit.theory import tail_probability

pytestmark = pytest.mark.usefixtures("one_thread")


def test_revives_a_dead_network_to_the_default_target() -> None:
    net = deep_network(100, 12)  # PyTorch's default init: silent after a few layers
    x = torch.rand(5, 32, 100)
    assert spikeinit.report(net, x).dead
    result = spikeinit.calibrate(net, x)
    target = 0.1  # the rate that trains best, docs/operating-point.md
    assert result.skipped == ("input_neurons",)  # driven by the data: nothing to scale
    assert [layer.neuron for layer in result.layers] == [f"blocks.{i}.1" for i in range(11)]
    assert result.converged and result.forward_passes <= 2 + 11 * 12
    for layer in result.layers:
        assert layer.target == pytest.approx(target)
        assert abs(layer.after - target) <= 0.02 * target
        assert layer.parameters == (f"{layer.layer}.weight",)  # deep_network has no bias
    assert spikeinit.report(net, x).healthy
    assert "forward passes" in result.table() and result.as_dicts()[0]["neuron"] == "blocks.0.1"


def test_variance_target_and_per_layer_targets() -> None:
    net = SpikingMLP([60, 50, 40, 30], bias=True)
    x = torch.rand(4, 32, 60)
    result = spikeinit.calibrate(net, x, target=2.0, quantity="variance")
    for layer in result.layers:
        assert abs(layer.after - 2.0) <= 0.02 * 2.0
        assert layer.parameters[-1].endswith(".bias")
    targets = {"blocks.0.1": 0.05, "blocks.1.0": 0.2, "blocks.2.1": 0.3}  # neuron or layer name
    result = spikeinit.calibrate(net, x, target=targets, tolerance=0.05)
    assert [round(layer.target, 2) for layer in result.layers] == [0.05, 0.2, 0.3]
    assert all(abs(layer.after - layer.target) <= 0.05 * layer.target for layer in result.layers)


def test_unreachable_target_warns_and_keeps_the_best_scale() -> None:
    net = deep_network(50, 3)
    with pytest.warns(UserWarning, match="did not reach the target within 1 passes"):
        result = spikeinit.calibrate(net, torch.rand(3, 8, 50), target=0.3, max_passes=1)
    assert not result.converged
    assert all(layer.passes <= 1 for layer in result.layers)


def test_dropout_is_off_while_probing_and_restored() -> None:
    net = nn.Sequential(nn.Linear(30, 40), LIF(), nn.Dropout(0.5), nn.Linear(40, 20), LIF())
    net.train()
    result = spikeinit.calibrate(net, torch.rand(5, 16, 30), target=0.1)
    assert result.converged and net[2].training


def test_theory_target_reads_the_effective_threshold() -> None:
    from spikeinit.network import discover

    site = discover(nn.Sequential(nn.Linear(3, 3), LIF(threshold=0.5))).neurons[0]
    assert theory_target(site, sigma=1.0) == pytest.approx(float(tail_probability(0.5)))
    assert theory_target(site) == 0.1
    assert theory_target(site, "variance", sigma=2.0) == 4.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(quantity="current"), "quantity must be one of"),
    (dict(target=1.5), r"target must be a rate in \(0, 1\)"),
    (dict(target=-1.0, quantity="variance"), "target must be a finite number > 0"),
    (dict(tolerance=0.0), r"tolerance must lie in \(0, 1\)"),
    (dict(max_passes=0), "max_passes must be an integer >= 1"),
    (dict(sigma=0.0), "sigma must be a finite number > 0"),
])
def test_bad_arguments_name_the_parameter(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spikeinit.calibrate(deep_network(10, 2), torch.rand(2, 2, 10), **kwargs)
