"""The adapter registry: which framework a module comes from, and what its neurons are."""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from torch import Tensor, nn

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


def first_tensor(value: Any) -> Tensor | None:
    """The first tensor in ``value`` (a tensor, or a tuple/list such as snnTorch's (spk, mem)).

    Example:
        >>> import torch
        >>> spikes, membrane = torch.ones(2), torch.zeros(2)
        >>> first_tensor((spikes, membrane)) is spikes
        True
        >>> first_tensor([None, (membrane,)]) is membrane
        True
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_tensor(item) if isinstance(item, (tuple, list)) else item
            if isinstance(found, Tensor):
                return found
    return None


def all_tensors(value: Any) -> Iterable[Tensor]:
    """Every tensor in ``value`` (nested tuples/lists/dicts), in order.

    Example:
        >>> import torch
        >>> value = (torch.zeros(1), {"state": [torch.ones(2), None]})
        >>> [tuple(t.shape) for t in all_tensors(value)]
        [(1,), (2,)]
    """
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from all_tensors(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from all_tensors(item)

