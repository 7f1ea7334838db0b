r"""The paper's variance-conserving initialization, its stable operating point, and the authors'
soft-reset variant.

``paper`` is the published formula :math:`\mathrm{Var}[w] = \sigma^2/(n\,Q(\theta/\sigma))`
with :math:`\sigma = 1` unless ``sigma`` is passed. ``stable`` (the method of
:func:`~spikeinit.init.model.initialize` when only ``sigma`` is passed; the default is
``trainable``) is the same formula, with :math:`\sigma` chosen per
population from the stability of the layer-to-layer map when ``sigma`` is not passed:
:math:`\sigma = \max(1, \tilde\theta/a_{1/3})` (:func:`~spikeinit.theory.operating_sigma`),
where the fixed point's slope is 1/3 and a bias per layer that the static map does not see is
halved rather than amplified. With ``sigma`` passed, ``stable`` is ``paper``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spikeinit.errors import InvalidArgumentError
from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod, register
from spikeinit.theory.gaussian import tail_probability, truncated_mean_above
from spikeinit.theory.static import OPERATING_SLOPE, operating_sigma, spike_weight_variance


def paper_variance(ctx: LayerContext) -> float:
    r"""The paper's variance :math:`\sigma^2 / (n\,E[x^2])`.

    Spikes of neurons with membrane :math:`N(0,\sigma^2)` have :math:`E[x^2] = Q(\theta/\sigma)`,
    taken in log space (:func:`~spikeinit.theory.spike_weight_variance`), so a large threshold
    gives a finite variance or an error naming it, never a division by an underflowed zero.
    """
    if ctx.input_second_moment is not None:
        return ctx.sigma**2 / (ctx.fan_in * ctx.input_second_moment)
    source = ctx.source_sigma
    return spike_weight_variance(ctx.fan_in, ctx.source_threshold, source) * (
        ctx.sigma / source) ** 2


def soft_reset_variance(ctx: LayerContext) -> float:
    r"""The authors' soft-reset variant with :math:`p = Q(\theta)`:

    .. math::

        \mathrm{Var}[w] = \frac{1 - \beta^2 - \theta^2 p(1-p) + 2\beta\theta\,E[u \mid u>\theta]}
                               {n\,p}
    """
    theta, beta = ctx.source_threshold, ctx.beta
    p = float(tail_probability(theta))
    conditional_mean = truncated_mean_above(theta)
    numerator = 1.0 - beta**2 - theta**2 * p * (1.0 - p) + 2.0 * beta * theta * conditional_mean
    if numerator <= 0:
        raise InvalidArgumentError(
            f"the soft-reset formula gives a non-positive variance for threshold={theta}, "
            f"beta={beta}; use init 'paper' instead"
        )
    return numerator / (ctx.fan_in * p)


def _paper_statistics(ctx: LayerContext, options: Mapping[str, Any]) -> tuple[float, float]:
    return 0.0, paper_variance(ctx)


def _soft_reset_statistics(ctx: LayerContext, options: Mapping[str, Any]) -> tuple[float, float]:
    return 0.0, soft_reset_variance(ctx)


register(
    InitMethod(
        name="paper",
        summary="Micheli et al.: Var[w] = sigma^2 / (n Q(theta/sigma)), conserves the variance",
        statistics_fn=_paper_statistics,
        norm_sigma=lambda ctx, options: ctx.sigma,
        sigma_fixed_point=True,
    )
)
register(
    InitMethod(
        name="stable",
        summary="the paper's formula at a stable operating point: sigma = max(1, (theta/g) / "
                "0.562), where the fixed point's slope is 1/3",
        statistics_fn=_paper_statistics,
        operating_point=operating_sigma,
        operating_rule=f"max(1, (theta/g)/a) with slope a phi(a)/(2 Q(a)) = {OPERATING_SLOPE:.3g}",
        norm_sigma=lambda ctx, options: ctx.sigma,
        sigma_fixed_point=True,
    )
)
register(
    InitMethod(
        name="paper-soft-reset",
        summary="the authors' soft-reset variant of the paper's formula (public code)",
        statistics_fn=_soft_reset_statistics,
    )
)
