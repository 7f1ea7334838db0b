"""Each adapter reads its framework's surrogate gradient into the one neuron-parameter type."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.adapters import describe_neuron
from spikeinit.init.model import layer_context
from spikeinit.network import discover
from spikeinit.neurons import LIF


def test_spikeinit_lif_surrogate_is_read() -> None:
    d = describe_neuron(LIF(surrogate="atan", surrogate_slope=1.5))
    assert (d.surrogate, d.surrogate_slope) == ("atan", 1.5)
    assert d.lif_parameters().surrogate == "atan" and d.lif_parameters().slope == 1.5


def test_snntorch_surrogates_are_read_from_spike_grad() -> None:
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    assert (describe_neuron(snn.Leaky(beta=0.5)).surrogate,
            describe_neuron(snn.Leaky(beta=0.5)).surrogate_slope) == ("atan", 2.0)
    fast = describe_neuron(snn.Leaky(beta=0.5, spike_grad=surrogate.fast_sigmoid(slope=10)))
    assert (fast.surrogate, fast.surrogate_slope) == ("fast-sigmoid", 10.0)
    other = describe_neuron(snn.Leaky(beta=0.5, spike_grad=surrogate.triangular()))
    assert other.surrogate is None and any("surrogate" in note for note in other.notes)


def test_spikingjelly_atan_is_read_and_its_default_sigmoid_is_named() -> None:
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate

    atan = describe_neuron(neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(alpha=3.0)))
    assert (atan.surrogate, atan.surrogate_slope) == ("atan", 3.0)
    # decay_input: g = 1/tau, and atan of slope alpha in v is atan of slope g*alpha in v/g
    assert atan.lif_parameters().slope == pytest.approx(1.5)
    default = describe_neuron(neuron.LIFNode(tau=2.0))
    assert default.surrogate is None
    assert any("Sigmoid(alpha=4)" in note for note in default.notes)


def test_norse_superspike_is_a_fast_sigmoid() -> None:
    norse = pytest.importorskip("norse.torch")
    d = describe_neuron(norse.LIFCell())
    assert (d.surrogate, d.surrogate_slope) == ("fast-sigmoid", 100.0)
    assert d.lif_parameters().slope == pytest.approx(10.0)  # dt * tau_mem_inv = 0.1


def test_gradient_aware_uses_the_snntorch_atan_surrogate() -> None:
    snn = pytest.importorskip("snntorch")

    def net(neuron) -> nn.Module:
        return nn.Sequential(nn.Linear(50, 40), neuron(), nn.Linear(40, 30), neuron())

    def second_layer_std(model: nn.Module) -> float:
        records = spikeinit.initialize(model, method="gradient-aware",
                                       generator=torch.Generator().manual_seed(0))
        return records[1].std

    snntorch_net = net(lambda: snn.Leaky(beta=0.5, init_hidden=True))
    ctx = layer_context(discover(snntorch_net).layers[1])
    assert (ctx.surrogate, ctx.surrogate_slope) == ("atan", 2.0)
    atan = second_layer_std(net(lambda: LIF(surrogate="atan", surrogate_slope=2.0)))
    fast = second_layer_std(net(lambda: LIF(surrogate="fast-sigmoid")))
    assert atan != pytest.approx(fast, rel=0.05)  # the surrogate changes this init
    assert second_layer_std(snntorch_net) == pytest.approx(atan, rel=1e-9)


def test_snntorch_surrogate_is_recognised_by_its_code_not_its_name() -> None:
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    def atan(alpha=3.0):  # a look-alike: same name and closure shape, another derivative
        def inner(x):
            return surrogate.FastSigmoid.apply(x, alpha)

        return inner

    lookalike = describe_neuron(snn.Leaky(beta=0.5, spike_grad=atan()))
    assert lookalike.surrogate is None and any("not one of" in n for n in lookalike.notes)
    real = describe_neuron(snn.Leaky(beta=0.5, spike_grad=surrogate.atan(alpha=3.0)))
    assert (real.surrogate, real.surrogate_slope) == ("atan", 3.0)
    integer = describe_neuron(snn.Leaky(beta=0.5, spike_grad=surrogate.fast_sigmoid(slope=7)))
    assert (integer.surrogate, integer.surrogate_slope) == ("fast-sigmoid", 7.0)
