r"""Norse neurons: ``LIFCell``, ``LIF``, ``LIFBoxCell`` and ``LIFRecurrentCell`` (imported only
when a model uses them).

From ``norse.torch.functional``, with :math:`g` = ``dt * p.tau_mem_inv``:

- ``LIFBoxCell``: :math:`v \leftarrow v + g\,(I + v_{leak} - v)`, i.e. :math:`\beta = 1 - g` and
  input gain :math:`g`; spike :math:`z = H(v - v_{th})`, then at the spike step
  ``p.reset_method``: ``reset_value`` sets :math:`v = v_{reset}` (zero reset, to rest when
  :math:`v_{reset} = v_{leak}`), ``reset_subtract`` subtracts :math:`v_{th}`: ``immediate``.
- ``LIFCell`` / ``LIF``: a current-based synapse first, :math:`i \leftarrow i + I`, then
  :math:`v \leftarrow v + g\,((v_{leak} - v) + i)`, the reset to :math:`v_{reset}`, and the
  current decays by :math:`1 - dt\,\tau_{syn}^{-1}` (``synaptic_decay``).
- ``LIFRecurrentCell``: a ``LIFCell`` whose current receives
  :math:`W_{in} x + W_{rec} z[t-1]` from the weights it holds
  (:mod:`spikeinit.network.recurrent`).

The membrane starts at :math:`v_{leak}`, so the threshold from rest is :math:`v_{th} - v_{leak}`.
Cells return ``(spikes, state)`` and keep no state of their own.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from spikeinit.adapters._common import defined_in, supported_kind
from spikeinit.adapters.description import (
    NeuronDescription,
    UnsupportedNeuronError,
    relative_threshold,
    scalar,
)

FRAMEWORK = "norse"
SUPPORTED = ("LIFCell", "LIF", "LIFBoxCell", "LIFRecurrentCell")


def owns(module: nn.Module) -> bool:
    """Whether ``module`` comes from Norse (checked without importing it)."""
    return defined_in(module, FRAMEWORK)


def is_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is a Norse neuron (an ``SNNCell``, ``SNN`` or a recurrent variant)."""
    if not owns(module):
        return False
    from norse.torch.module import snn

    return isinstance(module, (snn.SNNCell, snn.SNN, snn.SNNRecurrentCell, snn.SNNRecurrent))


def describe(module: nn.Module) -> NeuronDescription:
    """The :class:`NeuronDescription` of a ``LIFCell``, ``LIF``, ``LIFBoxCell`` or
    ``LIFRecurrentCell``."""
    import norse.torch as norse_torch
    from norse.torch.functional.reset import reset_subtract, reset_value

    kind, notes = supported_kind(module, FRAMEWORK, norse_torch, SUPPORTED)
    p, dt = module.p, float(module.dt)
    gain = dt * scalar("p.tau_mem_inv", p.tau_mem_inv, notes)
    if not 0.0 < gain <= 1.0:
        raise UnsupportedNeuronError(
            f"norse {kind}: dt * tau_mem_inv must lie in (0, 1], got {gain:g}"
        )
    rest = scalar("p.v_leak", p.v_leak, notes)
    threshold = relative_threshold(scalar("p.v_th", p.v_th, notes), rest, kind)
    reset_method = getattr(p, "reset_method", reset_value)
    if reset_method is reset_subtract:
        reset = "subtract"
    elif reset_method is reset_value:
        reset = "zero"
        v_reset = scalar("p.v_reset", p.v_reset, notes)
        if v_reset != rest:
            raise UnsupportedNeuronError(
                f"norse {kind}: resetting to v_reset={v_reset:g} away from rest "
                f"v_leak={rest:g} is not supported"
            )
    else:
        raise UnsupportedNeuronError(f"norse {kind}: unknown reset method {reset_method!r}")
    decay = 0.0
    if kind != "LIFBoxCell":
        decay = 1.0 - dt * scalar("p.tau_syn_inv", p.tau_syn_inv, notes)
        if not 0.0 <= decay < 1.0:
            raise UnsupportedNeuronError(
                f"norse {kind}: dt * tau_syn_inv must lie in (0, 1], got {1.0 - decay:g}"
            )
    surrogate, slope = _surrogate(p, notes)
    return NeuronDescription(
        framework=FRAMEWORK, kind=kind, threshold=threshold, beta=1.0 - gain, reset=reset,
        surrogate=surrogate, surrogate_slope=slope,
        reset_order="immediate", input_gain=gain, synaptic_decay=decay,
        step_mode="multi" if kind == "LIF" else "single", notes=tuple(notes),
    )


def internal_layers(module: nn.Module) -> list[str]:
    """Weight matrices held inside a Norse neuron (recurrent cells' input/recurrent weights)."""
    return [name for name, p in module.named_parameters() if p.dim() >= 2]


def reset(module: nn.Module) -> None:
    """Norse modules keep no state between calls: nothing to reset."""


def _surrogate(p: object, notes: list[str]) -> tuple[str | None, float | None]:
    """``(name, slope)`` of a Norse neuron's ``p.method``: ``super`` (SuperSpike,
    :math:`1/(\alpha|x|+1)^2`) is spikeinit's fast sigmoid of slope :math:`\alpha`."""
    method = getattr(p, "method", None)
    alpha = scalar("p.alpha", getattr(p, "alpha", 0.0), [])
    if method == "super" and alpha > 0:
        return "fast-sigmoid", alpha
    notes.append(f"surrogate {method!r} is not one of spikeinit's; the theory assumes its default")
    return None, None


def run_over_steps(model: nn.Module, x: Any) -> Any:
    """A ``forward=`` for Norse models made of cells (a ``SequentialState`` of ``LIFCell`` s,
    or one cell): run ``model`` once per step of ``x`` ``(T, B, ...)``, carrying the state the
    cells return, and stack the outputs over the steps.

    .. math::

        (z_t, s_t) = \\mathrm{model}(x_t, s_{t-1}),\\quad s_0 = \\text{None}

    Example:
        >>> import torch, norse.torch as norse  # doctest: +SKIP
        >>> net = norse.SequentialState(torch.nn.Linear(4, 3), norse.LIFCell())  # doctest: +SKIP
        >>> run_over_steps(net, torch.rand(5, 2, 4)).shape  # doctest: +SKIP
        torch.Size([5, 2, 3])
    """
    import torch

    state, outputs = None, []
    for step in x:
        output, state = model(step, state)
        outputs.append(output)
    return torch.stack(outputs)
