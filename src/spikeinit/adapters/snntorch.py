r"""snnTorch neurons: ``Leaky``, ``Synaptic`` and ``RLeaky`` (imported only when a model uses them).

From snnTorch's source (``snntorch/_neurons``), with ``r[t] = H(u[t-1] - \theta)`` the reset
computed from the previous membrane:

- ``Leaky``, subtract (``reset_delay=True``, the default):
  :math:`u[t] = \beta u[t-1] + I[t] - \theta r[t]`: spikeinit's ``delayed`` subtract.
  With ``reset_delay=False`` the threshold is subtracted at the spike step: ``immediate``.
- ``Leaky``, zero: the membrane is zeroed *before* the decay and the new input is added:
  :math:`u[t] = \beta (1 - r[t]) u[t-1] + I[t]`, which is spikeinit's ``immediate`` zero reset.
- ``Synaptic``: :math:`I_{syn}[t] = \alpha I_{syn}[t-1] + I[t]`,
  :math:`u[t] = \beta u[t-1] + I_{syn}[t] - \theta r[t]` (zero: the whole sum times
  :math:`1 - r[t]`, ``delayed``); the current filter is ``synaptic_decay = alpha``.
- ``RLeaky``: ``Leaky`` plus a recurrent term ``V(s[t-1])`` (set by ``initialize``, see
  :mod:`spikeinit.network.recurrent`); its zero reset multiplies the whole sum by
  :math:`1 - r[t]` (``delayed``).

``beta`` and ``alpha`` are clamped to [0, 1] as snnTorch does; the input gain is 1; spikes have
the amplitude ``graded_spikes_factor``.
"""

from __future__ import annotations

from torch import nn

from spikeinit.adapters._common import defined_in, supported_kind
from spikeinit.adapters.description import NeuronDescription, UnsupportedNeuronError, scalar

FRAMEWORK = "snntorch"
SUPPORTED = ("Leaky", "Synaptic", "RLeaky")


def owns(module: nn.Module) -> bool:
    """Whether ``module`` comes from snnTorch (checked without importing it)."""
    return defined_in(module, FRAMEWORK)


def is_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is an snnTorch spiking neuron (any ``SpikingNeuron``)."""
    if not owns(module):
        return False
    import snntorch

    return isinstance(module, snntorch.SpikingNeuron)


def describe(module: nn.Module) -> NeuronDescription:
    """The :class:`NeuronDescription` of a ``Leaky``, ``Synaptic`` or ``RLeaky`` module."""
    import snntorch

    kind, notes = supported_kind(module, FRAMEWORK, snntorch, SUPPORTED)
    threshold = scalar("threshold", module.threshold, notes)
    beta = min(max(scalar("beta", module.beta, notes), 0.0), 1.0)
    amplitude = scalar("graded_spikes_factor", module.graded_spikes_factor, notes)
    mechanism = module.reset_mechanism
    delayed = bool(getattr(module, "reset_delay", True))
    if mechanism == "subtract":
        order = "delayed" if delayed else "immediate"
        if not delayed:
            notes.append("reset_delay=False: modelled as an immediate subtraction (snnTorch "
                         "subtracts again at the next step when u > 2*threshold)")
    elif mechanism == "zero":
        order = "immediate" if kind == "Leaky" else "delayed"
        if order == "delayed":
            notes.append(f"{kind} zeroes the whole new membrane (input included) at the step "
                         "after a spike")
    else:
        order = "delayed"
    decay = 0.0
    if kind == "Synaptic":
        decay = min(max(scalar("alpha", module.alpha, notes), 0.0), 1.0)
        if decay >= 1.0:
            raise UnsupportedNeuronError("snntorch Synaptic with alpha >= 1 never forgets its "
                                         "input current; not supported")
    if kind == "RLeaky":
        notes.append("the recurrent input V(s[t-1]) is a population loop "
                     "(spikeinit.init.recurrent)")
    if getattr(module, "inhibition", False):
        notes.append("inhibition (winner-take-all) is not modelled")
    if getattr(module, "state_quant", False):
        notes.append("state quantization is not modelled")
    surrogate, slope = _surrogate(getattr(module, "spike_grad", None), notes)
    return NeuronDescription(
        framework=FRAMEWORK, kind=kind, threshold=threshold, beta=beta, reset=mechanism,
        reset_order=order, input_gain=1.0, spike_amplitude=amplitude, synaptic_decay=decay,
        step_mode="single", surrogate=surrogate, surrogate_slope=slope, notes=tuple(notes),
    )


#: snnTorch's surrogate factories whose derivative is one of spikeinit's: the factory's name in
#: ``snntorch.surrogate``, spikeinit's name, and the factory's slope argument.
_SURROGATES = (("atan", "atan", "alpha"), ("fast_sigmoid", "fast-sigmoid", "slope"))


def _surrogate(function: object, notes: list[str]) -> tuple[str | None, float | None]:
    """``(name, slope)`` of an snnTorch ``spike_grad``.

    A function made by ``snntorch.surrogate.atan(alpha)`` or ``fast_sigmoid(slope)`` runs the
    code object those factories build their functions from: it is recognised by that object
    (not by its name), and its slope is read from the factory's argument it closes over.
    """
    from snntorch import surrogate as factories

    code = getattr(function, "__code__", None)
    for factory, name, argument in _SURROGATES:
        if code is not None and code is getattr(factories, factory)().__code__:
            slope = dict(zip(code.co_freevars, function.__closure__ or ())).get(argument)
            value = getattr(slope, "cell_contents", None)
            if isinstance(value, (int, float)) and value > 0:
                return name, float(value)
    shown = getattr(function, "__qualname__", None) or type(function).__name__
    notes.append(f"surrogate {shown} is not one of spikeinit's; the theory assumes its default")
    return None, None


def internal_layers(module: nn.Module) -> list[str]:
    """Names (relative to ``module``) of the weight layers inside a neuron (RLeaky's recurrent)."""
    recurrent = getattr(module, "recurrent", None)
    return ["recurrent"] if isinstance(recurrent, nn.Module) and any(
        p.dim() >= 2 for p in recurrent.parameters()
    ) else []


def reset(module: nn.Module) -> None:
    """Return an snnTorch neuron to rest (its ``reset_mem``)."""
    reset_mem = getattr(module, "reset_mem", None)
    if callable(reset_mem):
        reset_mem()
