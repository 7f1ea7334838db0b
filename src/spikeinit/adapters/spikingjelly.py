r"""SpikingJelly neurons: ``IFNode``, ``LIFNode``, ``ParametricLIFNode`` (imported only when used).

From ``spikingjelly.activation_based`` (single-step ``step_mode="s"`` and multi-step ``"m"`` run
the same update), with :math:`V_r` = ``v_reset`` (0 for the soft reset ``v_reset=None``):

- charge, ``LIFNode`` with ``decay_input=True``: :math:`H = V + (X - (V - V_r))/\tau`, i.e.
  :math:`\beta = 1 - 1/\tau` and input gain :math:`g = 1/\tau`; with ``decay_input=False``:
  :math:`H = V - (V - V_r)/\tau + X`, gain 1. ``ParametricLIFNode`` is the same with
  :math:`1/\tau = \mathrm{sigmoid}(w)` (its value at initialization). ``IFNode``: :math:`H = V + X`
  (:math:`\beta = 1`).
- fire :math:`S = H(H - V_{th})`, then reset at the spike step: :math:`V = H - V_{th} S`
  (``v_reset=None``, subtract) or :math:`V = (1 - S) H + S V_r` (hard, to rest): both
  ``immediate``, the reset then decays with the membrane.

The membrane starts at :math:`V_r` (0 for the soft reset), so the threshold from rest is
:math:`V_{th} - V_r`.
"""

from __future__ import annotations

import math

from torch import nn

from spikeinit.adapters._common import defined_in, framework_class, supported_kind
from spikeinit.adapters.description import (
    NeuronDescription,
    UnsupportedNeuronError,
    relative_threshold,
    scalar,
)

FRAMEWORK = "spikingjelly"
SUPPORTED = ("IFNode", "LIFNode", "ParametricLIFNode")


def owns(module: nn.Module) -> bool:
    """Whether ``module`` comes from SpikingJelly (checked without importing it)."""
    return defined_in(module, FRAMEWORK)


def is_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is a SpikingJelly spiking neuron (a module of its ``neuron`` package)."""
    if not owns(module):
        return False
    from spikingjelly.activation_based import neuron

    bases = tuple(getattr(neuron, name) for name in ("BaseNode", "SimpleBaseNode")
                  if hasattr(neuron, name))
    if isinstance(module, bases):
        return True
    base = framework_class(module, FRAMEWORK)
    return base is not None and base.__module__.startswith("spikingjelly.activation_based.neuron")


def describe(module: nn.Module) -> NeuronDescription:
    """The :class:`NeuronDescription` of an ``IFNode``, ``LIFNode`` or ``ParametricLIFNode``."""
    from spikingjelly.activation_based import neuron

    kind, notes = supported_kind(module, FRAMEWORK, neuron, SUPPORTED)
    v_reset = module.v_reset
    rest = 0.0 if v_reset is None else scalar("v_reset", v_reset, notes)
    threshold = relative_threshold(scalar("v_threshold", module.v_threshold, notes), rest, kind)
    if kind == "IFNode":
        beta, gain = 1.0, 1.0
    else:
        if kind == "LIFNode":
            inverse_tau = 1.0 / scalar("tau", module.tau, notes)
        else:
            inverse_tau = 1.0 / (1.0 + math.exp(-scalar("w", module.w, notes)))
            notes.append("ParametricLIFNode: its learnable tau is read at its current value")
        if not 0.0 < inverse_tau <= 1.0:
            raise UnsupportedNeuronError(f"spikingjelly {kind}: tau must be >= 1")
        beta = 1.0 - inverse_tau
        gain = inverse_tau if module.decay_input else 1.0
    step_mode = "multi" if getattr(module, "step_mode", "s") == "m" else "single"
    surrogate, slope = _surrogate(getattr(module, "surrogate_function", None), notes)
    return NeuronDescription(
        framework=FRAMEWORK, kind=kind, threshold=threshold, beta=beta,
        reset="subtract" if v_reset is None else "zero", reset_order="immediate",
        input_gain=gain, step_mode=step_mode, surrogate=surrogate, surrogate_slope=slope,
        notes=tuple(notes),
    )


def _surrogate(function: object, notes: list[str]) -> tuple[str | None, float | None]:
    """``(name, slope)`` of a SpikingJelly surrogate: its ``ATan(alpha)`` is spikeinit's atan
    (:math:`(\alpha/2)/(1+(\\pi\alpha x/2)^2)`); others (``Sigmoid``, the default) are not in
    spikeinit's table."""
    name = type(function).__name__
    alpha = getattr(function, "alpha", None)
    if name == "ATan" and isinstance(alpha, (int, float)) and alpha > 0:
        return "atan", float(alpha)
    shown = f"{name}(alpha={alpha:g})" if isinstance(alpha, (int, float)) else name
    notes.append(f"surrogate {shown} is not one of spikeinit's; the theory assumes its default")
    return None, None


def internal_layers(module: nn.Module) -> list[str]:
    """SpikingJelly's supported neurons hold no weight layers."""
    return []


def reset(module: nn.Module) -> None:
    """Return a SpikingJelly stateful module to rest (its ``MemoryModule.reset``)."""
    from spikingjelly.activation_based import base

    if isinstance(module, base.MemoryModule):
        module.reset()
