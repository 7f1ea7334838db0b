"""The bare call ``initialize(model, sample=x)`` puts every population of each supported
family at the target rate on held-out inputs (issue 29; full size in docs/your-model.md)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikeinit
from spikeinit.init.trainable import TRAINABLE_RATE


def held_out_rates(model: nn.Module, held: torch.Tensor, forward=None) -> list[float]:
    return [row.measured_rate for row in spikeinit.report(model, held, forward=forward).layers]


def images(batch: int, seed: int, channels: int = 1, size: int = 28, steps: int = 4
           ) -> torch.Tensor:
    """Smooth random images (neighbouring pixels correlated, as in natural images), held over
    ``steps`` steps: ``(T, B, C, H, W)``."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, channels, size, size, generator=generator)
    frames = F.avg_pool2d(frames, 5, stride=1, padding=2, count_include_pad=False)
    frames = ((frames - 0.5) * 4 + 0.5).clamp(0, 1)  # the same transform for every draw
    return frames.unsqueeze(0).repeat(steps, 1, 1, 1, 1)


def bare_call(model: nn.Module, sample: torch.Tensor, forward=None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "no LIF neurons around fc" of a zoo classifier
        spikeinit.initialize(model, sample=sample, forward=forward)


def assert_on_target(rates: list[float], band: float = 0.25) -> None:
    off = [round(rate, 4) for rate in rates if abs(rate / TRAINABLE_RATE - 1) > band]
    assert not off, f"populations off the rate {TRAINABLE_RATE} by more than {band:.0%}: {rates}"


@pytest.mark.parametrize("norm", [False, True], ids=["no-norm", "batchnorm"])
def test_the_spikingjelly_tutorial_cnn(norm, one_thread):
    pytest.importorskip("spikingjelly")
    torch.manual_seed(0)
    from spikeinit.experiments.zoo import spikingjelly_tutorial_cnn

    net = spikingjelly_tutorial_cnn(norm, channels=8, hidden=64)
    bare_call(net, images(32, 0))
    assert_on_target(held_out_rates(net, images(32, 1)))


@pytest.mark.parametrize("name", ["sew_resnet18", "ms_resnet18"])
def test_the_spikingjelly_zoo_resnets(name, one_thread):
    pytest.importorskip("spikingjelly")
    from spikeinit.experiments.zoo import zoo_resnet

    torch.manual_seed(0)
    net = zoo_resnet(name)
    bare_call(net, images(4, 0, channels=3, size=32, steps=2))
    assert_on_target(held_out_rates(net, images(4, 1, channels=3, size=32, steps=2)))


def test_the_ms_resnet_stem_drives_its_first_population_not_the_downsample():
    """The stem's output feeds both the first block's neurons and its downsample convolution
    (the membrane shortcut); the tracer follows the neurons."""
    pytest.importorskip("spikingjelly")
    from spikeinit.experiments.zoo import zoo_resnet
    from spikeinit.network import discover

    net = zoo_resnet("ms_resnet18")
    network = discover(net, images(2, 0, channels=3, size=32, steps=1))
    stem = next(layer for layer in network.layers if layer.name == "stem.0")
    assert stem.target_name == "layer1.0.spike1"


def _measured_networks():
    """docs/scripts/operating_point.py: each framework's deep MLP as its users write it."""
    path = Path(__file__).resolve().parents[1] / "docs" / "scripts" / "operating_point.py"
    spec = importlib.util.spec_from_file_location("operating_point_networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse", "spikeinit"])
def test_deep_mlps_of_each_frameworks_default_neuron_hold_their_rate(framework, one_thread):
    pytest.importorskip({"spikeinit": "spikeinit"}.get(framework, framework))
    builders = _measured_networks().BUILDERS
    ratios = []
    for seed in range(3):
        torch.manual_seed(seed)
        model, forward = builders[framework](8, 200)
        bare_call(model, torch.rand(8, 32, 200), forward)
        held = torch.rand(8, 32, 200, generator=torch.Generator().manual_seed(100 + seed))
        rates = held_out_rates(model, held, forward)
        assert_on_target(rates)
        ratios.append(rates[-1] / rates[0])
    assert all(abs(ratio - 1) <= 0.15 for ratio in ratios), ratios


def test_the_tracing_pass_of_a_realized_multi_step_model_runs_on_a_slice(one_thread):
    """The measured pass sees the whole sample (so the rates are exact on it); the tracing
    pass before it only two of its samples; a model given forward= is traced whole."""
    from spikeinit.models import SpikingMLP

    torch.manual_seed(0)
    net = SpikingMLP([64, 64, 64])
    batches = []
    net.blocks[0][0].register_forward_pre_hook(lambda module, args: batches.append(
        args[0].shape[-2] if args[0].ndim == 3 else args[0].shape[0]))
    sample = torch.rand(4, 16, 64)
    bare_call(net, sample)
    assert batches[0] == 2 and 16 in batches[1:]
    assert_on_target(held_out_rates(net, sample)[1:], band=0.05)  # [0]: the input neurons
    batches.clear()
    bare_call(net, sample, forward=lambda model, x: model(x))
    assert batches[0] == 16
