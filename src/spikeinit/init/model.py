r"""Model-level initialization: every synaptic layer of any model, from the neurons around it.

:func:`initialize` works on models built from spikeinit's :class:`~spikeinit.neurons.LIF` and on
snnTorch, SpikingJelly and Norse models alike (see :mod:`spikeinit.adapters`). Each framework's
neuron is read as a LIF with threshold :math:`\theta`, decay :math:`\beta` and input gain
:math:`g`; the initializers see the equivalent unit-gain neuron, with the effective threshold
:math:`\tilde\theta = \theta/g`. Its steps live in their own modules: the trace of the model
(:mod:`~spikeinit.init.tracing`), each layer's context (:mod:`~spikeinit.init.network_context`),
the operating point :math:`\sigma` (:mod:`~spikeinit.init.operating_point`), the adjustments for
normalization, data and residual additions (:mod:`~spikeinit.init.adjust`), the measured step
(:mod:`~spikeinit.init.realized`), the records (:mod:`~spikeinit.init.records`) and the
warnings (:mod:`~spikeinit.init.notices`). docs/methods.md describes each step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from spikeinit._validation import (
    check_finite_nonnegative,
    check_module,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.init.adjust import (
    draw_behind_norm,
    exact_on_data,
    realized_records,
    residual_share,
    training_normalization,
)
from spikeinit.init.attention import attention_record, attention_units
from spikeinit.init.baselines import BASELINE_METHODS
from spikeinit.init.horizon import leading_steps, theory_steps
from spikeinit.init.network_context import layer_context, layer_context_and_notes
from spikeinit.init.notices import (
    warn_about_attention,
    warn_about_the_draw,
    warn_about_the_network,
    warn_each_once,
)
from spikeinit.init.operating_point import OperatingPoint
from spikeinit.init.realized import RealizeUnit, realize_units
from spikeinit.init.records import AttentionRecord, InitRecord, InitResult
from spikeinit.init.recurrent import covered_internal, initialize_loops, recurrent_options
from spikeinit.init.registry import InitMethod, get_method
from spikeinit.init.residual import ResidualPlan
from spikeinit.init.tracing import sample_autocorrelation, traced_or_in_module_order
from spikeinit.network import Forward, NetworkMap, Note, SynapticLayer, discover, of_kind
from spikeinit.network.recurrent import RecurrentLoop, find_loops

DEFAULT_METHOD = "trainable"

__all__ = [
    "DEFAULT_METHOD",
    "InitRecord",
    "InitResult",
    "find_synaptic_layers",
    "initialize",
    "layer_context",
]


def find_synaptic_layers(
    model: nn.Module, sample: Any = None, forward: Forward | None = None
) -> list[SynapticLayer]:
    """Every Linear/Conv layer of ``model`` with its source and target neurons.

    In module order without ``sample``; in forward order, linked by the tensors that flow
    between the layers, when ``sample`` is given (see :func:`spikeinit.network.discover`).

    Example:
        >>> from spikeinit.models import SpikingMLP
        >>> layers = find_synaptic_layers(SpikingMLP([4, 8, 2]))
        >>> [(layer.name, layer.target_name) for layer in layers]
        [('blocks.0.0', 'blocks.0.1'), ('blocks.1.0', 'blocks.1.1')]
    """
    return discover(model, sample, forward).layers


def initialize(
    model: nn.Module,
    method: str | None = None,
    *,
    threshold: float | None = None,
    beta: float | None = None,
    sample: Any = None,
    input_second_moment: float | None = None,
    sigma: float | None = None,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    forward: Forward | None = None,
    realize: bool | None = None,
    **options: Any,
) -> InitResult:
    r"""Initialize every Linear/Conv layer of any spiking model from the neurons around it.

    Each layer, in forward order (module order without ``sample``), gets the weight statistics
    of ``method`` (:func:`~spikeinit.init.registry.available_methods`; default ``trainable``,
    ``stable`` when only ``sigma`` is given) for its fan-in :math:`n` and the neurons it drives.
    ``paper`` and ``stable`` draw

    .. math::

        \mathrm{Var}[w] = \frac{\sigma^2}{n\,E[x^2]},\qquad
        E[x^2] = Q(\tilde\theta_{src}/\sigma_{src})\ \text{(spikes)},\qquad
        \tilde\theta = \theta / g,

    with :math:`E[x^2]` measured on ``sample`` for a layer fed by data (else
    ``input_second_moment``, default 1). ``stable`` chooses
    :math:`\sigma = \max(1, \tilde\theta / a_{1/3})` per population, where the layer map's fixed
    point has slope :math:`a\varphi(a)/(2Q(a)) = 1/3`; ``trainable`` sets every population at
    the rate 0.1, held by the temporal mean field over ``steps`` (read from the run on
    ``sample`` when not given; at most :data:`~spikeinit.init.horizon.THEORY_STEPS` of them).
    A BatchNorm in training mode before the neurons gets
    :math:`\gamma` = the method's current std; a layer in a residual addition gets its share
    of the sum; with ``sample`` and a rate target each layer is then measured on the sample
    and rescaled to it (``realize``). A recurrent population gets its recurrent weights at the
    loop gain ``loop_gain`` (default 1/2) or the memory time ``memory_time`` of the theory, and
    its feed-forward drive measured for the rate (:mod:`~spikeinit.init.recurrent`).
    ``threshold`` and ``beta`` override the neurons' values;
    ``forward(model, sample)`` replaces ``model(sample)``; ``options`` go to the method.
    docs/methods.md describes every step.

    Returns the :class:`~spikeinit.init.records.InitResult`: one record per layer drawn.

    Example:
        >>> from spikeinit.models import SpikingMLP
        >>> result = initialize(SpikingMLP([100, 100, 10]), method="paper")
        >>> len(result), result[0].sigma, result[0].sigma_auto
        (2, 1.0, False)
    """
    check_module("model", model)
    options, recurrent = recurrent_options(options)
    spec, chosen, options = _method_and_options(method, sigma, options)
    _check_arguments(threshold, beta, sigma, steps, sample, input_second_moment)
    network, data_moment = traced_or_in_module_order(
        model, sample, forward, realize is True or (realize is None and chosen.rate_target),
        1.0 if input_second_moment is None else input_second_moment)
    if chosen.name not in BASELINE_METHODS:
        _check_thresholds(network, threshold)
    loops = find_loops(model, network)
    network.internal = covered_internal(network, loops)
    warn_about_the_network(network, {name for loop in loops for name in loop.covers})
    point = OperatingPoint(chosen, network, sigma, threshold, options)
    realizing = _realizing(realize, sample, point, chosen)
    steps = steps if steps is not None else network.steps() or 1
    horizon = theory_steps(steps)
    draw = _Draw(spec, chosen, _draft_when_realized(chosen, options, realizing), threshold,
                 beta, sigma, data_moment, horizon, _depth(network), generator, network, point,
                 ResidualPlan(network),
                 sample_autocorrelation(leading_steps(sample, steps), horizon), realizing,
                 steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drawn = [_draw_layer(layer, draw) for layer in network.layers if layer.problem is None]
        records, attention = _measured([d.record for d in drawn],
                                       [d.unit for d in drawn if d.unit], model, sample,
                                       forward, draw)
        records = initialize_loops(model, network, loops, records, spec, sample, forward,
                                   point.rate, threshold, beta, generator, recurrent)
        records = _measured_after_loops(records, [d.unit for d in drawn if d.unit], loops,
                                        model, sample, forward, draw)
    warn_each_once(caught)
    warn_about_the_draw([u for d in drawn for u in d.unmodelled],
                        [d.faint for d in drawn if d.faint], sigma, point, chosen)
    if chosen.name not in BASELINE_METHODS:  # a baseline sets no rate, attention's included
        warn_about_attention(attention, point.rate)
    return InitResult(tuple(records), tuple(attention))


def _method_and_options(method: str | None, sigma: float | None, options: dict[str, Any]
                        ) -> tuple[str, InitMethod, dict[str, Any]]:
    """The method as asked for (a given ``sigma`` alone asks for ``stable``), its registry
    entry, and its options (those parsed from ``'name=value'`` and the keyword ones)."""
    spec = method if method is not None else DEFAULT_METHOD if sigma is None else "stable"
    chosen, parsed = get_method(spec)
    if chosen.rate_target and sigma is not None:
        raise InvalidArgumentError(
            f"sigma: init {chosen.name!r} sets a rate, not a sigma; pass "
            f"{chosen.name}=<rate>, or method='stable' (or 'paper') with sigma=")
    return spec, chosen, {**parsed, **options}


def _check_arguments(threshold: float | None, beta: float | None, sigma: float | None,
                     steps: int | None, sample: Any, input_second_moment: float | None) -> None:
    if threshold is not None:
        check_finite_nonnegative("threshold", threshold)
    if beta is not None:
        check_unit_interval("beta", beta)
    if sigma is not None:
        check_positive("sigma", sigma)
    if steps is not None:
        check_positive_int("steps", steps)
    if sample is not None and input_second_moment is not None:
        raise InvalidArgumentError("pass either sample or input_second_moment, not both")
    if input_second_moment is not None:
        check_positive("input_second_moment", input_second_moment)


def _check_thresholds(network: NetworkMap, threshold: float | None) -> None:
    """Refuse neurons whose effective threshold is not positive: no scale of their weights
    sets their rate (a membrane above 0 fires whatever its size)."""
    if threshold is not None:
        if not threshold > 0:
            raise InvalidArgumentError(
                f"threshold must be positive for initialize, got {threshold!r}: at a zero "
                "threshold no scale of the weights sets the rate")
        return
    for site in network.neurons:
        theta = site.description.effective_threshold if site.description is not None else None
        if theta is not None and not theta > 0:
            raise InvalidArgumentError(
                f"{site.name}: threshold {site.description.threshold!r} (theta/g = {theta!r}) "
                "must be positive for initialize: at a zero threshold no scale of the weights "
                "sets the rate; give the neurons a positive threshold or pass threshold=")


def _realizing(realize: bool | None, sample: Any, point: OperatingPoint,
               method: InitMethod) -> bool:
    """Whether each layer is made exact on the sample (:mod:`spikeinit.init.realized`):
    ``realize=None`` whenever there is a sample and a rate target (the default method)."""
    if realize is None:
        return sample is not None and point.rate is not None
    if not isinstance(realize, bool):
        raise TypeError(f"realize must be True, False or None, got {realize!r}")
    if realize and sample is None:
        raise InvalidArgumentError("realize=True measures each layer on the sample: pass sample=")
    if realize and point.rate is None:
        raise InvalidArgumentError(
            f"realize=True needs a rate target; init {method.name!r} has none "
            "(use the default 'trainable', or trainable=<rate>)")
    return realize


def _draft_when_realized(method: InitMethod, options: dict[str, Any], realizing: bool
                         ) -> dict[str, Any]:
    """The options, with the one-step draft draw where each layer is measured afterwards."""
    if realizing and "draft" in method.options:
        return {**options, "draft": True}
    return options


def _depth(network: NetworkMap) -> int:
    """The number of understood spiking populations (at least 1)."""
    return max(sum(site.description is not None for site in network.neurons), 1)


@dataclass(frozen=True)
class _Draw:
    """What every layer's draw shares: the arguments of :func:`initialize`, as checked and
    read, the network, its operating point and its residual plan."""

    spec: str
    method: InitMethod
    options: dict[str, Any]
    threshold: float | None
    beta: float | None
    sigma: float | None
    data_moment: float
    steps: int
    depth: int
    generator: torch.Generator | None
    network: NetworkMap
    point: OperatingPoint
    plan: ResidualPlan
    autocorrelation: tuple[tuple[float, ...], ...] | None
    realizing: bool
    measured_steps: int  # the sample's T; ``steps`` is the theory's (init.horizon)


@dataclass(frozen=True)
class _DrawnLayer:
    """One layer drawn: its record, its unit for the measured step, what it warns about."""

    record: InitRecord
    unit: RealizeUnit | None
    unmodelled: list[str]
    faint: str | None


def _draw_layer(layer: SynapticLayer, draw: _Draw) -> _DrawnLayer:
    """Draw one layer: its context, the method's draw (or the normalization's gamma), the
    data rescaling and its residual share; its record."""
    target_sigma, source_sigma = draw.point.layer_sigmas(layer)
    ctx, notes = layer_context_and_notes(
        layer, draw.threshold, draw.beta, draw.data_moment, target_sigma, draw.steps,
        draw.depth, source_sigma, draw.point.first_sigma, draw.plan.input_second_moment(layer))
    if draw.autocorrelation is not None:
        ctx = replace(ctx, input_autocorrelation=draw.autocorrelation)
    unmodelled = [f"{layer.name}: {note}" for note in of_kind(notes, "unmodelled")]
    faint = (f"{layer.name} (theta/g = {ctx.input_threshold:g})"
             if draw.point.faint_input(ctx) else None)
    notes += list(layer.notes)
    norm = training_normalization(layer) if draw.method.norm_sigma is not None else None
    if norm is not None:
        mean, variance, used = draw_behind_norm(layer, norm, draw.method, ctx, draw.generator,
                                                draw.options)
        auto = draw.sigma is None
        reason = f"{norm.name} (BatchNorm) gamma: the current std of the neurons behind it"
        notes.append(Note("modelled", layer.name,
                          f"{norm.label()} follows: weights at PyTorch's default scale "
                          f"(Var = 1/(3n)), its gamma set to {used:.4g}, its beta to 0"))
    else:
        bias = getattr(layer.module, "bias", None)
        mean, variance = draw.method.initialize_(layer.module.weight, bias, ctx, draw.generator,
                                                 **draw.options)
        used, auto, reason = draw.point.record(layer, ctx)
        if draw.method.norm_sigma is not None and layer.name in draw.network.data_inputs:
            variance = exact_on_data(layer, draw.network.data_inputs[layer.name], ctx, variance,
                                     notes)
    variance, share = residual_share(draw.plan, layer, ctx, norm, variance, used, draw.point,
                                     notes)
    if norm is not None and used is not None:
        used *= share  # the gamma it set
    unit = (RealizeUnit(layer, layer.module if norm is None else norm.module,
                        replace(ctx, steps=draw.measured_steps)) if draw.realizing else None)
    record = InitRecord(
        layer.name, draw.spec, ctx.fan_in, mean, variance**0.5, neuron=layer.target_name,
        threshold=ctx.threshold, beta=ctx.beta, input_second_moment=ctx.input_second_moment,
        notes=tuple(notes), sigma=used, sigma_auto=auto, sigma_reason=reason,
        sigma_fixed_point=draw.method.sigma_fixed_point and used is not None)
    return _DrawnLayer(record, unit, unmodelled, faint)


def _measured_after_loops(records: list[InitRecord], units: list[RealizeUnit],
                          loops: list[RecurrentLoop], model: nn.Module, sample: Any,
                          forward: Forward | None, draw: _Draw) -> list[InitRecord]:
    """The records after the layers that a recurrent population drives, directly or further
    on, are made exact on the sample again: their input changed when the loops were set."""
    if not loops or not draw.realizing:
        return records
    order = {site.name: index for index, site in enumerate(draw.network.neurons)}
    first = min(order.get(loop.neuron_name, len(order)) for loop in loops)
    drives = {loop.drive_name for loop in loops}
    after = [unit for unit in units if unit.layer.name not in drives
             and order.get(unit.layer.target_name or "", -1) > first]
    if not after:
        return records
    realized, _ = realize_units(model, sample, forward, draw.network, draw.plan, after,
                                draw.point.rate)
    return realized_records(records, after, realized)


def _measured(records: list[InitRecord], units: list[RealizeUnit], model: nn.Module,
              sample: Any, forward: Forward | None, draw: _Draw
              ) -> tuple[list[InitRecord], list[AttentionRecord]]:
    """The records after each layer of ``units`` is made exact on the sample and each
    attention population set (:func:`~spikeinit.init.realized.realize_units`); as they are
    without units, with the attention populations left as they were."""
    attention = attention_units(model, draw.network, draw.steps)
    if not draw.realizing:
        return records, [AttentionRecord(
            unit.name, unit.attention.product, None, None, None, None,
            ("set only on a sample with a rate target (the default init with sample=)",))
            for unit in attention]
    before = {unit.name: unit.knob.value() for unit in attention if unit.knob is not None}
    realized, attended = realize_units(model, sample, forward, draw.network, draw.plan, units,
                                       draw.point.rate, attention)
    return realized_records(records, units, realized), [
        attention_record(unit, before.get(unit.name), attended.get(unit.name))
        for unit in attention]

