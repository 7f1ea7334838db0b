r"""Mean-field theory of a recurrent LIF population: stationary rate, memory time, regimes.

:math:`N` LIF neurons (the update of :class:`~spikeinit.neurons.parameters.LIFParameters`)
receive a feed-forward current and their own spikes of the previous step,

.. math::

    I_i[t] = \mu + \sigma\,\xi_i[t] + \sum_j W_{ij}\,s_j[t-1], \qquad
    W_{ij} \sim N\big(m/N,\ g^2/N\big)\ \text{i.i.d.},

with :math:`\xi_i[t]` standard normal, independent over neurons and steps. For large :math:`N`
the recurrent current of one neuron is Gaussian (dynamic mean field). With
:math:`r = \langle r_i \rangle` the rate and :math:`q = \langle r_i^2 \rangle` the second
moment of the neurons' rates, it has a mean :math:`m\,r`, a quenched part, constant in time
and different for each neuron, of variance :math:`g^2 q`, and a fluctuating part of variance
:math:`g^2 (r - q)`, which the closure used here takes as white. Neuron :math:`i` then sees

.. math::

    I_i[t] = \mu + m\,r + g\sqrt{q}\,z_i + \sigma_w\,\eta_i[t], \qquad
    \sigma_w^2 = \sigma^2 + g^2 (r - q), \qquad z_i,\ \eta_i[t] \sim N(0, 1),

and :math:`(r, q)` is the fixed point of
:math:`r = E_z\,\nu(\mu + m r + g\sqrt q z,\ \sigma_w)`,
:math:`q = E_z\,\nu(\cdot)^2`, where :math:`\nu(\mu, \sigma)` is the stationary rate of one LIF
neuron under the white current :math:`N(\mu, \sigma^2)`. The average over :math:`z` is a
Gauss-Hermite quadrature; :math:`\nu` is a seeded Monte Carlo population of such neurons
(common random numbers, as in :mod:`spikeinit.theory.temporal`).

**Memory.** A weak input pattern :math:`\delta_i` (unit variance per neuron) given at step 0
changes the noise-averaged spikes by :math:`\delta\bar s_i[t] = \sum_j G_{ij}[t]\,\delta_j`.
Each neuron answers its own input through its linear response kernel
:math:`\chi_i[k] = \partial E\,s_i[t+k] / \partial \mu_i[t]` (measured on the population by
Novikov's theorem, :math:`\chi[k] = E\,s[t+k]\,\eta[t] / \sigma_w`), and its recurrent input
:math:`\sum_j W_{ij}\,\delta\bar s_j[t-1]` is Gaussian with variance :math:`g^2` times the mean
square response. The equal- and two-time mean square response
:math:`\Delta(t,t') = \langle \delta\bar s_i[t]\,\delta\bar s_i[t'] \rangle` therefore obeys

.. math::

    \Delta = \big\langle X_i\,\big(e_0 e_0^\top + g^2\,S\,\Delta\,S^\top\big)\,X_i^\top
    \big\rangle_i,

with :math:`X_i` the lower-triangular Toeplitz matrix of :math:`\chi_i` and :math:`S` the
one-step shift. The **memory time** :math:`\tau` is the e-fold time of the rms response
:math:`\rho[t] = \sqrt{\Delta(t,t) / \Delta(0,0)}` (log-linear between steps), and the
**contraction factor** is :math:`\lambda = e^{-1/\tau}`. For a geometric kernel
:math:`\chi[k] = a\,b^k` the response decays as :math:`(b + g a)^t` up to a power of
:math:`t`: the membrane's own decay :math:`b` and the recurrent loop :math:`g a` add.

**Edge and regimes.** A perturbation along the slowest mode of :math:`W` grows once the loop
gain at zero frequency reaches one:

.. math::

    \Lambda = g \sqrt{\langle \hat\chi_i(1)^2 \rangle} = 1, \qquad
    \hat\chi_i(1) = \sum_k \chi_i[k] = \frac{\partial r_i}{\partial \mu},

the slope of each neuron's stationary transfer function. With a mean weight the uniform mode
has the loop gain :math:`m \langle \hat\chi_i(1) \rangle`. The regimes are ``"silent"``
(:math:`r` below :data:`SILENT_RATE`), ``"stable"`` (both loop gains below one),
``"chaotic"`` (:math:`\Lambda \ge 1`: the fixed point above loses stability and the network
makes its own slow fluctuations, which the white closure leaves out, so no memory time is
given there) and ``"runaway"`` (the uniform mode's loop gain :math:`\ge 1`: the rate runs to
another fixed point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from spikeinit._validation import (
    check_finite_nonnegative,
    check_open_unit_interval,
    check_positive,
    check_positive_int,
)
from spikeinit.errors import InternalError, InvalidArgumentError
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.temporal import single_threaded

#: Below this stationary rate (spikes per neuron per step) the population counts as silent.
SILENT_RATE = 1e-3
#: Gauss-Hermite nodes of the average over the quenched input :math:`z_i`.
QUADRATURE_NODES = 9
#: Monte Carlo neurons per quadrature node, steps simulated and steps dropped before measuring.
NODE_SAMPLES, STATE_STEPS, BURN_IN = 512, 350, 100
#: Neurons per node and steps of the (more demanding) response-kernel measurement.
KERNEL_SAMPLES, KERNEL_STEPS = 2048, 500
#: Lags of the response kernel and of the response curve.
RESPONSE_LAGS = 40
MAX_ITERATIONS, RATE_TOLERANCE = 60, 1e-4
REGIMES = ("silent", "stable", "chaotic", "runaway")


@dataclass(frozen=True)
class RecurrentPopulation:
    r"""A recurrent LIF population: :math:`W_{ij} \sim N(m/N, g^2/N)` and a feed-forward
    current :math:`N(\mu, \sigma^2)`, new at every step and for every neuron.

    ``gain`` is :math:`g` (the recurrent weights' std is ``gain / sqrt(N)``), ``mean_gain`` is
    :math:`m` (their mean is ``mean_gain / N``), ``input_mean`` :math:`\mu` and ``input_std``
    :math:`\sigma > 0` describe the feed-forward current per step.

    Example:
        >>> population = RecurrentPopulation(LIFParameters(beta=0.5), gain=2.0)
        >>> population.weight_std(400), population.input_std
        (0.1, 1.0)
    """

    params: LIFParameters
    gain: float
    mean_gain: float = 0.0
    input_mean: float = 0.0
    input_std: float = 1.0

    def __post_init__(self) -> None:
        check_finite_nonnegative("gain", self.gain)
        check_positive("input_std", self.input_std)
        for name in ("mean_gain", "input_mean"):
            if not math.isfinite(getattr(self, name)):
                raise InvalidArgumentError(f"{name} must be finite, got {getattr(self, name)!r}")

    def weight_std(self, width: int) -> float:
        r"""The std :math:`g/\sqrt N` of the recurrent weights of ``width`` neurons."""
        return self.gain / math.sqrt(check_positive_int("width", width))


@dataclass(frozen=True)
class RecurrentState:
    r"""The stationary fixed point of a :class:`RecurrentPopulation`.

    ``rate`` :math:`r`, ``rate_second_moment`` :math:`q = \langle r_i^2 \rangle`, the current's
    ``current_mean`` :math:`\mu + m r`, ``quenched_std`` :math:`g\sqrt q` and ``white_std``
    :math:`\sigma_w`; ``membrane_mean`` and ``membrane_variance`` over neurons and steps;
    ``node_rates`` :math:`\nu` at each quadrature node; ``converged`` says whether the
    iteration met its tolerance.

    Example:
        >>> state = recurrent_state(RecurrentPopulation(LIFParameters(), gain=0.0))
        >>> round(state.rate, 2), state.quenched_std  # no recurrence: Q-like rate of N(0, 1)
        (0.13, 0.0)
    """

    rate: float
    rate_second_moment: float
    current_mean: float
    quenched_std: float
    white_std: float
    membrane_mean: float
    membrane_variance: float
    node_rates: tuple[float, ...]
    converged: bool


@dataclass(frozen=True)
class RecurrentMeanField:
    r"""Stationary state, response and regime of a :class:`RecurrentPopulation`.

    ``kernels`` are the response kernels :math:`\chi_q[k]` at the quadrature nodes
    (``(nodes, lags)``), ``slope`` the rms transfer slope :math:`\sqrt{\langle\hat\chi(1)^2
    \rangle}`, ``loop_gain`` :math:`\Lambda = g \cdot` ``slope``, ``mean_loop_gain``
    :math:`m \langle\hat\chi(1)\rangle`, ``response`` the rms response :math:`\rho[t]`,
    ``memory_time`` :math:`\tau` (NaN outside the stable regime, or when :math:`\rho` stays
    above :math:`1/e` over the lags) and ``contraction`` :math:`\lambda = e^{-1/\tau}`.

    Example:
        >>> mf = recurrent_mean_field(RecurrentPopulation(LIFParameters(beta=0.5), gain=2.0))
        >>> mf.regime, round(mf.memory_time, 1), round(mf.loop_gain, 1)
        ('stable', 1.4, 0.5)
    """

    state: RecurrentState
    kernels: np.ndarray
    slope: float
    loop_gain: float
    mean_loop_gain: float
    response: np.ndarray
    memory_time: float
    regime: str

    @property
    def rate(self) -> float:
        return self.state.rate

    @property
    def contraction(self) -> float:
        return math.exp(-1.0 / self.memory_time) if self.memory_time > 0 else float("nan")


def quadrature(nodes: int = QUADRATURE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights (summing to 1) for :math:`E_z f(z)`.

    Example:
        >>> z, w = quadrature(3)
        >>> round(float(w @ z**2), 6)  # E z^2 = 1
        1.0
    """
    z, w = np.polynomial.hermite_e.hermegauss(check_positive_int("nodes", nodes))
    return z, w / w.sum()


def recurrent_current(
    population: RecurrentPopulation, rate: float, rate_second_moment: float
) -> tuple[float, float, float]:
    r"""``(mean, quenched std, white std)`` of one neuron's total input current.

    :math:`(\mu + m r,\ g\sqrt q,\ \sqrt{\sigma^2 + g^2 (r - q)})`: the recurrent current adds
    the variance :math:`g^2 r` per step, of which :math:`g^2 q` is frozen in each neuron.

    Example:
        >>> p = RecurrentPopulation(LIFParameters(), gain=2.0, mean_gain=1.0)
        >>> recurrent_current(p, 0.25, 0.0625)  # rates all equal: q = r^2
        (0.25, 0.5, 1.3228756555322954)
    """
    g = population.gain
    white = math.sqrt(population.input_std**2 + g * g * max(rate - rate_second_moment, 0.0))
    return (population.input_mean + population.mean_gain * rate,
            g * math.sqrt(max(rate_second_moment, 0.0)), white)


@dataclass(frozen=True)
class _NodeRun:
    rates: np.ndarray
    membrane_mean: float
    membrane_variance: float
    kernels: np.ndarray | None


def _run_nodes(params: LIFParameters, offsets: np.ndarray, weights: np.ndarray, white: float,
               samples: int, steps: int, seed: int, lags: int = 0) -> _NodeRun:
    """Simulate ``samples`` neurons at each offset under white noise of std ``white``."""
    nodes = len(offsets)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(steps, nodes * samples, generator=generator)
    offset = torch.as_tensor(np.repeat(offsets, samples), dtype=torch.float32)
    membranes = torch.empty_like(noise)
    spikes, _ = lif_multistep(offset + white * noise, params, membranes_out=membranes)
    spikes, noise, membranes = spikes[BURN_IN:], noise[BURN_IN:], membranes[BURN_IN:]
    kept = spikes.shape[0]
    rates = spikes.reshape(kept, nodes, samples).double().mean(dim=(0, 2)).numpy()
    node_means = membranes.reshape(kept, nodes, samples).double().mean(dim=(0, 2)).numpy()
    node_squares = membranes.reshape(kept, nodes, samples).double().square().mean(
        dim=(0, 2)).numpy()
    mean = float(weights @ node_means)
    kernels = None
    if lags:
        kernels = _novikov_kernels(spikes, noise, nodes, lags) / white
    return _NodeRun(rates, mean, float(weights @ node_squares) - mean * mean, kernels)


def _novikov_kernels(spikes: torch.Tensor, noise: torch.Tensor, nodes: int,
                     lags: int) -> np.ndarray:
    r"""``(nodes, lags)`` :math:`E\,(s[t+k] - \bar s)\,\eta[t]` per node, by FFT over time."""
    kept = spikes.shape[0]
    size = 1 << (kept + lags).bit_length()
    centred = (spikes - spikes.mean(dim=0)).double()
    cross = torch.fft.rfft(centred, n=size, dim=0) * torch.fft.rfft(
        noise.double(), n=size, dim=0).conj()
    per_node = cross.reshape(cross.shape[0], nodes, -1).mean(dim=2)
    sums = torch.fft.irfft(per_node, n=size, dim=0)[:lags].T.numpy()
    return sums / (kept - np.arange(lags))


def recurrent_state(
    population: RecurrentPopulation,
    nodes: int = QUADRATURE_NODES,
    samples: int = NODE_SAMPLES,
    steps: int = STATE_STEPS,
    seed: int = 0,
) -> RecurrentState:
    r"""The stationary fixed point :math:`(r, q)` of the white closure (module docstring).

    Damped iteration :math:`(r, q) \leftarrow \tfrac12 (r, q) + \tfrac12 F(r, q)` from
    :math:`(\nu(\mu, \sigma), \nu^2)`, the population without recurrence, until both change by
    less than :data:`RATE_TOLERANCE`; :math:`F` is the quadrature over ``nodes`` offsets of
    ``samples`` Monte Carlo neurons each, simulated for ``steps`` steps (the first
    :data:`BURN_IN` dropped), on common random numbers from ``seed``.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> quiet, driven = (recurrent_state(RecurrentPopulation(p, g)) for g in (0.0, 3.0))
        >>> driven.rate > quiet.rate, driven.rate_second_moment > driven.rate**2  # spread
        (True, True)
    """
    z, w = quadrature(nodes)
    samples = check_positive_int("samples", samples)
    if check_positive_int("steps", steps) <= BURN_IN:
        raise InvalidArgumentError(f"steps must exceed the burn-in {BURN_IN}, got {steps}")
    rate = second = None
    converged = False
    with single_threaded():
        for _ in range(MAX_ITERATIONS):
            mean, quenched, white = recurrent_current(population, rate or 0.0, second or 0.0)
            run = _run_nodes(population.params, mean + quenched * z, w, white, samples, steps,
                             seed)
            new_rate, new_second = float(w @ run.rates), float(w @ run.rates**2)
            if rate is None:
                rate, second = new_rate, new_second
                continue
            change = max(abs(new_rate - rate), abs(new_second - second))
            rate, second = 0.5 * (rate + new_rate), 0.5 * (second + new_second)
            if change < RATE_TOLERANCE:
                converged = True
                break
    mean, quenched, white = recurrent_current(population, rate, second)
    run = _run_nodes(population.params, mean + quenched * z, w, white, samples, steps, seed)
    return RecurrentState(
        rate=float(w @ run.rates), rate_second_moment=float(w @ run.rates**2),
        current_mean=mean, quenched_std=quenched, white_std=white,
        membrane_mean=run.membrane_mean, membrane_variance=run.membrane_variance,
        node_rates=tuple(float(v) for v in run.rates), converged=converged,
    )


def response_kernels(
    population: RecurrentPopulation,
    state: RecurrentState,
    lags: int = RESPONSE_LAGS,
    nodes: int = QUADRATURE_NODES,
    samples: int = KERNEL_SAMPLES,
    steps: int = KERNEL_STEPS,
    seed: int = 1,
) -> np.ndarray:
    r"""``(nodes, lags)`` linear response kernels :math:`\chi_q[k]` at the fixed point.

    :math:`\chi_q[k] = \partial E\,s[t+k] / \partial \mu[t]` of a neuron at quadrature offset
    :math:`q`, by Novikov's theorem :math:`E\,(s[t+k] - r_q)\,\eta[t] / \sigma_w` for the white
    noise :math:`\eta`, averaged over ``samples`` neurons and the stationary steps.

    Example:
        >>> population = RecurrentPopulation(LIFParameters(beta=0.5), gain=0.0)
        >>> chi = response_kernels(population, recurrent_state(population), lags=3)
        >>> chi.shape, round(float(chi[0, 0]), 2)  # no recurrence: every node the same
        ((9, 3), 0.19)
    """
    z, w = quadrature(nodes)
    with single_threaded():
        run = _run_nodes(population.params, state.current_mean + state.quenched_std * z, w,
                         state.white_std, check_positive_int("samples", samples),
                         check_positive_int("steps", steps), seed,
                         check_positive_int("lags", lags))
    if run.kernels is None:
        raise InternalError("the node run returned no kernels although lags > 0")
    return run.kernels


def rms_response(gain: float, weights: np.ndarray, kernels: np.ndarray,
                 steps: int | None = None) -> np.ndarray:
    r"""Mean square response :math:`\Delta(t,t)` to a unit input pattern at step 0.

    Iterates :math:`\Delta \leftarrow \sum_q w_q X_q (e_0 e_0^\top + g^2 S \Delta S^\top)
    X_q^\top` over ``steps`` (default: the kernels' lags) steps, which makes it exact (each
    pass fixes one more step). ``weights`` are the quadrature weights of the kernels' rows.

    Example:
        >>> chi = np.array([[0.5 * 0.5**k for k in range(30)]])  # a = 0.5, b = 0.5
        >>> d = rms_response(1.0, np.ones(1), chi)
        >>> round(float(np.sqrt(d[29] / d[28])), 2)  # tends to b + g a = 1 (slowly)
        0.99
    """
    kernels = np.atleast_2d(np.asarray(kernels, dtype=float))
    steps = kernels.shape[1] if steps is None else check_positive_int("steps", steps)
    toeplitz = np.zeros((kernels.shape[0], steps, steps))
    for k in range(min(kernels.shape[1], steps)):
        index = np.arange(k, steps)
        toeplitz[:, index, index - k] = kernels[:, k:k + 1]
    delta = np.zeros((steps, steps))
    for _ in range(steps):
        source = np.zeros((steps, steps))
        source[0, 0] = 1.0
        source[1:, 1:] += gain * gain * delta[:-1, :-1]
        delta = np.einsum("q,qij,qkj->ik", weights, toeplitz @ source, toeplitz)
    return np.diag(delta).copy()


def efold_time(response: np.ndarray) -> float:
    r"""Steps until :math:`\rho[t] = \sqrt{\Delta(t,t)/\Delta(0,0)}` first falls to :math:`1/e`.

    Log-linear between the two steps around the crossing; NaN if it never falls that far.

    Example:
        >>> efold_time(np.exp(-2.0 * np.arange(5) / 3.0))  # rho = e^{-t/3}
        3.0
    """
    response = np.asarray(response, dtype=float)
    rho = np.log(np.sqrt(np.clip(response / response[0], 1e-300, None)))
    below = np.nonzero(rho <= -1.0)[0]
    if len(below) == 0:
        return float("nan")
    k = int(below[0])
    return float(k - 1 + (rho[k - 1] + 1.0) / (rho[k - 1] - rho[k]))


def regime_of(rate: float, loop_gain: float, mean_loop_gain: float) -> str:
    """``"silent"``, ``"runaway"``, ``"chaotic"`` or ``"stable"`` (module docstring), in that
    order of precedence.

    Example:
        >>> regime_of(0.1, 0.5, 0.0), regime_of(0.1, 1.2, 0.0), regime_of(1e-5, 0.0, 0.0)
        ('stable', 'chaotic', 'silent')
    """
    if rate < SILENT_RATE:
        return "silent"
    if mean_loop_gain >= 1.0:
        return "runaway"
    return "chaotic" if loop_gain >= 1.0 else "stable"


def recurrent_mean_field(
    population: RecurrentPopulation,
    lags: int = RESPONSE_LAGS,
    seed: int = 0,
) -> RecurrentMeanField:
    r"""Stationary state, response kernels, loop gains, memory time and regime.

    :func:`recurrent_state`, then :func:`response_kernels`, :func:`rms_response` over ``lags``
    steps and :func:`efold_time`; the loop gains come from :math:`\hat\chi_q(1) =
    \sum_k \chi_q[k]` (module docstring).

    Example:
        >>> p = LIFParameters(beta=0.9, threshold=1.0)
        >>> mf = recurrent_mean_field(RecurrentPopulation(p, gain=1.0, input_std=0.5))
        >>> mf.regime, round(mf.rate, 3), round(mf.memory_time, 1)
        ('stable', 0.054, 1.7)
    """
    state = recurrent_state(population, seed=seed)
    _, w = quadrature()
    kernels = response_kernels(population, state, lags, seed=seed + 1)
    slopes = kernels.sum(axis=1)
    slope = math.sqrt(float(w @ slopes**2))
    loop_gain = population.gain * slope
    mean_loop_gain = population.mean_gain * float(w @ slopes)
    regime = regime_of(state.rate, loop_gain, mean_loop_gain)
    response = rms_response(population.gain, w, kernels)
    memory = efold_time(response) if regime == "stable" else float("nan")
    return RecurrentMeanField(state, kernels, slope, loop_gain, mean_loop_gain, response,
                              memory, regime)


#: Gains :func:`recurrent_edge` and :func:`gain_for_memory_time` scan, before bisecting.
SCAN_GAINS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def _first_crossing(value, target: float, tolerance: float) -> float | None:
    """The smallest scanned gain past which ``value(gain) >= target``, refined by bisection in
    log gain; ``None`` if no scanned gain reaches it (``value`` need not be monotone after)."""
    previous = 0.0
    for gain in SCAN_GAINS:
        if value(gain) >= target:
            low, high = math.log(max(previous, gain / 4.0)), math.log(gain)
            while high - low > tolerance:
                middle = 0.5 * (low + high)
                if value(math.exp(middle)) >= target:
                    high = middle
                else:
                    low = middle
            return math.exp(0.5 * (low + high))
        previous = gain
    return None


def recurrent_edge(
    params: LIFParameters,
    input_mean: float = 0.0,
    input_std: float = 1.0,
    tolerance: float = 0.02,
) -> float:
    r"""The smallest gain :math:`g_c` at which the loop gain :math:`\Lambda` reaches one.

    Scans :data:`SCAN_GAINS` and bisects in :math:`\log g` (to the relative ``tolerance``) in
    the first bracket where :math:`\Lambda` crosses one; ``inf`` if it stays below one up to
    the last scanned gain (the noise holds the population below the edge). :math:`\Lambda(g)`
    need not be monotone: past a jump to a high rate the spread of rates flattens the slopes.

    Example:
        >>> # Lambda = 0.79 at g = 3, 1.07 at g = 4 (a minute of Monte Carlo):
        >>> recurrent_edge(LIFParameters(beta=0.9), input_std=0.5)  # doctest: +SKIP
    """

    def loop(gain: float) -> float:
        population = RecurrentPopulation(params, gain, 0.0, input_mean, input_std)
        return recurrent_mean_field(population).loop_gain

    edge = _first_crossing(loop, 1.0, tolerance)
    return float("inf") if edge is None else edge


def gain_for_memory_time(
    params: LIFParameters,
    memory_time: float,
    input_mean: float = 0.0,
    input_std: float = 1.0,
    tolerance: float = 0.02,
) -> float:
    r"""The smallest recurrent gain :math:`g` whose fixed point has the memory time
    ``memory_time``: the first crossing of :math:`\tau(g)` over the scanned gains, bisected.

    A gain outside the stable regime counts as an infinite memory time (the target lies before
    the edge). The feed-forward current is held; :func:`input_std_for_rate` moves it for a
    rate. Raises ``InvalidArgumentError`` when the target is below :math:`\tau(0)`, the
    neuron's own memory, or is reached by no scanned gain.

    Example:
        >>> # tau = 1.36 at g = 2 and 2.72 at g = 4, so g lies between (a minute):
        >>> gain_for_memory_time(LIFParameters(beta=0.5), 2.0)  # doctest: +SKIP
    """
    target = check_positive("memory_time", memory_time)

    def tau(gain: float) -> float:
        mf = recurrent_mean_field(RecurrentPopulation(params, gain, 0.0, input_mean, input_std))
        return mf.memory_time if mf.regime == "stable" else math.inf

    floor = tau(0.0)
    if not target > floor:
        raise InvalidArgumentError(
            f"memory_time {target:g} is not above {floor:.3g}, the neuron's own memory without "
            "recurrence; ask for more or lower beta")
    gain = _first_crossing(lambda g: float(np.nan_to_num(tau(g), nan=math.inf)), target,
                           tolerance)
    if gain is None:
        raise InvalidArgumentError(
            f"memory_time {target:g} is not reached by any gain up to {SCAN_GAINS[-1]:g} for "
            "these neurons and input; ask for less or raise beta")
    return gain


def input_std_for_rate(
    population: RecurrentPopulation, rate: float, tolerance: float = 0.01
) -> float:
    r"""The feed-forward std :math:`\sigma` at which ``population`` (its :math:`\sigma`
    replaced) has the stationary ``rate``; bisection in :math:`\log\sigma` on the white closure.

    Example:
        >>> population = RecurrentPopulation(LIFParameters(beta=0.5), gain=2.0)
        >>> sigma = input_std_for_rate(population, 0.1)
        >>> 0.5 < sigma < 1.0
        True
    """
    target = check_open_unit_interval("rate", rate)
    low, high = math.log(1e-3), math.log(1e2)

    def rate_at(log_std: float) -> float:
        candidate = RecurrentPopulation(population.params, population.gain,
                                        population.mean_gain, population.input_mean,
                                        math.exp(log_std))
        return recurrent_state(candidate).rate

    if rate_at(high) < target:
        raise InvalidArgumentError(f"rate {target:g} is above what any input std up to 100 gives")
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        if rate_at(middle) < target:
            low = middle
        else:
            high = middle
    return math.exp(0.5 * (low + high))
