"""Gaussian helpers: the tail probability Q, its inverse, and expectations under a normal
membrane."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate, special

_SQRT2 = math.sqrt(2.0)
_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(121)
_HERMITE_WEIGHTS = _HERMITE_WEIGHTS / _HERMITE_WEIGHTS.sum()


def tail_probability(x: ArrayLike) -> np.ndarray | float:
    r"""Standard normal tail :math:`Q(x) = P(z > x) = \tfrac12\,\mathrm{erfc}(x/\sqrt2)`.

    For a membrane :math:`u \sim N(0, \sigma^2)` and threshold :math:`\theta`, the probability of a
    spike is ``tail_probability(theta / sigma)``.

    Example:
        >>> round(float(tail_probability(0.0)), 3)
        0.5
    """
    result = 0.5 * special.erfc(np.asarray(x, dtype=float) / _SQRT2)
    return float(result) if np.ndim(result) == 0 else result


def inverse_tail_probability(p: ArrayLike) -> np.ndarray | float:
    r"""The inverse of the tail, :math:`Q^{-1}(p)`: the :math:`x` with :math:`P(z > x) = p`.

    :math:`Q^{-1}(p) = -\Phi^{-1}(p)`, with :math:`\Phi^{-1}` the standard normal quantile. The
    membrane std at which neurons of threshold :math:`\theta` fire at rate :math:`r` is
    :math:`\sigma = \theta / Q^{-1}(r)`; the probit of a rate is :math:`-Q^{-1}(r)`.

    Example:
        >>> round(float(inverse_tail_probability(0.5)), 6) == 0.0
        True
        >>> round(float(inverse_tail_probability(tail_probability(1.3))), 6)
        1.3
    """
    result = -special.ndtri(np.asarray(p, dtype=float))
    return float(result) if np.ndim(result) == 0 else result


def normal_density(x: ArrayLike) -> np.ndarray | float:
    r"""Standard normal density :math:`\varphi(x) = e^{-x^2/2} / \sqrt{2\pi}`.

    Example:
        >>> round(normal_density(0.0), 6)  # 1/sqrt(2 pi)
        0.398942
    """
    x = np.asarray(x, dtype=float)
    result = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return float(result) if np.ndim(result) == 0 else result


def gaussian_expectation(
    function: Callable[[np.ndarray], np.ndarray],
    mean: float = 0.0,
    std: float = 1.0,
    peak: float | None = None,
) -> float:
    r""":math:`E[f(u)]` for :math:`u \sim N(\mu, \sigma^2)`.

    Smooth ``function``: 121-point Gauss-Hermite quadrature. With ``peak`` (a point where
    ``function`` is sharp), adaptive quadrature over :math:`\mu \pm 12\sigma` split there.
    """
    if peak is None:
        return float(np.dot(_HERMITE_WEIGHTS, function(mean + std * _HERMITE_NODES)))
    low, high = mean - 12.0 * std, mean + 12.0 * std
    points = [peak] if low < peak < high else None

    def integrand(u: float) -> float:
        density = math.exp(-0.5 * ((u - mean) / std) ** 2) / (std * math.sqrt(2.0 * math.pi))
        return float(function(np.asarray(u))) * density

    value, _ = integrate.quad(integrand, low, high, points=points, limit=200)
    return float(value)


def inverse_mills_ratio(x: ArrayLike) -> np.ndarray | float:
    r""":math:`\varphi(x)/Q(x) = \sqrt{2/\pi} / \mathrm{erfcx}(x/\sqrt2)`, stable for large x.

    Example:
        >>> round(inverse_mills_ratio(0.0), 6)  # sqrt(2/pi)
        0.797885
        >>> round(inverse_mills_ratio(40.0), 3)  # about x + 1/x, where Q(x) underflows
        40.025
    """
    result = math.sqrt(2.0 / math.pi) / special.erfcx(np.asarray(x, dtype=float) / _SQRT2)
    return float(result) if np.ndim(result) == 0 else result


def truncated_mean_above(threshold: float) -> float:
    r""":math:`E[z \mid z > \theta] = \varphi(\theta) / Q(\theta)` for a standard normal ``z``.

    Example:
        >>> round(truncated_mean_above(0.0), 6)  # the half-normal mean sqrt(2/pi)
        0.797885
    """
    return float(inverse_mills_ratio(threshold))
