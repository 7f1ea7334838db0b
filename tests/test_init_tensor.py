import math

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.init import compute_fans


def test_spike_normal_std_within_two_percent_on_1000x1000():
    weight = torch.empty(1000, 1000)
    spikeinit.spike_normal_(weight, threshold=1.0, generator=torch.Generator().manual_seed(0))
    expected = spikeinit.spike_std(1000, 1.0)
    assert abs(weight.std().item() / expected - 1) < 0.02
    assert abs(weight.mean().item()) < 0.02 * expected


def test_spike_uniform_has_the_same_variance():
    weight = torch.empty(1000, 1000)
    spikeinit.spike_uniform_(weight, threshold=0.5, generator=torch.Generator().manual_seed(1))
    expected = spikeinit.spike_std(1000, 0.5)
    assert abs(weight.std().item() / expected - 1) < 0.02
    assert weight.abs().max().item() <= math.sqrt(3) * expected + 1e-6


@pytest.mark.parametrize(
    "layer",
    [nn.Linear(30, 20), nn.Conv1d(4, 8, 3), nn.Conv2d(3, 16, (3, 5)), nn.Conv3d(2, 4, 3)],
)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_works_on_linear_and_conv(layer, mode):
    fan_in, fan_out = compute_fans(layer.weight)
    fan = fan_in if mode == "fan_in" else fan_out
    big = torch.empty(2000, *layer.weight.shape[1:])
    spikeinit.spike_normal_(big, threshold=0.8, mode=mode)
    out = spikeinit.spike_normal_(layer.weight, threshold=0.8, mode=mode)
    assert out is layer.weight
    assert not layer.weight.requires_grad or layer.weight.grad is None
    if mode == "fan_in":
        assert abs(big.std().item() / spikeinit.spike_std(fan, 0.8) - 1) < 0.05


def test_generator_makes_it_reproducible():
    a, b = torch.empty(50, 50), torch.empty(50, 50)
    spikeinit.spike_normal_(a, 1.0, generator=torch.Generator().manual_seed(3))
    spikeinit.spike_normal_(b, 1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_bad_mode_and_shape_raise():
    with pytest.raises(ValueError, match="mode"):
        spikeinit.spike_normal_(torch.empty(3, 3), 1.0, mode="fan_avg")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        spikeinit.spike_normal_(torch.empty(3), 1.0)
    with pytest.raises(ValueError, match="threshold"):
        spikeinit.spike_normal_(torch.empty(3, 3), -1.0)
