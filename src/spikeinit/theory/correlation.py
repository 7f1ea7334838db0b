r"""Two-input (correlation) mean-field of deep LIF networks over T steps.

Two inputs :math:`a` and :math:`b` enter the same network. Layer :math:`l` answers each with a
spike pattern :math:`s^a, s^b \in \{0, 1\}^{T \times n}`; how alike the two are is their
*pattern correlation*, the Pearson correlation over neurons and steps with each step's mean
removed:

.. math::

    c_l = \frac{\sum_t \left(E_i[s^a_{ti} s^b_{ti}] - r^a_t r^b_t\right)}
               {\sqrt{\sum_t r^a_t(1 - r^a_t)\;\sum_t r^b_t(1 - r^b_t)}},
    \qquad r^x_t = E_i[s^x_{ti}].

A square layer's weights are :math:`W = \alpha I + Z` with :math:`Z_{ij}` i.i.d. of mean
:math:`\mu/n` and variance :math:`g/n` (:class:`WeightStructure`). For wide layers the
currents of neuron :math:`i` for the two inputs are

.. math::

    I^x_t = \alpha\,s^x_{t,i} + \mu\,r^x_t + \eta^x_t, \qquad
    \mathrm{Cov}(\eta^x_t, \eta^y_{t'}) = g\,R^{xy}(t, t'), \quad
    R^{xy}(t,t') = E_i[s^x_{t,i}\,s^y_{t',i}],

a :math:`2T`-dimensional Gaussian for the i.i.d. part, plus the neuron's own pattern through
the diagonal. With :math:`\alpha = 0` this is the temporal mean-field of
:mod:`spikeinit.theory.temporal` run on a pair; an orthogonal matrix of gain :math:`\gamma`
acts, at infinite width, as i.i.d. weights with :math:`g = \gamma^2`. We evaluate the map with
a seeded Monte Carlo population of neurons that carries each neuron's joint pattern for
:math:`a` and :math:`b` from layer to layer (common random numbers, so the results are
deterministic and smooth in :math:`c`).

The *correlation map* :math:`c \mapsto C(c)` is the map of one layer at the stationary
single-input state: a pair of correlation :math:`c` is built from the stationary population
by giving :math:`b` the same pattern as :math:`a` in a fraction :math:`c` of the neurons and an
independent one in the rest, which has pattern correlation exactly :math:`c`. Its fixed
points and slopes (:func:`correlation_fixed_point`) say whether a difference between two
inputs survives depth: with i.i.d. zero-mean weights every pair is driven to the same
:math:`c^* > 0` with slope :math:`C'(c^*) < 1`, so the class signal decays like
:math:`C'(c^*)^l`; with :math:`\alpha` above the threshold and small :math:`g` the map is close
to the identity and the signal survives.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import optimize

from spikeinit._validation import (
    check_finite_nonnegative,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import surrogate_derivative
from spikeinit.theory.temporal import gaussian_process_currents, single_threaded

DEFAULT_PAIR_SAMPLES = 65536
#: Layers run to reach the stationary single-input state of :func:`stationary_population`.
STATIONARY_DEPTH = 30
#: Step of the finite differences that give the map's slopes.
SLOPE_STEP = 0.02


@dataclass(frozen=True)
class WeightStructure:
    r"""The weights of one layer as the pair mean-field sees them: :math:`W = \alpha I + Z`.

    ``gain`` :math:`g = n\,\mathrm{Var}[Z_{ij}]`, ``mean_gain`` :math:`\mu = n\,E[Z_{ij}]`,
    ``diagonal`` :math:`\alpha` (0 unless the layer is square and drawn around the identity).

    Example:
        >>> WeightStructure(gain=0.01, diagonal=1.2).diagonal
        1.2
    """

    gain: float
    mean_gain: float = 0.0
    diagonal: float = 0.0

    def __post_init__(self) -> None:
        check_finite_nonnegative("gain", self.gain)
        if not np.isfinite(self.mean_gain):
            raise InvalidArgumentError(f"mean_gain must be finite, got {self.mean_gain}")
        if not np.isfinite(self.diagonal):
            raise InvalidArgumentError(f"diagonal must be finite, got {self.diagonal}")


@dataclass(frozen=True)
class PairActivity:
    """A Monte Carlo population of neurons and their ``(T, samples)`` spikes for inputs a, b."""

    a: torch.Tensor
    b: torch.Tensor

    @property
    def rate(self) -> float:
        """Mean firing rate over steps and neurons, for input a."""
        return float(self.a.mean())

    @property
    def correlation(self) -> float:
        """The pattern correlation of a and b (:func:`pattern_correlation`)."""
        return pattern_correlation(self.a, self.b)

    def second_moments(self) -> np.ndarray:
        r"""The ``(2T, 2T)`` matrix :math:`E_i[s^x_t s^y_{t'}]` for ``x, y`` in ``(a, b)``."""
        both = torch.cat([self.a, self.b]).double()
        return (both @ both.T).numpy() / both.shape[1]

    def step_rates(self) -> np.ndarray:
        """``(2T,)``: the rate of each step for a, then for b."""
        return torch.cat([self.a, self.b]).double().mean(1).numpy()


@dataclass(frozen=True)
class CorrelationMeanField:
    """Per-layer predictions for a pair: ``rate`` (input a) and pattern ``correlation``.

    Both are ``(depth,)`` arrays; ``correlation[l]`` is :math:`c_l` of the module's formula
    (:func:`correlation_mean_field`).

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> mf = correlation_mean_field(3, WeightStructure(gain=6.0), p, 3, 1.0, samples=2048)
        >>> mf.correlation.round(6).tolist()  # the same input twice: the same patterns
        [1.0, 1.0, 1.0]
    """

    rate: np.ndarray
    correlation: np.ndarray


@dataclass(frozen=True)
class CorrelationFixedPoint:
    r"""The map's fixed point :math:`c^* = C(c^*)` below 1 and the slopes :math:`C'(c^*)` and
    :math:`C'(1)`; ``rate`` is the stationary rate (:func:`correlation_fixed_point`).

    ``correlation`` and ``slope_at_fixed_point`` are ``None`` when :math:`C(c) - c` never
    crosses from above to below 0 before 1, i.e. the map never falls under the identity.
    With :math:`C'(c^*) < 1 < C'(1)` every pair is drawn to :math:`c^*`, identical inputs
    included.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> fp = correlation_fixed_point(WeightStructure(gain=6.0), p, 3, samples=4096, grid=6)
        >>> fp.slope_at_fixed_point < 1.0 < fp.slope_at_one
        True
    """

    correlation: float | None
    slope_at_fixed_point: float | None
    slope_at_one: float
    rate: float


def pattern_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""The Pearson correlation of two spike patterns ``(T, ..., n)`` over neurons and steps.

    .. math::

        c = \frac{\sum_t \mathrm{Cov}_i(s^a_{ti}, s^b_{ti})}
                 {\sqrt{\sum_t \mathrm{Var}_i(s^a_{ti})\,\sum_t \mathrm{Var}_i(s^b_{ti})}}

    Each step's own mean over neurons is removed. A silent (or saturated) pattern has no
    variance: the result is then 0.

    Example:
        >>> s = torch.tensor([[1., 0., 1., 0.], [0., 1., 1., 0.]])
        >>> round(pattern_correlation(s, s), 12)
        1.0
    """
    if a.shape != b.shape:
        raise InvalidArgumentError(f"patterns must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    norm = float((a * a).sum().sqrt() * (b * b).sum().sqrt())
    return float((a * b).sum()) / norm if norm > 0 else 0.0


def _normals(steps: int, samples: int, seed: int, layer: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + layer)
    return torch.randn(2 * steps, samples, generator=generator)


def first_layer_pair(
    correlation: float,
    params: LIFParameters,
    steps: int,
    std: float = 1.0,
    mean: float = 0.0,
    samples: int = DEFAULT_PAIR_SAMPLES,
    seed: int = 0,
) -> PairActivity:
    r"""The first layer's answer to two inputs whose currents have correlation ``correlation``.

    Each neuron's currents :math:`(I^a, I^b)` are a bivariate :math:`N(\mathrm{mean},
    \mathrm{std}^2)` pair of correlation :math:`c`, held over the ``steps`` (a static image,
    ``direct`` encoding).

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> round(first_layer_pair(1.0, p, steps=3, samples=4096).correlation, 6)
        1.0
    """
    check_unit_interval("correlation", correlation)
    check_positive("std", std)
    steps = check_positive_int("steps", steps)
    samples = check_positive_int("samples", samples)
    z = _normals(1, samples, seed, 0)
    current_a = z[0]
    current_b = correlation * z[0] + float(np.sqrt(max(1.0 - correlation**2, 0.0))) * z[1]
    currents = torch.stack([current_a, current_b]) * std + mean
    with single_threaded():
        spikes, _ = lif_multistep(currents.reshape(1, 2 * samples).expand(steps, -1), params)
    return PairActivity(spikes[:, :samples], spikes[:, samples:])


def next_pair(activity: PairActivity, structure: WeightStructure, params: LIFParameters,
              normals: torch.Tensor) -> PairActivity:
    r"""One layer of the pair map: :math:`I^x_t = \alpha s^x_t + \mu r^x_t + \eta^x_t`, with
    :math:`\eta \sim N(0, g R)` over the :math:`2T` steps of both inputs (module docstring)."""
    steps, samples = activity.a.shape
    covariance = structure.gain * activity.second_moments()
    mean = structure.mean_gain * activity.step_rates()
    currents = gaussian_process_currents(mean, covariance, normals)
    if structure.diagonal:
        currents = currents + structure.diagonal * torch.cat([activity.a, activity.b])
    joined = torch.cat([currents[:steps], currents[steps:]], 1)
    with single_threaded():
        spikes, _ = lif_multistep(joined, params)
    return PairActivity(spikes[:, :samples], spikes[:, samples:])


def correlation_mean_field(
    depth: int,
    structure: WeightStructure | list[WeightStructure],
    params: LIFParameters,
    steps: int,
    input_correlation: float,
    input_std: float = 1.0,
    samples: int = DEFAULT_PAIR_SAMPLES,
    seed: int = 0,
) -> CorrelationMeanField:
    r"""Rate and pattern correlation of a pair through ``depth`` LIF layers.

    Layer 1 is driven by currents of correlation ``input_correlation`` and std ``input_std``
    (:func:`first_layer_pair`); layer :math:`l+1` by ``structure`` (one for all, or
    ``depth - 1`` of them) over layer :math:`l` (:func:`next_pair`).

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> mf = correlation_mean_field(4, WeightStructure(gain=6.0), p, 3, 0.5, samples=4096)
        >>> mf.correlation.shape
        (4,)
    """
    depth = check_positive_int("depth", depth)
    structures = _per_layer(structure, depth)
    activity = first_layer_pair(input_correlation, params, steps, input_std, samples=samples,
                                seed=seed)
    layers = [activity]
    for layer, weights in enumerate(structures, start=1):
        activity = next_pair(activity, weights, params, _normals(steps, samples, seed, layer))
        layers.append(activity)
    return CorrelationMeanField(
        rate=np.array([pair.rate for pair in layers]),
        correlation=np.array([pair.correlation for pair in layers]),
    )


def _per_layer(structure: WeightStructure | list[WeightStructure], depth: int
               ) -> list[WeightStructure]:
    if isinstance(structure, WeightStructure):
        return [structure] * (depth - 1)
    if len(structure) != depth - 1:
        raise InvalidArgumentError(
            f"structure needs depth - 1 = {depth - 1} entries, got {len(structure)}")
    return list(structure)


def stationary_population(
    structure: WeightStructure,
    params: LIFParameters,
    steps: int,
    input_std: float = 1.0,
    samples: int = DEFAULT_PAIR_SAMPLES,
    seed: int = 0,
    depth: int = STATIONARY_DEPTH,
) -> torch.Tensor:
    r"""``(T, samples)`` spikes of the single-input state after ``depth`` layers of
    ``structure``, the state at which :func:`correlation_map` is taken."""
    activity = first_layer_pair(1.0, params, steps, input_std, samples=samples, seed=seed)
    for layer in range(1, check_positive_int("depth", depth)):
        activity = next_pair(activity, structure, params, _normals(steps, samples, seed, layer))
    return activity.a


def pair_with_correlation(population: torch.Tensor, correlation: float,
                          seed: int = 0) -> PairActivity:
    r"""A pair of pattern correlation ``correlation`` from one population ``(T, samples)``:
    :math:`b` copies :math:`a`'s pattern in a fraction :math:`c` of the neurons and takes an
    independent neuron's pattern in the rest, so that
    :math:`R^{ab} = c\,R + (1 - c)\,r r^\top`."""
    check_unit_interval("correlation", correlation)
    samples = population.shape[1]
    generator = torch.Generator().manual_seed(seed)
    copied = torch.rand(samples, generator=generator) < correlation
    other = population[:, torch.randperm(samples, generator=generator)]
    return PairActivity(population, torch.where(copied, population, other))


def correlation_map(
    correlation: float | np.ndarray,
    structure: WeightStructure,
    params: LIFParameters,
    steps: int,
    population: torch.Tensor | None = None,
    input_std: float = 1.0,
    samples: int = DEFAULT_PAIR_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    r"""The one-layer map :math:`C(c)` at the stationary state of ``structure``.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> c = correlation_map([0.0, 1.0], WeightStructure(gain=6.0), p, 3, samples=8192)
        >>> bool(c[0] > 0.0), round(float(c[1]), 6)
        (True, 1.0)
    """
    if population is None:
        population = stationary_population(structure, params, steps, input_std, samples, seed)
    normals = _normals(steps, population.shape[1], seed, STATIONARY_DEPTH + 1)
    values = np.atleast_1d(np.asarray(correlation, dtype=float))
    return np.array([
        next_pair(pair_with_correlation(population, float(c), seed), structure, params,
                  normals).correlation
        for c in values
    ])


def correlation_fixed_point(
    structure: WeightStructure,
    params: LIFParameters,
    steps: int,
    input_std: float = 1.0,
    samples: int = DEFAULT_PAIR_SAMPLES,
    seed: int = 0,
    grid: int = 26,
) -> CorrelationFixedPoint:
    r"""The fixed point :math:`c^* = C(c^*) < 1` of the correlation map and its slopes.

    :math:`C` is evaluated on ``grid`` points of :math:`[0, 1]`; :math:`c^*` is the last
    crossing of :math:`C(c) - c` from above to below before 1, refined linearly. The slopes are
    finite differences of step :data:`SLOPE_STEP`. :math:`C'(c^*) < 1` means the pairs are
    pulled to :math:`c^*` (the class signal decays as :math:`C'(c^*)^l`).

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> fp = correlation_fixed_point(WeightStructure(gain=6.0), p, 3, samples=8192, grid=6)
        >>> 0.0 < fp.correlation < 1.0 and fp.slope_at_fixed_point < 1.0
        True
    """
    grid = check_positive_int("grid", grid)
    population = stationary_population(structure, params, steps, input_std, samples, seed)
    points = np.linspace(0.0, 1.0 - SLOPE_STEP, max(grid, 2))
    values = correlation_map(points, structure, params, steps, population, seed=seed)
    at_one = correlation_map(1.0, structure, params, steps, population, seed=seed)[0]
    slope_at_one = float((at_one - values[-1]) / SLOPE_STEP)  # points[-1] = 1 - SLOPE_STEP
    gap = values - points
    crossings = np.nonzero((gap[:-1] > 0) & (gap[1:] <= 0))[0]
    if len(crossings) == 0:
        return CorrelationFixedPoint(None, None, slope_at_one, float(population.mean()))
    i = int(crossings[-1])
    fixed = float(points[i] - gap[i] * (points[i + 1] - points[i]) / (gap[i + 1] - gap[i]))
    around = correlation_map([max(fixed - SLOPE_STEP / 2, 0.0), fixed + SLOPE_STEP / 2],
                             structure, params, steps, population, seed=seed)
    slope = float((around[1] - around[0]) / SLOPE_STEP)
    return CorrelationFixedPoint(fixed, slope, slope_at_one, float(population.mean()))


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


def _bisect(ok, bad: float, good: float, tolerance: float) -> float:
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
