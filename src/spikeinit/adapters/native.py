"""spikeinit's own :class:`~spikeinit.neurons.LIF` (see ``LIFParameters`` for its equations)."""

from __future__ import annotations

from torch import nn

from spikeinit.adapters.description import NeuronDescription, scalar
from spikeinit.neurons.lif import LIF

FRAMEWORK = "spikeinit"


def owns(module: nn.Module) -> bool:
    """Whether ``module`` is spikeinit's :class:`LIF`."""
    return isinstance(module, LIF)


def is_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is spikeinit's :class:`LIF`."""
    return isinstance(module, LIF)


def describe(module: nn.Module) -> NeuronDescription:
    """The :class:`NeuronDescription` of a :class:`LIF` (its current beta and threshold)."""
    assert isinstance(module, LIF)
    notes: list[str] = []
    p = module.params
    return NeuronDescription(
        framework=FRAMEWORK, kind="LIF", threshold=scalar("threshold", module.threshold, notes),
        beta=min(max(scalar("beta", module.beta, notes), 0.0), 1.0), reset=p.reset,
        reset_order=p.reset_order, step_mode=module.step_mode, surrogate=p.surrogate,
        surrogate_slope=p.slope, notes=tuple(notes),
    )


def internal_layers(module: nn.Module) -> list[str]:
    """spikeinit's LIF holds no weight layers."""
    return []


def reset(module: nn.Module) -> None:
    """Return a :class:`LIF` to rest."""
    if isinstance(module, LIF):
        module.reset_state()
