r"""``trainable`` (``trainable=<r>``): every spiking population at the rate that trains best.

The rate is :data:`TRAINABLE_RATE`, chosen from the training measurements of
docs/operating-point.md (MLPs and CNNs, with and without BatchNorm, on MNIST and
Fashion-MNIST, with the default neurons of snnTorch, SpikingJelly, Norse and spikeinit).
It is held through depth *and* time by the temporal mean field over the model's ``T`` steps
(:func:`~spikeinit.init.model.initialize` reads ``T`` from the sample):

- a layer fed by data gets :math:`\mathrm{Var}[w] = \sigma_1^2 / (n\,E[x^2])` with
  :math:`\sigma_1` the current std at which its neurons fire at rate :math:`r` over the steps
  (:func:`~spikeinit.theory.temporal_gain.input_std_for_rate`, for the data's measured
  autocorrelation over the steps when the sample has one);
- a layer fed by spikes gets :math:`g^*/n`, with :math:`g^*` the gain whose *stable* fixed
  point of the temporal map has time-averaged rate :math:`r`
  (:func:`~spikeinit.theory.temporal_gain.solve_temporal_gain`; where the settled rate jumps
  over :math:`r`, the nearest feasible stable rate, with a warning);
- neurons behind a BatchNorm (training mode) get :math:`\gamma = \sigma_r`, the current std
  at which they fire at rate :math:`r` in a stack of such layers
  (:func:`~spikeinit.theory.temporal_gain.normalized_input_std`), and weights at PyTorch's
  default scale: the normalization sets the scale the neurons see, and the weight scale only
  the optimizer's relative step (a large weight behind BatchNorm slows Adam's updates).

Why not the static operating point of ``stable``? Its rate :math:`Q(a^*) = 0.287` is the lowest
that the one-step variance map holds stably with margin (a stable fixed point of
:math:`\sigma^2 \mapsto g Q(\tilde\theta/\sigma)` needs :math:`a < 1.19`, a rate above 0.117),
and it trains measurably worse than :math:`r` in the table. Over :math:`T > 1` steps the leak
and the reset make lower rates stable fixed points of the temporal map, which is what this
method uses; with ``T = 1`` a target below 0.117 has no stable fixed point and the solver takes
the nearest stable rate, with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from spikeinit._validation import check_open_unit_interval
from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod, register
from spikeinit.init.temporal import first_layer_input, layer_gain
from spikeinit.theory.gaussian import inverse_tail_probability
from spikeinit.theory.static import stability_slope
from spikeinit.theory.temporal_gain import input_std_for_rate, normalized_input_std

#: The default target rate (spikes per neuron per step), from docs/operating-point.md.
TRAINABLE_RATE = 0.1


def draft_std(ctx: LayerContext, rate: float) -> float:
    r"""A first guess of the current std at which the neurons fire at ``rate``: the one-step
    closed form :math:`\sigma = \tilde\theta / Q^{-1}(r)`. Used where
    :func:`~spikeinit.init.model.initialize` then measures every layer on the sample and
    rescales it to the rate exactly (:mod:`spikeinit.init.realized`): the draw then only
    needs its order of magnitude, not the temporal theory's simulation.

    Example:
        >>> from spikeinit.neurons import LIFParameters
        >>> ctx = LayerContext(100, 10, neuron=LIFParameters(beta=0.5, threshold=1.0))
        >>> round(draft_std(ctx, 0.1587), 3)  # Q(1) = 0.1587
        1.0
    """
    return max(ctx.threshold, 1e-3) / float(inverse_tail_probability(rate))


def rate_std(ctx: LayerContext, options: Mapping[str, Any]) -> float:
    """The current std at which the layer's neurons fire at the target rate over ``T`` steps:
    driven by data (the sample's autocorrelation), or by spikes through a normalization
    (:func:`~spikeinit.theory.temporal_gain.normalized_input_std`); :func:`draft_std` with
    ``draft``."""
    rate = check_open_unit_interval("rate", float(options["rate"]))
    if options.get("draft"):
        return draft_std(ctx, rate)
    if ctx.input_is_data:
        return input_std_for_rate(ctx.neuron, ctx.steps, rate, first_layer_input(ctx, 1.0),
                                  synaptic_decay=ctx.synaptic_decay)
    return normalized_input_std(ctx.neuron, ctx.steps, rate, first_layer_input(ctx, 1.0),
                                synaptic_decay=ctx.synaptic_decay)


def trainable_variance(ctx: LayerContext, options: Mapping[str, Any]) -> float:
    """The weight variance of the module docstring for the layer ``ctx``."""
    rate = check_open_unit_interval("rate", float(options["rate"]))
    if not ctx.input_is_data and ctx.steps == 1:
        slope = stability_slope(float(inverse_tail_probability(rate)), 1.0)
        if slope >= 1.0:
            warnings.warn(
                f"trainable: with T = 1 the rate {rate:g} is not a stable fixed point of the "
                f"one-step map (slope {slope:.3g} >= 1; stable only above a rate of 0.117): "
                "deep layers drift from it. Pass a sample with its time steps (T, B, ...) or "
                "steps=T, or use method='stable'", UserWarning, stacklevel=2)
    if options.get("draft"):  # measured and rescaled on the sample afterwards
        return draft_std(ctx, rate) ** 2 / (ctx.fan_in * ctx.second_moment)
    first_std = input_std_for_rate(ctx.neuron, ctx.steps, rate, first_layer_input(ctx, 1.0),
                                   synaptic_decay=ctx.synaptic_decay)
    if ctx.input_is_data:
        return first_std**2 / (ctx.fan_in * ctx.second_moment)
    gain = layer_gain(ctx, first_layer_input(ctx, first_std), rate, options["finite_width"],
                      "trainable: the rate", "trainable=<r>")
    # the gain is for spikes at the rate; pooling or dropout on the way change E[x^2]
    return gain / ctx.fan_in * rate / ctx.second_moment


register(
    InitMethod(
        name="trainable",
        summary=f"every population at rate {TRAINABLE_RATE:g} (the rate that trains best), "
                "held by the temporal fixed point over the sample's T steps; trainable=<r> "
                "(the default)",
        statistics_fn=lambda ctx, o: (0.0, trainable_variance(ctx, o)),
        options={"rate": TRAINABLE_RATE, "finite_width": True, "draft": False},
        value_option="rate",
        norm_sigma=rate_std,
        rate_target=True,
    )
)
