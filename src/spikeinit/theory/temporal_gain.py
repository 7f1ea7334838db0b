r"""Solve for the gain whose stable temporal fixed point carries a target activity.

With :math:`g = n\,\mathrm{Var}[w]` shared by every hidden layer, the temporal mean-field map
:math:`R_l \mapsto R_{l+1}` (:mod:`spikeinit.theory.temporal`) has a fixed point whose
time-averaged rate :math:`\bar r(g)` grows with :math:`g`. ``solve_temporal_gain`` finds
:math:`g^*` with :math:`\bar r(g^*) = r_{target}` by Brent's method on :math:`\log g`, where
:math:`\bar r(g)` is the rate reached after ``settle_layers`` applications of the map from the
first layer's activity. The default target is the first layer's own time-averaged rate, so
the whole network keeps it. A target that no stable fixed point reaches (the rate jumps over it
as :math:`g` grows) raises ``ValueError`` that names the nearest reachable rates, or, with
``on_jump="nearest"``, is replaced by the nearest of them (the result records both rates in
``jump``; init ``temporal`` warns with them). A target above every reachable rate always raises.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from scipy import optimize

from spikeinit._validation import check_choice, check_open_unit_interval, check_positive_int
from spikeinit.engine.threads import single_threaded
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.temporal import (
    FINITE_WIDTH_SAMPLES,
    MAX_FINITE_WIDTH,
    InputCurrentProcess,
    LayerActivity,
    MonteCarloPopulation,
    input_layer_currents,
    next_layer_activity,
    simulate_population,
    synaptic_filter,
    temporal_mean_field,
)

SOLVER_SAMPLES = 8192
MIN_GAIN, MAX_GAIN = 1e-3, 1e4
DEFAULT_INPUT = InputCurrentProcess()
RELATIVE_TOLERANCE = 0.03
FINITE_WIDTH_TOLERANCE = 0.005
JUMP_TOLERANCE = 0.03
MAX_LOG_STEP = 1.0
JUMP_STEP = 2e-3
ON_JUMP = ("raise", "nearest")


@dataclass(frozen=True)
class TemporalGain:
    """The solved gain and what it gives: ``weight variance = gain / fan_in``.

    ``requested_rate`` is the rate asked for; ``target_rate`` the one solved for: the same,
    unless the settled rate jumps over the request and ``on_jump="nearest"`` took the nearest
    feasible rate, more than 3% away (then ``jump`` holds the rates on either side of the jump).

    Example:
        >>> solution = TemporalGain(gain=6.3, target_rate=0.16, fixed_point_rate=0.16,
        ...                         input_rate=0.16, rate_profile=(0.16,),
        ...                         input_rate_profile=(0.16,))
        >>> solution.gain / 1000, solution.moved  # the weight variance for fan-in 1000
        (0.0063, False)
        >>> replace(solution, jump=(0.05, 0.3)).moved
        True
    """

    gain: float
    target_rate: float
    fixed_point_rate: float
    input_rate: float
    rate_profile: tuple[float, ...]
    input_rate_profile: tuple[float, ...]
    requested_rate: float | None = None
    jump: tuple[float, float] | None = None

    @property
    def moved(self) -> bool:
        """Whether the target was moved to the nearest feasible rate."""
        return self.jump is not None


def _settled_rate(
    gain: float,
    start: LayerActivity,
    params: LIFParameters,
    population: MonteCarloPopulation,
    settle_layers: int,
    synaptic_decay: float = 0.0,
) -> LayerActivity:
    activity = start
    for layer in range(1, settle_layers + 1):
        activity = next_layer_activity(
            activity, gain, params, population.normals(layer), with_membrane=False,
            synaptic_decay=synaptic_decay,
        )
    return activity


@lru_cache(maxsize=128)
def solve_temporal_gain(
    params: LIFParameters,
    steps: int,
    inputs: InputCurrentProcess = DEFAULT_INPUT,
    target_rate: float | None = None,
    settle_layers: int = 30,
    samples: int = SOLVER_SAMPLES,
    seed: int = 0,
    width: int | None = None,
    synaptic_decay: float = 0.0,
    on_jump: str = "raise",
) -> TemporalGain:
    r"""The gain :math:`g^*` whose fixed point has time-averaged rate ``target_rate``.

    ``target_rate=None`` takes the first layer's time-averaged rate under ``inputs``; the rate
    is read after ``settle_layers`` applications of the map. Deterministic for a given
    ``seed`` (common random numbers); results are cached. ``synaptic_decay`` is the decay
    :math:`\alpha` of a current filter in front of every membrane (Norse ``LIFCell``).

    Where the settled rate jumps over the target (a saddle-node of the map: just below the
    jump's gain the network settles on a lower branch, just above on a higher one),
    ``on_jump="raise"`` raises ``ValueError`` naming both rates; ``on_jump="nearest"`` solves
    for the nearer one instead (a rate of 0, activity dying, is never taken when the other
    side is alive) and records the jump in the result (:attr:`TemporalGain.moved`). A target
    above the largest rate any gain up to ``MAX_GAIN`` reaches raises in both cases.

    With ``width`` (at most 4096), the infinite-width solution is refined by a bracketed search
    on the finite-width mean-field (:func:`~spikeinit.theory.temporal.temporal_mean_field` with
    ``width``), which carries the downward bias of layers of that width.

    Example:
        >>> solution = solve_temporal_gain(LIFParameters(beta=0.5, threshold=1.0), steps=20)
        >>> abs(solution.fixed_point_rate / solution.target_rate - 1) < 0.03
        True
    """
    check_choice("on_jump", on_jump, ON_JUMP)
    with single_threaded():
        solution = _solve(params, steps, inputs, target_rate, settle_layers, samples, seed,
                          synaptic_decay, on_jump)
    if width is None:
        return solution
    check_positive_int("width", width)
    if width > MAX_FINITE_WIDTH:
        return solution
    gain = finite_width_gain(solution, params, steps, inputs, settle_layers, width, seed,
                             synaptic_decay=synaptic_decay)
    return replace(solution, gain=gain)


def finite_width_gain(
    solution: TemporalGain,
    params: LIFParameters,
    steps: int,
    inputs: InputCurrentProcess,
    settle_layers: int,
    width: int,
    seed: int = 0,
    iterations: int = 6,
    tolerance: float = FINITE_WIDTH_TOLERANCE,
    synaptic_decay: float = 0.0,
) -> float:
    r"""Refine ``solution.gain`` so that layers of ``width`` neurons keep the target rate.

    Solves :math:`\log \bar r_{fw}(g) = \log r_{target}` on :math:`\log g`, where
    :math:`\bar r_{fw}` is the finite-width mean-field rate after ``settle_layers``. That rate
    grows with :math:`g` only on average: the finite-width map (64 groups of ``width`` neurons)
    is piecewise constant in :math:`g` and jumps by about 1% between nearby gains, so a free
    secant can read a near-zero slope and leap far (it did at threshold 1, beta 0.25, T = 20:
    to 1.31 times the gain, a rate 66% over the target). The search therefore first brackets
    the target from the infinite-width gain (steps of 0.05 in :math:`\log g`, doubling, at
    most :data:`MAX_LOG_STEP` away), then shrinks the bracket by false position kept inside
    its inner 80%, and returns the evaluated gain with the smallest error. It stops once that
    error is below ``tolerance`` (about the Monte Carlo noise of the map) or the bracket is
    narrower than 0.002. If the target cannot be bracketed, or the finite-width rate jumps
    over it, it warns (``RuntimeWarning``) and returns the best gain it evaluated.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> solution = solve_temporal_gain(p, steps=1, settle_layers=5, samples=1024)
        >>> gain = finite_width_gain(solution, p, 1, DEFAULT_INPUT, 5, width=64)
        >>> gain > solution.gain  # finite layers fire less: they need a larger gain
        True
        >>> mf = temporal_mean_field(6, gain, p, 1, samples=FINITE_WIDTH_SAMPLES, width=64)
        >>> bool(abs(mf.time_averaged_rate[-1] / solution.target_rate - 1) < 0.005)  # on target
        True
    """

    def log_error(log_gain: float) -> float:
        mf = temporal_mean_field(settle_layers + 1, math.exp(log_gain), params, steps, inputs,
                                 samples=FINITE_WIDTH_SAMPLES, seed=seed, width=width,
                                 **({"synaptic_decay": synaptic_decay} if synaptic_decay else {}))
        return math.log(max(float(mf.time_averaged_rate[-1]), 1e-9) / solution.target_rate)

    def rate(error: float) -> float:
        return solution.target_rate * math.exp(error)

    origin = math.log(solution.gain)
    error = log_error(origin)
    best = (abs(error), origin, error)
    if best[0] < tolerance:
        return solution.gain
    # The rate grows with the gain: step up when it is too low, down when too high.
    ends = {error > 0: (origin, error)}
    direction = -1.0 if error > 0 else 1.0
    step = 0.05
    while step <= MAX_LOG_STEP and len(ends) < 2:
        x = origin + direction * step
        f = log_error(x)
        best = min(best, (abs(f), x, f))
        ends[f > 0] = (x, f)
        step *= 2
    if len(ends) < 2:
        warnings.warn(
            f"finite-width refinement (width={width}) could not bracket the target rate "
            f"{solution.target_rate:.4g} within a factor e of the infinite-width gain "
            f"{solution.gain:.4g}; keeping the closest gain {math.exp(best[1]):.4g} "
            f"(rate {rate(best[2]):.4g})",
            RuntimeWarning, stacklevel=3,
        )
        return math.exp(best[1])
    (x_lo, f_lo), (x_hi, f_hi) = ends[False], ends[True]
    for _ in range(iterations):
        if best[0] < tolerance or abs(x_hi - x_lo) < 2e-3:
            break
        a, b = min(x_lo, x_hi), max(x_lo, x_hi)
        x = x_lo - f_lo * (x_hi - x_lo) / (f_hi - f_lo)
        x = min(max(x, a + 0.1 * (b - a)), b - 0.1 * (b - a))
        f = log_error(x)
        best = min(best, (abs(f), x, f))
        if f > 0:
            x_hi, f_hi = x, f
        else:
            x_lo, f_lo = x, f
    if best[0] > JUMP_TOLERANCE:
        warnings.warn(
            f"finite-width mean-field rate (width={width}) jumps over the target "
            f"{solution.target_rate:.4g} between gains {math.exp(x_lo):.4g} (rate "
            f"{rate(f_lo):.4g}) and {math.exp(x_hi):.4g} (rate {rate(f_hi):.4g}); keeping the "
            f"closer one. Nearest feasible targets: {rate(f_lo):.4g} or {rate(f_hi):.4g}",
            RuntimeWarning, stacklevel=3,
        )
    return math.exp(best[1])


def _solve(
    params: LIFParameters,
    steps: int,
    inputs: InputCurrentProcess,
    target_rate: float | None,
    settle_layers: int,
    samples: int,
    seed: int,
    synaptic_decay: float = 0.0,
    on_jump: str = "raise",
) -> TemporalGain:
    steps = check_positive_int("steps", steps)
    settle_layers = check_positive_int("settle_layers", settle_layers)
    population = MonteCarloPopulation(steps, samples, seed)
    first = simulate_population(input_layer_currents(inputs, population), params,
                                synaptic_decay=synaptic_decay)
    target = first.mean_rate if target_rate is None else target_rate
    check_open_unit_interval("target_rate", target)
    where = (f"threshold={params.threshold:g}, beta={params.beta:g}, reset={params.reset!r}, "
             f"T={steps}" + (f", synaptic decay={synaptic_decay:g}" if synaptic_decay else ""))

    def rate_at(log_gain: float) -> float:
        return _settled_rate(math.exp(log_gain), first, params, population, settle_layers,
                             synaptic_decay).mean_rate

    low, high = math.log(MIN_GAIN), math.log(MAX_GAIN)
    top = rate_at(high)
    if top < target:
        raise InvalidArgumentError(
            f"target rate {target:.4g} is above the largest rate {top:.4g} that {where} reach "
            f"(at gain {MAX_GAIN:g}); pass temporal-rate=<r> with r below {top:.4g}, or a "
            "larger input_std (the first layer's current std) for a higher first-layer rate"
        )
    log_gain = optimize.brentq(lambda x: rate_at(x) - target, low, high, xtol=1e-4)
    jump = None
    requested = target
    if abs(rate_at(log_gain) / target - 1) > RELATIVE_TOLERANCE:
        (x_below, below), (x_above, above) = (_branch(rate_at, log_gain, target, -1.0),
                                              _branch(rate_at, log_gain, target, 1.0))
        if on_jump == "raise":
            raise InvalidArgumentError(
                f"target rate {target:.4g} is not a stable fixed point for {where}: the "
                f"settled rate jumps from {below:.4g} to {above:.4g} at gain "
                f"{math.exp(log_gain):.4g}. Nearest feasible targets: {below:.4g} or "
                f"{above:.4g} (use temporal-rate=<r>)"
            )
        alive = [(abs(math.log(rate / target)), x, rate)
                 for x, rate in ((x_above, above), (x_below, below)) if rate > 0]
        if not alive:
            raise InvalidArgumentError(
                f"no gain up to {MAX_GAIN:g} gives a living network near the target "
                             f"rate {target:.4g} for {where}; pass temporal-rate=<r> or a larger "
                             "input_std")
        _, log_gain, nearest = min(alive)  # the closer in log rate; never a dead side
        if abs(nearest / target - 1) > RELATIVE_TOLERANCE:  # else: on the edge, close enough
            jump, target = (below, above), nearest
    gain = math.exp(log_gain)
    settled = _settled_rate(gain, first, params, population, settle_layers, synaptic_decay)
    return TemporalGain(
        gain=gain,
        target_rate=target,
        fixed_point_rate=settled.mean_rate,
        input_rate=first.mean_rate,
        rate_profile=tuple(np.round(settled.rate, 6)),
        input_rate_profile=tuple(np.round(first.rate, 6)),
        requested_rate=requested,
        jump=jump,
    )


def _branch(
    rate_at: Callable[[float], float], log_gain: float, target: float, direction: float
) -> tuple[float, float]:
    """``(log gain, rate)`` just past a jump of the settled rate at ``log_gain``.

    Steps of :data:`JUMP_STEP` in ``log_gain``, doubling up to :data:`MAX_LOG_STEP`, until the
    rate lies on the far side of ``target`` (above it for ``direction > 0``, below otherwise).
    """
    step = JUMP_STEP
    while True:
        x = log_gain + direction * step
        rate = rate_at(x)
        if (rate > target) == (direction > 0) or step >= MAX_LOG_STEP:
            return x, rate
        step *= 2


@lru_cache(maxsize=128)
def input_std_for_rate(
    params: LIFParameters,
    steps: int,
    rate: float,
    inputs: InputCurrentProcess = DEFAULT_INPUT,
    samples: int = SOLVER_SAMPLES,
    seed: int = 0,
    synaptic_decay: float = 0.0,
) -> float:
    r"""The std :math:`\sigma` of a zero-mean Gaussian input current at which a LIF population
    fires at the time-averaged ``rate`` over ``steps`` steps (the first layer's operating point).

    The current has the time structure of ``inputs`` (its ``std`` is replaced): constant over
    the steps, i.i.d., or the data's measured autocorrelation; ``synaptic_decay`` filters it
    first. The rate grows monotonically with :math:`\sigma` up to its limit (one half for a
    constant current), so the root is found by bisection in :math:`\log\sigma` on common random
    numbers, to 0.1 %. A rate at or above the limit raises ``ValueError`` naming both.

    Example:
        >>> sigma = input_std_for_rate(LIFParameters(beta=0.5, threshold=1.0), 1, 0.1587)
        >>> round(sigma, 2)  # one step: Q(1/sigma) = 0.1587 at sigma = 1
        1.0
    """
    check_open_unit_interval("rate", rate)
    check_positive_int("steps", steps)
    population = MonteCarloPopulation(steps, samples, seed)

    def fired(log_sigma: float) -> float:
        statistics = replace(inputs, std=math.exp(log_sigma))
        currents = input_layer_currents(statistics, population)
        return simulate_population(currents, params, with_membrane=False,
                                   synaptic_decay=synaptic_decay).mean_rate

    scale = max(params.threshold, 1e-3)
    low, high = math.log(scale) - 8.0, math.log(scale) + 12.0
    with single_threaded():
        ceiling = fired(high)
        if rate >= ceiling:
            raise InvalidArgumentError(
                f"rate {rate:g} is not reachable by a zero-mean input (at most "
                             f"{ceiling:.3g} for these neurons over {steps} steps)")
        for _ in range(60):
            middle = 0.5 * (low + high)
            if fired(middle) < rate:
                low = middle
            else:
                high = middle
            if high - low < 1e-3:
                break
    return math.exp(0.5 * (low + high))


#: Most neurons :func:`scale_for_rate` simulates (an evenly spaced subset beyond it).
SCALE_SOLVER_NEURONS = 65536


def solver_columns(flat: torch.Tensor, limit: int = SCALE_SOLVER_NEURONS) -> torch.Tensor:
    """At most ``limit`` columns of ``flat`` ``(T, columns)``, contiguous: all of them, or
    ``limit`` drawn without replacement by a fixed seed (kept in order). Evenly spaced columns
    would alias with the channel axis: every other channel of a layer of even width.

    Example:
        >>> flat = torch.arange(8.0).repeat(2, 1)  # 2 steps, 8 columns
        >>> solver_columns(flat, 4).shape, torch.equal(solver_columns(flat, 4),
        ...                                            solver_columns(flat, 4))
        (torch.Size([2, 4]), True)
    """
    if flat.shape[1] <= limit:
        return flat.contiguous()
    chosen = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(0))
    return flat[:, chosen[:limit].sort().values].contiguous()


def scale_for_rate(
    currents: torch.Tensor,
    params: LIFParameters,
    rate: float,
    synaptic_decay: float = 0.0,
    tolerance: float = 1e-3,
) -> float:
    r"""The factor :math:`s` at which a LIF population driven by :math:`s\,I` fires at the
    time-averaged ``rate``: the empirical counterpart of :func:`input_std_for_rate`.

    ``currents`` :math:`I` are ``(T, ...)``: the current each neuron receives at each step, as
    measured (every column one neuron of one sample; at most :data:`SCALE_SOLVER_NEURONS`
    of them are simulated, drawn without replacement by a fixed seed: evenly spaced columns
    would alias with the channel axis, every other channel of a layer of even width). Where
    :func:`input_std_for_rate` assumes a Gaussian process, this keeps the measured
    distribution: its heavy tails and the spread of variances over channels move the rate at a
    given :math:`E[I^2]` by 20 % and more (docs/architectures.md). The rate of :math:`s\,I`
    grows with :math:`s`; the root is found by Brent's method in :math:`\log s` to
    ``tolerance``. Raises ``ValueError`` when no scale reaches the rate (all-zero currents, or
    a ceiling below it).

    Example:
        >>> import torch
        >>> params = LIFParameters(beta=0.5, threshold=1.0)
        >>> current = torch.randn(1, 100_000, generator=torch.Generator().manual_seed(0))
        >>> round(scale_for_rate(current, params, 0.1587), 2)  # Q(1/s) = 0.1587 at s = 1
        1.0
    """
    check_open_unit_interval("rate", rate)
    steps = currents.shape[0]
    flat = currents.detach().float().reshape(steps, -1)
    flat = synaptic_filter(solver_columns(flat), synaptic_decay)
    power = float(flat.double().square().mean())
    if not power > 0:
        raise InvalidArgumentError("the currents are all zero: no scale gives them a rate")

    def excess(log_scale: float) -> float:
        spikes, _ = lif_multistep(flat * math.exp(log_scale), params)
        return float(spikes.double().mean()) - rate

    guess = math.log(max(params.threshold, 1e-3) / math.sqrt(power))
    low, high = guess - 1.0, guess + 1.0
    with single_threaded():
        for _ in range(12):
            if excess(low) < 0:
                break
            low -= 2.0
        for _ in range(12):
            if excess(high) > 0:
                break
            high += 2.0
        else:
            raise InvalidArgumentError(
                f"rate {rate:g} is not reached by these currents at any scale")
        root = optimize.brentq(excess, low, high, xtol=tolerance)
    return math.exp(root)


def normalized_input_std(
    params: LIFParameters,
    steps: int,
    rate: float,
    first_inputs: InputCurrentProcess = DEFAULT_INPUT,
    layers: int = 6,
    samples: int = SOLVER_SAMPLES,
    seed: int = 0,
    synaptic_decay: float = 0.0,
) -> float:
    r"""The current std :math:`\gamma` a normalization (BatchNorm in training mode) must give a
    layer fed by spikes so that its neurons fire at ``rate``, in a stack of such layers.

    With zero-mean weights the current's covariance over the steps is proportional to the
    spikes' second-moment matrix :math:`R` of the layer below, and the normalization scales it
    to :math:`\gamma^2 R / \overline{\mathrm{diag} R}`. Starting from a first layer driven by
    ``first_inputs`` at the rate, each layer's :math:`\gamma` is solved
    (:func:`input_std_for_rate` with that autocorrelation) and its :math:`R` passed on, for
    ``layers`` layers; the last :math:`\gamma` (the stack's fixed point) is returned.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=2.0, reset_order="immediate")
        >>> normalized_input_std(p, 4, 0.1) > input_std_for_rate(p, 4, 0.1)  # less persistent
        True
    """
    check_open_unit_interval("rate", rate)
    population = MonteCarloPopulation(steps, samples, seed)
    inputs = first_inputs
    std = input_std_for_rate(params, steps, rate, inputs, samples, seed, synaptic_decay)
    for _ in range(layers):
        currents = input_layer_currents(replace(inputs, std=std), population)
        activity = simulate_population(currents, params, with_membrane=False,
                                       synaptic_decay=synaptic_decay)
        second = np.asarray(activity.autocorrelation, dtype=float)
        scale = float(np.mean(np.diag(second)))
        if scale <= 0:
            break
        # a step where nobody fires (Norse's filter, a first step below threshold) carries no
        # current: a tiny diagonal floor keeps the covariance valid
        matrix = (second + 1e-4 * scale * np.eye(steps)) / scale
        inputs = InputCurrentProcess(kind="measured", std=1.0, autocorrelation=tuple(
            tuple(round(float(v), 4) for v in row) for row in matrix))
        std = input_std_for_rate(params, steps, rate, inputs, samples, seed, synaptic_decay)
    return std
