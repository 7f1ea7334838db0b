r"""Temporal mean-field theory of deep feed-forward LIF networks over T time steps.

For wide layers, the input current of a neuron in layer :math:`l+1`,
:math:`I[t] = \sum_j W_{ij} s_j[t]`, is a Gaussian process over :math:`t` with

.. math::

    E\,I[t] = n\,m_w\,r_l[t], \qquad
    \mathrm{Cov}(I[t], I[t']) = n\,(v_w + m_w^2)\,R_l(t,t') - n\,m_w^2\,r_l[t]\,r_l[t'],

where :math:`r_l[t] = E\,s[t]` and :math:`R_l(t,t') = E\,s[t]\,s[t']` is the spike
autocorrelation of layer :math:`l`. A LIF population driven by that process emits spikes with a
new :math:`R_{l+1}`: the map :math:`R_l \mapsto R_{l+1}` is the infinite-width limit of the
network. We evaluate it with a seeded Monte Carlo population of independent neurons (common
random numbers across layers and gains, so results are deterministic and smooth in the gain),
running the exact LIF update of :mod:`spikeinit.neurons.dynamics`. A synaptic current filter in
front of the membrane (snnTorch ``Synaptic``, Norse ``LIFCell``),
:math:`I_{syn}[t] = \alpha I_{syn}[t-1] + I[t]`, is linear, so it is applied exactly to the
sampled currents (``synaptic_decay`` :math:`= \alpha`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikeinit._validation import check_choice, check_positive, check_positive_int
from spikeinit.engine.threads import single_threaded
from spikeinit.errors import InvalidArgumentError
from spikeinit.machine import check_fits
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters

INPUT_KINDS = ("constant", "iid", "measured")

DEFAULT_SAMPLES = 16384
FINITE_WIDTH_SAMPLES = 64
MAX_FINITE_WIDTH = 4096


@dataclass(frozen=True)
class InputCurrentProcess:
    r"""First-layer input current: ``N(mean, std^2)`` at each step, and how the steps relate.

    ``"constant"``: one draw held over the steps; ``"iid"``: a new draw per step;
    ``"measured"``: a Gaussian process with covariance :math:`\mathrm{std}^2 C`, where
    ``autocorrelation`` :math:`C(t,t') = E[x_t x_{t'}] / \overline{E[x_t^2]}` is that of the
    data :math:`x` (``(T, T)`` nested tuples; mean diagonal 1). A zero-mean layer fed by data
    passes it on exactly: :math:`\mathrm{Cov}(I_t, I_{t'}) = n\,\mathrm{Var}[w]\,E[x_t x_{t'}]`.
    Pixels in [0, 1] drawn anew at each step have :math:`C = 1` on the diagonal and 3/4 off it.

    Example:
        >>> InputCurrentProcess()  # the default: one N(0, 1) draw held over the steps
        InputCurrentProcess(kind='constant', mean=0.0, std=1.0, autocorrelation=None)
        >>> InputCurrentProcess("measured", autocorrelation=((1.0, 0.75), (0.75, 1.0))).kind
        'measured'
    """

    kind: str = "constant"
    mean: float = 0.0
    std: float = 1.0
    autocorrelation: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        check_choice("input", self.kind, INPUT_KINDS)
        check_positive("input std", self.std)
        if (self.kind == "measured") != (self.autocorrelation is not None):
            raise InvalidArgumentError(
                "input 'measured' needs an autocorrelation, and only it takes one")
        if self.autocorrelation is not None:
            matrix = np.asarray(self.autocorrelation, dtype=float)
            if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.all(
                    np.diag(matrix) > 0):
                raise InvalidArgumentError(
                    "autocorrelation must be a (T, T) matrix with a positive "
                                 "diagonal")


@dataclass(frozen=True)
class LayerActivity:
    r"""Mean-field activity of one layer over ``T`` steps.

    ``rate`` :math:`r[t]`, ``membrane_mean`` and ``membrane_variance`` are ``(T,)``,
    ``autocorrelation`` :math:`R(t,t') = E\,s[t]\,s[t']` is ``(T, T)`` and
    ``group_autocorrelation`` holds each finite-width group's own ``(T, T)`` :math:`\hat R_b`
    (:func:`simulate_population`); :attr:`mean_rate` and :attr:`mean_variance` average over
    the steps.

    Example:
        >>> activity = simulate_population(torch.full((3, 4), 1.2), LIFParameters())
        >>> activity.rate.tolist(), round(activity.mean_rate, 4)
        ([1.0, 0.0, 1.0], 0.6667)
    """

    rate: np.ndarray
    membrane_mean: np.ndarray
    membrane_variance: np.ndarray
    autocorrelation: np.ndarray
    group_autocorrelation: np.ndarray | None = None

    @property
    def mean_rate(self) -> float:
        return float(self.rate.mean())

    @property
    def mean_variance(self) -> float:
        return float(self.membrane_variance.mean())


@dataclass(frozen=True)
class TemporalMeanField:
    """Per-layer, per-step predictions; arrays are shaped ``(depth, T)`` (R: ``(depth, T, T)``).

    ``time_averaged_rate`` and ``time_averaged_variance`` average over the steps: ``(depth,)``.

    Example:
        >>> mf = temporal_mean_field(3, 6.3, LIFParameters(), steps=4, samples=1024)
        >>> mf.rate.shape, mf.autocorrelation.shape, mf.time_averaged_rate.shape
        ((3, 4), (3, 4, 4), (3,))
    """

    rate: np.ndarray
    membrane_mean: np.ndarray
    membrane_variance: np.ndarray
    autocorrelation: np.ndarray

    @property
    def time_averaged_rate(self) -> np.ndarray:
        return self.rate.mean(axis=1)

    @property
    def time_averaged_variance(self) -> np.ndarray:
        return self.membrane_variance.mean(axis=1)


class MonteCarloPopulation:
    """A fixed population of standard normal draws used to sample input currents.

    Reusing the same draws for every layer index and every gain (common random numbers) makes
    the mean-field map deterministic and continuous in the gain, which the solvers rely on.

    Example:
        >>> population = MonteCarloPopulation(steps=3, samples=1024, seed=0)
        >>> population.normals(1).shape
        torch.Size([3, 1024])
        >>> population.normals(1) is population.normals(1)  # drawn once, then cached
        True
        >>> torch.equal(MonteCarloPopulation(3, 1024, 0).normals(1), population.normals(1))
        True
    """

    def __init__(self, steps: int, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> None:
        self.steps = check_positive_int("steps", steps)
        self.samples = check_positive_int("samples", samples)
        self.seed = seed
        self._draws: dict[int, torch.Tensor] = {}

    def normals(self, layer: int) -> torch.Tensor:
        """``(T, samples)`` standard normals for ``layer`` (drawn once, then cached)."""
        if layer not in self._draws:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + layer)
            self._draws[layer] = torch.randn(
                self.steps, self.samples, generator=generator, dtype=torch.float32
            )
        return self._draws[layer]


def data_autocorrelation(data: torch.Tensor, digits: int = 4) -> tuple[tuple[float, ...], ...]:
    r""":math:`C(t,t') = E[x_t x_{t'}] / \overline{E[x_t^2]}` of ``(T, ...)`` data, rounded.

    The mean over everything but the leading time axis; normalized to a mean diagonal of 1
    and rounded to ``digits`` (so that equal data give equal, cacheable statistics).

    Example:
        >>> data_autocorrelation(torch.ones(2, 5))
        ((1.0, 1.0), (1.0, 1.0))
    """
    if data.dim() < 2:
        raise InvalidArgumentError(
            "data must have a leading time axis and at least one more: (T, ...)")
    flat = data.detach().double().reshape(data.shape[0], -1)
    moments = flat @ flat.T / flat.shape[1]
    scale = float(torch.diagonal(moments).mean())
    if not scale > 0:
        raise InvalidArgumentError("the data are all zeros: no autocorrelation")
    return tuple(tuple(round(float(v), digits) for v in row) for row in (moments / scale))


def input_layer_currents(
    inputs: InputCurrentProcess, population: MonteCarloPopulation
) -> torch.Tensor:
    r"""``(T, samples)`` currents of the first layer: one draw per neuron, one per step, or the
    measured autocorrelation (which must have ``T`` rows).

    ``"constant"``: :math:`I[t] = \mu + \sigma z_0`; ``"iid"``: :math:`I[t] = \mu + \sigma z_t`;
    ``"measured"``: :func:`gaussian_process_currents` with covariance :math:`\sigma^2 C`.

    Example:
        >>> currents = input_layer_currents(InputCurrentProcess(), MonteCarloPopulation(3, 1024))
        >>> currents.shape, bool((currents == currents[0]).all())  # constant over the steps
        (torch.Size([3, 1024]), True)
    """
    z = population.normals(0)
    if inputs.autocorrelation is not None:
        matrix = np.asarray(inputs.autocorrelation, dtype=float)
        if matrix.shape[0] != population.steps:
            raise InvalidArgumentError(
                f"the input autocorrelation covers {matrix.shape[0]} steps, the "
                             f"theory {population.steps}")
        return gaussian_process_currents(np.full(population.steps, inputs.mean),
                                         inputs.std**2 * matrix, z)
    if inputs.kind == "constant":
        z = z[:1].expand(population.steps, -1)
    return inputs.mean + inputs.std * z


def gaussian_process_currents(
    mean: np.ndarray, covariance: np.ndarray, normals: torch.Tensor
) -> torch.Tensor:
    """``(T, samples)`` currents ``mean + L z`` with ``L L^T = covariance`` (PSD-clipped eigh).

    ``covariance`` is ``(T, T)``, or ``(G, T, T)``: one per group of ``samples / G`` neurons.

    Example:
        >>> covariance = np.array([[1.0, 0.5], [0.5, 1.0]])
        >>> normals = MonteCarloPopulation(steps=2, samples=4096).normals(0)
        >>> currents = gaussian_process_currents(np.zeros(2), covariance, normals)
        >>> np.round(np.cov(currents.numpy()), 1).tolist()
        [[1.0, 0.5], [0.5, 1.0]]
    """
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    root = torch.as_tensor(
        eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))[..., None, :], dtype=normals.dtype
    )
    offset = torch.as_tensor(mean, dtype=normals.dtype).unsqueeze(1)
    if root.dim() == 2:
        return offset + root @ normals
    steps, groups = normals.shape[0], root.shape[0]
    grouped = normals.reshape(steps, groups, -1).transpose(0, 1)
    return offset + (root @ grouped).transpose(0, 1).reshape(steps, -1)


#: Neurons :func:`gaussian_process_rate` simulates unless told otherwise.
PROCESS_SAMPLES = 32768


def gaussian_process_rate(
    mean: np.ndarray,
    covariance: np.ndarray,
    neuron: Callable[[torch.Tensor], torch.Tensor],
    samples: int = PROCESS_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    r"""Per-step firing probability :math:`r[t] = E\,s[t]` of neurons driven by a Gaussian
    current process over the ``T`` steps, by seeded Monte Carlo.

    The currents are :math:`I = \mu + L z` with :math:`L L^\top = K` (``mean`` :math:`\mu` is
    ``(T,)``, ``covariance`` :math:`K` is ``(T, T)``, :func:`gaussian_process_currents`) and
    ``samples`` standard normal columns :math:`z` drawn from ``seed`` (never the global RNG);
    ``neuron`` maps the ``(T, samples)`` currents to spikes in {0, 1} from rest (the
    population's own update). This is what a slow membrane needs and the one-step
    :math:`Q((\tilde\theta - \mu)/\sigma)` misses: before its first spike a LIF membrane is
    :math:`u[t] = \sum_{k \le t} \beta^k I[t-k]`, of variance :math:`\sigma^2 \sum_k
    \beta^{2k}` for an i.i.d. current and :math:`\sigma^2 (\sum_k \beta^k)^2` for a held one,
    and the reset shapes every later step. At ``T = 1`` the result is
    :math:`Q((\tilde\theta - \mu)/\sqrt{K})` up to Monte Carlo noise.

    Example:
        >>> from spikeinit.neurons.dynamics import lif_multistep
        >>> params = LIFParameters(beta=0.95, threshold=1.0)
        >>> def neuron(currents):
        ...     return lif_multistep(currents, params)[0]
        >>> one_step = gaussian_process_rate(np.zeros(1), np.full((1, 1), 0.1), neuron)
        >>> held = gaussian_process_rate(np.zeros(10), np.full((10, 10), 0.1), neuron)
        >>> iid = gaussian_process_rate(np.zeros(10), 0.1 * np.eye(10), neuron)
        >>> [round(float(r.mean()), 4) for r in (one_step, iid, held)]  # Q(1/0.316) = 0.0008
        [0.0008, 0.0219, 0.0888]
    """
    mean = np.asarray(mean, dtype=float)
    covariance = np.asarray(covariance, dtype=float)
    steps = mean.shape[0]
    if covariance.shape != (steps, steps):
        raise InvalidArgumentError(f"covariance must be ({steps}, {steps}) for {steps} steps, got "
                         f"{covariance.shape}")
    check_fits(int(samples) * int(steps) * BYTES_PER_NEURON_STEP,
               "temporal_mean_field samples x width x steps")
    population = MonteCarloPopulation(steps, samples, seed)
    with single_threaded():
        currents = gaussian_process_currents(mean, covariance, population.normals(0))
        spikes = neuron(currents)
        return spikes.double().mean(dim=1).numpy()


def synaptic_filter(currents: torch.Tensor, decay: float) -> torch.Tensor:
    r"""``(T, ...)`` currents through :math:`I_{syn}[t] = \alpha I_{syn}[t-1] + I[t]` from 0.

    ``decay`` :math:`\alpha = 0` returns ``currents`` unchanged.

    Example:
        >>> synaptic_filter(torch.tensor([1.0, 0.0, 0.0]), 0.5).tolist()  # alpha^t
        [1.0, 0.5, 0.25]
    """
    if decay == 0.0:
        return currents
    filtered = torch.empty_like(currents)
    state = torch.zeros_like(currents[0])
    for t in range(currents.shape[0]):
        state = decay * state + currents[t]
        filtered[t] = state
    return filtered


def simulate_population(
    currents: torch.Tensor,
    params: LIFParameters,
    with_membrane: bool = True,
    width: int | None = None,
    synaptic_decay: float = 0.0,
) -> LayerActivity:
    r"""Run the LIF update on ``(T, samples)`` currents and summarize the population.

    Spike counts are integers, exact in float32; ``with_membrane=False`` skips the membrane
    statistics (NaN) for the solvers, which need only rates and :math:`R`. With ``width``, the
    population is split into groups of ``width`` neurons, each a finite layer seen by one
    input sample, and :attr:`LayerActivity.group_autocorrelation` holds each group's own
    :math:`\hat R_b` (its finite-width fluctuation drives the next layer of that group).
    ``synaptic_decay`` filters the currents first (:func:`synaptic_filter`).

    Example:
        >>> activity = simulate_population(torch.full((3, 4), 1.2), LIFParameters(beta=0.5))
        >>> activity.rate.tolist()  # u = 1.2, 0.6 + 1.2 - 1, 0.4 + 1.2: spike, none, spike
        [1.0, 0.0, 1.0]
        >>> [round(u, 4) for u in activity.membrane_mean.tolist()]
        [1.2, 0.8, 1.6]
    """
    currents = synaptic_filter(currents, synaptic_decay)
    steps, samples = currents.shape
    membranes = torch.empty_like(currents) if with_membrane else None
    spikes, _ = lif_multistep(currents, params, membranes_out=membranes)
    counts = (spikes @ spikes.T).double().numpy()
    groups = None
    if width is not None:
        grouped = spikes.reshape(steps, samples // width, width).transpose(0, 1)
        groups = (grouped @ grouped.transpose(1, 2)).double().numpy() / width
    if membranes is None:
        mean = variance = np.full(currents.shape[0], np.nan)
    else:
        variance_t, mean_t = torch.var_mean(membranes, dim=1, unbiased=False)
        mean, variance = mean_t.double().numpy(), variance_t.double().numpy()
    return LayerActivity(
        rate=np.diag(counts) / samples,
        membrane_mean=mean,
        membrane_variance=variance,
        autocorrelation=counts / samples,
        group_autocorrelation=groups,
    )


def next_layer_activity(
    activity: LayerActivity,
    gain: float,
    params: LIFParameters,
    normals: torch.Tensor,
    mean_gain: float = 0.0,
    with_membrane: bool = True,
    width: int | None = None,
    synaptic_decay: float = 0.0,
) -> LayerActivity:
    r"""One application of the map :math:`R_l \mapsto R_{l+1}`.

    ``gain`` is :math:`g = n\,v_w` and ``mean_gain`` is :math:`n\,m_w`; the current covariance is
    :math:`g R + (n m_w^2)(R - r r^\top)`, with :math:`n m_w^2 = ` ``mean_gain**2 / n`` neglected
    for wide layers unless the caller folds it into ``gain``. With ``width``, each group of
    ``width`` neurons is driven by its own group's :math:`\hat R_b` (finite-width mean-field).

    Example:
        >>> from spikeinit.theory.gaussian import tail_probability
        >>> p, population = LIFParameters(beta=0.5, threshold=1.0), MonteCarloPopulation(1, 4096)
        >>> first = simulate_population(input_layer_currents(InputCurrentProcess(), population), p)
        >>> gain = 1 / tail_probability(1.0)  # one step: the paper's g = 1/Q(1) keeps sigma = 1
        >>> second = next_layer_activity(first, gain, p, population.normals(1))
        >>> round(first.mean_rate, 2), round(second.mean_rate, 2)  # both near Q(1) = 0.159
        (0.15, 0.16)
    """
    mean = mean_gain * activity.rate
    source = activity.autocorrelation
    if width is not None and activity.group_autocorrelation is not None:
        source = activity.group_autocorrelation
    currents = gaussian_process_currents(mean, gain * source, normals)
    return simulate_population(currents, params, with_membrane, width, synaptic_decay)


#: Peak memory of the Monte-Carlo population per simulated neuron and time step (measured:
#: 44-70 bytes over the arrays of one layer and the next).
BYTES_PER_NEURON_STEP = 48


def _check_finite_layer(activity: Any, layer: int, gain: float) -> None:
    """Check that a layer's rates and membrane statistics are finite.

    Raises:
        InvalidArgumentError: naming the layer and the gain, when the variance overflowed
            (a gain far above the critical one, over many layers).
    """
    values = (activity.rate, activity.membrane_mean, activity.membrane_variance)
    if not all(np.isfinite(value).all() for value in values):
        raise InvalidArgumentError(
            f"gain: the rate or membrane variance is NaN or infinite at layer {layer} (gain "
            f"{gain:g}); the variance grows by the gain at every layer and overflowed. Use a "
            "gain nearer the critical one, or a smaller depth")


def temporal_mean_field(
    depth: int,
    gain: float | np.ndarray,
    params: LIFParameters,
    steps: int,
    inputs: InputCurrentProcess | None = None,
    mean_gain: float | np.ndarray = 0.0,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    width: int | None = None,
    synaptic_decay: float = 0.0,
) -> TemporalMeanField:
    r"""Per-layer, per-step rate, membrane mean/variance and :math:`R` of a deep LIF network.

    Layer 1 is driven by ``inputs`` (default: :math:`N(0,1)` held constant over the steps);
    each further layer by the Gaussian process of gain :math:`g = n\,\mathrm{Var}[w]` (scalar or
    ``depth - 1`` values) over the spikes of the layer below.

    ``width=None`` is the infinite-width limit. With a finite ``width`` the population is
    ``samples`` input samples of ``width`` neurons each (``samples * width`` neurons), and each
    sample's next layer sees that sample's finite-width :math:`\hat R_b`: this keeps the
    downward bias that finite layers show (the rate is concave in the per-sample variance).
    ``synaptic_decay`` is the decay of a current filter in front of every layer's membrane.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> mf = temporal_mean_field(10, 6.3, p, steps=20)
        >>> mf.rate.shape
        (10, 20)
    """
    depth = check_positive_int("depth", depth)
    inputs = inputs or InputCurrentProcess()
    gains = np.broadcast_to(np.asarray(gain, dtype=float), (max(depth - 1, 0),))
    mean_gains = np.broadcast_to(np.asarray(mean_gain, dtype=float), (max(depth - 1, 0),))
    if not (np.isfinite(gains).all() and (gains >= 0).all()):
        raise InvalidArgumentError(f"gain must be finite and >= 0, got {gain!r}")
    if not np.isfinite(mean_gains).all():
        raise InvalidArgumentError(f"mean_gain must be finite, got {mean_gain!r}")
    if width is not None:
        samples = check_positive_int("samples", samples) * check_positive_int("width", width)
    check_fits(int(samples) * int(steps) * BYTES_PER_NEURON_STEP,
               "temporal_mean_field samples x width x steps")
    population = MonteCarloPopulation(steps, samples, seed)
    with single_threaded():
        currents = input_layer_currents(inputs, population)
        activity = simulate_population(currents, params, width=width,
                                       synaptic_decay=synaptic_decay)
        layers = [activity]
        for layer in range(1, depth):
            activity = next_layer_activity(
                activity, float(gains[layer - 1]), params, population.normals(layer),
                float(mean_gains[layer - 1]), width=width, synaptic_decay=synaptic_decay,
            )
            _check_finite_layer(activity, layer + 1, float(gains[layer - 1]))
            layers.append(activity)
    return TemporalMeanField(
        rate=np.stack([a.rate for a in layers]),
        membrane_mean=np.stack([a.membrane_mean for a in layers]),
        membrane_variance=np.stack([a.membrane_variance for a in layers]),
        autocorrelation=np.stack([a.autocorrelation for a in layers]),
    )
