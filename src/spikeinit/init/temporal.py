r"""``temporal`` and ``temporal-rate=<r>``: conserve activity across depth *and* time.

The weight variance is :math:`g^*/n`, with :math:`g^*` the gain whose stable fixed point of the
temporal mean-field map has the target time-averaged rate (see
:func:`spikeinit.theory.temporal_gain.solve_temporal_gain`): the first layer's own rate for
``temporal``, the given ``r`` for ``temporal-rate=<r>``. The LIF parameters (β, θ, reset and
its order) and ``steps`` come from the layer; the first layer's input is ``N(0, input_std²)``,
held constant over the steps (``input="constant"``) or drawn i.i.d. (``input="iid"``).

By default (``finite_width=True``) the gain is refined for layers of ``fan_in`` neurons (up to
4096), whose rate is biased down relative to the infinite-width limit.

Transients along the time profile can be slow (e.g. with β = 0.9 the first steps empty out over
tens of layers), so the gain is solved for the rate at the network's last layer
(``depth - 1`` applications of the map) when the depth is known, else after 50 layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spikeinit._validation import check_unit_interval
from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod, register
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.gradients import backward_gain_ratio
from spikeinit.theory.temporal import InputStatistics
from spikeinit.theory.temporal_gain import solve_temporal_gain


def temporal_variance(ctx: LayerContext, options: Mapping[str, Any]) -> float:
    r"""``g / fan_in`` with :math:`g = g^*\,\rho(g^*)^{-\lambda}`, :math:`\lambda` = ``balance``.

    :math:`g^*` is the forward solution; :math:`\rho` is the per-layer growth of the
    mean-square surrogate gradient going backward at :math:`g^*`
    (:func:`~spikeinit.theory.gradients.backward_gain_ratio`), so :math:`g^*/\rho` is the gain
    that would hold gradients constant to first order. ``balance=0`` (default) is purely
    forward, ``balance=1`` purely backward, in between a geometric compromise.
    """
    balance = check_unit_interval("balance", options["balance"])
    params = LIFParameters(
        beta=ctx.beta, threshold=ctx.threshold, reset=ctx.reset, reset_order=ctx.reset_order,
        surrogate=ctx.surrogate, surrogate_slope=ctx.surrogate_slope,
    )
    inputs = InputStatistics(kind=options["input"], std=float(options["input_std"]))
    settle = DEFAULT_SETTLE_LAYERS if ctx.depth is None or ctx.depth < 2 else ctx.depth - 1
    width = ctx.fan_in if options["finite_width"] else None
    gain = solve_temporal_gain(params, ctx.steps, inputs, options["rate"], settle,
                               width=width).gain
    if balance > 0:
        ratio = backward_gain_ratio(gain, params, ctx.steps, inputs)
        if ratio <= 0:
            raise ValueError("balance > 0 needs surrogate gradients that do not vanish at the "
                             "forward solution; use a wider surrogate (e.g. 'atan')")
        gain *= ratio ** (-balance)
    return gain / ctx.fan_in


DEFAULT_SETTLE_LAYERS = 50
_OPTIONS = {
    "rate": None, "input": "constant", "input_std": 1.0, "balance": 0.0, "finite_width": True,
}

register(
    InitMethod(
        name="temporal",
        summary="temporal mean-field: stable fixed point at the first layer's rate over T steps",
        statistics_fn=lambda ctx, o: (0.0, temporal_variance(ctx, o)),
        options=_OPTIONS,
    )
)
register(
    InitMethod(
        name="temporal-rate",
        summary="temporal mean-field: stable fixed point at a chosen rate, temporal-rate=<r>",
        statistics_fn=lambda ctx, o: (0.0, temporal_variance(ctx, o)),
        options=_OPTIONS,
        value_option="rate",
    )
)
