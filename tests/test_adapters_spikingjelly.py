"""SpikingJelly adapter: single- and multi-step neurons reproduced exactly by their description."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.adapters import UnsupportedNeuronError, describe_neuron
from spikeinit.network import discover

pytest.importorskip("spikingjelly.activation_based.neuron",
                    reason="spikingjelly is not installed (see .ci/run)")
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

from adapter_checks import assert_description_reproduces  # noqa: E402


def run(node: nn.Module, x: torch.Tensor, multi: bool) -> torch.Tensor:
    functional.reset_net(node)
    if multi:
        node.step_mode = "m"
        out = node(x)
    else:
        out = torch.stack([node(step) for step in x])
    functional.reset_net(node)
    return out


CASES = [
    (lambda: neuron.IFNode(v_reset=None), dict(beta=1.0, input_gain=1.0, reset="subtract")),
    (lambda: neuron.IFNode(v_threshold=1.5), dict(threshold=1.5, reset="zero")),
    (lambda: neuron.LIFNode(tau=2.0, v_reset=None), dict(beta=0.5, input_gain=0.5)),
    (lambda: neuron.LIFNode(tau=3.0, decay_input=False, v_reset=None),
     dict(beta=2 / 3, input_gain=1.0)),
    (lambda: neuron.LIFNode(tau=2.0), dict(reset="zero", input_gain=0.5)),
    (lambda: neuron.LIFNode(tau=2.0, v_reset=-0.5, v_threshold=0.5), dict(threshold=1.0)),
    (lambda: neuron.ParametricLIFNode(init_tau=2.5, v_reset=None),
     dict(beta=0.6, input_gain=0.4)),
    (lambda: neuron.ParametricLIFNode(init_tau=2.5, decay_input=False),
     dict(beta=0.6, input_gain=1.0, reset="zero")),
]


@pytest.mark.parametrize("multi", [False, True], ids=["single-step", "multi-step"])
@pytest.mark.parametrize("make, expected", CASES)
def test_description_reproduces_spikingjelly(make, expected, multi: bool) -> None:
    node = make()
    assert_description_reproduces(node, expected, "spikingjelly", "immediate",
                                  lambda x: run(node, x, multi))


def test_effective_threshold_is_threshold_over_input_gain() -> None:
    description = describe_neuron(neuron.LIFNode(tau=4.0, v_threshold=0.5, v_reset=None))
    assert description.effective_threshold == pytest.approx(0.5 / 0.25)
    net = nn.Sequential(layer.Linear(40, 30), neuron.LIFNode(tau=2.0, v_reset=None),
                        layer.Linear(30, 20), neuron.LIFNode(tau=2.0, v_reset=None))
    records = spikeinit.initialize(net, "paper")
    assert records[1].threshold == pytest.approx(2.0)
    assert records[1].std == pytest.approx(spikeinit.spike_std(30, 2.0))


def test_single_step_model_in_a_time_loop() -> None:
    net = nn.Sequential(layer.Linear(40, 30), neuron.IFNode(v_reset=None),
                        layer.Linear(30, 20), neuron.IFNode(v_reset=None))

    def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(model)
        return torch.stack([model(step) for step in x])

    x = torch.rand(4, 8, 40)
    layers = discover(net, x, forward).layers
    assert [(layer.source_name, layer.target_name) for layer in layers] == [(None, "1"),
                                                                           ("1", "3")]
    assert layers[0].measured_second_moment == pytest.approx(float(x.double().pow(2).mean()))
    assert spikeinit.report(net, x, forward=forward).layers[0].measured_rate > 0


def test_unsupported_spikingjelly_neuron_is_named() -> None:
    net = nn.Sequential(layer.Linear(10, 10), neuron.KLIFNode())
    with pytest.raises(UnsupportedNeuronError, match="KLIFNode is not supported"):
        describe_neuron(net[1])
    with pytest.warns(UserWarning, match="KLIFNode is not supported"):
        assert spikeinit.initialize(net, "paper") == []
