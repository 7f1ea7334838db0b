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
to the identity and the signal survives: the diagonals that pass a pattern on unchanged,
and the gradient along such a chain, are :mod:`spikeinit.theory.copy_chain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikeinit._validation import (
    check_finite_nonnegative,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from spikeinit.engine.threads import single_threaded
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.temporal import gaussian_process_currents

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
