r"""``temporal`` and ``temporal-rate=<r>``: conserve activity across depth *and* time.

The weight variance is :math:`g^*/n`, with :math:`g^*` the gain whose stable fixed point of the
temporal mean-field map has the target time-averaged rate (see
:func:`spikeinit.theory.temporal_gain.solve_temporal_gain`): the first layer's own rate for
``temporal``, the given ``r`` for ``temporal-rate=<r>``. The LIF parameters (β, θ, reset and
its order, a synaptic current filter) and ``steps`` come from the layer; the first layer's input
is ``N(0, input_std²)``, held constant over the steps (``input="constant"``) or drawn i.i.d.
(``input="iid"``); by default (``input=None``) it has the autocorrelation over the steps of
the sample given to :func:`~spikeinit.init.model.initialize` (when its leading axis has
``steps`` entries and a batch axis after it: ``(T, B, ...)``), else it is constant.

A layer fed by data gets :math:`\mathrm{Var}[w] = \sigma_1^2/(n\,E[x^2])`: its neurons then see
the current ``N(0, σ₁²)`` that the theory assumes for the first layer, with :math:`\sigma_1` =
``input_std``. By default (``input_std=None``) :math:`\sigma_1` is the first layer's operating
point when :func:`~spikeinit.init.model.initialize` draws the layer that drives it,
:math:`\sigma_1 = \max(1, \tilde\theta/a_{1/3})` (:func:`~spikeinit.theory.operating_sigma`,
as for init ``stable``): a first-layer rate of about :math:`Q(0.562) = 0.29` whatever the
threshold, where :math:`\sigma = 1` would give SpikingJelly's :math:`\tilde\theta = 2` a
rate of 0.07 that no stable fixed point carries and Norse's 10 none at all. Otherwise
:math:`\sigma_1 = 1` (or ``sigma`` when it is passed).

Where the settled rate of the temporal map jumps over the target (no stable fixed point carries
it), the nearest feasible stable rate is taken instead and a warning gives both; only a target
above every reachable rate raises (``solve_temporal_gain(..., on_jump="nearest")``).

By default (``finite_width=True``) the gain is refined for layers of ``fan_in`` neurons (up to
4096), whose rate is biased down relative to the infinite-width limit.

Transients along the time profile can be slow (e.g. with β = 0.9 the first steps empty out over
tens of layers), so the gain is solved for the rate at the network's last layer
(``depth - 1`` applications of the map) when the depth is known, else after 50 layers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from spikeinit._validation import check_positive, check_unit_interval
from spikeinit.errors import InvalidArgumentError
from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod, register
from spikeinit.theory.gradients import backward_gain_ratio
from spikeinit.theory.static import OPERATING_SLOPE, operating_sigma
from spikeinit.theory.temporal import InputCurrentProcess
from spikeinit.theory.temporal_gain import solve_temporal_gain


def temporal_variance(ctx: LayerContext, options: Mapping[str, Any]) -> float:
    r"""``g / fan_in`` with :math:`g = g^*\,\rho(g^*)^{-\lambda}`, :math:`\lambda` = ``balance``.

    :math:`g^*` is the forward solution; :math:`\rho` is the per-layer growth of the
    mean-square surrogate gradient going backward at :math:`g^*`
    (:func:`~spikeinit.theory.gradients.backward_gain_ratio`), so :math:`g^*/\rho` is the gain
    that would hold gradients constant to first order. ``balance=0`` (default) is purely
    forward, ``balance=1`` purely backward, in between a geometric compromise.

    A layer fed by data (``ctx.input_is_data``) gets :math:`\sigma_1^2/(n\,E[x^2])` instead,
    :math:`\sigma_1` = :func:`first_layer_std`, so that its neurons see the theory's first-layer
    current.
    """
    balance = check_unit_interval("balance", options["balance"])
    input_std = first_layer_std(ctx, options)
    if ctx.input_is_data:
        return input_std**2 / (ctx.fan_in * ctx.second_moment)
    params = ctx.neuron
    inputs = first_layer_input(ctx, input_std, options["input"])
    asked = "the first layer's rate" if options["rate"] is None else "the requested rate"
    gain = layer_gain(ctx, inputs, options["rate"], options["finite_width"],
                      f"temporal: {asked}", "temporal-rate=<r>")
    if balance > 0:
        ratio = backward_gain_ratio(gain, params, ctx.steps, inputs)
        if ratio <= 0:
            raise InvalidArgumentError(
                "balance > 0 needs surrogate gradients that do not vanish at the "
                             "forward solution; use a wider surrogate (e.g. 'atan')")
        gain *= ratio ** (-balance)
    return gain / ctx.fan_in


def layer_gain(ctx: LayerContext, inputs: InputCurrentProcess, rate: float | None,
               finite_width: bool, asked: str, choose: str) -> float:
    """The gain :math:`g^*` of a layer fed by spikes: the stable fixed point of the temporal map
    at ``rate`` (the first layer's under ``inputs`` when ``None``), read at the network's last
    layer (``depth - 1`` applications, else :data:`DEFAULT_SETTLE_LAYERS`), refined for
    ``fan_in`` neurons when ``finite_width``. Where the settled rate jumps over the target, the
    nearest feasible stable rate, with a warning that starts with ``asked`` and names
    ``choose`` (how to pick another)."""
    settle = DEFAULT_SETTLE_LAYERS if ctx.depth is None or ctx.depth < 2 else ctx.depth - 1
    width = ctx.fan_in if finite_width else None
    solution = solve_temporal_gain(ctx.neuron, ctx.steps, inputs, rate, settle, width=width,
                                   synaptic_decay=ctx.synaptic_decay, on_jump="nearest")
    if solution.moved and solution.jump is not None:
        below, above = solution.jump
        warnings.warn(
            f"{asked} {solution.requested_rate:.4g} is not a stable fixed point for "
            f"theta/g={ctx.threshold:g}, beta={ctx.beta:g}, reset={ctx.reset!r}, T={ctx.steps}"
            f" (the settled rate jumps from {below:.4g} to {above:.4g}); using the nearest "
            f"feasible stable rate {solution.target_rate:.4g} instead (choose another with "
            f"{choose})", UserWarning, stacklevel=3)
    return solution.gain


def first_layer_input(ctx: LayerContext, input_std: float,
                      kind: str | None = None) -> InputCurrentProcess:
    """The theory's first-layer input: ``kind`` when given, else the data's measured
    autocorrelation over the ``steps`` (``ctx.input_autocorrelation``), else ``"constant"``."""
    measured = ctx.input_autocorrelation
    if kind is None and measured is not None and len(measured) == ctx.steps:
        return InputCurrentProcess(kind="measured", std=input_std, autocorrelation=measured)
    return InputCurrentProcess(kind=kind or "constant", std=input_std)


def first_layer_std(ctx: LayerContext, options: Mapping[str, Any]) -> float:
    """The first layer's current std: ``input_std`` when given, else ``ctx.first_sigma``, else 1."""
    if options["input_std"] is not None:
        return check_positive("input_std", float(options["input_std"]))
    return 1.0 if ctx.first_sigma is None else ctx.first_sigma


DEFAULT_SETTLE_LAYERS = 50
_OPTIONS = {
    "rate": None, "input": None, "input_std": None, "balance": 0.0, "finite_width": True,
}
_RULE = (f"the first layer's current std: max(1, (theta/g)/a) with slope a phi(a)/(2 Q(a)) = "
         f"{OPERATING_SLOPE:.3g}")

register(
    InitMethod(
        name="temporal",
        summary="temporal mean-field: stable fixed point at the first layer's rate over T steps",
        statistics_fn=lambda ctx, o: (0.0, temporal_variance(ctx, o)),
        options=_OPTIONS,
        operating_point=operating_sigma,
        operating_rule=_RULE,
        operating_layers="first",
        sigma_option="input_std",
    )
)
register(
    InitMethod(
        name="temporal-rate",
        summary="temporal mean-field: stable fixed point at a chosen rate, temporal-rate=<r>",
        statistics_fn=lambda ctx, o: (0.0, temporal_variance(ctx, o)),
        options=_OPTIONS,
        value_option="rate",
        operating_point=operating_sigma,
        operating_rule=_RULE,
        operating_layers="first",
        sigma_option="input_std",
    )
)
