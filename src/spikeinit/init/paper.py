r"""The paper's variance-conserving initialization, and the authors' soft-reset variant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod, register
from spikeinit.theory.gaussian import tail_probability, truncated_mean_above


def paper_variance(ctx: LayerContext) -> float:
    r"""The paper's variance :math:`\sigma^2 / (n\,E[x^2])`.

    Spikes of neurons with membrane :math:`N(0,\sigma^2)` have :math:`E[x^2] = Q(\theta/\sigma)`.
    """
    return ctx.sigma**2 / (ctx.fan_in * ctx.second_moment)


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
        raise ValueError(
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
    )
)
register(
    InitMethod(
        name="paper-soft-reset",
        summary="the authors' soft-reset variant of the paper's formula (public code)",
        statistics_fn=_soft_reset_statistics,
    )
)
