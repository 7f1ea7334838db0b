r"""Model-level initialization: every synaptic layer of any model, from the neurons around it.

:func:`initialize` works on models built from spikeinit's :class:`~spikeinit.neurons.LIF` and on
snnTorch, SpikingJelly and Norse models alike (see :mod:`spikeinit.adapters`). Each framework's
neuron is read as a LIF with threshold :math:`\theta`, decay :math:`\beta` and input gain
:math:`g`; the initializers see the equivalent unit-gain neuron, with the effective threshold
:math:`\tilde\theta = \theta/g`, and ``sigma`` is the membrane standard deviation in those units
(the input current's, at the first step).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import (
    check_finite_nonnegative,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from spikeinit.adapters.discovery import (
    SYNAPTIC_TYPES,
    Forward,
    NetworkMap,
    SynapticLayer,
    discover,
)
from spikeinit.init.context import LayerContext
from spikeinit.init.fan import compute_fans
from spikeinit.init.registry import get_method
from spikeinit.neurons.lif import LIF
from spikeinit.theory.gaussian import tail_probability

FAR_THRESHOLD = 3.0  # theta/(g sigma) beyond which initialize warns: rate Q(3) = 0.13%

__all__ = [
    "SYNAPTIC_TYPES",
    "InitRecord",
    "SynapticLayer",
    "find_synaptic_layers",
    "initialize",
    "input_statistics",
    "layer_context",
]


@dataclass(frozen=True)
class InitRecord:
    r"""What :func:`initialize` did to one layer.

    ``threshold`` and ``beta`` are those the method used (the effective threshold
    :math:`\theta/g`), ``input_second_moment`` the :math:`E[x^2]` it assumed for the layer's
    input (``None``: spikes of Gaussian membranes, :math:`Q(\tilde\theta_{src}/\sigma)`), and
    ``notes`` how pooling, normalization, dropout or unknown operations were taken into account.
    """

    name: str
    method: str
    fan_in: int
    mean: float
    std: float
    neuron: str | None = None
    threshold: float | None = None
    beta: float | None = None
    input_second_moment: float | None = None
    notes: tuple[str, ...] = ()


def find_synaptic_layers(
    model: nn.Module, sample: Any = None, forward: Forward | None = None
) -> list[SynapticLayer]:
    """Every Linear/Conv layer of ``model`` with its source and target neurons.

    In module order without ``sample``; in forward order, linked by the tensors that flow
    between the layers, when ``sample`` is given (see :func:`spikeinit.adapters.discover`).
    """
    return discover(model, sample, forward).layers


def input_statistics(
    layer: SynapticLayer, sigma: float = 1.0, threshold: float | None = None
) -> tuple[float, float, list[str]]:
    r"""``(E[x], E[x^2], notes)`` of the spikes entering ``layer`` (before its weights).

    The source neurons (threshold :math:`\tilde\theta`, spike amplitude :math:`a`) have a
    :math:`N(0,\sigma^2)` membrane, so :math:`p = Q(\tilde\theta/\sigma)`, :math:`E[x] = ap`,
    :math:`E[x^2] = a^2 p`. On the way to the layer, for independent inputs:

    - average pooling over :math:`k` elements: :math:`E[x^2] \to E[x]^2 + (E[x^2]-E[x]^2)/k`;
    - max pooling of binary spikes: :math:`p \to 1-(1-p)^k`;
    - dropout (training mode) with probability :math:`q`: :math:`E[x^2] \to E[x^2]/(1-q)`;
    - normalization: :math:`E[x] \to \bar\beta`, :math:`E[x^2] \to \overline{\gamma^2+\beta^2}`.
    """
    description = layer.source_description
    theta = threshold if threshold is not None else (
        description.effective_threshold if description is not None else 1.0)
    amplitude = description.spike_amplitude if description is not None else 1.0
    p = float(tail_probability(theta / sigma))
    mean, second, notes = amplitude * p, amplitude**2 * p, []
    for op in layer.before:
        if op.kind == "avg-pool" and op.window > 0:
            second = mean**2 + (second - mean**2) / op.window
            notes.append(f"{op.label()}: E[x^2] of the averaged spikes")
        elif op.kind == "max-pool" and op.window > 0:
            fired = 1.0 - (1.0 - min(mean / amplitude, 1.0)) ** op.window
            mean, second = amplitude * fired, amplitude**2 * fired
            notes.append(f"{op.label()}: rate 1-(1-p)^{op.window} (independent spikes)")
        elif op.kind == "dropout":
            q = op.dropout_probability
            if q > 0:
                second /= 1.0 - q
                notes.append(f"{op.label()}: E[x^2]/(1-{q:g}) in training mode")
        elif op.kind == "normalization":
            mean, second = _normalized_moments(op.module)
            notes.append(f"{op.label()}: inputs normalized, E[x^2] = mean(gamma^2 + beta^2)")
        elif op.kind in ("unknown", "tensor-op") or (op.kind.endswith("pool") and not op.window):
            notes.append(f"{op.label()} before the layer: not modelled")
    return mean, second, notes


def current_factor(layer: SynapticLayer) -> tuple[float, list[str]]:
    r"""The factor on the current's variance between ``layer`` and its neurons, with notes.

    Average pooling over :math:`k` independent currents divides it by :math:`k`; dropout in
    training mode multiplies it by :math:`1/(1-q)`. Max pooling, unknown modules and tensor
    operations are not modelled (named in the notes). A normalization replaces the variance by
    its weight :math:`\gamma^2` in training mode, whatever the synaptic weights.
    """
    factor, notes = 1.0, []
    for op in layer.after:
        if op.kind == "avg-pool" and op.window > 0:
            factor /= op.window
            notes.append(f"{op.label()} after the layer: current variance / {op.window}")
        elif op.kind == "dropout":
            q = op.dropout_probability
            if q > 0:
                factor /= 1.0 - q
                notes.append(f"{op.label()} after the layer: current variance / (1-{q:g})")
        elif op.kind == "normalization":
            notes.append(f"{op.label()} normalizes the current: in training mode the neurons see "
                         "its weight gamma, not this layer's scale (calibrate scales gamma)")
        elif op.kind != "reshape":
            notes.append(f"{op.label()} after the layer: not modelled")
    return factor, notes


def _normalized_moments(module: nn.Module | None) -> tuple[float, float]:
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    if not isinstance(weight, Tensor):
        return 0.0, 1.0
    gamma = weight.detach().double()
    shift = bias.detach().double() if isinstance(bias, Tensor) else torch.zeros_like(gamma)
    return float(shift.mean()), float((gamma.square() + shift.square()).mean())


def _layer_context_and_notes(
    layer: SynapticLayer,
    threshold: float | None,
    beta: float | None,
    input_second_moment: float,
    sigma: float,
    steps: int,
    depth: int | None,
) -> tuple[LayerContext, list[str]]:
    fan_in, fan_out = compute_fans(layer.module.weight)
    description = layer.target_description or layer.source_description
    own = threshold if threshold is not None else (
        description.effective_threshold if description is not None else 1.0)
    neuron = layer.target if layer.target is not None else layer.source
    params = neuron.params if isinstance(neuron, LIF) else None
    factor, notes = current_factor(layer)
    source_threshold = None
    if layer.source is not None:
        source_threshold = threshold if threshold is not None else (
            layer.source_description.effective_threshold
            if layer.source_description is not None else 1.0)
        measured = layer.measured_second_moment
        if layer.source_driven_by_data and measured is not None and measured > 0:
            second: float | None = measured * factor
            notes.insert(0, f"input spikes of {layer.source_name} (driven by the data): "
                            f"E[x^2] = {measured:.4g} measured on the sample")
        else:
            if layer.source_driven_by_data and measured is not None:
                notes.insert(0, f"the input spikes of {layer.source_name} are silent on the "
                                "sample: assumed Q(theta/sigma) instead")
            _, spikes, before = input_statistics(layer, sigma, source_threshold)
            notes[:0] = before
            plain = (not before and factor == 1.0 and (
                layer.source_description is None or layer.source_description.spike_amplitude == 1))
            second = None if plain else spikes * factor
    else:
        measured = layer.measured_second_moment
        data = measured if measured is not None and measured > 0 else input_second_moment
        if measured is not None and measured <= 0:
            notes.insert(0, f"the input of {layer.name} is all zeros on the sample: assumed "
                            f"E[x^2] = {input_second_moment:g}")
        second = data * factor
    ctx = LayerContext(
        fan_in=fan_in,
        fan_out=fan_out,
        threshold=own,
        beta=(description.beta if description is not None else 0.5) if beta is None else beta,
        reset=description.reset if description is not None else "subtract",
        reset_order=description.reset_order if description is not None else "delayed",
        surrogate=params.surrogate if params is not None else "fast-sigmoid",
        surrogate_slope=params.surrogate_slope if params is not None else None,
        sigma=sigma,
        steps=steps,
        depth=depth,
        input_threshold=source_threshold,
        input_second_moment=second,
    )
    return ctx, notes


def layer_context(
    layer: SynapticLayer,
    threshold: float | None = None,
    beta: float | None = None,
    input_second_moment: float = 1.0,
    sigma: float = 1.0,
    steps: int = 1,
    depth: int | None = None,
) -> LayerContext:
    r"""The :class:`LayerContext` of one layer, from its neurons (explicit values override).

    The threshold is the receiving neurons' effective :math:`\tilde\theta = \theta/g`; a layer
    fed by spikes sees :math:`E[x^2] = a^2 Q(\tilde\theta_{src}/\sigma)` (changed by pooling,
    dropout or normalization on the way, see :func:`input_statistics`), or the value measured on
    the sample when its source neurons are driven by the data; a layer fed by data sees the
    measured :math:`E[x^2]`, else ``input_second_moment``.
    """
    return _layer_context_and_notes(layer, threshold, beta, input_second_moment, sigma, steps,
                                    depth)[0]


def initialize(
    model: nn.Module,
    method: str = "paper",
    threshold: float | None = None,
    beta: float | None = None,
    sample: Any = None,
    input_second_moment: float | None = None,
    sigma: float = 1.0,
    steps: int = 1,
    generator: torch.Generator | None = None,
    forward: Forward | None = None,
    **options: Any,
) -> list[InitRecord]:
    r"""Initialize every Linear/Conv layer of any spiking model from the neurons around it.

    Each layer gets the weight statistics of ``method`` (see
    :func:`~spikeinit.init.registry.available_methods`) for its fan-in :math:`n` and the neurons
    it drives, read from spikeinit's ``LIF``, snnTorch (``Leaky``, ``Synaptic``, ``RLeaky``),
    SpikingJelly (``IFNode``, ``LIFNode``, ``ParametricLIFNode``) or Norse (``LIFCell``,
    ``LIF``, ``LIFBoxCell``). For ``paper``:

    .. math::

        \mathrm{Var}[w] = \frac{\sigma^2}{n\,E[x^2]},\qquad
        E[x^2] = Q(\tilde\theta_{src}/\sigma)\ \text{(spikes)},\qquad
        \tilde\theta = \theta / g,

    with :math:`g` the neurons' input gain (e.g. :math:`1/\tau` for SpikingJelly's ``LIFNode``
    with ``decay_input=True``, ``dt * tau_mem_inv`` for Norse). A layer fed by data uses the
    data's :math:`E[x^2]`: measured at the layer's input when ``sample`` is given (the model
    runs once on it, with forward hooks, to link layers and neurons in forward order; pass
    ``forward(model, sample)`` when calling the model needs more than ``model(sample)``), else
    ``input_second_moment`` (default 1). Without ``sample``, layers and neurons are linked in
    module order.

    ``threshold`` and ``beta`` override the values read from the neurons (``threshold`` is the
    effective :math:`\tilde\theta`). Pooling, dropout and normalization between the layers are
    modelled as in :func:`input_statistics` and :func:`current_factor`; what cannot be modelled
    is named in a warning. Layers whose neurons no adapter understands, recurrent weights inside
    neurons and layers the sample does not reach are left unchanged and named in a warning;
    layers with no spiking neuron around them get the defaults (:math:`\theta = 1`,
    :math:`\beta = 0.5`) and a warning.

    Example:
        >>> from spikeinit.models import SpikingMLP
        >>> records = initialize(SpikingMLP([100, 100, 10]), method="paper")
    """
    chosen, parsed = get_method(method)
    options = {**parsed, **options}
    if threshold is not None:
        check_finite_nonnegative("threshold", threshold)
    if beta is not None:
        check_unit_interval("beta", beta)
    check_positive("sigma", sigma)
    check_positive_int("steps", steps)
    if sample is not None and input_second_moment is not None:
        raise ValueError("pass either sample or input_second_moment, not both")
    data_moment = 1.0 if input_second_moment is None else check_positive(
        "input_second_moment", input_second_moment)
    try:
        network = discover(model, sample, forward)
    except ValueError as error:  # the model cannot run on the sample: the old, data-only use
        if not isinstance(sample, Tensor) or not str(error).startswith("sample:"):
            raise
        warnings.warn(f"{error}; layers are paired in module order instead, and the layers fed "
                      "by data use E[x^2] of the sample", stacklevel=2)
        network = discover(model)
        data_moment = check_positive("E[x^2] of sample",
                                     float(sample.detach().double().pow(2).mean()))
    depth = max(sum(site.description is not None for site in network.neurons), 1)
    _warn_unchanged(network)
    orphans = [layer.name for layer in network.layers if layer.problem is None
               and layer.source is None and layer.target is None]
    if orphans:
        warnings.warn(
            f"no LIF neurons found around {', '.join(orphans)}; initialized with default "
            "threshold/beta (pass threshold= and beta=, or use spikeinit's LIF or a supported "
            "snnTorch/SpikingJelly/Norse neuron)",
            stacklevel=2,
        )
    records, unmodelled, faint = [], [], []
    for layer in network.layers:
        if layer.problem is not None:
            continue
        ctx, notes = _layer_context_and_notes(layer, threshold, beta, data_moment, sigma, steps,
                                              depth)
        unmodelled += [f"{layer.name}: {note}" for note in notes if "not modelled" in note]
        if ctx.input_threshold is not None and ctx.input_threshold / sigma > FAR_THRESHOLD:
            faint.append(f"{layer.name} (theta/g = {ctx.input_threshold:g})")
        notes += list(layer.notes)
        bias = getattr(layer.module, "bias", None)
        mean, variance = chosen.initialize_(layer.module.weight, bias, ctx, generator, **options)
        records.append(InitRecord(
            layer.name, method, ctx.fan_in, mean, variance**0.5, neuron=layer.target_name,
            threshold=ctx.threshold, beta=ctx.beta,
            input_second_moment=ctx.input_second_moment, notes=tuple(notes),
        ))
    if unmodelled:
        warnings.warn("initialized without modelling: " + "; ".join(unmodelled)
                      + " (spikeinit.calibrate measures their effect)", stacklevel=2)
    if faint:
        warnings.warn(
            f"the input neurons of {', '.join(faint)} sit more than {FAR_THRESHOLD:g} sigma "
            f"below threshold (sigma={sigma:g}): they would hardly spike, and the weights are "
            "scaled up to match; pass sigma=spikeinit.theory.stable_sigma(theta/g) for a stable "
            "operating point", stacklevel=2)
    return records


def _warn_unchanged(network: NetworkMap) -> None:
    unchanged = [f"{layer.name} ({layer.problem})" for layer in network.layers if layer.problem]
    unchanged += [f"{name} (a weight layer inside a neuron)" for name in network.internal]
    if unchanged:
        warnings.warn("left unchanged: " + "; ".join(unchanged), stacklevel=3)

