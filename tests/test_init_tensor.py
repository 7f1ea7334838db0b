import math

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.init import compute_fans


def paper_std(fan: int, threshold: float, sigma: float = 1.0) -> float:
    """The paper's std, sigma / sqrt(n Q(theta / sigma)), with Q(x) = erfc(x / sqrt 2) / 2."""
    return sigma / math.sqrt(fan * 0.5 * math.erfc(threshold / sigma / math.sqrt(2)))


def test_spike_normal_std_within_two_percent_on_1000x1000():
    weight = torch.empty(1000, 1000)
    spikeinit.spike_normal_(weight, threshold=1.0, generator=torch.Generator().manual_seed(0))
    expected = paper_std(1000, 1.0)
    assert spikeinit.spike_std(1000, 1.0) == pytest.approx(expected, rel=1e-12)
    assert abs(weight.std().item() / expected - 1) < 0.02
    assert abs(weight.mean().item()) < 0.02 * expected


def test_spike_uniform_has_the_same_variance():
    weight = torch.empty(1000, 1000)
    spikeinit.spike_uniform_(weight, threshold=0.5, generator=torch.Generator().manual_seed(1))
    expected = paper_std(1000, 0.5)
    assert abs(weight.std().item() / expected - 1) < 0.02
    assert weight.abs().max().item() <= math.sqrt(3) * expected + 1e-6


@pytest.mark.parametrize(
    "layer",
    [nn.Linear(30, 20), nn.Conv1d(4, 8, 3), nn.Conv2d(3, 16, (3, 5)), nn.Conv3d(2, 4, 3)],
)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_std_follows_the_formula_for_the_selected_fan(layer, mode):
    shape = layer.weight.shape
    receptive = math.prod(shape[2:])
    fan = shape[1] * receptive if mode == "fan_in" else shape[0] * receptive
    assert compute_fans(layer.weight) == (shape[1] * receptive, shape[0] * receptive)
    # A large tensor with the same fan: grow the dimension the fan does not count.
    big_shape = (4000, *shape[1:]) if mode == "fan_in" else (shape[0], 4000, *shape[2:])
    big = torch.empty(big_shape)
    spikeinit.spike_normal_(big, threshold=0.8, mode=mode,
                            generator=torch.Generator().manual_seed(7))
    expected = paper_std(fan, 0.8)
    # The sample std of N normal draws has relative standard error 1 / sqrt(2 N): 5 of them.
    tolerance = 5 / math.sqrt(2 * big.numel())
    assert abs(big.std().item() / expected - 1) < tolerance
    assert abs(big.mean().item()) < 5 * expected / math.sqrt(big.numel())
    other = shape[0] * receptive if mode == "fan_in" else shape[1] * receptive
    if other != fan:  # the test tells the two modes apart
        assert abs(paper_std(other, 0.8) / expected - 1) > tolerance


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_a_parameter_is_filled_in_place_without_a_graph(mode):
    layer = nn.Conv2d(3, 16, (3, 5))
    before = layer.weight.detach().clone()
    out = spikeinit.spike_normal_(layer.weight, threshold=0.8, mode=mode,
                                  generator=torch.Generator().manual_seed(0))
    assert out is layer.weight and out.requires_grad and out.grad_fn is None
    assert not torch.equal(out.detach(), before)
    again = torch.empty_like(before)
    spikeinit.spike_normal_(again, threshold=0.8, mode=mode,
                            generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.detach(), again)  # the same draw as a plain tensor of that shape


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
