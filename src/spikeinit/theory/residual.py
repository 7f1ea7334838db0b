r"""Residual blocks of threshold units: rate and variance through the three additions.

Three ways of adding a shortcut are in use (docs/architectures.md):

- **spike addition** (SEW-ResNet, ADD): the block's output is its input plus the spikes of its
  last neurons, :math:`x_{l+1} = x_l + a\,s_l`, so the stream is a spike *count*. With the
  branches' neurons at rate :math:`r` and independent terms (:func:`sum_moments`),

  .. math::

      E[x_{l}] = E[x_0] + l\,a r, \qquad
      E[x_{l}^2] = E[x_{l-1}^2] + a^2 r + 2\,a r\,E[x_{l-1}]

  (:func:`spike_stream_moments`): the second moment grows quadratically with depth. The first
  layer of each block sees it, so its weights need :math:`\mathrm{Var}[w] \propto 1/E[x_l^2]`
  to keep its neurons at :math:`r`; every population of the block is then at :math:`r`.
- **membrane shortcut** (MS-ResNet): the stream is a current, the branches add currents,
  :math:`x_{l+1} = x_l + b_l`, and every block *starts* with neurons that read :math:`x_l`.
  Its variance only grows, :math:`v_l = v_0 + \sum_{k \le l} v_{b_k}`, so the rate
  :math:`Q(\tilde\theta/\sqrt{v_l})` of those neurons rises with depth. Constant activity needs
  branches that shrink with depth, as Fixup and SkipInit do for ReLU networks: with a stem at
  :math:`v_0 = (1-\rho/2)\,\sigma^2` and each of the :math:`L` branches at
  :math:`v_b = \rho\,\sigma^2/L`, the stream stays within :math:`(1 \pm \rho/2)\,\sigma^2` and
  the rate within a band around :math:`r = Q(\tilde\theta/\sigma)`; :func:`stream_fraction`
  gives the largest :math:`\rho` for a band of relative width ``tolerance``.
- **BatchNorm then addition** (spiking ResNet): the last neurons of a block read the normalized
  current plus the shortcut's spikes, :math:`I = \gamma z + a\,s`, :math:`z \sim N(0, 1)`,
  :math:`s \sim \mathrm{Bernoulli}(p)`. In one step they fire with probability
  (:func:`mixture_rate`)

  .. math::

      r(\gamma) = p\,Q\big((\tilde\theta - a)/\gamma\big) + (1-p)\,Q(\tilde\theta/\gamma),

  and :func:`branch_std_for_rate` solves :math:`r(\gamma) = r^*` for the branch's std (for a
  Gaussian shortcut of mean :math:`m` and variance :math:`v`:
  :math:`Q((\tilde\theta - m)/\sqrt{\gamma^2 + v})`, :func:`gaussian_sum_rate`).

**Over time.** These are one-step maps. Over :math:`T` steps a LIF integrates its current, and
the std that gives a rate is not :math:`\tilde\theta / Q^{-1}(r)`; :func:`temporal_correction`
is the ratio :math:`\kappa` of the std that the temporal theory needs (what a plain layer is
drawn with) to the one-step one, and the initializer multiplies the one-step solution by it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize
from scipy.stats import norm as gaussian

from spikeinit._validation import check_finite_nonnegative, check_open_unit_interval
from spikeinit.errors import InvalidArgumentError
from spikeinit.theory.gaussian import tail_probability

__all__ = [
    "branch_std_for_rate",
    "gaussian_sum_rate",
    "mixture_rate",
    "spike_stream_moments",
    "stream_fraction",
    "stream_variances",
    "sum_moments",
    "temporal_correction",
]


def sum_moments(terms: Sequence[tuple[float, float]]) -> tuple[float, float]:
    r"""``(E[x], E[x^2])`` of a sum of independent terms, each given as ``(E[x_i], E[x_i^2])``:

    .. math::

        E\Big[\sum_i x_i\Big] = \sum_i m_i, \qquad
        E\Big[\Big(\sum_i x_i\Big)^2\Big] = \sum_i s_i + 2 \sum_{i<j} m_i m_j.

    Example:
        >>> sum_moments([(0.1, 0.1), (0.1, 0.1)])   # two spike trains at rate 0.1
        (0.2, 0.22000000000000003)
    """
    mean = sum(m for m, _ in terms)
    second = sum(s for _, s in terms) + (mean**2 - sum(m**2 for m, _ in terms))
    return float(mean), float(second)


def spike_stream_moments(blocks: int, rate: float, input_mean: float, input_second: float,
                         amplitude: float = 1.0) -> list[tuple[float, float]]:
    r"""``(E[x_l], E[x_l^2])`` for :math:`l = 0..` ``blocks`` of a SEW (spike-addition) stream,
    :math:`x_{l+1} = x_l + a s_l` with :math:`s_l` spikes at ``rate`` independent of
    :math:`x_l` (the module docstring's recursion).

    Example:
        >>> [round(s, 3) for _, s in spike_stream_moments(3, 0.1, 0.1, 0.1)]
        [0.1, 0.22, 0.36, 0.52]
    """
    check_open_unit_interval("rate", rate)
    moments = [(float(input_mean), float(input_second))]
    spike = (amplitude * rate, amplitude**2 * rate)
    for _ in range(int(blocks)):
        moments.append(sum_moments([moments[-1], spike]))
    return moments


def mixture_rate(theta: float, std: float, shortcut_rate: float,
                 amplitude: float = 1.0) -> float:
    r"""One-step rate of a neuron fed :math:`\gamma z + a s`, :math:`z \sim N(0,1)`,
    :math:`s \sim \mathrm{Bernoulli}(p)`:
    :math:`p\,Q((\tilde\theta - a)/\gamma) + (1-p)\,Q(\tilde\theta/\gamma)`.

    Example:
        >>> round(mixture_rate(1.0, 0.5, 0.1), 4)   # a shortcut spike alone reaches theta
        0.0705
    """
    check_finite_nonnegative("theta", theta)
    if std <= 0:
        return float(shortcut_rate if amplitude > theta else 0.0)
    spike = float(tail_probability((theta - amplitude) / std))
    silent = float(tail_probability(theta / std))
    return shortcut_rate * spike + (1.0 - shortcut_rate) * silent


def gaussian_sum_rate(theta: float, std: float, mean: float = 0.0,
                      variance: float = 0.0) -> float:
    r"""One-step rate :math:`Q((\tilde\theta - m)/\sqrt{\gamma^2 + v})` of a neuron fed a
    branch current of std :math:`\gamma` plus an independent shortcut of mean :math:`m` and
    variance :math:`v`.

    Example:
        >>> round(gaussian_sum_rate(1.0, 0.6, variance=0.64), 4)   # total std 1: Q(1)
        0.1587
    """
    total = math.sqrt(max(std**2 + variance, 0.0))
    if total == 0:
        return 1.0 if mean > theta else 0.0
    return float(tail_probability((theta - mean) / total))


def branch_std_for_rate(theta: float, rate: float, *, shortcut_rate: float | None = None,
                        amplitude: float = 1.0, mean: float = 0.0,
                        variance: float = 0.0) -> float | None:
    r"""The branch std :math:`\gamma` at which the neuron after the addition fires at ``rate``
    (one step), or ``None`` when the shortcut alone already fires it more often.

    With ``shortcut_rate`` the shortcut is spikes of height ``amplitude``
    (:func:`mixture_rate`), else a Gaussian of ``mean`` and ``variance``
    (:func:`gaussian_sum_rate`). The smallest :math:`\gamma` on a log grid of
    :math:`[10^{-4}, 10^{3}]\,\tilde\theta` where the rate crosses ``rate``, refined by Brent's
    method.

    Example:
        >>> round(branch_std_for_rate(1.0, 0.1, shortcut_rate=0.1), 4)
        0.6277
        >>> round(branch_std_for_rate(1.0, 0.1587, variance=0.64), 3)
        0.6
    """
    check_open_unit_interval("rate", rate)
    check_finite_nonnegative("theta", theta)

    def excess(log_std: float) -> float:
        std = math.exp(log_std)
        got = (mixture_rate(theta, std, shortcut_rate, amplitude) if shortcut_rate is not None
               else gaussian_sum_rate(theta, std, mean, variance))
        return got - rate

    scale = max(theta, 1e-6)
    grid = np.linspace(math.log(1e-4 * scale), math.log(1e3 * scale), 200)
    values = [excess(x) for x in grid]
    if values[0] >= 0:
        return None
    for left, right, low, high in zip(grid[:-1], grid[1:], values[:-1], values[1:]):
        if low < 0 <= high:
            return math.exp(optimize.brentq(excess, left, right, xtol=1e-12))
    return None


def stream_fraction(rate: float, tolerance: float) -> float:
    r"""The largest :math:`\rho` for which a membrane stream between
    :math:`(1 - \rho/2)\,\sigma^2` and :math:`(1 + \rho/2)\,\sigma^2` keeps the one-step rate
    :math:`Q(\tilde\theta/\sqrt{v})` within ``rate`` :math:`\cdot (1 \pm` ``tolerance``:math:`)`,
    where :math:`\sigma` gives ``rate``. With :math:`z(r) = Q^{-1}(r)`:

    .. math::

        \rho = 2 \min\Big(\frac{z(r)^2}{z(r(1+t))^2} - 1,\ 1 - \frac{z(r)^2}{z(r(1-t))^2}\Big).

    Example:
        >>> round(stream_fraction(0.1, 0.05), 4)
        0.0876
    """
    check_open_unit_interval("rate", rate)
    check_open_unit_interval("tolerance", tolerance)
    z = float(gaussian.isf(rate))
    if z <= 0:
        raise InvalidArgumentError(
            f"rate must be below 0.5 for a threshold above the mean, got {rate!r}")
    high = min(rate * (1 + tolerance), 0.499999)
    upper = (z / float(gaussian.isf(high)))**2 - 1.0
    lower = 1.0 - (z / float(gaussian.isf(rate * (1 - tolerance))))**2
    return 2.0 * min(upper, lower)


def stream_variances(blocks: int, fraction: float, variance: float = 1.0) -> list[float]:
    r"""Variance :math:`v_l` of a membrane stream after :math:`l = 0..` ``blocks`` branches, with
    the stem at :math:`(1-\rho/2)\,\sigma^2` and each branch at :math:`\rho\,\sigma^2/L`
    (``fraction`` is :math:`\rho`, ``variance`` :math:`\sigma^2`).

    Example:
        >>> [round(v, 3) for v in stream_variances(4, 0.2)]
        [0.9, 0.95, 1.0, 1.05, 1.1]
    """
    base, branch = (1 - fraction / 2) * variance, fraction * variance / max(int(blocks), 1)
    return [base + block * branch for block in range(int(blocks) + 1)]


def temporal_correction(std: float, theta: float, rate: float) -> float:
    r""":math:`\kappa = \sigma_T / \sigma_1`: the current std ``std`` that the temporal theory
    gives a plain layer for ``rate`` over the ``T`` steps, over the one-step
    :math:`\sigma_1 = \tilde\theta / Q^{-1}(r)`.

    Example:
        >>> round(temporal_correction(0.78, 1.0, 0.1), 3)
        1.0
    """
    check_open_unit_interval("rate", rate)
    one_step = theta / float(gaussian.isf(rate))
    return std / one_step if one_step > 0 else 1.0
