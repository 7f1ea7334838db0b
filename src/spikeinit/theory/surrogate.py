r"""Gaussian expectations of surrogate derivatives, for the backward mean field.

The surrogates themselves (names, default slopes, :math:`h'(x)`) are owned by
:mod:`spikeinit.neurons.surrogate`; :mod:`spikeinit.theory` re-exports ``SURROGATES`` and
``surrogate_derivative`` from there for convenience.
"""

from __future__ import annotations

from spikeinit._validation import check_positive
from spikeinit.neurons.surrogate import surrogate_derivative
from spikeinit.theory.gaussian import gaussian_expectation


def surrogate_second_moment(
    name: str, threshold: float, sigma: float = 1.0, slope: float | None = None
) -> float:
    r""":math:`E[h'(u-\theta)^2] = \int h'(u-\theta)^2\,\varphi(u/\sigma)/\sigma\,du`.

    Adaptive quadrature with a breakpoint at :math:`\theta`, where sharp surrogates (a fast
    sigmoid of slope 25 is about 0.1 wide) peak: a fixed Gauss-Hermite rule would miss them.

    Example:
        >>> from spikeinit.theory.gaussian import normal_density
        >>> round(surrogate_second_moment("fast-sigmoid", 0.0), 4)
        0.0106
        >>> round(normal_density(0.0) * 2 / (3 * 25), 4)  # narrow: phi(0) * int h'^2 = 2/(3k)
        0.0106
    """
    check_positive("sigma", sigma)
    return gaussian_expectation(lambda u: surrogate_derivative(name, u - threshold, slope) ** 2,
                                0.0, sigma, peak=threshold)
