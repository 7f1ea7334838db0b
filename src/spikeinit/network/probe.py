r"""Forward hooks that measure what each layer sees: spike rates and input currents.

For every neuron population the probe accumulates, over all calls (time steps) of a forward
pass, the firing rate (spikes divided by the spike amplitude) and the mean and variance of its
input current :math:`I` (the tensor the neuron module receives). In units of the effective
threshold :math:`\theta/g` the membrane at the first step is exactly :math:`I`, so
:math:`\mathrm{Var}[I]` is the quantity the initialization sets to :math:`\sigma^2`. For every
synaptic layer it accumulates :math:`E[x^2]` of its input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.adapters.registry import first_tensor


@dataclass
class Moments:
    """Running sums of a stream of tensors: count, sum, sum of squares, and non-finite seen."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    nonfinite: bool = False

    def add(self, x: Tensor) -> None:
        """Accumulate every element of ``x`` (non-finite values are counted as 0 and flagged)."""
        x = x.detach()
        if x.numel() == 0:
            return
        x = x.double()
        if not bool(torch.isfinite(x).all()):
            self.nonfinite = True
            x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        self.count += x.numel()
        self.total += float(x.sum())
        self.squares += float(x.square().sum())

    @property
    def mean(self) -> float:
        """Mean of the elements seen (NaN before any)."""
        return self.total / self.count if self.count else math.nan

    @property
    def second_moment(self) -> float:
        """Mean square of the elements seen (NaN before any)."""
        return self.squares / self.count if self.count else math.nan

    @property
    def variance(self) -> float:
        """Population variance of the elements seen (NaN before any)."""
        if not self.count:
            return math.nan
        return max(self.second_moment - self.mean**2, 0.0)


@dataclass
class NeuronActivity:
    """What one neuron population did during the probed passes."""

    spikes: Moments = field(default_factory=Moments)
    current: Moments = field(default_factory=Moments)
    amplitude: float = 1.0
    calls: int = 0

    @property
    def rate(self) -> float:
        """Spikes per neuron per step (spike values divided by the spike amplitude)."""
        return self.spikes.mean / self.amplitude

    @property
    def current_variance(self) -> float:
        """Variance of the input current over neurons, samples and steps."""
        return self.current.variance


class ActivityProbe:
    """Hooks on named neurons and synaptic layers; use as a context manager around passes.

    ``neurons`` maps names to ``(module, spike_amplitude)``; ``synapses`` maps names to modules.
    """

    def __init__(
        self,
        neurons: Mapping[str, tuple[nn.Module, float]],
        synapses: Mapping[str, nn.Module] | None = None,
    ) -> None:
        self.neurons = {name: NeuronActivity(amplitude=amp) for name, (_, amp) in neurons.items()}
        self.inputs = {name: Moments() for name in (synapses or {})}
        self._modules = dict(neurons)
        self._synapses = dict(synapses or {})
        self._handles: list[Any] = []

    def __enter__(self) -> ActivityProbe:
        for name, (module, _) in self._modules.items():
            self._handles.append(module.register_forward_hook(self._neuron_hook(name)))
        for name, module in self._synapses.items():
            self._handles.append(module.register_forward_hook(self._synapse_hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def clear(self) -> None:
        """Forget what was measured (before the next pass)."""
        for name, activity in self.neurons.items():
            self.neurons[name] = NeuronActivity(amplitude=activity.amplitude)
        for name in self.inputs:
            self.inputs[name] = Moments()

    def _neuron_hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            activity = self.neurons[name]
            activity.calls += 1
            current = first_tensor(args)
            if current is not None:
                activity.current.add(current)
            spikes = first_tensor(output)
            if spikes is not None:
                activity.spikes.add(spikes)

        return hook

    def _synapse_hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            x = first_tensor(args)
            if x is not None:
                self.inputs[name].add(x)

        return hook
