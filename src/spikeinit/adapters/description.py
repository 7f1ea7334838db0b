r"""What spikeinit needs to know about one population of spiking neurons, whatever its framework.

Every adapter maps a framework's neuron onto one discrete-time LIF,

.. math::

    u[t] = \beta\,u[t-1] + g\,I[t] - \text{reset}, \qquad s[t] = a\,H(u[t] - \theta),

with the reset acting either at the step after the spike (``reset_order="delayed"``, snnTorch)
or at the spike step, then decaying with the membrane (``"immediate"``, SpikingJelly, Norse).
Dividing the membrane by the input gain :math:`g` gives an equivalent neuron with unit gain and
threshold :math:`\tilde\theta = \theta/g`: :attr:`NeuronDescription.effective_threshold` is the
threshold that the initialization theory uses, in units of the input current ``I``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spikeinit._validation import (
    check_choice,
    check_finite_nonnegative,
    check_positive,
    check_unit_interval,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.parameters import RESET_ORDERS, RESETS, LIFParameters
from spikeinit.neurons.surrogate import DEFAULT_SLOPES, DEFAULT_SURROGATE, SURROGATES

FRAMEWORKS = ("spikeinit", "snntorch", "spikingjelly", "norse")


class UnsupportedNeuronError(InvalidArgumentError):
    """A spiking neuron that an adapter recognises but cannot map onto the LIF above.

    A :class:`ValueError`; its message gives the reason. :func:`spikeinit.initialize` leaves the
    layers driving such a neuron unchanged and names them; :func:`spikeinit.report` flags them
    ``not-understood``.

    Example:
        >>> issubclass(UnsupportedNeuronError, ValueError)
        True
    """


@dataclass(frozen=True)
class NeuronDescription:
    r"""One spiking population as a discrete-time LIF (see the module docstring).

    Attributes:
        framework: ``"spikeinit"``, ``"snntorch"``, ``"spikingjelly"`` or ``"norse"``.
        kind: the class name, e.g. ``"Leaky"``.
        threshold: :math:`\theta`, measured from the resting potential (>= 0).
        beta: the membrane decay :math:`\beta \in [0, 1]`.
        reset: ``"subtract"``, ``"zero"`` (back to rest) or ``"none"``.
        reset_order: ``"delayed"`` or ``"immediate"`` (see :meth:`simulate`; for ``"zero"``,
            ``"delayed"`` means that the whole new membrane, input included, is zeroed).
        input_gain: :math:`g > 0`, the factor on the input current.
        spike_amplitude: :math:`a > 0`, the value of one spike (snnTorch's graded spikes).
        synaptic_decay: decay in [0, 1) of a current filter
            :math:`I_{syn}[t] = \alpha I_{syn}[t-1] + I[t]` in front of the membrane
            (snnTorch ``Synaptic``, Norse ``LIFCell``); 0 when the input drives the membrane.
        step_mode: ``"single"`` (one step per call) or ``"multi"`` (``(T, B, ...)`` per call).
        surrogate: the surrogate gradient of the spike, as a name of
            :data:`spikeinit.neurons.surrogate.SURROGATES`, or ``None`` when the framework's is
            not one of them (a note then says which it is).
        surrogate_slope: its slope, in the framework's membrane units (``None``: the default).
        notes: what the mapping approximates, in words.

    Example:
        SpikingJelly's ``LIFNode(tau=2)`` charges with :math:`(I - v)/\tau`: :math:`\beta = 0.5`
        and input gain :math:`g = 1/\tau`, so the current must reach :math:`\theta/g = 2`:

        >>> d = NeuronDescription("spikingjelly", "LIFNode", threshold=1.0, beta=0.5,
        ...                       input_gain=0.5, step_mode="multi")
        >>> d.effective_threshold, d.lif_parameters().threshold
        (2.0, 2.0)
    """

    framework: str
    kind: str
    threshold: float
    beta: float
    reset: str = "subtract"
    reset_order: str = "delayed"
    input_gain: float = 1.0
    spike_amplitude: float = 1.0
    synaptic_decay: float = 0.0
    step_mode: str = "single"
    surrogate: str | None = None
    surrogate_slope: float | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_choice("framework", self.framework, FRAMEWORKS)
        check_finite_nonnegative("threshold", self.threshold)
        check_unit_interval("beta", self.beta)
        check_choice("reset", self.reset, RESETS)
        check_choice("reset_order", self.reset_order, RESET_ORDERS)
        check_positive("input_gain", self.input_gain)
        check_positive("spike_amplitude", self.spike_amplitude)
        decay = check_unit_interval("synaptic_decay", self.synaptic_decay)
        if decay >= 1.0:
            raise InvalidArgumentError(f"synaptic_decay must lie in [0, 1), got {decay!r}")
        check_choice("step_mode", self.step_mode, ("single", "multi"))
        if self.surrogate is not None:
            check_choice("surrogate", self.surrogate, SURROGATES)
        if self.surrogate_slope is not None:
            check_positive("surrogate_slope", self.surrogate_slope)

    @property
    def effective_threshold(self) -> float:
        r"""The threshold in units of the input current: :math:`\tilde\theta = \theta / g`."""
        return self.threshold / self.input_gain

    def lif_parameters(self) -> LIFParameters:
        r"""spikeinit's :class:`LIFParameters` of the equivalent unit-gain neuron.

        Its threshold is :math:`\tilde\theta = \theta/g`. Its surrogate is the framework's,
        with the slope in the same units: a surrogate :math:`h'` of :math:`v - \theta` seen from
        :math:`\tilde u = v/g` is :math:`g\,h'(g(\tilde u - \tilde\theta))`, which for ``atan``
        is ``atan`` of slope :math:`g\alpha` exactly, and for ``fast-sigmoid`` the fast sigmoid of
        slope :math:`gk` times :math:`g` (that factor is not carried). A surrogate outside the
        table reads as spikeinit's default. spikeinit's LIF has no synaptic filter and one zero
        reset (:math:`\beta u (1-s) + I`), so those parts are approximate.

        Example:
            >>> d = NeuronDescription("norse", "LIFCell", 1.0, 0.9, input_gain=0.1,
            ...                       surrogate="fast-sigmoid", surrogate_slope=100.0)
            >>> p = d.lif_parameters()
            >>> round(p.threshold, 6), p.surrogate, round(p.slope, 6)
            (10.0, 'fast-sigmoid', 10.0)
        """
        surrogate = self.surrogate or DEFAULT_SURROGATE
        slope = self.surrogate_slope if self.surrogate is not None else None
        if slope is None and self.surrogate is not None:
            slope = DEFAULT_SLOPES[surrogate]
        return LIFParameters(beta=self.beta, threshold=self.effective_threshold,
                             reset=self.reset, reset_order=self.reset_order,
                             surrogate=surrogate,
                             surrogate_slope=None if slope is None else slope * self.input_gain)

    def simulate(self, currents: Tensor) -> Tensor:
        r"""Spikes ``(T, ...)`` of this population driven by ``currents`` ``(T, ...)`` from rest.

        In the units of the effective threshold :math:`\tilde\theta` (after the synaptic filter
        when there is one), with :math:`s` the previous step's spikes:

        - subtract, delayed: :math:`u = \beta u + I - \tilde\theta s`; immediate:
          :math:`u = \beta (u - \tilde\theta s) + I`;
        - zero, immediate: :math:`u = \beta u (1 - s) + I`; delayed (snnTorch ``Synaptic`` and
          ``RLeaky``, which zero the whole new membrane): :math:`u = (\beta u + I)(1 - s)`;
        - none: :math:`u = \beta u + I`;

        then :math:`s = a\,H(u - \tilde\theta)`. The reference the adapter tests compare each
        framework against.
        """
        if currents.dim() < 1:
            raise InvalidArgumentError("currents must have a leading time dimension (T, ...)")
        theta, beta = self.effective_threshold, self.beta
        membrane = torch.zeros_like(currents[0])
        spikes = torch.zeros_like(currents[0])
        filtered = torch.zeros_like(currents[0])
        out = torch.empty_like(currents)
        for t in range(currents.shape[0]):
            current = currents[t]
            if self.synaptic_decay > 0:
                filtered = self.synaptic_decay * filtered + current
                current = filtered
            if self.reset == "none":
                membrane = beta * membrane + current
            elif self.reset == "subtract" and self.reset_order == "delayed":
                membrane = beta * membrane + current - theta * spikes
            elif self.reset == "subtract":
                membrane = beta * (membrane - theta * spikes) + current
            elif self.reset_order == "delayed":
                membrane = (beta * membrane + current) * (1.0 - spikes)
            else:
                membrane = beta * membrane * (1.0 - spikes) + current
            spikes = (membrane > theta).to(currents.dtype)
            out[t] = spikes
        return out * self.spike_amplitude

    def summary(self) -> str:
        """One line: framework, kind and the mapped parameters."""
        text = (f"{self.framework} {self.kind}: theta={self.threshold:g}, beta={self.beta:g}, "
                f"gain={self.input_gain:g} (theta/gain={self.effective_threshold:g}), "
                f"reset={self.reset} ({self.reset_order})")
        if self.synaptic_decay:
            text += f", synaptic decay={self.synaptic_decay:g}"
        if self.spike_amplitude != 1.0:
            text += f", spike amplitude={self.spike_amplitude:g}"
        return text


def scalar(name: str, value: object, notes: list[str]) -> float:
    """A float from a float or tensor parameter; a non-uniform tensor gives its mean and a note."""
    if isinstance(value, Tensor):
        flat = value.detach().double().flatten()
        if flat.numel() == 0:
            raise UnsupportedNeuronError(f"{name} is an empty tensor")
        if flat.numel() > 1 and not torch.all(flat == flat[0]):
            notes.append(f"{name} differs between neurons; the mean {float(flat.mean()):g} is used")
        return float(flat.mean())
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnsupportedNeuronError(f"{name} is not a number: {value!r}") from None


def relative_threshold(threshold: float, rest: float, kind: str) -> float:
    """``threshold - rest``; raises :class:`UnsupportedNeuronError` when it is negative."""
    relative = threshold - rest
    if relative < 0:
        raise UnsupportedNeuronError(
            f"{kind}: the threshold {threshold:g} lies below the resting potential {rest:g}"
        )
    return relative
