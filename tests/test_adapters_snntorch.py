"""snnTorch adapter: each neuron's description reproduces snnTorch's own update exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.adapters import UnsupportedNeuronError, describe_neuron
from spikeinit.network import discover

snn = pytest.importorskip("snntorch", reason="snntorch is not installed (see .ci/run)")

from adapter_checks import currents  # noqa: E402


def run(neuron: nn.Module, x: torch.Tensor) -> torch.Tensor:
    neuron = neuron.double()
    mem = neuron.reset_mem()
    out = []
    for step in x:
        result = neuron(step, *([mem] if not isinstance(mem, tuple) else mem))
        out.append(result[0])
        mem = result[1] if len(result) == 2 else result[1:]
    return torch.stack(out)


@pytest.mark.parametrize("make, expected", [
    (lambda: snn.Leaky(beta=0.5), dict(reset="subtract", reset_order="delayed")),
    (lambda: snn.Leaky(beta=0.7, threshold=0.8, reset_mechanism="zero"),
     dict(reset="zero", reset_order="immediate")),
    (lambda: snn.Leaky(beta=0.7, reset_mechanism="none"), dict(reset="none")),
    (lambda: snn.Leaky(beta=0.5, graded_spikes_factor=2.0), dict(spike_amplitude=2.0)),
    (lambda: snn.Synaptic(alpha=0.6, beta=0.5), dict(synaptic_decay=0.6, reset_order="delayed")),
    (lambda: snn.Synaptic(alpha=0.6, beta=0.5, reset_mechanism="zero"),
     dict(reset="zero", reset_order="delayed")),
    (lambda: snn.RLeaky(beta=0.5, V=0.0, all_to_all=False), dict(kind="RLeaky")),
    (lambda: snn.RLeaky(beta=0.5, V=0.0, all_to_all=False, reset_mechanism="zero"),
     dict(reset="zero", reset_order="delayed")),
])
def test_description_reproduces_snntorch(make, expected) -> None:
    neuron = make()
    description = describe_neuron(neuron)
    assert description.framework == "snntorch" and description.input_gain == 1.0
    for key, value in expected.items():
        assert getattr(description, key) == pytest.approx(value) if isinstance(value, float) \
            else getattr(description, key) == value
    x = currents()
    reference = description.simulate(x)
    assert 0.05 < float(reference.mean()) / description.spike_amplitude < 0.6
    torch.testing.assert_close(run(neuron, x).double(), reference, rtol=0, atol=0)


def test_rleaky_recurrent_layer_is_named_and_initialized() -> None:
    net = nn.Sequential(nn.Linear(10, 20), snn.RLeaky(beta=0.5, linear_features=20,
                                                        init_hidden=True))
    network = discover(net)
    assert [layer.name for layer in network.layers] == ["0"]
    assert network.internal == ["1.recurrent"]
    before = net[1].recurrent.weight.detach().clone()
    result = spikeinit.initialize(net, "paper")  # the recurrent init: tests/test_recurrent_init.py
    assert [record.name for record in result] == ["0", "1.recurrent"]
    assert not torch.equal(net[1].recurrent.weight, before)
    assert torch.count_nonzero(net[1].recurrent.bias) == 0


def test_unsupported_snntorch_neuron_leaves_its_layer_unchanged() -> None:
    net = nn.Sequential(nn.Linear(10, 20), snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True))
    with pytest.raises(UnsupportedNeuronError, match="Alpha is not supported"):
        describe_neuron(net[1])
    before = net[0].weight.detach().clone()
    with pytest.warns(UserWarning, match="left unchanged: 0 .*Alpha is not supported"):
        records = spikeinit.initialize(net, "paper")
    assert records == [] and torch.equal(net[0].weight, before)


def test_per_neuron_beta_uses_the_mean_with_a_note() -> None:
    description = describe_neuron(snn.Leaky(beta=torch.tensor([0.4, 0.6])))
    assert description.beta == pytest.approx(0.5)
    assert any("beta differs between neurons" in note for note in description.notes)


def test_init_hidden_sequential_with_a_time_loop() -> None:
    """snnTorch's other idiom: nn.Sequential with init_hidden=True, driven step by step."""
    from snntorch import utils

    net = nn.Sequential(nn.Linear(30, 40), snn.Leaky(beta=0.5, init_hidden=True),
                        nn.Linear(40, 10), snn.Leaky(beta=0.5, init_hidden=True, output=True))

    def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        utils.reset(model)
        return torch.stack([model(step)[0] for step in x])

    x = torch.rand(5, 16, 30)
    layers = discover(net, x, forward).layers
    assert [(layer.name, layer.source_name, layer.target_name) for layer in layers] == [
        ("0", None, "1"), ("2", "1", "3")]
    records = spikeinit.initialize(net, "paper", sample=x, forward=forward)
    assert records[1].std == pytest.approx(spikeinit.spike_std(40, 1.0))
