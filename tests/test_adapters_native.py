"""spikeinit's own LIF through the adapters; discovery; operations between layers; laziness."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.adapters import NeuronDescription, describe_neuron
from spikeinit.models import SpikingMLP
from spikeinit.network import discover
from spikeinit.neurons import LIF
from spikeinit.theory import tail_probability


def test_native_description_and_simulation_match_the_engine() -> None:
    lif = LIF(beta=0.7, threshold=0.6, reset_order="immediate")
    description = describe_neuron(lif)
    assert (description.framework, description.threshold, description.beta) == (
        "spikeinit", 0.6, 0.7)
    x = torch.randn(20, 500, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(description.simulate(x), lif(x))
    assert describe_neuron(nn.Linear(2, 2)) is None


def test_bad_descriptions_raise_value_errors_naming_the_parameter() -> None:
    with pytest.raises(ValueError, match="input_gain must be a finite number > 0"):
        NeuronDescription("spikeinit", "LIF", threshold=1.0, beta=0.5, input_gain=0.0)
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        NeuronDescription("spikeinit", "LIF", threshold=1.0, beta=1.5)
    with pytest.raises(ValueError, match=r"synaptic_decay must lie in \[0, 1\)"):
        NeuronDescription("snntorch", "Synaptic", threshold=1.0, beta=0.5, synaptic_decay=1.0)


def test_module_order_and_traced_discovery_agree_on_a_sequential() -> None:
    net = nn.Sequential(nn.Linear(8, 6), LIF(), nn.Dropout(0.5), nn.Linear(6, 4), LIF())
    for sample in (None, torch.rand(3, 2, 8)):
        layers = discover(net, sample).layers
        assert [(layer.source_name, layer.target_name, layer.input) for layer in layers] == [
            (None, "1", "data"), ("1", "4", "spikes")]
        assert [op.kind for op in layers[1].before] == ["dropout"]


def test_forward_order_beats_module_order() -> None:
    class Reordered(nn.Module):  # declared out of order: module order would pair them wrongly
        def __init__(self) -> None:
            super().__init__()
            self.lif2, self.fc2 = LIF(threshold=0.5), nn.Linear(20, 10)
            self.lif1, self.fc1 = LIF(threshold=1.0), nn.Linear(30, 20)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    net = Reordered()
    traced = {layer.name: layer for layer in discover(net, torch.rand(4, 2, 30)).layers}
    assert traced["fc1"].target_name == "lif1" and traced["fc2"].source_name == "lif1"
    assert traced["fc2"].target_name == "lif2"
    records = spikeinit.initialize(net, "paper", sample=torch.rand(4, 2, 30))
    by_name = {record.name: record for record in records}
    assert by_name["fc2"].std == pytest.approx(spikeinit.spike_std(20, 1.0))  # source: lif1
    assert by_name["fc2"].threshold == 0.5


def test_pooling_between_layers_changes_the_input_second_moment() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), LIF(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 10), LIF())
    records = spikeinit.initialize(net, "paper", sample=torch.rand(3, 1, 8, 8))  # T=3, B=1
    p = float(tail_probability(1.0))
    second = p**2 + (p - p**2) / 4  # E[x^2] of 2x2-averaged Bernoulli(p) spikes
    assert records[1].input_second_moment == pytest.approx(second)
    assert records[1].std == pytest.approx(math.sqrt(1 / (64 * second)))
    assert any("avg-pool, 4 elements" in note for note in records[1].notes)
    net[2] = nn.MaxPool2d(2)
    records = spikeinit.initialize(net, "paper")
    assert records[1].input_second_moment == pytest.approx(1 - (1 - p) ** 4)


class _Residual(nn.Module):
    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.fc1, self.lif1 = nn.Linear(16, 16), LIF(threshold=0.01)  # it fires
        self.fc2, self.lif2 = nn.Linear(16, 16), LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif1(self.fc1(x))
        current = self.fc2(s) if self.scale is None else self.scale * self.fc2(s)
        return self.lif2(current + s)  # the addition happens outside any module


def test_residual_addition_is_modelled() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not modelled" warning
        records = spikeinit.initialize(_Residual(), "paper", sample=torch.rand(3, 4, 16))
    assert any("add adds spikes at rate" in note for note in records[1].notes)


def test_other_tensor_operations_are_reported_not_hidden() -> None:
    with pytest.warns(UserWarning, match=r"fc2: .*tensor-op.* not modelled"):
        spikeinit.initialize(_Residual(scale=0.5), "paper", sample=torch.rand(3, 4, 16))


def test_unknown_module_between_layers_is_reported() -> None:
    net = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), LIF())
    with pytest.warns(UserWarning, match=r"0: 1 \(unknown\) after the layer: not modelled"):
        spikeinit.initialize(net, "paper")


def test_spiking_mlp_first_layer_uses_the_measured_input_spikes() -> None:
    net = SpikingMLP([50, 40, 30])
    x = torch.rand(5, 16, 50)
    records = spikeinit.initialize(net, "paper", sample=x)
    rate = float(LIF()(x).mean())
    assert records[0].std == pytest.approx(math.sqrt(1 / (50 * rate)), rel=1e-6)
    assert records[1].std == pytest.approx(spikeinit.spike_std(40, 1.0))


def test_initialize_validates_its_arguments() -> None:
    net = SpikingMLP([10, 10])
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        spikeinit.initialize(net, "paper", sigma=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        spikeinit.initialize(net, "paper", steps=0)
    with pytest.raises(ValueError, match="sample: running the model on it failed"):
        spikeinit.report(net, torch.rand(3, 2, 7))
    bad = torch.rand(3, 2, 7)  # not runnable: the old, data-only use of sample still works
    with pytest.warns(UserWarning, match="paired in module order"):
        records = spikeinit.initialize(nn.Sequential(nn.Linear(7, 5), LIF()), "paper",
                                       sample=bad.unsqueeze(-1))
    assert records[0].input_second_moment == pytest.approx(float(bad.double().pow(2).mean()))


def test_spikeinit_imports_and_works_without_any_framework() -> None:
    code = (
        "import sys\n"
        "for name in ('snntorch', 'spikingjelly', 'norse'): sys.modules[name] = None\n"
        "import torch, spikeinit\n"
        "from spikeinit.models import deep_network\n"
        "net = deep_network(20, 3)\n"
        "spikeinit.initialize(net, 'paper', sample=torch.rand(2, 4, 20))\n"
        "spikeinit.calibrate(net, torch.rand(2, 4, 20), target=0.2)\n"
        "spikeinit.report(net, torch.rand(2, 4, 20))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
