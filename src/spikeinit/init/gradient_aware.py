r"""Gradient-aware initialization: harmonic mean of a forward and a backward condition.

.. math::

    D_f = \frac{\sigma^2}{n_{in}\,E[x^2]}, \qquad
    D_b = \frac{1}{n_{out}\,E[h'(u-\theta)^2]}, \qquad
    \mathrm{Var}[w] = \frac{2}{1/D_f + 1/D_b},

where :math:`h'` is the surrogate derivative and :math:`u \sim N(0, \sigma^2)`.
"""

from __future__ import annotations

from spikeinit.init.context import LayerContext
from spikeinit.init.paper import paper_variance
from spikeinit.init.registry import InitMethod, register
from spikeinit.theory.surrogate import surrogate_second_moment


def backward_variance(ctx: LayerContext) -> float:
    r""":math:`D_b = 1/(n_{out}\,E[h'(u-\theta)^2])`: keeps surrogate-gradient variance."""
    moment = surrogate_second_moment(ctx.surrogate, ctx.threshold, ctx.sigma, ctx.surrogate_slope)
    return 1.0 / (ctx.fan_out * moment)


def gradient_aware_variance(ctx: LayerContext) -> float:
    """Harmonic mean of :func:`paper_variance` and :func:`backward_variance`."""
    forward, backward = paper_variance(ctx), backward_variance(ctx)
    return 2.0 / (1.0 / forward + 1.0 / backward)


register(
    InitMethod(
        name="gradient-aware",
        summary="harmonic mean of the forward (paper) and surrogate-backward variance conditions",
        statistics_fn=lambda ctx, o: (0.0, gradient_aware_variance(ctx)),
    )
)
