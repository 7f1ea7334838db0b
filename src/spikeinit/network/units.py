"""The units of a model: the modules the graph treats as wholes, and where the rest lies.

A *unit* is a spiking neuron (a whole: its own submodules are not looked into, and the weight
layers inside it are listed as *internal*), a synaptic layer (:data:`SYNAPTIC_TYPES`), or any
other leaf module. The *containers* are the modules that are neither units nor inside one:
their ``forward`` is where residual additions are written.
"""

from __future__ import annotations

from torch import nn

from spikeinit.adapters.registry import adapter_for, is_spiking_neuron
from spikeinit.network.module_kinds import SYNAPTIC_TYPES

#: name -> (module, role), the role being ``"neuron"``, ``"synaptic"`` or ``"other"``.
Units = dict[str, tuple[nn.Module, str]]


def display(name: str) -> str:
    """How a module's name is shown: the model itself (name ``""``) is ``<model>``."""
    return name or "<model>"


def inside(name: str, prefix: str) -> bool:
    """Whether the module ``name`` lies strictly inside the module ``prefix``.

    Example:
        >>> inside("block.conv", "block"), inside("block", "block"), inside("blocks", "block")
        (True, False, False)
    """
    return name != prefix and (prefix == "" or name.startswith(prefix + "."))


def model_units(model: nn.Module) -> tuple[Units, list[str]]:
    """Neurons (as wholes), synaptic layers and the other leaf modules, in module order, and
    the names of the weight layers inside the neurons.

    Example:
        >>> from spikeinit.neurons import LIF
        >>> units, internal = model_units(nn.Sequential(nn.Linear(4, 3), nn.Flatten(), LIF()))
        >>> [(name, role) for name, (_, role) in units.items()], internal
        ([('0', 'synaptic'), ('1', 'other'), ('2', 'neuron')], [])
    """
    units: Units = {}
    internal: list[str] = []
    wholes: list[str] = []
    for name, module in model.named_modules():
        if any(inside(name, prefix) for prefix in wholes):
            continue
        if is_spiking_neuron(module):
            units[name] = (module, "neuron")
            wholes.append(name)
            adapter = adapter_for(module)
            internal += [f"{name}.{rel}" if name else rel
                         for rel in adapter.internal_layers(module)]
        elif isinstance(module, SYNAPTIC_TYPES):
            units[name] = (module, "synaptic")
            wholes.append(name)
        elif next(module.children(), None) is None:
            units[name] = (module, "other")
    return units, internal


def containers(model: nn.Module, units: Units) -> list[tuple[str, nn.Module]]:
    """The modules that are neither units nor inside one: where residual additions are done."""
    return [(name, module) for name, module in model.named_modules()
            if name not in units and not any(inside(name, unit) for unit in units)]
