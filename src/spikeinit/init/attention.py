r"""Attention populations in the init: the spiking neuron a product of spike matrices drives.

In spiking self-attention (SSA, Spikformer) the attention neuron receives
:math:`s\,X` with :math:`X = (Q K^\top V)_{ic}`, a count of coincident spikes; in spike-driven
attention (SDSA) it receives the column sum :math:`Y_c = \sum_j K_{jc} V_{jc}`
(:mod:`spikeinit.theory.attention`). No weight sits between the product and the neuron, so what
sets the neuron's rate is the scale :math:`s` of the module that computes the product
(SpikingJelly's ``SpikingSelfAttention.scale``) or, where there is none, the neuron's threshold
(:class:`AttentionKnob`).

:func:`initialize <spikeinit.init.model.initialize>` sets them the way
:mod:`~spikeinit.init.realized` makes every layer exact on the sample: once the Q, K and V
populations upstream are final, it measures the current :math:`I_t` the attention neuron
receives over the steps and simulates the neuron on :math:`c\,I_t` for a grid of factors
:math:`c` (:func:`attention_factor`). The current is a count, so the rate is a staircase in
:math:`c`, and a root on the sample may sit on a step, where held-out inputs fall on either
side. The factor chosen is the one whose rate stays nearest to the target, in
:math:`|\log(r/r^*)|`, over a window of :math:`\pm` :data:`ROBUST_WINDOW` in :math:`\log c`
around it: the middle of the step nearest to the target, or the root where the rate is smooth.
The theory's one-step :math:`P(X \ge n)` (:func:`~spikeinit.theory.attention.attention_rate`)
explains the steps; the measured multi-step current decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from spikeinit.engine.tuning import single_threaded
from spikeinit.init.records import AttentionRecord
from spikeinit.network import AttentionInput, NetworkMap, NeuronSite, Note
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.temporal import synaptic_filter
from spikeinit.theory.temporal_gain import scale_for_rate, solver_columns

__all__ = ["ROBUST_WINDOW", "AttentionKnob", "AttentionUnit", "attention_factor",
           "attention_record", "attention_units"]

#: Half the width, in :math:`\log c`, of the window over which a factor's rate must stay near
#: the target (a 5 % change of the current either way).
ROBUST_WINDOW = 0.05
#: The grid of factors searched around the root, in :math:`\log c`: its half span and step.
_SPAN, _STEP = 0.7, 0.01
#: The names of a neuron's threshold attribute, by framework (SpikingJelly, snnTorch and
#: spikeinit).
THRESHOLD_ATTRIBUTES = ("v_threshold", "threshold")


@dataclass(frozen=True)
class AttentionKnob:
    r"""What sets an attention population's rate: the attribute ``attribute`` of ``module``
    (named ``module_name``), either the scale :math:`s` on the product (``kind="scale"``) or
    the neuron's threshold (``kind="threshold"``).

    Example:
        >>> attn = nn.Module()
        >>> attn.scale = 0.125
        >>> knob = AttentionKnob("scale", attn, "scale", "attn")
        >>> knob.rescale(2.0); attn.scale, knob.label()
        (0.25, 'attn.scale')
    """

    kind: str
    module: nn.Module
    attribute: str
    module_name: str

    def value(self) -> float:
        """The attribute's value now."""
        return float(getattr(self.module, self.attribute))

    def rescale(self, factor: float) -> None:
        r"""Multiply the neuron's current by ``factor``: :math:`s \to c\,s`, or
        :math:`\theta \to \theta / c` (the same spikes for a neuron that resets to its rest)."""
        value = getattr(self.module, self.attribute)
        ratio = factor if self.kind == "scale" else 1.0 / factor
        if isinstance(value, Tensor):
            with torch.no_grad():
                value.mul_(ratio)
        elif self.kind == "threshold" and hasattr(self.module, "set_parameters"):
            self.module.set_parameters(**{self.attribute: float(value) * ratio})  # spikeinit's
        else:
            setattr(self.module, self.attribute, float(value) * ratio)

    def label(self) -> str:
        """``module.attribute``."""
        return f"{self.module_name}.{self.attribute}" if self.module_name else self.attribute


@dataclass(frozen=True)
class AttentionUnit:
    """An attention population to set: its neuron, what drives it and the knob that sets it
    (``None``: neither a scale nor a threshold is exposed)."""

    site: NeuronSite
    attention: AttentionInput
    knob: AttentionKnob | None
    steps: int

    @property
    def name(self) -> str:
        return self.site.name

    @property
    def neuron(self) -> LIFParameters:
        """The neuron as the engine's unit-gain LIF."""
        return self.site.description.lif_parameters()


def attention_units(model: nn.Module, network: NetworkMap, steps: int) -> list[AttentionUnit]:
    """The attention populations of ``network`` whose neuron is understood, in forward order,
    each with its knob: the product's module's ``scale`` when it has one (a number or a
    one-element tensor), else the neuron's threshold attribute (:data:`THRESHOLD_ATTRIBUTES`).
    """
    units = []
    for site in network.neurons:
        attention = network.attention.get(site.name)
        if attention is None or site.description is None:
            continue
        product = network.products[attention.product]
        scope = model.get_submodule(product.scope) if product.scope else model
        knob = _knob(scope, "scale", product.scope, "scale")
        if knob is None:
            knob = next((k for attribute in _threshold_attributes()
                         if (k := _knob(site.module, attribute, site.name, "threshold"))
                         is not None), None)
        units.append(AttentionUnit(site, attention, knob, steps))
    return units


def _threshold_attributes() -> tuple[str, ...]:
    return THRESHOLD_ATTRIBUTES


def _knob(module: nn.Module, attribute: str, name: str, kind: str) -> AttentionKnob | None:
    value = getattr(module, attribute, None)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    tensor = isinstance(value, Tensor) and value.numel() == 1 and value.is_floating_point()
    if (number or tensor) and float(value) > 0:
        return AttentionKnob(kind, module, attribute, name)
    return None


@dataclass(frozen=True)
class AttentionFactor:
    """What :func:`attention_factor` found: the factor on the current and why."""

    factor: float
    rate: float
    note: Note


def attention_factor(unit: AttentionUnit, current: Tensor, rate: float
                     ) -> AttentionFactor | None:
    r"""The factor :math:`c` on the measured current ``current`` (``(T, ...)``) of ``unit``
    that fires its neurons nearest to ``rate`` robustly (module docstring); ``None`` where no
    factor reaches a rate (a silent current)."""
    params = unit.neuron
    flat = _columns(current, unit.steps, unit.site.description.synaptic_decay)
    if flat is None:
        return None
    try:
        root = math.log(scale_for_rate(flat, params, rate))
    except ValueError:
        return None
    grid = root + np.arange(-_SPAN, _SPAN + _STEP / 2, _STEP)
    with single_threaded():
        rates = np.array([float(lif_multistep(flat * math.exp(g), params)[0].double().mean())
                          for g in grid])
    with np.errstate(divide="ignore"):
        errors = np.abs(np.log(rates / rate))
    half = int(round(ROBUST_WINDOW / _STEP))
    worst = np.array([errors[max(i - half, 0):i + half + 1].max() for i in range(len(grid))])
    distance = np.abs(grid - root)
    best = int(np.lexsort((distance, worst))[0])
    factor = math.exp(grid[best])
    steps = "one step" if unit.steps == 1 else f"{unit.steps} steps"
    note = Note("measured", unit.name, (
        f"attention population (driven by {unit.attention.product}): its current on the "
        f"sample, simulated over {steps}, fires at {rates[best]:.3g} for x {factor:.4g} "
        f"(the rate stays within {math.expm1(worst[best]):.1%} of it for +-"
        f"{ROBUST_WINDOW:.0%} of the current; the plain root was x {math.exp(root):.4g})"))
    return AttentionFactor(factor, float(rates[best]), note)


def _columns(current: Tensor, steps: int, decay: float) -> Tensor | None:
    """The current as ``(T, neurons)`` (at most :data:`SCALE_SOLVER_NEURONS` columns,
    :func:`~spikeinit.theory.temporal_gain.solver_columns`), through the neurons' synaptic
    filter; ``None`` for another layout."""
    if current.dim() < 1 or current.shape[0] != steps:
        return None
    return synaptic_filter(solver_columns(current.detach().float().reshape(steps, -1)), decay)


def attention_record(unit: AttentionUnit, before: float | None,
                     found: AttentionFactor | None) -> AttentionRecord:
    """The record of one attention population: its knob before and after, or why it was left
    as it was."""
    knob = unit.knob.label() if unit.knob is not None else None
    if found is not None and unit.knob is not None:
        return AttentionRecord(unit.name, unit.attention.product, knob, before,
                               unit.knob.value(), found.rate, (found.note.text,))
    why = ("neither a scale on the product nor a threshold on its neuron to set"
           if unit.knob is None else "its current on the sample reaches no rate at any scale")
    return AttentionRecord(unit.name, unit.attention.product, knob, before, None, None, (why,))
