r"""Model-level initialization: every synaptic layer of any model, from the neurons around it.

:func:`initialize` works on models built from spikeinit's :class:`~spikeinit.neurons.LIF` and on
snnTorch, SpikingJelly and Norse models alike (see :mod:`spikeinit.adapters`). Each framework's
neuron is read as a LIF with threshold :math:`\theta`, decay :math:`\beta` and input gain
:math:`g`; the initializers see the equivalent unit-gain neuron, with the effective threshold
:math:`\tilde\theta = \theta/g`, and ``sigma`` is the membrane standard deviation in those units
(the input current's, at the first step). The default method ``trainable`` sets a rate instead
(:mod:`spikeinit.init.trainable`); ``stable`` chooses :math:`\sigma` per population from the
stability of the layer map (the *operating point*, see :func:`spikeinit.theory.operating_sigma`),
and the records and :func:`spikeinit.report` show it.
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from scipy.stats import norm as gaussian
from torch import Tensor, nn

from spikeinit._validation import (
    check_finite_nonnegative,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from spikeinit.adapters.description import NeuronDescription
from spikeinit.adapters.registry import describe_neuron, is_spiking_neuron
from spikeinit.errors import InvalidArgumentError
from spikeinit.init.context import LayerContext
from spikeinit.init.fan import compute_fans
from spikeinit.init.realized import Realized, RealizeUnit, realize_units
from spikeinit.init.registry import InitMethod, get_method
from spikeinit.init.residual import ResidualPlan, center_filters, scale_module
from spikeinit.network.graph import (
    SYNAPTIC_TYPES,
    Forward,
    NetworkMap,
    Operation,
    SynapticLayer,
    check_finite_sample,
    discover,
)
from spikeinit.network.moments import current_factor, gaussian_rate, input_statistics
from spikeinit.network.notes import Note, of_kind
from spikeinit.network.time_axis import SampleError, TimeAxisError
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.tables import TabularResult, fmt
from spikeinit.theory.gaussian import tail_probability
from spikeinit.theory.static import stability_slope
from spikeinit.theory.temporal import data_autocorrelation

FAR_THRESHOLD = 3.0  # theta/(g sigma) beyond which initialize warns: rate Q(3) = 0.13%
DEFAULT_METHOD = "trainable"

__all__ = [
    "SYNAPTIC_TYPES",
    "InitRecord",
    "InitResult",
    "SynapticLayer",
    "find_synaptic_layers",
    "init_record",
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

    ``sigma`` is the target membrane std :math:`\sigma` of the neurons the layer drives (for the
    temporal methods: :math:`\sigma_1`, the std of the first layer's current, which sets their
    target rate). ``sigma_auto`` says whether :func:`initialize` chose it (no ``sigma=`` passed,
    the method has an operating point), and ``sigma_reason`` why, with the slope
    :math:`a\varphi(a)/(2Q(a))`, :math:`a = \tilde\theta/\sigma`, at :math:`\sigma = 1` and at
    the chosen :math:`\sigma`.

    Example:
        >>> from spikeinit.models import SpikingMLP
        >>> record = initialize(SpikingMLP([4, 8, 2]), "paper")[0]
        >>> record.name, record.fan_in, record.sigma
        ('blocks.0.0', 4, 1.0)
        >>> round(record.std, 4) == round((1 / (4 * tail_probability(1.0))) ** 0.5, 4)
        True
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
    sigma: float | None = None
    sigma_auto: bool = False
    sigma_reason: str = ""


class InitResult(list, TabularResult):
    """What :func:`initialize` returns: the list of :class:`InitRecord` s, one per layer, with
    :meth:`table`, :meth:`print`, :meth:`to_csv` and :meth:`as_dicts`."""

    def as_dicts(self) -> list[dict[str, Any]]:
        return [{**asdict(record), "notes": "; ".join(record.notes)} for record in self]

    def csv_fields(self) -> list[str]:
        return list(InitRecord.__dataclass_fields__)

    def table_rows(self) -> list[list[str]]:
        rows = [["layer", "method", "neuron", "fan_in", "theta/g", "beta", "sigma", "w mean",
                 "w std", "notes"]]
        for record in self:
            sigma = fmt(record.sigma) + ("*" if record.sigma_auto else "")
            rows.append([record.name, record.method, record.neuron or "-", str(record.fan_in),
                         fmt(record.threshold), fmt(record.beta), sigma, fmt(record.mean),
                         fmt(record.std), str(len(record.notes))])
        return rows

    def table_notes(self) -> tuple[str, ...]:
        reasons = {record.sigma_reason for record in self if record.sigma_auto}
        return tuple(f"sigma* chosen by initialize: {reason}" for reason in sorted(reasons))


_RECORDS: weakref.WeakKeyDictionary[nn.Module, tuple[InitRecord, int]] = (
    weakref.WeakKeyDictionary())


def init_record(module: nn.Module) -> InitRecord | None:
    """The :class:`InitRecord` of :func:`initialize`'s last draw of ``module``'s weights.

    ``None`` when :func:`initialize` did not draw them, or when they changed since (training,
    :func:`spikeinit.calibrate` or a manual edit bump the tensor's version counter).
    """
    entry = _RECORDS.get(module)
    weight = getattr(module, "weight", None)
    if entry is None or not isinstance(weight, Tensor) or weight._version != entry[1]:
        return None
    return entry[0]


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


def _layer_context_and_notes(
    layer: SynapticLayer,
    threshold: float | None,
    beta: float | None,
    input_second_moment: float,
    sigma: float,
    steps: int,
    depth: int | None,
    input_sigma: float | None = None,
    first_sigma: float | None = None,
    summed: tuple[float, Note] | None = None,
) -> tuple[LayerContext, list[str]]:
    fan_in, fan_out = compute_fans(layer.module.weight)
    source_sigma = sigma if input_sigma is None else input_sigma
    description = layer.target_description or layer.source_description
    own = threshold if threshold is not None else (
        description.effective_threshold if description is not None else 1.0)
    factor, notes = current_factor(layer)
    source_threshold = None
    if summed is not None:  # fed by an addition: its predicted E[x^2] (spikeinit.init.residual)
        second = summed[0] * factor
        notes.insert(0, summed[1])
    elif layer.source is not None:
        source_threshold = threshold if threshold is not None else (
            layer.source_description.effective_threshold
            if layer.source_description is not None else 1.0)
        measured = layer.measured_second_moment
        if layer.source_driven_by_data and measured is not None and measured > 0:
            second: float | None = measured * factor
            notes.insert(0, Note("measured", layer.name,
                                 f"input spikes of {layer.source_name} (driven by the data): "
                                 f"E[x^2] = {measured:.4g} measured on the sample"))
        else:
            if layer.source_driven_by_data and measured is not None:
                notes.insert(0, Note("assumed", layer.name,
                                     f"the input spikes of {layer.source_name} are silent on "
                                     "the sample: assumed Q(theta/sigma) instead"))
            _, spikes, before = input_statistics(layer, source_sigma, source_threshold)
            notes[:0] = before
            plain = (not before and factor == 1.0 and (
                layer.source_description is None or layer.source_description.spike_amplitude == 1))
            second = None if plain else spikes * factor
    else:
        measured = layer.measured_second_moment
        data = measured if measured is not None and measured > 0 else input_second_moment
        if measured is not None and measured <= 0:
            notes.insert(0, Note("assumed", layer.name,
                                 f"the input of {layer.name} is all zeros on the sample: "
                                 f"assumed E[x^2] = {input_second_moment:g}"))
        second = data * factor
    ctx = LayerContext(
        fan_in=fan_in,
        fan_out=fan_out,
        neuron=_neuron_parameters(description, own, beta),
        sigma=sigma,
        steps=steps,
        depth=depth,
        input_threshold=source_threshold,
        input_second_moment=second,
        input_sigma=input_sigma,
        input_is_data=layer.source is None and summed is None,
        first_sigma=first_sigma,
        synaptic_decay=description.synaptic_decay if description is not None else 0.0,
    )
    return ctx, notes


def _training_normalization(layer: SynapticLayer) -> Operation | None:
    """The normalization in training mode, with an affine weight, between ``layer`` and its
    neurons (the first one), or ``None``."""
    for op in layer.after:
        if (op.kind == "normalization" and op.module is not None and op.module.training
                and isinstance(getattr(op.module, "weight", None), Tensor)):
            return op
    return None


def _draw_behind_norm(layer: SynapticLayer, norm: Operation, method: InitMethod,
                      ctx: LayerContext, generator: torch.Generator | None,
                      options: dict[str, Any]) -> tuple[float, float, float]:
    r"""Weights at PyTorch's default scale, :math:`\mathrm{Var}[w] = 1/(3n)` (the forward pass
    does not see it behind the normalization; it sets the optimizer's relative step, and this
    scale trained best in docs/operating-point.md), and the normalization's :math:`\gamma` set
    to the method's current std: ``(mean, var, gamma)``."""
    resolved = method.resolve_options(options)
    gamma = float(method.norm_sigma(ctx, resolved))
    variance = 1.0 / (3.0 * ctx.fan_in)
    with torch.no_grad():
        layer.module.weight.normal_(0.0, variance**0.5, generator=generator)
        bias = getattr(layer.module, "bias", None)
        if isinstance(bias, Tensor):
            bias.zero_()
        norm.module.weight.fill_(gamma)
        if isinstance(getattr(norm.module, "bias", None), Tensor):
            norm.module.bias.zero_()
    return 0.0, variance, gamma


def _neuron_parameters(description: NeuronDescription | None, threshold: float,
                       beta: float | None) -> LIFParameters:
    """The receiving neurons as the engine's :class:`LIFParameters` (unit gain, effective
    threshold), with ``threshold`` and a given ``beta`` in place of theirs."""
    base = description.lif_parameters() if description is not None else LIFParameters()
    return replace(base, threshold=threshold, beta=base.beta if beta is None else beta)


def layer_context(
    layer: SynapticLayer,
    threshold: float | None = None,
    beta: float | None = None,
    input_second_moment: float = 1.0,
    sigma: float = 1.0,
    steps: int = 1,
    depth: int | None = None,
    input_sigma: float | None = None,
    first_sigma: float | None = None,
) -> LayerContext:
    r"""The :class:`LayerContext` of one layer, from its neurons (explicit values override).

    The threshold is the receiving neurons' effective :math:`\tilde\theta = \theta/g`; a layer
    fed by spikes sees :math:`E[x^2] = a^2 Q(\tilde\theta_{src}/\sigma)` (changed by pooling,
    dropout or normalization on the way, see :func:`input_statistics`), or the value measured on
    the sample when its source neurons are driven by the data; a layer fed by data sees the
    measured :math:`E[x^2]`, else ``input_second_moment``. ``sigma`` is the receiving neurons'
    membrane std, ``input_sigma`` the source neurons' (``None``: ``sigma``), ``first_sigma``
    the std of the current into the network's first spiking layer (the temporal methods').
    """
    return _layer_context_and_notes(layer, threshold, beta, input_second_moment, sigma, steps,
                                    depth, input_sigma, first_sigma)[0]


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

    Each layer gets the weight statistics of ``method`` (see
    :func:`~spikeinit.init.registry.available_methods`) for its fan-in :math:`n` and the neurons
    it drives, read from spikeinit's ``LIF``, snnTorch (``Leaky``, ``Synaptic``, ``RLeaky``),
    SpikingJelly (``IFNode``, ``LIFNode``, ``ParametricLIFNode``) or Norse (``LIFCell``,
    ``LIF``, ``LIFBoxCell``).

    **The default**, ``trainable`` (:mod:`spikeinit.init.trainable`), puts every population
    at the rate 0.1 that trained best in docs/operating-point.md, held by the stable fixed point
    of the temporal mean field over ``steps`` time steps, which ``initialize`` reads from the
    run on ``sample`` when not given (a single-step neuron's calls, a multi-step one's leading
    axis; 1 without a sample). When ``sigma`` is given, ``method=None`` is ``stable``.

    For ``stable`` and ``paper``:

    .. math::

        \mathrm{Var}[w] = \frac{\sigma^2}{n\,E[x^2]},\qquad
        E[x^2] = Q(\tilde\theta_{src}/\sigma_{src})\ \text{(spikes)},\qquad
        \tilde\theta = \theta / g,

    with :math:`g` the neurons' input gain (e.g. :math:`1/\tau` for SpikingJelly's ``LIFNode``
    with ``decay_input=True``, ``dt * tau_mem_inv`` for Norse). A layer fed by data uses the
    data's :math:`E[x^2]`: measured at the layer's input when ``sample`` is given (the model
    runs once on it, with forward hooks, to link layers and neurons in forward order; pass
    ``forward(model, sample)`` when calling the model needs more than ``model(sample)``), else
    ``input_second_moment`` (default 1). Which axis of the sample is time and which the batch
    is read from the neurons (:mod:`spikeinit.network.time_axis`); where the run shows the
    reading wrong a :class:`~spikeinit.network.TimeAxisError` says which axis was taken for
    what and how to pass ``forward=``, and where the model fails on the sample the
    :class:`~spikeinit.network.SampleError` says the same (where no layer is realized on the
    sample, a method without a rate target or ``realize=False``, the layers are then paired
    in module order and the message is a warning). With a ``sample``, the methods that set a
    current std (``paper``, ``stable``, ``trainable``) then rescale such a layer so that its
    current's :math:`E[I^2]` on the sample is exactly the one drawn for: on correlated inputs
    (image patches) one draw misses it by a factor 2 with a few output channels. Without ``sample``,
    layers and neurons are linked in module order.

    **The operating point** :math:`\sigma`. A given ``sigma`` is used for every population, as
    is. Without it, ``paper`` (and the methods that have no operating point) use the published
    :math:`\sigma = 1`, whose fixed point is unstable for :math:`\tilde\theta > 1.19`
    (SpikingJelly's default ``LIFNode(tau=2.0)`` has :math:`\tilde\theta = 2`, Norse's
    ``LIFCell()`` 10). ``stable`` chooses, for each population driven by a layer it draws,

    .. math::

        \sigma = \max\big(1, \tilde\theta / a_{1/3}\big),\qquad
        \frac{a_{1/3}\,\varphi(a_{1/3})}{2\,Q(a_{1/3})} = \frac13,\quad a_{1/3} = 0.5618,

    (:func:`~spikeinit.theory.operating_sigma`): the layer map's fixed point then has slope at
    most 1/3, so a bias per layer that the one-step theory does not see (leak, reset, a
    synaptic filter, finite width) moves the deep rate by half of it instead of
    :math:`s/(1-s)` times (9 times at slope 0.9). Populations driven by data directly keep
    :math:`\sigma = 1`. ``temporal`` chooses the same :math:`\sigma_1` for the current of the
    first layer when it draws the layer that drives it, and the other layers' gains from the
    temporal theory (see :mod:`spikeinit.init.temporal`). Each record carries
    :attr:`InitRecord.sigma` and why; a warning says so once when :math:`\sigma = 1` would have
    been unstable.

    **Normalization.** Where a BatchNorm in training mode (with an affine weight) sits between
    a layer and its neurons, it sets the scale they see, whatever the weights: methods with a
    current std (``paper``, ``stable``, ``trainable``) then set the norm's :math:`\gamma` to
    that std and its :math:`\beta` to 0, and draw the layer at PyTorch's default scale,
    :math:`\mathrm{Var}[w] = 1/(3n)`: behind the norm the weight scale only sets the
    optimizer's relative step, and weights inflated by :math:`\sigma^2/E[x^2]` trained
    measurably worse (docs/operating-point.md).

    **Residual additions.** A ``+`` (or ``+=``, ``torch.add``) between layers, as in SEW-,
    MS- and spiking ResNets, is traced (:class:`~spikeinit.network.Addition`) and modelled by
    :class:`~spikeinit.init.residual.ResidualPlan`: a layer fed by a sum is drawn for the
    sum's predicted variance, with centred filters; a layer whose current meets a shortcut
    before its neurons takes its share of their input (:mod:`spikeinit.theory.residual`), so
    that every population stays at its rate through depth (docs/architectures.md). With a
    ``sample`` and a rate target (``trainable``), each layer of such a network is then made
    exact on it, in forward order (:mod:`spikeinit.init.realized`): one pass measures the
    current its neurons receive, and the neurons' own update on that current, rescaled, finds
    the factor :math:`s` at which they fire at the rate
    (:func:`~spikeinit.theory.temporal_gain.scale_for_rate`); a branch of a membrane stream
    gets its share of the stream's variance exactly. The Gaussian maps alone miss the rate
    by up to 50 % on unnormalized stacks: their currents are correlated over the steps and
    heavy-tailed. The same holds for plain stacks: pooling of correlated spikes, slow membranes
    and data with structure over the steps all move the rate off the Gaussian theory
    (a SpikingJelly tutorial CNN fired at 0.066 / 0.026 / 0.009 / 0.005 after the theory
    alone). ``realize`` sets this step: ``None`` (the default) for every network when there
    is a ``sample`` and a rate target (``trainable``), ``True`` the same but an error without
    them, ``False`` never (the theory alone, as before). When a layer is realized, its first
    draw uses the one-step closed form instead of the temporal theory
    (:func:`~spikeinit.init.trainable.draft_std`): the measurement replaces it anyway, and
    the theory's simulations cost seconds; and the tracing pass of a multi-step model runs on
    :data:`TRACE_BATCH` of the sample's batch (the measured pass sees all of it). ``paper`` (no
    rate target) is never realized: it stays exactly as published.

    ``threshold`` and ``beta`` override the values read from the neurons (``threshold`` is the
    effective :math:`\tilde\theta`). Pooling, dropout and normalization between the layers are
    modelled as in :func:`input_statistics` and :func:`current_factor`; what cannot be modelled
    is named in a warning. Layers whose neurons no adapter understands, recurrent weights inside
    neurons and layers the sample does not reach are left unchanged and named in a warning;
    layers with no spiking neuron around them get the defaults (:math:`\theta = 1`,
    :math:`\beta = 0.5`) and a warning. A warning that the method gives for several layers is
    given once.

    Example:
        >>> from spikeinit.models import SpikingMLP
        >>> records = initialize(SpikingMLP([100, 100, 10]), method="paper")
        >>> records[0].sigma, records[0].sigma_auto
        (1.0, False)
    """
    if method is None:  # a sigma sets the paper's formula at that sigma: init 'stable'
        method = DEFAULT_METHOD if sigma is None else "stable"
    chosen, parsed = get_method(method)
    if chosen.rate_target and sigma is not None:
        raise InvalidArgumentError(f"sigma: init {chosen.name!r} sets a rate, not a sigma; pass "
                         f"{chosen.name}=<rate>, or method='stable' (or 'paper') with sigma=")
    options = {**parsed, **options}
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
    data_moment = 1.0 if input_second_moment is None else check_positive(
        "input_second_moment", input_second_moment)
    try:
        network = _traced(model, sample, forward,
                          realize is True or (realize is None and chosen.rate_target))
    except SampleError as error:  # the model cannot run on the sample: the old, data-only use
        realizing = realize is True or (realize is None and chosen.rate_target)
        if isinstance(error, TimeAxisError) or not isinstance(sample, Tensor) or realizing:
            raise  # wrong axes, or the sample is needed to run the model (each layer measured)
        warnings.warn(f"{error}; layers are paired in module order instead, and the layers fed "
                      "by data use E[x^2] of the sample", stacklevel=2)
        network = discover(model)
        data_moment = check_positive("E[x^2] of sample",
                                     float(sample.detach().double().pow(2).mean()))
    depth = max(sum(site.description is not None for site in network.neurons), 1)
    if steps is None:
        steps = network.steps() or 1
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
    point = OperatingPoint(chosen, network, sigma, threshold, options)
    autocorrelation = None
    if isinstance(sample, Tensor) and steps > 1 and sample.dim() >= 3 and (
            sample.shape[0] == steps and float(sample.detach().abs().sum()) > 0):
        autocorrelation = data_autocorrelation(sample)
    records, unmodelled, faint = [], [], []
    drawn: list[nn.Module] = []
    units: list[RealizeUnit] = []
    plan = ResidualPlan(network)
    realizing = _realizing(realize, sample, plan, point, chosen)
    if realizing and "draft" in chosen.options:
        options = {**options, "draft": True}  # each layer is measured and rescaled below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for layer in network.layers:
            if layer.problem is not None:
                continue
            target_sigma, source_sigma = point.layer_sigmas(layer)
            ctx, notes = _layer_context_and_notes(layer, threshold, beta, data_moment,
                                                  target_sigma, steps, depth, source_sigma,
                                                  point.first_sigma,
                                                  plan.input_second_moment(layer))
            if autocorrelation is not None:
                ctx = replace(ctx, input_autocorrelation=autocorrelation)
            unmodelled += [f"{layer.name}: {note}" for note in of_kind(notes, "unmodelled")]
            if (not point.auto and chosen.operating_layers == "all" and not chosen.rate_target
                    and ctx.input_threshold is not None
                    and ctx.input_second_moment is None
                    and ctx.input_threshold / ctx.source_sigma > FAR_THRESHOLD):
                faint.append(f"{layer.name} (theta/g = {ctx.input_threshold:g})")
            notes += list(layer.notes)
            bias = getattr(layer.module, "bias", None)
            norm = _training_normalization(layer)
            if norm is not None and chosen.norm_sigma is not None:
                mean, variance, used = _draw_behind_norm(layer, norm, chosen, ctx, generator,
                                                         options)
                auto, reason = sigma is None, (
                    f"{norm.name} (BatchNorm) gamma: the current std of the neurons behind it")
                notes.append(Note("modelled", layer.name,
                                  f"{norm.label()} follows: weights at PyTorch's default scale "
                                  f"(Var = 1/(3n)), its gamma set to {used:.4g}, its beta to 0"))
            else:
                norm = None
                mean, variance = chosen.initialize_(layer.module.weight, bias, ctx, generator,
                                                    **options)
                used, auto, reason = point.record(layer, ctx)
            if norm is None and chosen.norm_sigma is not None and (
                    layer.name in network.data_inputs):
                variance = _exact_on_data(layer, network.data_inputs[layer.name], ctx,
                                          variance, notes)
            variance, share = _residual_share(plan, layer, ctx, norm, variance, used, point,
                                              notes)
            if norm is not None and used is not None:
                used *= share  # the gamma it set
            if realizing:
                units.append(RealizeUnit(layer, layer.module if norm is None else norm.module,
                                         ctx))
            record = InitRecord(
                layer.name, method, ctx.fan_in, mean,
                variance**0.5, neuron=layer.target_name, threshold=ctx.threshold, beta=ctx.beta,
                input_second_moment=ctx.input_second_moment, notes=tuple(notes), sigma=used,
                sigma_auto=auto, sigma_reason=reason,
            )
            records.append(record)
            drawn.append(layer.module)
        if units:
            records = _realized_records(records, units, realize_units(
                model, sample, forward, network, plan, units, point.rate))
        for record, module in zip(records, drawn):
            _RECORDS[module] = (record, module.weight._version)
    _warn_once(caught)
    if unmodelled:
        warnings.warn("initialized without modelling: " + "; ".join(unmodelled)
                      + " (spikeinit.calibrate measures their effect)", stacklevel=2)
    if faint:
        warnings.warn(
            f"the input neurons of {', '.join(faint)} sit more than {FAR_THRESHOLD:g} sigma "
            f"below threshold (sigma={1.0 if sigma is None else sigma:g}): they would hardly "
            "spike, and the weights are scaled up to match; leave sigma out with init "
            "'stable', or use the default 'trainable', for a stable operating point", stacklevel=2)
    rescued = point.rescued_summary()
    if rescued:
        warnings.warn(
            f"initialize chose a stable operating point where sigma = 1 is unstable: {rescued} "
            f"({chosen.operating_rule}); see InitRecord.sigma and spikeinit.report. Pass "
            "sigma= to set it (method='paper', sigma=1.0 is the published init)", stacklevel=2)
    return InitResult(records)


TRACE_BATCH = 2
"""When every layer is then measured on the whole sample (``realize``), the tracing pass, which
links layers and neurons and gives the theory its first statistics, runs on this many of the
sample's batch (multi-step models with a ``(T, B, ...)`` tensor sample): the measured pass
corrects every statistic it takes from there, and a second full pass cost as much as the
measurement itself."""


def _traced(model: nn.Module, sample: Any, forward: Forward | None, realizing: bool
            ) -> NetworkMap:
    """:func:`discover` on ``sample``, or on its first :data:`TRACE_BATCH` samples where that is
    unambiguous (see there); a model that cannot run on the slice is traced on the whole."""
    if not (realizing and forward is None and isinstance(sample, Tensor) and sample.ndim >= 3
            and sample.shape[1] > TRACE_BATCH):
        return discover(model, sample, forward)
    check_finite_sample(sample)  # the whole sample, not only the traced slice
    neurons = [describe_neuron(m) for m in model.modules() if is_spiking_neuron(m)]
    if not neurons or any(d is None or d.step_mode != "multi" for d in neurons):
        return discover(model, sample, forward)
    try:
        return discover(model, sample[:, :TRACE_BATCH], forward)
    except SampleError:
        return discover(model, sample, forward)


def _realized_records(records: list[InitRecord], units: list[RealizeUnit],
                      realized: dict[str, Realized]) -> list[InitRecord]:
    """The records with the measured step's factor in their std (or the gamma they set,
    ``sigma``, behind a norm) and its note."""
    behind_norm = {unit.layer.name: unit.behind_norm for unit in units}
    updated = []
    for record in records:
        done = realized.get(record.name)
        if done is not None:
            changes: dict[str, Any] = {"notes": (*record.notes, done.note)}
            if not behind_norm[record.name]:
                changes["std"] = record.std * done.factor
            elif record.sigma is not None:
                changes["sigma"] = record.sigma * done.factor
            record = replace(record, **changes)
        updated.append(record)
    return updated


def _realizing(realize: bool | None, sample: Any, plan: ResidualPlan, point: OperatingPoint,
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


def _exact_on_data(layer: SynapticLayer, data: Tensor, ctx: LayerContext, variance: float,
                   notes: list[Note]) -> float:
    r"""Rescale a layer fed by data so that its current's second moment on the sample is the
    one drawn for, :math:`n\,\mathrm{Var}[w]\,E[x^2]`; the new weight variance.

    The formula holds on average over weight draws; for one draw on correlated inputs (the
    pixels of a natural image patch) the realized :math:`E[I^2] = w^\top C w` varies by a
    factor 2 and more with a few channels (its projection on the patch mean is a
    :math:`\chi^2` with one degree of freedom per channel). The data does not depend on any
    weight, so one measurement makes the first layer exact."""
    intended = ctx.fan_in * variance * ctx.second_moment
    with torch.no_grad():
        measured = float(layer.module(data).double().square().mean())
    if not (measured > 0 and intended > 0 and math.isfinite(measured)):
        return variance
    factor = math.sqrt(intended / measured)
    scale_module(layer.module, factor)
    notes.append(Note("measured", layer.name,
                      f"its current on the sample had E[I^2] = {measured:.4g} for the "
                      f"{intended:.4g} drawn for: weights x {factor:.4g}"))
    return variance * factor**2


def _residual_share(plan: ResidualPlan, layer: SynapticLayer, ctx: LayerContext,
                    norm: Operation | None, variance: float, gamma: float | None,
                    point: OperatingPoint, notes: list[Note]) -> tuple[float, float]:
    """Scale a layer for its place in a residual addition (:class:`ResidualPlan`), record its
    current and its neurons' rate for the layers after it: ``(weight variance, factor on the
    current std)``."""
    rate = point.rate if point.rate is not None else gaussian_rate(ctx.threshold, 0.0,
                                                                   ctx.sigma**2)
    std = (float(gamma) if norm is not None and gamma is not None
           else math.sqrt(ctx.fan_in * variance * ctx.second_moment))
    if layer.input == "sum" and norm is None:
        center_filters(layer.module.weight)
    factor = 1.0
    if plan.active and std > 0:
        share = plan.share(layer, std, ctx.threshold, rate)
        if share is not None:
            factor = share.factor
            if norm is not None:
                scale_module(norm.module, factor, bias=False)  # its gamma; its beta is 0
            else:
                scale_module(layer.module, factor)
            std *= share.factor
            if norm is None:
                variance *= share.factor**2
            notes.append(share.note)
    plan.spiked(layer.target_name, rate)
    plan.drawn(layer.name, std)
    return variance, factor


class OperatingPoint:
    r"""The membrane std :math:`\sigma` of every population, as :func:`initialize` assumes it.

    A given ``sigma`` holds everywhere. Otherwise, when the method has an operating point,
    populations driven by a layer that :func:`initialize` draws get
    ``method.operating_point(theta/g)`` (all of them, or the network's first one only, per
    ``method.operating_layers``); every other population (driven by data directly, or when the
    method has no operating point) has :math:`\sigma = 1`. The method's own option for its
    :math:`\sigma` (``method.sigma_option``, e.g. ``temporal``'s ``input_std``), when passed,
    counts as given. A method with a rate target (``trainable``) has no :math:`\sigma`; its
    source neurons fire at the rate, read as the one-step :math:`\sigma` that gives it, so that
    pooling and dropout on the way act on that rate.
    """

    def __init__(self, method: InitMethod, network: NetworkMap, sigma: float | None,
                 threshold: float | None, options: dict[str, Any] | None = None) -> None:
        self.method, self.given, self.threshold = method, sigma, threshold
        self.rate = (float(method.resolve_options(options or {})[method.value_option])
                     if method.rate_target else None)
        option = (options or {}).get(method.sigma_option) if method.sigma_option else None
        self.option = None if option is None else float(option)
        self.auto = sigma is None and self.option is None and method.operating_point is not None
        self.drawn = {layer.target_name for layer in network.layers
                      if layer.problem is None and layer.target_name is not None}
        first = next((site for site in network.neurons if site.description is not None), None)
        self.first_name = first.name if first is not None else None
        self.first_sigma = 1.0 if sigma is None else sigma
        if first is not None and self.first_name in self.drawn:
            self.first_sigma = self.sigma(self.first_name, first.description.effective_threshold)
        if self.option is not None:
            self.first_sigma = self.option
        self._rescued: dict[tuple[float, float], list[str]] = {}

    def _theta(self, own: float) -> float:
        return own if self.threshold is None else self.threshold

    def chooses(self, name: str | None) -> bool:
        """Whether the operating point sets the sigma of population ``name``."""
        if not self.auto or name not in self.drawn:
            return False
        return self.method.operating_layers == "all" or name == self.first_name

    def sigma(self, name: str | None, theta: float) -> float:
        """The sigma of population ``name`` with effective threshold ``theta``."""
        if self.given is not None:
            return self.given
        if self.chooses(name) and self.method.operating_point is not None:
            return float(self.method.operating_point(self._theta(theta)))
        return 1.0

    def layer_sigmas(self, layer: SynapticLayer) -> tuple[float, float | None]:
        """``(sigma of the neurons it drives, sigma of its source neurons or None)``."""
        target = layer.target_description or layer.source_description
        own = target.effective_threshold if target is not None else 1.0
        name = layer.target_name
        if layer.target_name is None and self.auto and self.method.operating_layers == "all":
            name = layer.name  # no neuron: the operating point of the threshold it assumes
            self.drawn.add(name)
        target_sigma = self.sigma(name, own)
        if layer.source is None:
            return target_sigma, None
        description = layer.source_description
        theta = description.effective_threshold if description is not None else 1.0
        if self.rate is not None and description is not None:
            return target_sigma, theta / float(gaussian.isf(self.rate))
        driven = layer.source_name in self.drawn and not layer.source_driven_by_data
        return target_sigma, self.sigma(layer.source_name if driven else None, theta)

    def record(self, layer: SynapticLayer, ctx: LayerContext) -> tuple[float | None, bool, str]:
        """``(sigma, chosen automatically, why)`` for the layer's :class:`InitRecord`."""
        if self.rate is not None:
            return None, False, "a rate target, no sigma"
        first = self.method.operating_layers == "first"
        used = self.first_sigma if first else ctx.sigma
        name = self.first_name if first else (layer.target_name or layer.name)
        theta = ctx.threshold if not first or layer.target_name == self.first_name else None
        if first and self.option is not None:
            return used, False, f"given ({self.method.sigma_option})"
        if not self.chooses(name):
            why = "given" if self.given is not None else (
                "sigma = 1, the default" if self.method.operating_point is None
                else "sigma = 1 for neurons driven by data")
            return used, False, why
        if theta is None:
            return used, True, (f"sigma of the first layer's current (chosen for "
                                f"{self.first_name}), which sets the target rate")
        slope_one, slope = stability_slope(theta, 1.0), stability_slope(theta, used)
        if slope_one >= 1.0 and used != 1.0:
            self._rescued.setdefault((theta, used), []).append(layer.name)
        return used, True, (
            f"{self.method.operating_rule}: at theta/g = {theta:.4g}, sigma = 1 has slope "
            f"{slope_one:.3g}{' (unstable)' if slope_one >= 1 else ''}, sigma = {used:.4g} has "
            f"slope {slope:.3g} and rate Q({theta / used:.3g}) = "
            f"{float(tail_probability(theta / used)):.3g}")

    def rescued_summary(self) -> str:
        """The layers whose sigma = 1 would have been unstable, grouped, or ''."""
        parts = []
        for (theta, sigma), names in self._rescued.items():
            shown = ", ".join(names[:3]) + (f", ... ({len(names)} layers)" if len(names) > 3
                                            else "")
            parts.append(f"layers {shown} (theta/g = {theta:g}, slope "
                         f"{stability_slope(theta, 1.0):.2g} at sigma = 1): sigma = {sigma:.4g}")
        return "; ".join(parts)


def _warn_once(caught: list[warnings.WarningMessage]) -> None:
    seen: set[tuple[type, str]] = set()
    for item in caught:
        key = (item.category, str(item.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(str(item.message), item.category, stacklevel=3)


def _warn_unchanged(network: NetworkMap) -> None:
    unchanged = [f"{layer.name} ({layer.problem})" for layer in network.layers if layer.problem]
    unchanged += [f"{name} (a weight layer inside a neuron)" for name in network.internal]
    if unchanged:
        warnings.warn("left unchanged: " + "; ".join(unchanged), stacklevel=3)

