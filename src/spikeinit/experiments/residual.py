"""Residual SNNs as each community writes them, and the rate of every block at initialization.

:func:`framework_resnet` builds a stack of residual blocks the way users of each framework write
one (docs/architectures.md): snnTorch ``Leaky(init_hidden=True)`` single-step neurons with the
time loop in the model's ``forward``; SpikingJelly multi-step ``LIFNode`` with its
``layer.Conv2d``/``layer.BatchNorm2d``; Norse ``LIF`` (multi-step) with ``Lift``-ed
convolutions; and spikeinit's :class:`~spikeinit.models.SpikingResNet`. The shortcut is a plain
``+`` in the block's ``forward``, as in those frameworks' model zoos:

- ``"sew"``: ``y = S2(N2(S1(N1(x)))) + x`` (SEW-ResNet, ADD; the stem ends with neurons);
- ``"ms"``: ``y = x + N2(S2(N1(S1(x))))`` (MS-ResNet; the stem is a current);
- ``"bn-add"``: ``y = S2(N2(S1(N1(x))) + x)`` (spiking ResNet: BatchNorm, then the addition,
  then the neurons);

where ``N`` is a 3x3 convolution with an optional BatchNorm and ``S`` a LIF population.
:func:`block_rates` measures the firing rate of each block (spikes per neuron per step over all
the block's populations) on a sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import check_choice, check_positive_int
from spikeinit.errors import InvalidArgumentError
from spikeinit.models.resnet import SpikingResNet
from spikeinit.models.time_distributed import TimeDistributed
from spikeinit.network import discover, kept_statistics, run_model
from spikeinit.network.probe import ActivityProbe

FRAMEWORKS = ("spikeinit", "snntorch", "spikingjelly", "norse")
FORMS = ("sew", "ms", "bn-add")


def framework_resnet(framework: str, form: str = "sew", *, blocks: int = 20,
                     channels: int = 16, norm: bool = True,
                     input_shape: Sequence[int] = (3, 32, 32), classes: int = 10) -> nn.Module:
    """A single-stage residual SNN of ``blocks`` blocks of ``channels`` channels, written the
    way ``framework``'s users write one (module docstring), on ``(T, B, C, H, W)`` input; the
    output is ``(T, B, classes)`` spikes. Its blocks are ``blocks.<i>`` (``stages.0.<i>`` for
    spikeinit).

    Example:
        >>> net = framework_resnet("spikeinit", "ms", blocks=2, channels=4, norm=False,
        ...                        input_shape=(3, 8, 8))
        >>> net(torch.rand(2, 3, 3, 8, 8)).shape
        torch.Size([2, 3, 10])
    """
    check_choice("framework", framework, FRAMEWORKS)
    check_choice("form", form, FORMS)
    check_positive_int("blocks", blocks)
    check_positive_int("channels", channels)
    if framework == "spikeinit":
        if form == "bn-add":
            raise InvalidArgumentError(
                "form: SpikingResNet has the 'sew' and 'ms' forms (and 'plain'); "
                             "build 'bn-add' with framework='snntorch', 'spikingjelly' or "
                             "'norse'")
        return SpikingResNet(tuple(input_shape), classes, form, (blocks,), (channels,),
                             "batch" if norm else "none")
    neuron, per_step = _neurons(framework)
    conv = _convolutions(framework)
    return _Network(form, blocks, channels, norm, int(input_shape[0]), classes, neuron, conv,
                    per_step)


def block_names(model: nn.Module) -> list[str]:
    """The names of the residual blocks of a :func:`framework_resnet` model, in order."""
    if isinstance(model, SpikingResNet):
        return [name for name, _ in model.iter_blocks()]
    return [f"blocks.{index}" for index in range(len(model.blocks))]


def block_rates(model: nn.Module, sample: Any, names: Sequence[str] | None = None
                ) -> dict[str, float]:
    """Rate of each block of ``model`` on ``sample`` (one pass from rest): spikes per neuron per
    step over all the populations whose names start with the block's (``names``, default
    :func:`block_names`)."""
    names = list(block_names(model) if names is None else names)
    neurons = {site.name: (site.module, site.description.spike_amplitude)
               for site in discover(model).neurons if site.description is not None}
    with kept_statistics(model), ActivityProbe(neurons, currents=False) as probe:
        run_model(model, sample)
    rates = {}
    for name in names:
        members = [probe.neurons[n] for n in neurons if n.startswith(name + ".")]
        spikes = sum(m.spikes.mean * m.spikes.count / m.amplitude for m in members)
        count = sum(m.spikes.count for m in members)
        rates[name] = spikes / count if count else float("nan")
    return rates


def _neurons(framework: str) -> tuple[Any, bool]:
    """A factory of the framework's default-style LIF, and whether it runs one step a call."""
    if framework == "snntorch":
        import snntorch

        return (lambda: snntorch.Leaky(beta=0.5, init_hidden=True)), True
    if framework == "spikingjelly":
        from spikingjelly.activation_based import neuron

        return (lambda: neuron.LIFNode(tau=2.0, step_mode="m")), False
    import norse.torch as norse

    return (lambda: _NorseLIF(norse.LIF())), False


def _convolutions(framework: str) -> Any:
    """A factory ``(in, out, kernel, norm) -> module`` of the framework's conv (+ BatchNorm)."""
    if framework == "spikingjelly":
        from spikingjelly.activation_based import layer

        def make(cin: int, cout: int, kernel: int, norm: bool) -> nn.Module:
            conv = layer.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False,
                                step_mode="m")
            return nn.Sequential(conv, layer.BatchNorm2d(cout, step_mode="m")) if norm else conv
        return make
    if framework == "norse":
        import norse.torch as norse

        def make(cin: int, cout: int, kernel: int, norm: bool) -> nn.Module:
            conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
            return norse.Lift(nn.Sequential(conv, nn.BatchNorm2d(cout)) if norm else conv)
        return make

    def make(cin: int, cout: int, kernel: int, norm: bool) -> nn.Module:
        conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(cout)) if norm else conv
    return make


class _NorseLIF(nn.Module):
    """Norse's ``LIF`` returns ``(spikes, state)``; models keep the spikes."""

    def __init__(self, lif: nn.Module) -> None:
        super().__init__()
        self.lif = lif

    def forward(self, x: Tensor) -> Tensor:
        return self.lif(x)[0]


class _Block(nn.Module):
    def __init__(self, form: str, channels: int, norm: bool, neuron: Any, conv: Any) -> None:
        super().__init__()
        self.form = form
        if form == "ms":
            self.sn1 = neuron()
            self.conv1 = conv(channels, channels, 3, norm)
            self.sn2 = neuron()
            self.conv2 = conv(channels, channels, 3, norm)
        else:
            self.conv1 = conv(channels, channels, 3, norm)
            self.sn1 = neuron()
            self.conv2 = conv(channels, channels, 3, norm)
            self.sn2 = neuron()

    def forward(self, x: Tensor) -> Tensor:
        if self.form == "sew":
            out = self.sn2(self.conv2(self.sn1(self.conv1(x))))
            return out + x
        if self.form == "ms":
            out = self.conv2(self.sn2(self.conv1(self.sn1(x))))
            return x + out
        return self.sn2(self.conv2(self.sn1(self.conv1(x))) + x)


class _Network(nn.Module):
    def __init__(self, form: str, blocks: int, channels: int, norm: bool, in_channels: int,
                 classes: int, neuron: Any, conv: Any, per_step: bool) -> None:
        super().__init__()
        self.form, self.per_step = form, per_step
        self.stem = conv(in_channels, channels, 3, norm)
        self.stem_neurons = neuron() if form != "ms" else None
        self.blocks = nn.Sequential(*[_Block(form, channels, norm, neuron, conv)
                                      for _ in range(blocks)])
        self.final_neurons = neuron() if form == "ms" else None  # the stream becomes spikes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, classes, bias=False)
        self.output = neuron()
        if not per_step:
            self.pool = TimeDistributed(self.pool)

    def _run(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        if self.stem_neurons is not None:
            h = self.stem_neurons(h)
        h = self.blocks(h)
        if self.final_neurons is not None:
            h = self.final_neurons(h)
        return self.output(self.classifier(self.pool(h).flatten(-3)))

    def forward(self, x: Tensor) -> Tensor:
        if not self.per_step:
            return self._run(x)
        return torch.stack([self._run(frame) for frame in x])
