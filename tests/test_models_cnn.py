"""SpikingCNN and the classification MLP: shapes, every init of the registry, input statistics."""

from __future__ import annotations

import math

import pytest
import torch

import spikeinit
from spikeinit.experiments.training import initialize_model
from spikeinit.init import find_synaptic_layers
from spikeinit.models import SpikingCNN, SpikingMLP, classifier_mlp
from spikeinit.neurons import LIF


def test_cnn_shapes_and_layer_order() -> None:
    net = SpikingCNN((1, 28, 28), 10, channels=(4, 8), hidden=(32,))
    out = net(torch.rand(3, 5, 1, 28, 28))
    assert out.shape == (3, 5, 10)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert net.flat_features == 8 * 7 * 7
    layers = find_synaptic_layers(net)
    assert [type(layer.module).__name__ for layer in layers] == ["Conv2d", "Conv2d", "EventLinear",
                                                                  "EventLinear"]
    assert layers[0].source is None  # the first conv sees the data
    assert all(layer.source is not None for layer in layers[1:])
    assert all(layer.target is not None for layer in layers)
    assert len(net.lif_layers) == 4
    shapes = [tuple(x.shape) for x in net.iter_layers(torch.rand(2, 3, 1, 28, 28))]
    assert shapes == [(2, 3, 4, 14, 14), (2, 3, 8, 7, 7), (2, 3, 32), (2, 3, 10)]


def test_cnn_nmnist_frames_and_pools() -> None:
    for pool in ("max", "avg", "none"):
        net = SpikingCNN((2, 34, 34), 10, channels=(4,), pool=pool)
        assert net(torch.rand(3, 2, 2, 34, 34)).shape == (3, 2, 10)


def test_cnn_runs_from_rest_each_forward() -> None:
    net = SpikingCNN((3, 8, 8), 4, channels=(4,))
    spikeinit.initialize(net, "paper", input_second_moment=0.3)
    x = torch.rand(3, 2, 3, 8, 8)
    torch.testing.assert_close(net(x), net(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_shape=(28, 28)), "input_shape"),
        (dict(input_shape=(1, 28, 28), classes=0), "classes"),
        (dict(input_shape=(1, 28, 28), channels=()), "channels"),
        (dict(input_shape=(1, 28, 28), channels=(4, 0)), r"channels\[1\]"),
        (dict(input_shape=(1, 28, 28), kernel_size=4), "kernel_size"),
        (dict(input_shape=(1, 28, 28), pool="sum"), "pool"),
        (dict(input_shape=(1, 4, 4), channels=(2, 2, 2, 2)), "channels"),
        (dict(input_shape=(1, 28, 28), threshold=-1.0), "threshold"),
    ],
)
def test_cnn_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpikingCNN(**kwargs)


def test_cnn_rejects_wrong_input_shape() -> None:
    net = SpikingCNN((1, 28, 28), 10, channels=(4,))
    with pytest.raises(ValueError, match="currents must have shape"):
        net(torch.rand(3, 2, 1, 32, 32))


def test_classifier_mlp_matches_paper_layout() -> None:
    net = classifier_mlp(784, width=100, depth=10, classes=10)
    assert isinstance(net, SpikingMLP)
    assert net.sizes == [784] + [100] * 10 + [10]
    assert len(net.lif_layers) == 12  # input LIF, 10 hidden, output
    with pytest.raises(ValueError, match="depth"):
        classifier_mlp(784, depth=0)


@pytest.mark.parametrize("method", spikeinit.available_methods())
def test_every_registry_init_works_for_mlp_and_cnn(method: str) -> None:
    mlp = classifier_mlp(64, width=32, depth=3, classes=10)
    cnn = SpikingCNN((2, 12, 12), 10, channels=(4, 8), hidden=(16,))
    for net, sample in ((mlp, torch.rand(3, 16, 64)), (cnn, torch.rand(3, 16, 2, 12, 12))):
        records = initialize_model(net, method, sample, steps=3,
                                   generator=torch.Generator().manual_seed(0))
        assert len(records) == len(find_synaptic_layers(net))
        weights = [layer.module.weight for layer in find_synaptic_layers(net)]
        assert all(torch.isfinite(w).all() for w in weights)
        assert net(sample).shape == (3, 16, 10)


def test_cnn_first_layer_uses_data_second_moment() -> None:
    cnn = SpikingCNN((1, 16, 16), 10, channels=(64,))
    sample = torch.rand(3, 64, 1, 16, 16) * 0.5  # E[x^2] = 1/12
    records = initialize_model(cnn, "paper", sample, generator=torch.Generator().manual_seed(0))
    expected = math.sqrt(1.0 / (9 * float(sample.double().pow(2).mean())))
    # drawn for Var[w] = 1 / (n E[x^2]), then made exact on the sample: E[I^2] = sigma^2 = 1
    with torch.no_grad():
        current = cnn.features[0].conv(sample.flatten(0, 1))
    assert float(current.double().pow(2).mean()) == pytest.approx(1.0, rel=1e-5)
    assert records[0].std == pytest.approx(expected, rel=0.2)
    assert float(cnn.features[0].conv.weight.detach().std()) == pytest.approx(records[0].std,
                                                                            rel=0.1)
    # four times the second moment: half the std; the classifier (fed by spikes) is unchanged
    louder = initialize_model(cnn, "paper", 2 * sample,
                              generator=torch.Generator().manual_seed(0))
    assert louder[0].std == pytest.approx(records[0].std / 2, rel=1e-6)
    assert louder[1].std == pytest.approx(records[1].std, rel=1e-6)


def test_mlp_first_layer_uses_measured_input_spike_rate() -> None:
    mlp = classifier_mlp(100, width=50, depth=2, classes=10)
    stds, rates = [], []
    for scale in (1.0, 1.6):
        sample = torch.rand(3, 256, 100) * scale
        records = initialize_model(mlp, "paper", sample)
        rates.append(float(LIF()(sample).mean()))  # the input LIF's firing rate on the data
        stds.append(records)
    assert rates[1] > 1.5 * rates[0]
    # Var[w] of the first Linear is proportional to 1 / E[s^2] of the input spikes
    assert stds[0][0].std ** 2 * rates[0] == pytest.approx(stds[1][0].std ** 2 * rates[1])
    assert stds[0][0].std == pytest.approx(math.sqrt(1.0 / (100 * rates[0])), rel=1e-6)
    assert stds[0][1].std == pytest.approx(stds[1][1].std)  # deeper layers ignore the data
    # kaiming ignores the data
    records = initialize_model(mlp, "kaiming", sample)
    assert records[0].std == pytest.approx(math.sqrt(2.0 / 100))
