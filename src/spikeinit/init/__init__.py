"""Initializers: tensor-level (``spike_normal_``), the named-method registry, and models."""

from spikeinit.init import (  # noqa: F401 (importing registers the methods)
    baselines,
    deep,
    fluctuation,
    gradient_aware,
    paper,
    temporal,
    trainable,
)
from spikeinit.init.context import LayerContext
from spikeinit.init.fan import FAN_MODES, compute_fans, select_fan
from spikeinit.init.model import find_synaptic_layers, initialize
from spikeinit.init.records import InitRecord, InitResult
from spikeinit.init.registry import InitMethod, available_methods, get_method, register
from spikeinit.init.tensor import spike_normal_, spike_uniform_
from spikeinit.network import SynapticLayer

__all__ = [
    "FAN_MODES",
    "InitMethod",
    "InitRecord",
    "InitResult",
    "LayerContext",
    "SynapticLayer",
    "available_methods",
    "compute_fans",
    "find_synaptic_layers",
    "get_method",
    "initialize",
    "register",
    "select_fan",
    "spike_normal_",
    "spike_uniform_",
]
