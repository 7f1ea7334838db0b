"""The adapter registry: which framework a module comes from, and what its neurons are."""

from __future__ import annotations

from types import ModuleType

from torch import nn

from spikeinit.adapters import native, norse, snntorch, spikingjelly
from spikeinit.adapters.description import NeuronDescription

ADAPTERS: tuple[ModuleType, ...] = (native, snntorch, spikingjelly, norse)


def adapter_for(module: nn.Module) -> ModuleType | None:
    """The adapter whose framework defines ``module`` (``None`` for plain PyTorch modules).

    Each adapter module (:data:`ADAPTERS`) claims the modules of its framework by their class's
    home package, and imports that framework only then.

    Example:
        >>> from torch import nn
        >>> from spikeinit.neurons import LIF
        >>> adapter_for(LIF()).__name__, adapter_for(nn.Linear(2, 2))
        ('spikeinit.adapters.native', None)
    """
    for adapter in ADAPTERS:
        if adapter.owns(module):
            return adapter
    return None


def is_spiking_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is a spiking neuron of a known framework (supported or not).

    Example:
        >>> from torch import nn
        >>> from spikeinit.neurons import LIF
        >>> is_spiking_neuron(LIF()), is_spiking_neuron(nn.ReLU())
        (True, False)
    """
    adapter = adapter_for(module)
    return adapter is not None and adapter.is_neuron(module)


def describe_neuron(module: nn.Module) -> NeuronDescription | None:
    """The :class:`NeuronDescription` of ``module``; ``None`` when it is no spiking neuron.

    Raises :class:`UnsupportedNeuronError` (a ``ValueError``) for a spiking neuron that no
    adapter can map, with the reason.

    Example:
        >>> from spikeinit.neurons import LIF
        >>> describe_neuron(LIF(beta=0.9, threshold=0.5)).effective_threshold
        0.5
    """
    adapter = adapter_for(module)
    if adapter is None or not adapter.is_neuron(module):
        return None
    return adapter.describe(module)


def reset_neurons(model: nn.Module) -> None:
    """Return every stateful neuron of ``model`` to rest (call between input sequences).

    Each framework's own reset: snnTorch's ``reset_mem``, SpikingJelly's ``reset()``, Norse's
    state dropped, spikeinit's :meth:`~spikeinit.neurons.LIF.reset_state`. Also
    ``spikeinit.reset``.

    Example:
        >>> import torch
        >>> from spikeinit.neurons import LIF
        >>> neuron = LIF(stateful=True)  # carries its membrane from call to call
        >>> _ = neuron(torch.ones(3, 2, 4))
        >>> neuron.state is None
        False
        >>> reset_neurons(torch.nn.Sequential(neuron))
        >>> neuron.state is None
        True
    """
    for module in model.modules():
        adapter = adapter_for(module)
        if adapter is not None:
            adapter.reset(module)
