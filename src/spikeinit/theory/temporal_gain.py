r"""Solve for the gain whose stable temporal fixed point carries a target activity.

With :math:`g = n\,\mathrm{Var}[w]` shared by every hidden layer, the temporal mean-field map
:math:`R_l \mapsto R_{l+1}` (:mod:`spikeinit.theory.temporal`) has a fixed point whose
time-averaged rate :math:`\bar r(g)` grows with :math:`g`. ``solve_temporal_gain`` finds
:math:`g^*` with :math:`\bar r(g^*) = r_{target}` by Brent's method on :math:`\log g`, where
:math:`\bar r(g)` is the rate reached after ``settle_layers`` applications of the map from the
first layer's activity. The default target is the first layer's own time-averaged rate, so
the whole network keeps it. A target that no stable fixed point reaches (the rate jumps over it
as :math:`g` grows) raises ``ValueError`` that names the nearest reachable rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import optimize

from spikeinit._validation import check_open_unit_interval, check_positive_int
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.temporal import (
    FINITE_WIDTH_SAMPLES,
    MAX_FINITE_WIDTH,
    InputStatistics,
    LayerActivity,
    MonteCarloPopulation,
    input_layer_currents,
    next_layer_activity,
    simulate_population,
    single_threaded,
    temporal_mean_field,
)

SOLVER_SAMPLES = 8192
MIN_GAIN, MAX_GAIN = 1e-3, 1e4
DEFAULT_INPUT = InputStatistics()
RELATIVE_TOLERANCE = 0.03


@dataclass(frozen=True)
class TemporalGain:
    """The solved gain and what it gives: ``weight variance = gain / fan_in``."""

    gain: float
    target_rate: float
    fixed_point_rate: float
    input_rate: float
    rate_profile: tuple[float, ...]
    input_rate_profile: tuple[float, ...]


def _settled_rate(
    gain: float,
    start: LayerActivity,
    params: LIFParameters,
    population: MonteCarloPopulation,
    settle_layers: int,
) -> LayerActivity:
    activity = start
    for layer in range(1, settle_layers + 1):
        activity = next_layer_activity(
            activity, gain, params, population.normals(layer), with_membrane=False
        )
    return activity


@lru_cache(maxsize=128)
def solve_temporal_gain(
    params: LIFParameters,
    steps: int,
    inputs: InputStatistics = DEFAULT_INPUT,
    target_rate: float | None = None,
    settle_layers: int = 30,
    samples: int = SOLVER_SAMPLES,
    seed: int = 0,
    width: int | None = None,
) -> TemporalGain:
    r"""The gain :math:`g^*` whose fixed point has time-averaged rate ``target_rate``.

    ``target_rate=None`` takes the first layer's time-averaged rate under ``inputs``; the rate
    is read after ``settle_layers`` applications of the map. Deterministic for a given
    ``seed`` (common random numbers); results are cached.

    With ``width`` (at most 4096), the infinite-width solution is refined by a secant search
    on the finite-width mean-field (:func:`~spikeinit.theory.temporal.temporal_mean_field` with
    ``width``), which carries the downward bias of layers of that width.

    Example:
        >>> solution = solve_temporal_gain(LIFParameters(beta=0.5, threshold=1.0), steps=20)
        >>> abs(solution.fixed_point_rate / solution.target_rate - 1) < 0.03
        True
    """
    with single_threaded():
        solution = _solve(params, steps, inputs, target_rate, settle_layers, samples, seed)
    if width is None:
        return solution
    check_positive_int("width", width)
    if width > MAX_FINITE_WIDTH:
        return solution
    gain = finite_width_gain(solution, params, steps, inputs, settle_layers, width, seed)
    return replace(solution, gain=gain)


def finite_width_gain(
    solution: TemporalGain,
    params: LIFParameters,
    steps: int,
    inputs: InputStatistics,
    settle_layers: int,
    width: int,
    seed: int = 0,
    iterations: int = 4,
) -> float:
    r"""Refine ``solution.gain`` so that layers of ``width`` neurons keep the target rate.

    Secant iterations on :math:`\log g` of :math:`\log \bar r_{fw}(g) - \log r_{target}`,
    where :math:`\bar r_{fw}` is the finite-width mean-field rate after ``settle_layers``.
    """

    def log_error(log_gain: float) -> float:
        mf = temporal_mean_field(settle_layers + 1, math.exp(log_gain), params, steps, inputs,
                                 samples=FINITE_WIDTH_SAMPLES, seed=seed, width=width)
        return math.log(max(float(mf.time_averaged_rate[-1]), 1e-9) / solution.target_rate)

    x0, x1 = math.log(solution.gain), math.log(solution.gain) + 0.05
    f0, f1 = log_error(x0), log_error(x1)
    for _ in range(iterations):
        if abs(f1) < 2e-3 or f1 == f0:
            break
        x0, x1, f0 = x1, x1 - f1 * (x1 - x0) / (f1 - f0), f1
        x1 = min(max(x1, math.log(solution.gain) - 1.0), math.log(solution.gain) + 1.0)
        f1 = log_error(x1)
    return math.exp(x1)


def _solve(
    params: LIFParameters,
    steps: int,
    inputs: InputStatistics,
    target_rate: float | None,
    settle_layers: int,
    samples: int,
    seed: int,
) -> TemporalGain:
    steps = check_positive_int("steps", steps)
    settle_layers = check_positive_int("settle_layers", settle_layers)
    population = MonteCarloPopulation(steps, samples, seed)
    first = simulate_population(input_layer_currents(inputs, population), params)
    target = first.mean_rate if target_rate is None else target_rate
    check_open_unit_interval("target_rate", target)

    def rate_at(log_gain: float) -> float:
        settled = _settled_rate(math.exp(log_gain), first, params, population, settle_layers)
        return settled.mean_rate

    low, high = math.log(MIN_GAIN), math.log(MAX_GAIN)
    if rate_at(high) < target:
        raise ValueError(
            f"target rate {target:.4g} is above the largest rate {rate_at(high):.4g} that "
            f"threshold={params.threshold}, beta={params.beta}, reset={params.reset!r} reach"
        )
    log_gain = optimize.brentq(
        lambda x: rate_at(x) - target, low, high, xtol=1e-4
    )
    gain = math.exp(log_gain)
    low, high = log_gain - 1e-4, log_gain + 1e-4
    settled = _settled_rate(gain, first, params, population, settle_layers)
    if abs(settled.mean_rate / target - 1) > RELATIVE_TOLERANCE:
        below, above = rate_at(low), rate_at(high)
        raise ValueError(
            f"target rate {target:.4g} is not a stable fixed point for threshold="
            f"{params.threshold}, beta={params.beta}, reset={params.reset!r}, T={steps}: the "
            f"settled rate jumps from {below:.4g} to {above:.4g} at gain {gain:.4g}. "
            f"Nearest feasible targets: {below:.4g} or {above:.4g} (use temporal-rate=<r>)"
        )
    return TemporalGain(
        gain=gain,
        target_rate=target,
        fixed_point_rate=settled.mean_rate,
        input_rate=first.mean_rate,
        rate_profile=tuple(np.round(settled.rate, 6)),
        input_rate_profile=tuple(np.round(first.rate, 6)),
    )
