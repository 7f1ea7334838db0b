import math

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.init import LayerContext, get_method
from spikeinit.models import SpikingMLP, deep_network
from spikeinit.neurons import LIFParameters
from spikeinit.theory import spike_weight_variance, tail_probability

CTX = LayerContext(fan_in=400, fan_out=300, neuron=LIFParameters(threshold=1.0, beta=0.5))

EXPECTED_VARIANCE = {
    "paper": spike_weight_variance(400, 1.0),
    "kaiming": 2 / 400,
    "xavier": 2 / 700,
    "lecun": 1 / 400,
    "pytorch": 1 / 1200,
    "orthogonal": 1 / 400,
}


@pytest.mark.parametrize("name, variance", sorted(EXPECTED_VARIANCE.items()))
def test_registry_variance_and_empirical_draw(name, variance):
    method, options = get_method(name)
    assert method.statistics(CTX, **options)[1] == pytest.approx(variance, rel=1e-12)
    weight, bias = torch.empty(300, 400), torch.full((300,), 5.0)
    method.initialize_(weight, bias, CTX, torch.Generator().manual_seed(0))
    assert weight.var().item() == pytest.approx(variance, rel=0.05)
    if name != "pytorch":
        assert torch.count_nonzero(bias) == 0
    else:
        assert bias.abs().max() <= 1 / math.sqrt(400)


def test_fluctuation_formula_and_options():
    method, _ = get_method("fluctuation")
    nu = tail_probability(1.0)
    mean, variance = method.statistics(CTX)
    eps_hat = 1 / (1 - 0.25)
    assert mean == 0.0
    assert variance == pytest.approx(1.0 / (400 * nu * eps_hat))
    mean, variance = method.statistics(CTX, mu_u=0.4, xi=2.0, rate=0.1)
    eps_bar = 1 / (1 - 0.5)
    assert mean == pytest.approx(0.4 / (400 * 0.1 * eps_bar))
    assert variance == pytest.approx((0.6 / 2) ** 2 / (400 * 0.1 * eps_hat) - mean**2)
    with pytest.raises(ValueError, match="unknown option"):
        method.statistics(CTX, tau=3)


def test_gradient_aware_is_harmonic_mean():
    from spikeinit.init.gradient_aware import backward_variance
    from spikeinit.init.paper import paper_variance

    ctx = LayerContext(fan_in=400, fan_out=300,
                       neuron=LIFParameters(threshold=1.0, surrogate="atan"))
    d_f, d_b = paper_variance(ctx), backward_variance(ctx)
    method, _ = get_method("gradient-aware")
    assert method.statistics(ctx)[1] == pytest.approx(2 / (1 / d_f + 1 / d_b))
    assert min(d_f, d_b) < method.statistics(ctx)[1] < max(d_f, d_b)


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="init must be one of.*paper"):
        get_method("he")


def test_initialize_uses_data_statistics_for_the_first_layer():
    model = nn.Sequential(nn.Linear(50, 40), spikeinit.LIF(threshold=0.5), nn.Linear(40, 30),
                          spikeinit.LIF(threshold=0.5))
    sample = torch.rand(256, 50)
    records = spikeinit.initialize(model, "paper", sample=sample)
    second_moment = sample.pow(2).mean().item()
    # drawn for Var[w] = 1 / (n E[x^2]), then rescaled so that the current's E[I^2] on the
    # sample is exactly sigma^2 = 1 (uniform inputs share a mean of 0.5: E[x] sum_i w_i
    # gives each output its own offset, and one draw misses the average by a few percent)
    current = model[0](sample).detach()
    assert current.pow(2).mean().item() == pytest.approx(1.0, rel=1e-5)
    assert records[0].std == pytest.approx(math.sqrt(1 / (50 * second_moment)), rel=0.2)
    assert any("E[I^2]" in note for note in records[0].notes)
    assert records[1].std == pytest.approx(spikeinit.spike_std(40, 0.5), rel=1e-9)


def test_initialize_threshold_override_and_validation():
    net = SpikingMLP([20, 20, 20], threshold=1.0)
    records = spikeinit.initialize(net, "paper", threshold=0.25)
    assert records[0].std == pytest.approx(spikeinit.spike_std(20, 0.25))
    with pytest.raises(ValueError, match="beta"):
        spikeinit.initialize(net, "paper", beta=1.5)


def test_initialize_warns_about_layers_without_neurons():
    with pytest.warns(UserWarning, match="no LIF neurons"):
        spikeinit.initialize(nn.Sequential(nn.Linear(5, 5)), "paper")


@pytest.mark.parametrize("method", ["paper", "kaiming", "fluctuation", "gradient-aware"])
def test_initialize_is_reproducible_with_a_generator(method):
    a, b = deep_network(30, 4), deep_network(30, 4)
    spikeinit.initialize(a, method, generator=torch.Generator().manual_seed(5))
    spikeinit.initialize(b, method, generator=torch.Generator().manual_seed(5))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_layers_are_paired_with_the_neurons_they_drive():
    from spikeinit.init import find_synaptic_layers

    net = SpikingMLP([10, 20, 30, 40])
    for layer, lif in zip(find_synaptic_layers(net), net.neurons, strict=True):
        assert layer.target is lif
    for index, layer in enumerate(find_synaptic_layers(net)):
        assert layer.source is net.lif_layers[index]


def test_heterogeneous_thresholds_are_read_per_layer():
    net = SpikingMLP([50, 50, 50])
    net.lif_layers[1].set_parameters(threshold=0.25)
    records = spikeinit.initialize(net, "paper")
    assert records[0].std == pytest.approx(spikeinit.spike_std(50, 1.0))
    assert records[1].std == pytest.approx(spikeinit.spike_std(50, 0.25))


def test_paper_at_a_huge_threshold_is_a_clear_error_not_a_division_by_zero():
    net = SpikingMLP([50, 50, 10], threshold=40.0)  # Q(40) underflows to 0 in float64
    with pytest.raises(ValueError, match=r"threshold: theta/sigma = 40 .* exceeds float32"):
        spikeinit.initialize(net, "paper")
