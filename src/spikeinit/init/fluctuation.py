r"""Fluctuation-driven initialization (Rossbroich, Gygax & Zenke 2022).

It places the free membrane at mean :math:`\mu_U` with the threshold :math:`\xi` standard
deviations above it:

.. math::

    \mu_w = \frac{\mu_U}{n\,\nu\,\bar\epsilon}, \qquad
    \sigma_w^2 = \frac{\big((\theta - \mu_U)/\xi\big)^2}{n\,\nu\,\hat\epsilon} - \mu_w^2,

with :math:`\nu` the presynaptic rate (spikes per step) and :math:`\bar\epsilon`,
:math:`\hat\epsilon` the integral of the PSP kernel and of its square. For our discrete LIF the
kernel is :math:`\beta^t`, so by default :math:`\bar\epsilon = 1/(1-\beta)` and
:math:`\hat\epsilon = 1/(1-\beta^2)` (stationary limit, capped at ``steps`` terms).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spikeinit._validation import check_positive
from spikeinit.errors import InvalidArgumentError
from spikeinit.init.context import LayerContext
from spikeinit.init.registry import InitMethod, register


def psp_kernel_moments(beta: float, steps: int | None = None) -> tuple[float, float]:
    r"""PSP kernel moments of the discrete LIF.

    :math:`\bar\epsilon = \sum_t \beta^t` and :math:`\hat\epsilon = \sum_t \beta^{2t}`.

    ``steps=None`` takes the infinite sum :math:`(1/(1-\beta), 1/(1-\beta^2))`; it needs
    :math:`\beta < 1`.
    """
    if steps is None:
        if beta >= 1.0:
            raise InvalidArgumentError("beta must be < 1 for the stationary PSP kernel; pass steps")
        return 1.0 / (1.0 - beta), 1.0 / (1.0 - beta**2)
    return sum(beta**t for t in range(steps)), sum(beta ** (2 * t) for t in range(steps))


def fluctuation_statistics(ctx: LayerContext, options: Mapping[str, Any]) -> tuple[float, float]:
    """``(mu_w, sigma_w^2)`` of the fluctuation-driven initialization for layer ``ctx``."""
    mu_u, xi = float(options["mu_u"]), check_positive("xi", options["xi"])
    rate = ctx.second_moment if options["rate"] is None else check_positive("rate", options["rate"])
    horizon = options["horizon"]
    default_bar, default_hat = psp_kernel_moments(
        ctx.beta, None if horizon == "stationary" else ctx.steps
    )
    eps_bar = default_bar if options["epsilon_bar"] is None else options["epsilon_bar"]
    eps_hat = default_hat if options["epsilon_hat"] is None else options["epsilon_hat"]
    check_positive("epsilon_bar", eps_bar)
    check_positive("epsilon_hat", eps_hat)
    mean = mu_u / (ctx.fan_in * rate * eps_bar)
    variance = ((ctx.threshold - mu_u) / xi) ** 2 / (ctx.fan_in * rate * eps_hat) - mean**2
    if variance <= 0:
        raise InvalidArgumentError(
            f"fluctuation init gives a non-positive weight variance ({variance:.3g}) for "
            f"mu_u={mu_u}, xi={xi}; lower mu_u or xi"
        )
    return mean, variance


register(
    InitMethod(
        name="fluctuation",
        summary="Rossbroich et al. 2022 fluctuation-driven: threshold xi std above mean mu_u",
        statistics_fn=fluctuation_statistics,
        options={
            "mu_u": 0.0,
            "xi": 1.0,
            "rate": None,
            "epsilon_bar": None,
            "epsilon_hat": None,
            "horizon": "stationary",
        },
    )
)
