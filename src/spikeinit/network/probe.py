r"""Forward hooks that measure what each layer sees: spike rates and input currents.

For every neuron population the probe accumulates, over all calls (time steps) of a forward
pass, the firing rate (spikes divided by the spike amplitude) and the mean and variance of its
input current :math:`I` (the tensor the neuron module receives). In units of the effective
threshold :math:`\theta/g` the membrane at the first step is exactly :math:`I`, so
:math:`\mathrm{Var}[I]` is the quantity the initialization sets to :math:`\sigma^2`. For every
synaptic layer it accumulates :math:`E[x^2]` of its input. The sums are
:class:`~spikeinit.neurons.statistics.Moments`, the one recorder of the package.

:class:`StepRecorder` keeps what those pooled sums lose, the time structure: a module's input
(or output) laid out over the ``T`` steps, on a bounded subset of its elements, from which its
mean per step and its second moments between steps follow. :func:`spikeinit.report` needs them
to predict the rate of neurons that integrate their current over the steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spikeinit.errors import InvalidArgumentError
from spikeinit.nested import first_tensor
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


#: At most this many elements of one step of a tensor are kept by :class:`StepRecorder`
#: (evenly spaced over the samples and features, at the same positions at every step).
STEP_ELEMENTS = 32768


class StepRecorder:
    r"""Forward hooks that keep tensors of a pass laid out over its ``T`` steps.

    :meth:`watch` names a module's input (or output). A module called ``T`` times per pass
    gives one step per call; one called once gives all the steps, as a leading axis of ``T``
    (or ``T * B`` rows, time-major). Of every step the same evenly spaced positions are kept,
    at most ``elements`` of them, so that two tensors of the same shape per step can be
    subtracted (:meth:`moments` with ``minus``).

    Example:
        >>> from torch import nn
        >>> linear = nn.Linear(3, 2)
        >>> with StepRecorder(steps=2).watch("fc", linear) as recorder:
        ...     _ = linear(torch.ones(2, 5, 3))  # (T, B, features): one call
        >>> mean, second = recorder.moments("fc")
        >>> mean.tolist(), second.tolist()
        ([1.0, 1.0], [[1.0, 1.0], [1.0, 1.0]])
    """

    def __init__(self, steps: int, elements: int = STEP_ELEMENTS) -> None:
        self.steps = steps
        self.elements = elements
        self._watched: dict[str, tuple[nn.Module, str]] = {}
        self._single: dict[str, list[Tensor]] = {}
        self._multi: dict[str, Tensor | None] = {}
        self._calls: dict[str, int] = {}
        self._handles: list[Any] = []

    def watch(self, name: str, module: nn.Module, side: str = "input") -> StepRecorder:
        """Record ``module``'s ``side`` (``"input"`` or ``"output"``) as ``name``."""
        if side not in ("input", "output"):
            raise InvalidArgumentError(f"side must be input or output, got {side!r}")
        self._watched[name] = (module, side)
        return self

    def __enter__(self) -> StepRecorder:
        for name, (module, side) in self._watched.items():
            self._single[name], self._multi[name], self._calls[name] = [], None, 0
            self._handles.append(module.register_forward_hook(self._hook(name, side)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str, side: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            x = first_tensor(args if side == "input" else output)
            self._calls[name] += 1
            if x is None or x.numel() == 0:
                self._calls[name] = -1  # never laid out
                return
            x = x.detach()
            numel = x.numel()
            self._single[name].append(
                x.reshape(1, -1)[:, ::max(1, math.ceil(numel / self.elements))].float().cpu())
            if self._calls[name] == 1 and self.steps > 1 and numel % self.steps == 0:
                per_step = numel // self.steps
                self._multi[name] = x.reshape(self.steps, -1)[
                    :, ::max(1, math.ceil(per_step / self.elements))].float().cpu()
            elif self._calls[name] > 1:
                self._multi[name] = None  # a call per step: the first was one step

        return hook

    def calls(self, name: str) -> int:
        """How many times the module recorded as ``name`` ran (-1: with nothing to record)."""
        return self._calls.get(name, 0)

    def over_steps(self, name: str) -> Tensor | None:
        """``(T, K)``: the kept elements of ``name`` at every step; ``None`` when its calls
        were neither ``T`` nor one holding the ``T`` steps."""
        calls = self.calls(name)
        if calls == self.steps and len({t.shape[1] for t in self._single[name]}) == 1:
            return torch.cat(self._single[name])
        if calls == 1 and self._multi.get(name) is not None:
            return self._multi[name]
        return None

    def moments(self, name: str, minus: str | None = None
                ) -> tuple[np.ndarray, np.ndarray] | None:
        r"""``(m, M)``: the mean per step :math:`m_t = E[x_t]`, ``(T,)``, and the second
        moments between steps :math:`M_{tt'} = E[x_t x_{t'}]`, ``(T, T)``, of ``name`` (minus
        ``minus`` at the same positions); ``None`` when a tensor cannot be laid out over the
        steps, the two do not match, or a value is not finite."""
        x = self.over_steps(name)
        if x is not None and minus is not None:
            other = self.over_steps(minus)
            x = x - other if other is not None and other.shape == x.shape else None
        if x is None or not bool(torch.isfinite(x).all()):
            return None
        x = x.double()
        return x.mean(dim=1).numpy(), (x @ x.T / x.shape[1]).numpy()
