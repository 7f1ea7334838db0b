"""The default init ``trainable``: every population at rate 0.1 over the sample's T steps;
BatchNorm gets unit-scale weights and its gamma; the tracer follows per-step loops."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.init.trainable import TRAINABLE_RATE
from spikeinit.network import discover
from spikeinit.neurons import LIF

pytestmark = pytest.mark.usefixtures("one_thread")


class Looped(nn.Module):
    """Single-step neurons looped over time, stacked between layer-major Linear layers."""

    def __init__(self, sizes: tuple[int, ...], norm: bool = False) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) if norm else nn.Identity()
                                   for b in sizes[1:])
        self.lifs = nn.ModuleList(LIF(step_mode="single") for _ in sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (T, B, n)
        for fc, norm, lif in zip(self.fcs, self.norms, self.lifs):
            current = norm(fc(x.flatten(0, 1))).unflatten(0, x.shape[:2])
            lif.reset_state()
            x = torch.stack([lif(step) for step in current])
        return x


def rates(model: nn.Module, x: torch.Tensor) -> list[float]:
    return [row.measured_rate for row in spikeinit.report(model, x).layers]


def test_the_default_reads_t_from_the_sample_and_holds_the_rate() -> None:
    torch.manual_seed(0)
    model = Looped((300, 300, 300, 300, 300))
    x = torch.rand(6, 32, 300)
    network = discover(model, x)
    assert network.steps() == 6  # a single-step neuron called 6 times
    assert not any("tensor-op" in str(note) for layer in network.layers for note in layer.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = spikeinit.initialize(model, sample=x)
    assert all(record.method == "trainable" and record.sigma is None for record in records)
    measured = rates(model, x)
    assert all(abs(rate / TRAINABLE_RATE - 1) < 0.25 for rate in measured), measured


def test_multi_step_neurons_give_t_from_their_leading_axis() -> None:
    model = nn.Sequential(nn.Linear(20, 20), LIF(), nn.Linear(20, 20), LIF())
    assert discover(model, torch.rand(5, 4, 20)).steps() == 5


def test_batchnorm_gets_unit_scale_weights_and_its_gamma() -> None:
    torch.manual_seed(0)
    model = Looped((300, 300, 300, 300), norm=True)
    x = torch.rand(6, 32, 300)
    records = spikeinit.initialize(model, sample=x)
    for fc, norm, record in zip(model.fcs, model.norms, records):
        assert float(fc.weight.detach().var()) == pytest.approx(1 / (3 * 300), rel=0.05)
        assert float(norm.weight.detach()[0]) == pytest.approx(record.sigma) and record.sigma > 0.3
        # one value for the whole layer (the measured step scales it in float32)
        assert torch.allclose(norm.weight, torch.full_like(norm.weight, record.sigma),
                              rtol=1e-6, atol=0)
        assert any("gamma set to" in note for note in record.notes)
    measured = rates(model, x)
    assert all(abs(rate / TRAINABLE_RATE - 1) < 0.3 for rate in measured), measured

    stable = spikeinit.initialize(model, "stable", sample=x)  # sigma = 1.78 at theta/g = 1
    assert float(model.norms[1].weight.detach()[0]) == pytest.approx(stable[1].sigma)
    # PyTorch's default scale, not the paper's sigma^2 / (n Q) = 0.037
    assert float(model.fcs[1].weight.detach().var()) == pytest.approx(1 / (3 * 300), rel=0.05)


def test_sigma_selects_stable_and_cannot_go_with_a_rate_target() -> None:
    model = nn.Sequential(nn.Linear(30, 30), LIF(), nn.Linear(30, 30), LIF())
    x = torch.rand(4, 8, 30)
    assert spikeinit.initialize(model, sample=x, sigma=1.5)[1].method == "stable"
    with pytest.raises(ValueError, match="sigma: init 'trainable' sets a rate"):
        spikeinit.initialize(model, "trainable", sample=x, sigma=1.5)
    chosen = spikeinit.initialize(model, "trainable=0.05", sample=x)
    assert chosen[1].method == "trainable=0.05"


def test_one_step_has_no_stable_fixed_point_at_the_rate_and_says_so() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(200, 200), LIF())])
    with pytest.warns(UserWarning, match=r"with T = 1 the rate 0.1 is not a stable fixed point "
                                         r"of the one-step map \(slope 1.12"):
        spikeinit.initialize(model, sample=torch.rand(1, 16, 200))
