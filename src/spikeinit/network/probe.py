r"""Forward hooks that measure what each layer sees: spike rates and input currents.

For every neuron population the probe accumulates, over all calls (time steps) of a forward
pass, the firing rate (spikes divided by the spike amplitude) and the mean and variance of its
input current :math:`I` (the tensor the neuron module receives). In units of the effective
threshold :math:`\theta/g` the membrane at the first step is exactly :math:`I`, so
:math:`\mathrm{Var}[I]` is the quantity the initialization sets to :math:`\sigma^2`. For every
synaptic layer it accumulates :math:`E[x^2]` of its input. The sums are
:class:`~spikeinit.neurons.statistics.Moments`, the one recorder of the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.adapters.registry import first_tensor
from spikeinit.neurons.statistics import Moments


@dataclass
class NeuronActivity:
    """What one neuron population did during the probed passes."""

    spikes: Moments = field(default_factory=Moments)
    current: Moments = field(default_factory=Moments)
    amplitude: float = 1.0
    calls: int = 0
    shape: tuple[int, ...] | None = None  # of the first output (a multi-step one: (T, B, ...))

    @property
    def rate(self) -> float:
        """Spikes per neuron per step (spike values divided by the spike amplitude)."""
        return self.spikes.mean / self.amplitude

    @property
    def current_variance(self) -> float:
        """Variance of the input current over neurons, samples and steps."""
        return self.current.variance


class ActivityProbe:
    """Hooks on named neurons and synaptic layers; use as a context manager around passes
    (or :meth:`attach` and :meth:`remove`).

    ``neurons`` maps names to ``(module, spike_amplitude)``; ``synapses`` maps names to modules.
    With ``currents=False`` only the spikes are counted (no input moments, no finiteness check:
    the cheap mode of the training loop). :attr:`enabled` pauses the counting.
    """

    def __init__(
        self,
        neurons: Mapping[str, tuple[nn.Module, float]],
        synapses: Mapping[str, nn.Module] | None = None,
        currents: bool = True,
    ) -> None:
        self.currents = currents
        self._modules = dict(neurons)
        self._synapses = dict(synapses or {})
        self._handles: list[Any] = []
        self.enabled = True
        self.neurons: dict[str, NeuronActivity] = {}
        self.inputs: dict[str, Moments] = {}
        self.clear()

    def attach(self) -> ActivityProbe:
        """Register the hooks."""
        for name, (module, _) in self._modules.items():
            self._handles.append(module.register_forward_hook(self._neuron_hook(name)))
        for name, module in self._synapses.items():
            self._handles.append(module.register_forward_hook(self._synapse_hook(name)))
        return self

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> ActivityProbe:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def clear(self) -> None:
        """Forget what was measured (before the next pass)."""
        self.neurons = {name: self._activity(amplitude)
                        for name, (_, amplitude) in self._modules.items()}
        self.inputs = {name: Moments() for name in self._synapses}

    def _activity(self, amplitude: float) -> NeuronActivity:
        if self.currents:
            return NeuronActivity(amplitude=amplitude)
        return NeuronActivity(spikes=Moments(squares=False, check_finite=False),
                              amplitude=amplitude)

    def spike_sums(self, device: torch.device | str | None = None) -> Tensor:
        """``(2, populations)``: spikes and elements per population, in the order given (to add
        up over processes; the rate is their ratio divided by the spike amplitude)."""
        sums = [activity.spikes.sums(device) for activity in self.neurons.values()]
        if not sums:
            return torch.zeros(2, 0, dtype=torch.float64, device=device)
        return torch.stack(sums, dim=1)

    def _neuron_hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not self.enabled:
                return
            activity = self.neurons[name]
            activity.calls += 1
            current = first_tensor(args) if self.currents else None
            if current is not None:
                activity.current.add(current)
            spikes = first_tensor(output)
            if spikes is not None and activity.shape is None:
                activity.shape = tuple(spikes.shape)
            if spikes is not None:
                activity.spikes.add(spikes)

        return hook

    def _synapse_hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not self.enabled:
                return
            x = first_tensor(args)
            if x is not None:
                self.inputs[name].add(x)

        return hook
