"""Adapters: read spiking neurons of snnTorch, SpikingJelly, Norse and spikeinit alike.

Each framework has one thin module (:mod:`.snntorch`, :mod:`.spikingjelly`, :mod:`.norse`,
:mod:`.native`) that maps its neurons onto a :class:`NeuronDescription`. A framework is imported
only when a model holds one of its modules, so spikeinit imports without any of them.
:func:`discover` finds the synaptic layers of a model and the neurons around them.
"""

from spikeinit.adapters.description import FRAMEWORKS, NeuronDescription, UnsupportedNeuronError
from spikeinit.adapters.discovery import (
    SYNAPTIC_TYPES,
    NetworkMap,
    NeuronSite,
    Operation,
    SynapticLayer,
    discover,
)
from spikeinit.adapters.registry import (
    ADAPTERS,
    adapter_for,
    all_tensors,
    describe_neuron,
    first_tensor,
    is_spiking_neuron,
    reset_neurons,
)

__all__ = [
    "ADAPTERS",
    "FRAMEWORKS",
    "SYNAPTIC_TYPES",
    "NetworkMap",
    "NeuronDescription",
    "NeuronSite",
    "Operation",
    "SynapticLayer",
    "UnsupportedNeuronError",
    "adapter_for",
    "all_tensors",
    "describe_neuron",
    "discover",
    "first_tensor",
    "is_spiking_neuron",
    "reset_neurons",
]
