r"""Surrogate derivatives :math:`h'(x)` of the Heaviside step, as pure functions.

``x`` is the membrane distance to threshold :math:`u - \theta`. The functions work on NumPy
arrays and on torch tensors alike, so the LIF engine and the theory share one definition.
"""

from __future__ import annotations

import math
from typing import Any

from spikeinit._validation import check_choice, check_positive
from spikeinit.theory.gaussian import gaussian_expectation

SURROGATES = ("fast-sigmoid", "atan")
DEFAULT_SLOPES = {"fast-sigmoid": 25.0, "atan": 2.0}


def fast_sigmoid_derivative(x: Any, slope: float = 25.0) -> Any:
    r"""Fast-sigmoid surrogate (SuperSpike): :math:`h'(x) = 1 / (k|x| + 1)^2`."""
    return 1.0 / (slope * abs(x) + 1.0) ** 2


def atan_derivative(x: Any, slope: float = 2.0) -> Any:
    r"""Arc-tangent surrogate: :math:`h'(x) = (\alpha/2) / (1 + (\pi\alpha x/2)^2)`."""
    return (slope / 2.0) / (1.0 + (math.pi / 2.0 * slope * x) ** 2)


def surrogate_derivative(name: str, x: Any, slope: float | None = None) -> Any:
    """Evaluate the named surrogate derivative at ``x`` (default slope per surrogate)."""
    check_choice("surrogate", name, SURROGATES)
    slope = DEFAULT_SLOPES[name] if slope is None else check_positive("slope", slope)
    if name == "fast-sigmoid":
        return fast_sigmoid_derivative(x, slope)
    return atan_derivative(x, slope)


def surrogate_second_moment(
    name: str, threshold: float, sigma: float = 1.0, slope: float | None = None
) -> float:
    r""":math:`E[h'(u-\theta)^2] = \int h'(u-\theta)^2\,\varphi(u/\sigma)/\sigma\,du`.

    Adaptive quadrature with a breakpoint at :math:`\theta`, where sharp surrogates (a fast
    sigmoid of slope 25 is about 0.1 wide) peak: a fixed Gauss-Hermite rule would miss them.
    """
    check_positive("sigma", sigma)
    return gaussian_expectation(lambda u: surrogate_derivative(name, u - threshold, slope) ** 2,
                                0.0, sigma, peak=threshold)
