"""Issue 5's acceptance, against the real snnTorch, SpikingJelly and Norse (never mocks).

A 20-layer fully-connected SNN built each framework's idiomatic way (beta = 0.5, theta = 1, soft
reset, T = 5, input in [0, 1]): with the framework's default init the last layer is dead; after
``spikeinit.initialize(model, "paper", sample=x)`` every layer is alive; after
``spikeinit.calibrate(model, x)`` every layer's rate is within 10% of its target; the report
flags the dead layers before and none after. Plus a convolutional SNN (conv/pool/BatchNorm)
calibrated to within 10% per layer, in snnTorch and in SpikingJelly.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.adapters.norse import run_over_steps

DEPTH, WIDTH, INPUTS, STEPS, BATCH = 20, 128, 64, 5, 32


def _have(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _skip_without(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not _have(name), reason=f"{name} is not installed (pip install "
                                                      f"--no-deps {name}, see .ci/run)")


pytestmark = pytest.mark.usefixtures("one_thread")


def snntorch_mlp() -> tuple[nn.Module, None]:
    """snnTorch's idiom (its tutorials): Linear + Leaky pairs, a Python loop over the steps."""
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = [INPUTS] + [WIDTH] * DEPTH
            self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.lifs = nn.ModuleList(snn.Leaky(beta=0.5, threshold=1.0) for _ in range(DEPTH))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mems = [lif.reset_mem() for lif in self.lifs]
            out = []
            for step in x:
                h = step
                for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                    h, mems[i] = lif(fc(h), mems[i])
                out.append(h)
            return torch.stack(out)

    return Net(), None


def spikingjelly_mlp() -> tuple[nn.Module, None]:
    """SpikingJelly's idiom: nn.Sequential of layer.Linear + LIFNode, multi-step mode."""
    from spikingjelly.activation_based import functional, layer, neuron

    sizes = [INPUTS] + [WIDTH] * DEPTH
    modules: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        modules += [layer.Linear(a, b), neuron.LIFNode(tau=2.0, v_reset=None)]
    net = nn.Sequential(*modules)
    functional.set_step_mode(net, "m")
    return net, None


def norse_mlp() -> tuple[nn.Module, Callable]:
    """Norse's idiom: SequentialState of Linear + LIFBoxCell, the state carried over the steps."""
    import norse.torch as norse
    from norse.torch.functional.reset import reset_subtract

    p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(1.0),
                               reset_method=reset_subtract)  # dt * tau_mem_inv = 0.5 = 1 - beta
    sizes = [INPUTS] + [WIDTH] * DEPTH
    modules: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        modules += [nn.Linear(a, b), norse.LIFBoxCell(p, dt=1e-3)]
    model = norse.SequentialState(*modules)

    return model, run_over_steps


BUILDERS = [
    pytest.param(snntorch_mlp, marks=_skip_without("snntorch"), id="snntorch"),
    pytest.param(spikingjelly_mlp, marks=_skip_without("spikingjelly"), id="spikingjelly"),
    pytest.param(norse_mlp, marks=_skip_without("norse"), id="norse"),
]


def rates(model: nn.Module, x: torch.Tensor, forward: Callable | None) -> list[float]:
    return [row.measured_rate for row in spikeinit.report(model, x, forward=forward).layers]


@pytest.mark.parametrize("build", BUILDERS)
def test_twenty_layer_mlp_dead_then_alive_then_calibrated(build: Callable) -> None:
    torch.manual_seed(0)
    model, forward = build()
    x = torch.rand(STEPS, BATCH, INPUTS)

    before = spikeinit.report(model, x, forward=forward)
    assert len(before.layers) == DEPTH
    assert before.layers[-1].measured_rate < 1e-3  # the framework's default init: dead
    assert before.layers[-1].neuron in before.dead
    assert len(before.dead) >= DEPTH // 2

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing about this model is left unexplained
        records = spikeinit.initialize(model, method="paper", sample=x, forward=forward,
                                       generator=torch.Generator().manual_seed(1))
    assert len(records) == DEPTH
    paper = rates(model, x, forward)
    assert min(paper) >= 0.01, paper

    result = spikeinit.calibrate(model, x, forward=forward)
    assert len(result.layers) == DEPTH and result.converged
    assert result.forward_passes <= 2 + DEPTH * 12
    for layer in result.layers:
        assert abs(layer.after - layer.target) <= 0.1 * layer.target, layer
    measured = rates(model, x, forward)
    for layer, rate in zip(result.layers, measured):
        assert abs(rate - layer.target) <= 0.1 * layer.target
    after = spikeinit.report(model, x, forward=forward)
    assert after.flagged() == [] and after.healthy


@_skip_without("snntorch")
@_skip_without("spikingjelly")
@_skip_without("norse")
def test_the_three_frameworks_agree_where_their_dynamics_agree() -> None:
    """SpikingJelly's LIFNode(tau=2, soft) and Norse's LIFBoxCell(dt/tau=0.5, subtract) are the
    same neuron: with the same weights they give the same rates, and the same init."""
    torch.manual_seed(0)
    jelly, _ = spikingjelly_mlp()
    box, run = norse_mlp()
    with torch.no_grad():
        for a, b in zip([m for m in jelly if isinstance(m, nn.Linear)],
                        [m for m in box if isinstance(m, nn.Linear)]):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
    x = torch.rand(STEPS, BATCH, INPUTS)
    a = spikeinit.initialize(jelly, "paper", sample=x, generator=torch.Generator().manual_seed(2))
    b = spikeinit.initialize(box, "paper", sample=x, forward=run,
                             generator=torch.Generator().manual_seed(2))
    assert [r.std for r in a] == pytest.approx([r.std for r in b])
    assert rates(jelly, x, None) == pytest.approx(rates(box, x, run))


def snntorch_cnn() -> tuple[nn.Module, None]:
    import snntorch as snn

    class CNN(nn.Module):
        """conv -> BN -> Leaky -> max-pool, conv -> avg-pool -> BN -> Leaky, flatten, FC."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.lif1, self.pool1 = snn.Leaky(beta=0.5), nn.MaxPool2d(2)
            self.conv2, self.pool2 = nn.Conv2d(8, 16, 3, padding=1), nn.AvgPool2d(2)
            self.bn2, self.lif2 = nn.BatchNorm2d(16), snn.Leaky(beta=0.5)
            self.fc1, self.lif3 = nn.Linear(16 * 4 * 4, 64), snn.Leaky(beta=0.5)
            self.fc2, self.lif4 = nn.Linear(64, 10), snn.Leaky(beta=0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m1, m2, m3, m4 = (lif.reset_mem() for lif in (self.lif1, self.lif2, self.lif3,
                                                          self.lif4))
            out = []
            for step in x:
                s, m1 = self.lif1(self.bn1(self.conv1(step)), m1)
                s, m2 = self.lif2(self.bn2(self.pool2(self.conv2(self.pool1(s)))), m2)
                s, m3 = self.lif3(self.fc1(s.flatten(1)), m3)
                s, m4 = self.lif4(self.fc2(s), m4)
                out.append(s)
            return torch.stack(out)

    return CNN(), None


def spikingjelly_cnn() -> tuple[nn.Module, None]:
    from spikingjelly.activation_based import functional, layer, neuron

    net = nn.Sequential(
        layer.Conv2d(1, 8, 3, padding=1), layer.BatchNorm2d(8), neuron.LIFNode(v_reset=None),
        layer.MaxPool2d(2),
        layer.Conv2d(8, 16, 3, padding=1), layer.BatchNorm2d(16), neuron.LIFNode(v_reset=None),
        layer.AvgPool2d(2), layer.Flatten(),
        layer.Linear(16 * 4 * 4, 64), neuron.LIFNode(v_reset=None),
        layer.Dropout(0.2),
        layer.Linear(64, 10), neuron.LIFNode(v_reset=None),
    )
    functional.set_step_mode(net, "m")
    return net, None


@pytest.mark.parametrize("build, target", [
    pytest.param(snntorch_cnn, None, marks=_skip_without("snntorch"), id="snntorch"),
    pytest.param(spikingjelly_cnn, 0.1, marks=_skip_without("spikingjelly"), id="spikingjelly"),
])
def test_cnn_with_pooling_and_batchnorm_is_calibrated(build: Callable, target: float) -> None:
    torch.manual_seed(0)
    model, forward = build()
    x = torch.rand(STEPS, 16, 1, 16, 16)
    bn_state = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    records = spikeinit.initialize(model, "paper", sample=x, forward=forward)
    assert [r.fan_in for r in records] == [9, 72, 256, 64]
    assert any("normalizes the current" in note for r in records for note in r.notes)
    result = spikeinit.calibrate(model, x, target=target, forward=forward)
    assert len(result.layers) == 4 and result.converged
    scaled = [name for layer in result.layers for name in layer.parameters]
    assert any("bn" in name or name.startswith(("1.", "5.")) for name in scaled)  # BN's gamma
    for layer, row in zip(result.layers, spikeinit.report(model, x, forward=forward).layers):
        assert abs(row.measured_rate - layer.target) <= 0.1 * layer.target, (row, layer)
    for key, value in bn_state.items():  # probing passes leave BatchNorm's statistics alone
        torch.testing.assert_close(model.state_dict()[key], value)
