r"""The copy chain: layers :math:`W \approx \alpha I` that pass every spike pattern on unchanged.

A neuron driven by :math:`I_t = \alpha\,s_t`, the spikes :math:`s \in \{0, 1\}^T` of its twin in
the layer below, *copies* the pattern when it answers every :math:`s` with :math:`s` itself
(:func:`copies_patterns`, over :func:`binary_patterns`). The diagonals that copy form a window
:math:`(\mathrm{low}, \mathrm{high})` (:func:`copy_window`): below it a spike at every step
cannot be kept up, above it the residue of one spike makes the next. Inside it, the smallest
distance of the membrane from the threshold (:func:`copy_margin`) is how far the i.i.d. part
of the weights may move a current without changing a spike, which keeps the correlation map
of :mod:`spikeinit.theory.correlation` close to the identity.

Backward, the error on a copied spike is multiplied per layer by
:math:`\alpha\,h'(\alpha - \theta)` (:func:`copy_path_gain`); :func:`isometric_copy_slope`
finds the surrogate slope that makes this gain 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import optimize

from spikeinit._validation import check_positive, check_positive_int, check_unit_interval
from spikeinit.engine.threads import single_threaded
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import surrogate_derivative

#: Patterns of at most this many steps are all enumerated by :func:`copy_window`; longer ones
#: are sampled.
ENUMERATED_STEPS = 10
COPY_PATTERN_SAMPLES = 4096


def binary_patterns(steps: int, seed: int = 0) -> torch.Tensor:
    """``(T, P)``: every binary pattern of ``steps`` steps (``steps <= 10``), else the silent,
    the full and the alternating patterns with :data:`COPY_PATTERN_SAMPLES` random ones."""
    steps = check_positive_int("steps", steps)
    if steps <= ENUMERATED_STEPS:
        codes = torch.arange(2**steps)
        return ((codes[None, :] >> torch.arange(steps)[:, None]) & 1).float()
    generator = torch.Generator().manual_seed(seed)
    random = (torch.rand(steps, COPY_PATTERN_SAMPLES, generator=generator) < 0.5).float()
    alternating = (torch.arange(steps) % 2).float()[:, None]
    fixed = torch.cat([torch.zeros(steps, 1), torch.ones(steps, 1), alternating,
                       1 - alternating], 1)
    return torch.cat([fixed, random], 1)


def copies_patterns(diagonal: float, params: LIFParameters, steps: int) -> bool:
    r"""Whether a neuron driven by :math:`I_t = \alpha\,s_t` answers every binary pattern
    :math:`s` of ``steps`` steps with :math:`s` itself (:func:`binary_patterns`)."""
    patterns = binary_patterns(steps)
    with single_threaded():
        spikes, _ = lif_multistep(diagonal * patterns, params)
    return bool(torch.equal(spikes, patterns))


@dataclass(frozen=True)
class CopyWindow:
    r"""The diagonals :math:`\alpha \in (\mathrm{low}, \mathrm{high})` for which a layer
    :math:`W = \alpha I` passes every spike pattern on unchanged; ``high`` is ``inf`` when no
    diagonal above ``low`` fails. ``margin`` (at the chosen ``diagonal``) is the smallest
    distance :math:`|u_t - \theta|` of the membrane from the threshold over all patterns and
    steps: the i.i.d. part of the weights may move a current by less than that without
    changing a spike (:func:`copy_window`).

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> w = copy_window(p, steps=3)
        >>> w.low < w.diagonal < w.high, round(w.margin, 4)
        (True, 0.625)
        >>> [copies_patterns(a, p, 3) for a in (w.low - 0.1, w.diagonal, w.high + 0.1)]
        [False, True, False]
    """

    low: float
    high: float
    diagonal: float
    margin: float


def copy_window(params: LIFParameters, steps: int, position: float = 0.25,
                upper: float = 16.0, tolerance: float = 1e-6) -> CopyWindow:
    r"""The window of diagonals that copy every pattern, and a diagonal inside it.

    The low end is the smallest :math:`\alpha` whose layer :math:`\alpha I` copies every
    pattern (bisection, within ``tolerance``): a spike at every step needs the membrane, fed
    :math:`\alpha` per step and reset by :math:`\theta` after each spike, to stay above
    :math:`\theta` (for snnTorch's delayed subtractive reset and :math:`T = 3`:
    :math:`\alpha(1 + \beta + \beta^2) > (2 + \beta)\,\theta`). The high end is where the
    residue of a spike makes a spike the pattern does not have (``inf`` if no diagonal up to
    ``upper`` :math:`\cdot\,\theta` does). The chosen diagonal lies at ``position`` of the
    way from ``low`` to ``min(high, 2 low)``.

    Example:
        >>> w = copy_window(LIFParameters(beta=0.5, threshold=1.0), steps=3)
        >>> round(w.low, 4), round(w.high, 4), round(w.diagonal, 4)
        (1.4286, 3.3333, 1.7857)
    """
    steps = check_positive_int("steps", steps)
    check_unit_interval("position", position)
    copies = lambda diagonal: copies_patterns(diagonal, params, steps)  # noqa: E731
    theta = max(params.threshold, 1e-12)
    probe = np.geomspace(theta, upper * theta, 64)
    first = next((float(a) for a in probe if copies(float(a))), None)
    if first is None:
        raise InvalidArgumentError(
            f"no diagonal up to {upper} x threshold copies every {steps}-step pattern for "
            f"{params}; the deep init needs neurons that can pass a spike pattern on")
    low = _bisect(copies, 0.0, first, tolerance)
    beyond = next((float(a) for a in probe if a > first and not copies(float(a))), None)
    high = float("inf") if beyond is None else _bisect(
        lambda a: not copies(a), first, beyond, tolerance)
    diagonal = low + position * (min(high, 2.0 * low) - low)
    return CopyWindow(low, high, diagonal, copy_margin(diagonal, params, steps))


def _bisect(ok: Callable[[float], bool], bad: float, good: float, tolerance: float
            ) -> float:
    """The boundary between ``bad`` (``ok`` false) and ``good`` (``ok`` true)."""
    while abs(good - bad) > tolerance * max(1.0, abs(good)):
        middle = 0.5 * (bad + good)
        if ok(middle):
            good = middle
        else:
            bad = middle
    return good


def copy_margin(diagonal: float, params: LIFParameters, steps: int) -> float:
    r"""The smallest :math:`|u_t - \theta|` over all patterns and steps of a copying neuron."""
    patterns = binary_patterns(steps)
    membranes = torch.empty_like(patterns)
    with single_threaded():
        lif_multistep(diagonal * patterns, params, membranes_out=membranes)
    return float((membranes - params.threshold).abs().min())


def copy_path_gain(diagonal: float, params: LIFParameters) -> float:
    r"""Backward gain per layer along a copy chain: :math:`\alpha\,h'(\alpha - \theta)`.

    A neuron of a layer :math:`W \approx \alpha I` that copies a spike of its twin from rest
    has :math:`u = \alpha`, so the error on the twin's spike is its own error times
    :math:`\alpha h'(\alpha - \theta)` (the surrogate ``params.surrogate`` at slope
    ``params.slope``). Over :math:`L` copy layers the gradient reaching the first ones scales
    like this gain to the power :math:`L`: below 1 they stop learning, above 1 they explode.
    For atan, :math:`\max_a \alpha h'_a(\alpha - \theta) = \alpha / (2\pi(\alpha - \theta))`,
    so a gain of 1 needs :math:`\alpha \le 2\pi\theta / (2\pi - 1) \approx 1.19\,\theta`
    (:func:`isometric_copy_slope`).

    Example:
        >>> p = LIFParameters(threshold=1.0, reset_order="immediate", surrogate="atan",
        ...                   surrogate_slope=2.0)
        >>> round(copy_path_gain(1.1, p), 3)
        1.001
    """
    return float(diagonal * surrogate_derivative(params.surrogate, diagonal - params.threshold,
                                                 params.slope))


def isometric_copy_slope(diagonal: float, params: LIFParameters,
                         slopes: tuple[float, float] = (1e-3, 1e3)) -> float | None:
    r"""The widest surrogate (smallest slope of ``params.surrogate``) whose copy-path gain
    :math:`\alpha h'(\alpha - \theta)` is 1, or ``None`` when no slope in ``slopes`` reaches 1.

    Solved numerically on the surrogate table's own derivative (a log-spaced scan for the first
    crossing of 1, then Brent's method on the log slope). For atan the answer is
    :math:`a = (\alpha - \sqrt{\alpha^2 - 4\pi^2 d^2}) / (\pi^2 d^2)` with
    :math:`d = \alpha - \theta`, real only for :math:`\alpha \le 2\pi\theta/(2\pi - 1)`:
    snnTorch's delayed reset copies only from :math:`\alpha > 1.43\,\theta` (:math:`T = 3`,
    :math:`\beta = 0.5`), so no atan slope makes its copy chain isometric, while the immediate
    reset (window from :math:`\theta`) allows it (docs/depth.md).

    Example:
        >>> p = LIFParameters(threshold=1.0, reset_order="immediate", surrogate="atan")
        >>> round(isometric_copy_slope(1.1, p), 2)
        2.0
        >>> isometric_copy_slope(1.786, LIFParameters(threshold=1.0, surrogate="atan")) is None
        True
    """
    low, high = (check_positive("slopes", value) for value in slopes)
    grid = np.log(np.geomspace(low, high, 241))

    def excess(log_slope: float) -> float:
        slope = float(np.exp(log_slope))
        return copy_path_gain(diagonal, replace(params, surrogate_slope=slope)) - 1.0

    values = [excess(x) for x in grid]
    for i in range(1, len(grid)):
        if (values[i - 1] < 0.0) != (values[i] < 0.0):
            return float(np.exp(optimize.brentq(excess, grid[i - 1], grid[i], xtol=1e-14)))
    return None
