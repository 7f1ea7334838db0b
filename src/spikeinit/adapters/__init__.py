"""Adapters: read spiking neurons of snnTorch, SpikingJelly, Norse and spikeinit alike.

Each framework has one thin module (:mod:`.snntorch`, :mod:`.spikingjelly`, :mod:`.norse`,
:mod:`.native`) that maps its neurons onto a :class:`NeuronDescription`. A framework is imported
only when a model holds one of its modules, so spikeinit imports without any of them.
The graph of a whole model (which layer drives which neurons) is :mod:`spikeinit.network`.
"""

from spikeinit.adapters.description import FRAMEWORKS, NeuronDescription, UnsupportedNeuronError
from spikeinit.adapters.registry import (
    ADAPTERS,
    adapter_for,
    describe_neuron,
    is_spiking_neuron,
    reset_neurons,
)
from spikeinit.nested import all_tensors, first_tensor

__all__ = [
    "ADAPTERS",
    "FRAMEWORKS",
    "NeuronDescription",
    "UnsupportedNeuronError",
    "adapter_for",
    "all_tensors",
    "describe_neuron",
    "first_tensor",
    "is_spiking_neuron",
    "reset_neurons",
]
