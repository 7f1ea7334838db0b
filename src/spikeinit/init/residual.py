r"""Residual-aware initialization: what each layer of a residual network must give, and sees.

:func:`~spikeinit.init.model.initialize` draws every layer for its own neurons; in a residual
network that is not enough (:mod:`spikeinit.theory.residual`). :class:`ResidualPlan` follows
the :class:`~spikeinit.network.Addition` s that :func:`~spikeinit.network.discover` traced and
predicts, in forward order, the moments of every tensor *after* initialization: spikes at the
rate each population is drawn for, currents at the std each layer is drawn with, sums of
independent terms. From them:

- a layer fed by a sum (the first convolution of a SEW block, spike counts) gets the sum's
  predicted :math:`E[x^2]` (:meth:`ResidualPlan.input_second_moment`), so its neurons stay at
  their rate however deep the stream;
- a layer whose current is added to spikes before its neurons (BatchNorm then addition) is
  scaled so that the neurons fire at their rate *with* the shortcut
  (:func:`~spikeinit.theory.residual.branch_std_for_rate`, one step, times the temporal
  correction :math:`\kappa`);
- the layers that feed a membrane stream (MS-ResNet) share its variance: the stem (or a
  downsampling shortcut) :math:`(1-\rho/2)`, each of the :math:`L` branches of the stream
  :math:`\rho/L`, with :math:`\rho` from the rate band ``tolerance``
  (:func:`~spikeinit.theory.residual.stream_fraction`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spikeinit.network import (
    SPIKE_PRESERVING,
    Addition,
    NetworkMap,
    Note,
    Operand,
    SynapticLayer,
    keeps_spikes,
    through,
)
from spikeinit.theory.residual import (
    branch_std_for_rate,
    stream_fraction,
    sum_moments,
    temporal_correction,
)

#: Relative width of the band of rates that the layers of a membrane stream may span.
STREAM_TOLERANCE = 0.05
#: Where the shortcut alone fires the neurons above their rate: the branch's share of the std.
FLOOR_SHARE = 0.05


@dataclass(frozen=True)
class Share:
    """The factor on a layer's current std, and why (a note for its record)."""

    factor: float
    note: Note


class ResidualPlan:
    """Predicted moments of every population, layer current and addition of ``network``.

    :func:`~spikeinit.init.model.initialize` calls :meth:`spiked` with the rate a layer's
    neurons are drawn for and :meth:`drawn` with the current std the layer is drawn with.
    """

    def __init__(self, network: NetworkMap) -> None:
        self.network = network
        self.additions = network.additions
        self.rates: dict[str, float] = {}
        self.currents: dict[str, tuple[float, float]] = {}
        self._chains = _chains(self.additions)

    @property
    def active(self) -> bool:
        """Whether the network has additions at all."""
        return bool(self.additions)

    def spiked(self, neuron: str | None, rate: float) -> None:
        """Neurons ``neuron`` are drawn to fire at ``rate``."""
        if neuron is not None:
            self.rates[neuron] = rate

    def drawn(self, layer: str, std: float) -> None:
        """Layer ``layer`` sends a zero-mean current of std ``std`` (before its ``after`` ops)."""
        self.currents[layer] = (0.0, std**2)

    def moments(self, name: str | None, kind: str) -> tuple[float, float] | None:
        """Predicted ``(E[x], E[x^2])`` of the output of ``name`` (a neuron, a layer or an
        addition); ``None`` when nothing predicts it."""
        if kind == "spikes":
            rate = self.rates.get(name)
            if rate is None:
                rate = self._measured_rate(name)
            if rate is None:
                return None
            amplitude = self._amplitude(name)
            return amplitude * rate, amplitude**2 * rate
        if kind == "synaptic":
            return self.currents.get(name)
        if kind == "sum" and name in self.additions:
            return self.sum_moments(self.additions[name])
        return None

    def operand_moments(self, operand: Operand) -> tuple[float, float]:
        """Predicted moments of one term of an addition (measured when nothing predicts it)."""
        predicted = self.moments(operand.source, operand.kind)
        if predicted is None:
            return operand.mean, operand.second_moment
        mean, second = predicted
        spikes = operand.kind == "spikes"
        amplitude = self._amplitude(operand.source) if spikes else 1.0
        for op in operand.ops:
            mean, second, _ = through(op, mean, second, spikes=spikes, amplitude=amplitude)
            spikes = spikes and op.kind in SPIKE_PRESERVING
        return mean, second

    def sum_moments(self, addition: Addition) -> tuple[float, float]:
        """Predicted moments of an addition: independent terms (:func:`sum_moments`)."""
        return sum_moments([self.operand_moments(term) for term in addition.operands])

    def input_second_moment(self, layer: SynapticLayer) -> tuple[float, Note] | None:
        r"""What a layer fed by a sum is drawn for: the sum's predicted variance
        :math:`E[x^2] - E[x]^2` (independent terms at their initialized rates and stds, through
        the layer's ``before`` ops). Its weights are centred (:func:`center_filters`), which
        removes the mean: for a spike count most of :math:`E[x^2]`, which with a finite fan-in
        would give each output a random, persistent offset :math:`E[x] \sum_i w_i`.
        ``None`` for other layers."""
        if layer.input != "sum" or layer.source_name not in self.additions:
            return None
        mean, second = self.sum_moments(self.additions[layer.source_name])
        for op in layer.before:
            mean, second, _ = through(op, mean, second, spikes=False)
        variance = max(second - mean**2, 1e-12 * max(second, 1e-12))
        return variance, Note(
            "modelled", layer.name,
            f"fed by the sum {layer.source_name}: E[x] = {mean:.4g}, E[x^2] = {second:.4g} "
            "predicted (independent terms at their initialized rates and stds); weights "
            f"centred per output and drawn for the variance {variance:.4g}")

    def share(self, layer: SynapticLayer, std: float, theta: float, rate: float) -> Share | None:
        """The factor on ``layer``'s current std ``std`` (drawn for ``rate`` at effective
        threshold ``theta``) that its place in an addition asks for, or ``None``."""
        base = self.stream_base(layer)
        if base is not None:
            fraction = stream_fraction(rate, STREAM_TOLERANCE)
            return Share(math.sqrt(1 - fraction / 2), Note(
                "modelled", layer.name,
                f"carries the membrane stream of {base.name}: variance x (1 - rho/2), "
                f"rho = {fraction:.3g} (rates within +-{STREAM_TOLERANCE:.0%} over the stream)"))
        addition = self.addition_after(layer)
        if addition is None:
            return None
        others = addition.others(layer.name)
        if not others:
            return None
        if all(term.kind == "spikes" and keeps_spikes(term.ops) for term in others):
            return self._mixture_share(layer, addition, others, std, theta, rate)
        return self._stream_share(layer, addition, rate)

    def addition_after(self, layer: SynapticLayer) -> Addition | None:
        """The addition that ``layer``'s current meets before its neurons, or ``None``."""
        return next((self.additions[op.name] for op in layer.after
                     if op.kind == "residual-add" and op.name in self.additions), None)

    def chain_position(self, layer: SynapticLayer) -> tuple[int, int] | None:
        """``(k, L)`` when ``layer``'s current is added to a membrane stream: the addition is
        the ``k``-th of the ``L`` of its chain (``k = 0`` when it starts the stream); ``None``
        when it adds to nothing, or only to spikes."""
        addition = self.addition_after(layer)
        if addition is None:
            return None
        others = addition.others(layer.name)
        if not others or all(term.kind == "spikes" and keeps_spikes(term.ops)
                             for term in others):
            return None
        chain = self._chains.get(addition.name, [addition.name])
        if not self._has_base(addition):
            return 0, len(chain)
        return chain.index(addition.name) + 1, len(chain)

    @staticmethod
    def _has_base(addition: Addition) -> bool:
        return any(term.kind == "sum" or term.shared for term in addition.operands)

    def _mixture_share(self, layer: SynapticLayer, addition: Addition,
                       others: tuple[Operand, ...], std: float, theta: float,
                       rate: float) -> Share:
        if len(others) == 1:
            mean, _ = self.operand_moments(others[0])
            amplitude = self._amplitude(others[0].source)
            shortcut = min(mean / amplitude, 1.0)
            static = branch_std_for_rate(theta, rate, shortcut_rate=shortcut,
                                         amplitude=amplitude)
            how = f"spikes at rate {shortcut:.3g}"
        else:
            mean, second = sum_moments([self.operand_moments(term) for term in others])
            static = branch_std_for_rate(theta, rate, mean=mean, variance=second - mean**2)
            how = f"a sum of spikes (E[x] = {mean:.3g})"
        kappa = temporal_correction(std, theta, rate)
        if static is None:
            return Share(FLOOR_SHARE, Note(
                "modelled", layer.name,
                f"{addition.name} adds {how}, which alone fire its neurons above {rate:.3g}: "
                f"branch kept at {FLOOR_SHARE:g} of its std"))
        factor = kappa * static / std
        return Share(factor, Note(
            "modelled", layer.name,
            f"{addition.name} adds {how}: current std x {factor:.3g} so that the sum fires at "
            f"{rate:.3g} (one step, x kappa = {kappa:.3g} for the time steps)"))

    def _stream_share(self, layer: SynapticLayer, addition: Addition, rate: float) -> Share:
        fraction = stream_fraction(rate, STREAM_TOLERANCE)
        chain = self._chains.get(addition.name, [addition.name])
        if self._has_base(addition):
            variance = fraction / len(chain)
            why = (f"branch {chain.index(addition.name) + 1} of {len(chain)} adding to a "
                   f"membrane stream: variance x rho/L = {variance:.3g}")
        else:
            parts = sum(term.kind == "synaptic" and not term.shared
                        for term in addition.operands)
            variance = (1 - fraction / 2) / max(parts, 1)
            why = (f"starts the membrane stream {addition.name} with {parts} terms: variance x "
                   f"(1 - rho/2)/{parts} = {variance:.3g}")
        return Share(math.sqrt(variance), Note("modelled", layer.name, why))

    def stream_base(self, layer: SynapticLayer) -> Addition | None:
        """The addition whose stream ``layer``'s current starts, when that current also feeds
        neurons directly (the stem of an MS-ResNet)."""
        for addition in self.additions.values():
            for term in addition.operands:
                if (term.source == layer.name and term.kind == "synaptic" and term.shared
                        and not any(o.kind == "spikes" for o in addition.others(layer.name))):
                    return addition
        return None

    def _measured_rate(self, neuron: str | None) -> float | None:
        activity = self.network.activity
        if neuron is None or activity is None or neuron not in activity.neurons:
            return None
        measured = activity.neurons[neuron]
        return measured.rate if measured.calls else None

    def _amplitude(self, neuron: str | None) -> float:
        site = self.network.neuron(neuron) if neuron is not None else None
        return site.description.spike_amplitude if site and site.description else 1.0


def scale_module(module: nn.Module, factor: float, bias: bool = True) -> None:
    """Multiply ``module``'s weight (and, with ``bias``, its bias) by ``factor`` in place:
    a layer's current, or a norm's output (its gamma and beta), times ``factor``."""
    with torch.no_grad():
        module.weight.mul_(factor)
        if bias and isinstance(getattr(module, "bias", None), Tensor):
            module.bias.mul_(factor)


def center_filters(weight: Tensor) -> None:
    r"""Subtract from each output unit's weights their mean over the fan-in, keeping their
    variance: :math:`w_{ji} \to (w_{ji} - \bar w_j)\,\mathrm{sd}(w)/\mathrm{sd}(w - \bar w)`,
    so that :math:`\sum_i w_{ji} = 0` and an input mean common to all inputs adds nothing.

    Example:
        >>> import torch
        >>> w = torch.randn(4, 9) + 1.0
        >>> center_filters(w)
        >>> bool(w.sum(dim=1).abs().max() < 1e-4)
        True
    """
    with torch.no_grad():
        rows = weight.view(weight.shape[0], -1)
        spread = rows.std()
        rows.sub_(rows.mean(dim=1, keepdim=True))
        centred = rows.std()
        if centred > 0:
            rows.mul_(spread / centred)


def _chains(additions: dict[str, Addition]) -> dict[str, list[str]]:
    """Every addition's chain: the additions linked by ``sum`` terms, in order."""
    previous = {name: next((term.source for term in addition.operands
                            if term.kind == "sum" and term.source in additions), None)
                for name, addition in additions.items()}
    following: dict[str, str] = {}
    for name, before in previous.items():
        if before is not None:
            following.setdefault(before, name)
    chains: dict[str, list[str]] = {}
    for name in additions:
        if previous[name] is not None:
            continue
        chain, current = [name], name
        while current in following and following[current] not in chain:
            current = following[current]
            chain.append(current)
        for member in chain:
            chains[member] = chain
    return chains
