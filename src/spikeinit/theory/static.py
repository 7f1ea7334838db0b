r"""Static (one time step) mean-field theory of a deep feed-forward spiking network.

Layer :math:`l+1` receives the binary spikes :math:`x_l = H(u_l - \theta)` of layer :math:`l`
through i.i.d. weights with mean :math:`m_w` and variance :math:`v_w`. For a wide layer the
membrane is Gaussian with

.. math::

    \mu_{l+1} = n\,m_w\,p_l, \qquad
    \sigma^2_{l+1} = n\,v_w\,p_l + n\,m_w^2\,p_l(1-p_l), \qquad
    p_l = Q\big((\theta-\mu_l)/\sigma_l\big).

With zero-mean weights and gain :math:`g = n\,v_w` the variance map is
:math:`\sigma^2 \mapsto g\,Q(\theta/\sigma)`. The paper's initialization
:math:`v_w = \sigma^2/(n\,Q(\theta/\sigma))` makes :math:`\sigma` a fixed point whose slope is
:math:`a\varphi(a)/(2Q(a))` with :math:`a = \theta/\sigma`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special

from spikeinit._validation import (
    check_finite_nonnegative,
    check_open_unit_interval,
    check_positive,
    check_positive_int,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.theory.gaussian import inverse_mills_ratio, tail_probability

_LOG_FLOAT32_MAX = math.log(float(np.finfo(np.float32).max))


def spike_weight_variance(fan_in: int, threshold: float, sigma: float = 1.0) -> float:
    r"""The paper's weight variance :math:`\sigma^2 / (n\,Q(\theta/\sigma))`.

    It keeps the membrane variance :math:`\sigma^2` constant from layer to layer when each layer
    receives the binary spikes of a layer whose membrane is :math:`N(0, \sigma^2)`.

    Example:
        >>> round(spike_weight_variance(100, 0.0), 12)  # Q(0) = 1/2: 2/n, Kaiming's
        0.02
        >>> round(100 * spike_weight_variance(100, 1.0) * tail_probability(1.0), 12)  # n v Q = 1
        1.0
    """
    fan_in = check_positive_int("fan_in", fan_in)
    threshold = check_finite_nonnegative("threshold", threshold)
    sigma = check_positive("sigma", sigma)
    # in log space: Q(theta/sigma) underflows to 0 near theta/sigma = 38
    log_q = float(special.log_ndtr(-threshold / sigma))
    log_variance = 2.0 * math.log(sigma) - math.log(fan_in) - log_q
    if log_variance > _LOG_FLOAT32_MAX:
        raise InvalidArgumentError(
            f"threshold: theta/sigma = {threshold / sigma:.4g} puts the spike probability at "
            f"Q = e^{log_q:.4g}, so the weight variance sigma^2/(n Q) = e^{log_variance:.4g} "
            "exceeds float32; pass a larger sigma (init 'stable' chooses one by itself) or a "
            "smaller threshold")
    return math.exp(log_variance)


def spike_std(fan_in: int, threshold: float, sigma: float = 1.0) -> float:
    r"""The paper's weight standard deviation :math:`\sqrt{\sigma^2 / (n\,Q(\theta/\sigma))}`.

    At :math:`\theta = 0` it is :math:`\sqrt{2/n}`, the Kaiming value.

    Example:
        >>> round(spike_std(1000, 0.0), 6) == round((2 / 1000) ** 0.5, 6)
        True
    """
    return math.sqrt(spike_weight_variance(fan_in, threshold, sigma))


def stability_slope(threshold: float, sigma: float = 1.0) -> float:
    r"""Slope of the variance map at a fixed point :math:`\sigma`: :math:`a\varphi(a)/(2Q(a))`.

    Here :math:`a = \theta/\sigma`. The fixed point is stable when the slope is below 1.

    Example:
        >>> stability_slope(0.0), round(stability_slope(1.0), 4)
        (0.0, 0.7626)
        >>> round(stability_slope(critical_ratio()), 9)  # the edge of stability
        1.0
    """
    threshold = check_finite_nonnegative("threshold", threshold)
    sigma = check_positive("sigma", sigma)
    return _slope_of_ratio(threshold / sigma)


def _slope_of_ratio(a: float) -> float:
    return float(a * inverse_mills_ratio(a) / 2.0)


@lru_cache(maxsize=64)
def ratio_for_slope(slope: float) -> float:
    r"""The ratio :math:`a = \theta/\sigma` at which the fixed-point slope equals ``slope``.

    The slope :math:`a\varphi(a)/(2Q(a))` grows monotonically from 0 at :math:`a=0`; the root is
    found by Brent's method. ``ratio_for_slope(1.0)`` is the critical ratio (about 1.19) beyond
    which a fixed point is unstable.
    """
    check_positive("slope", slope)
    return float(optimize.brentq(lambda a: _slope_of_ratio(a) - slope, 0.0, 30.0, xtol=1e-12))


def critical_ratio() -> float:
    r"""The largest stable :math:`\theta/\sigma`: the root of :math:`a\varphi(a) = 2Q(a)`.

    Example:
        >>> round(critical_ratio(), 4)
        1.1906
    """
    return ratio_for_slope(1.0)


def stable_sigma(threshold: float, preferred: float = 1.0, max_slope: float = 0.9) -> float:
    r"""A target membrane std :math:`\sigma` whose fixed point is stable for ``threshold``.

    Returns ``preferred`` when its slope is at most ``max_slope``, otherwise the smallest
    :math:`\sigma = \theta / a_s` with slope :math:`a_s\varphi(a_s)/(2Q(a_s)) = ` ``max_slope``.

    Example:
        >>> stable_sigma(0.5), round(stable_sigma(2.0), 3)  # sigma = 1 is stable only for 0.5
        (1.0, 1.796)
        >>> round(stability_slope(2.0, stable_sigma(2.0)), 6)
        0.9
    """
    threshold = check_finite_nonnegative("threshold", threshold)
    preferred = check_positive("preferred", preferred)
    check_open_unit_interval("max_slope", max_slope)
    return max(preferred, threshold / ratio_for_slope(max_slope))


OPERATING_SLOPE = 1.0 / 3.0
"""The fixed-point slope of :func:`operating_sigma`: a bias per layer is halved, not amplified."""


def operating_sigma(
    threshold: float, slope: float = OPERATING_SLOPE, preferred: float = 1.0
) -> float:
    r"""The target membrane std of init ``stable``: a fixed point that absorbs per-layer biases.

    The variance map :math:`\sigma^2 \mapsto g\,Q(\theta/\sigma)` has, at a fixed point with
    :math:`a = \theta/\sigma`, the slope :math:`s(a) = a\varphi(a)/(2Q(a))` in
    :math:`\log\sigma^2`, and :math:`d\log Q/d\log\sigma^2 = s` too. A bias that the static
    map does not see (leak, reset and integration over time, a synaptic filter, finite width)
    multiplies the map by :math:`1+\varepsilon` per layer. In :math:`\log\sigma^2` the deviation
    then settles at :math:`\varepsilon/(1-s)`, and the rate moves by

    .. math::

        \Delta\log p = \frac{s}{1-s}\,\varepsilon .

    At :math:`s = 0.9` (:func:`stable_sigma`'s default) the bias is amplified 9 times; at
    :math:`s = 1/3` (the default ``slope``) it is halved. So

    .. math::

        \sigma = \max\big(\texttt{preferred},\ \theta / a_s\big), \qquad
        a_s\varphi(a_s) = 2s\,Q(a_s),

    i.e. :math:`a_{1/3} = 0.5618` and a rate :math:`Q(a_{1/3}) = 0.287` wherever
    :math:`\theta > 0.5618` (``stable_sigma(threshold, preferred, max_slope=slope)``). The LIF
    with rest and reset at 0 is homogeneous in :math:`(u, I, \theta)`, so only
    :math:`\theta/\sigma` matters and the weights scale with :math:`\theta`: their std is
    :math:`\sigma/\sqrt{n\,Q(a_s)} = 3.32\,\theta/\sqrt{n}` at every threshold above
    :math:`a_s`, and the largest of :math:`N` draws, about :math:`\sqrt{2\ln N}` stds, stays
    below :math:`\theta` for :math:`N` weights of fan-in :math:`n` when
    :math:`n > 22\ln N` (e.g. :math:`n = 500`: 0.74 :math:`\theta` for 250 000 weights).

    Example:
        >>> round(operating_sigma(2.0), 3), operating_sigma(0.5)
        (3.56, 1.0)
    """
    return stable_sigma(threshold, preferred, max_slope=slope)


@dataclass(frozen=True)
class FixedPoint:
    r"""The stable fixed point of the static variance map, if activity survives.

    ``variance`` is :math:`\sigma^{*2}`, ``rate`` :math:`Q(\theta/\sigma^*)` and ``slope`` the
    map's slope there (:func:`stability_slope`); :attr:`stable` is ``slope < 1``.

    Example:
        >>> fp = fixed_point(8.0, 1.0)
        >>> round(fp.variance, 4), round(fp.rate, 4), round(fp.slope, 4), fp.stable
        (1.8477, 0.231, 0.4847, True)
    """

    variance: float
    rate: float
    slope: float

    @property
    def stable(self) -> bool:
        return self.slope < 1.0


def variance_map(variance: float, gain: float, threshold: float) -> float:
    r"""One layer of the zero-mean variance map :math:`\sigma^2 \mapsto g\,Q(\theta/\sigma)`.

    A variance of 0 (a silent layer) maps to 0.

    Example:
        >>> variance_map(1.0, gain=2.0, threshold=0.0)  # g Q(0) = g/2
        1.0
        >>> gain = 1000 * spike_weight_variance(1000, 1.0)  # the paper's: sigma = 1 is fixed
        >>> round(variance_map(1.0, gain, 1.0), 9)
        1.0
    """
    if variance <= 0:
        return 0.0
    return gain * float(tail_probability(threshold / math.sqrt(variance)))


def fixed_point(gain: float, threshold: float) -> FixedPoint | None:
    r"""The largest fixed point :math:`\sigma^{*2} = g\,Q(\theta/\sigma^*)` of the variance map.

    With :math:`a = \theta/\sigma`, the condition reads :math:`g\,a^2 Q(a) = \theta^2`;
    :math:`a^2 Q(a)` peaks at the critical ratio, so a non-zero fixed point exists only if
    :math:`g\,a_c^2 Q(a_c) \ge \theta^2`. Returns ``None`` when activity dies (only
    :math:`\sigma = 0` is left). The largest root always has slope <= 1.

    Example:
        >>> fixed_point(2.0, 0.0)  # theta = 0: sigma*^2 = g/2, half the neurons fire
        FixedPoint(variance=1.0, rate=0.5, slope=0.0)
        >>> fixed_point(5.0, 1.0) is None  # g a_c^2 Q(a_c) < theta^2: activity dies
        True
        >>> fp = fixed_point(8.0, 1.0)
        >>> round(variance_map(fp.variance, 8.0, 1.0) - fp.variance, 9)
        0.0
    """
    gain = check_positive("gain", gain)
    threshold = check_finite_nonnegative("threshold", threshold)
    if threshold == 0.0:
        return FixedPoint(variance=gain / 2.0, rate=0.5, slope=0.0)
    a_c = critical_ratio()
    peak = gain * a_c**2 * tail_probability(a_c)
    if peak < threshold**2:
        return None
    a = optimize.brentq(
        lambda x: gain * x**2 * tail_probability(x) - threshold**2, 0.0, a_c, xtol=1e-14
    )
    return FixedPoint(
        variance=(threshold / a) ** 2, rate=float(tail_probability(a)), slope=_slope_of_ratio(a)
    )


@dataclass(frozen=True)
class StaticMeanField:
    """Per-layer predictions of the static mean-field; index 0 is the first spiking layer.

    ``mean``, ``variance`` (of the membrane) and ``rate`` :math:`p_l` are ``(depth,)`` arrays
    (:func:`static_mean_field`).

    Example:
        >>> static_mean_field(3, 0.02, 100, threshold=0.0).rate.tolist()  # Q(0) at every layer
        [0.5, 0.5, 0.5]
    """

    mean: np.ndarray
    variance: np.ndarray
    rate: np.ndarray


def static_mean_field(
    depth: int,
    weight_variance: float | Sequence[float],
    fan_in: int,
    threshold: float,
    input_variance: float = 1.0,
    input_mean: float = 0.0,
    weight_mean: float | Sequence[float] = 0.0,
) -> StaticMeanField:
    r"""Membrane mean, variance and firing rate of every layer of a deep network at one step.

    Layer 1 is driven by the input current :math:`N(\mu_0, \sigma_0^2)`; each further layer
    receives the spikes of the previous one through ``fan_in`` weights of the given mean and
    variance (a scalar, or one value per connection: ``depth - 1`` values):

    .. math::

        p_l = Q\big((\theta-\mu_l)/\sigma_l\big),\quad
        \mu_{l+1} = n\,m_w\,p_l,\quad
        \sigma^2_{l+1} = n\,v_w\,p_l + n\,m_w^2\,p_l(1-p_l).

    Example:
        >>> mf = static_mean_field(100, spike_weight_variance(1000, 1.0), 1000, 1.0)
        >>> bool(abs(mf.variance[-1] - 1.0) < 1e-9)
        True
    """
    depth = check_positive_int("depth", depth)
    fan_in = check_positive_int("fan_in", fan_in)
    threshold = check_finite_nonnegative("threshold", threshold)
    input_variance = check_positive("input_variance", input_variance)
    weight_variances = _per_connection("weight_variance", weight_variance, depth)
    weight_means = _per_connection("weight_mean", weight_mean, depth)
    if np.any(weight_variances < 0):
        raise InvalidArgumentError("weight_variance must be >= 0 for every layer")

    mean = np.empty(depth)
    variance = np.empty(depth)
    rate = np.empty(depth)
    mean[0], variance[0] = float(input_mean), input_variance
    for layer in range(depth):
        rate[layer] = _firing_probability(mean[layer], variance[layer], threshold)
        if layer + 1 < depth:
            p, v_w, m_w = rate[layer], weight_variances[layer], weight_means[layer]
            mean[layer + 1] = fan_in * m_w * p
            variance[layer + 1] = fan_in * v_w * p + fan_in * m_w**2 * p * (1.0 - p)
    return StaticMeanField(mean=mean, variance=variance, rate=rate)


def _firing_probability(mean: float, variance: float, threshold: float) -> float:
    if variance <= 0.0:
        return 1.0 if mean > threshold else 0.0
    return float(tail_probability((threshold - mean) / math.sqrt(variance)))


def _per_connection(name: str, value: float | Sequence[float], depth: int) -> np.ndarray:
    values = np.asarray(value, dtype=float)
    if values.ndim == 0:
        return np.full(max(depth - 1, 0), float(values))
    if values.shape != (depth - 1,):
        raise InvalidArgumentError(
            f"{name} must be a scalar or have depth - 1 = {depth - 1} entries, got {values.shape}"
        )
    return values
