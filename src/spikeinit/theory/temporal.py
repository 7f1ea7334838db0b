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
running the exact LIF update of :mod:`spikeinit.neurons.dynamics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikeinit._validation import check_choice, check_positive, check_positive_int
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters

INPUT_KINDS = ("constant", "iid")
DEFAULT_SAMPLES = 16384


@dataclass(frozen=True)
class InputStatistics:
    """First-layer input current: ``N(mean, std^2)``, held constant or i.i.d. over steps."""

    kind: str = "constant"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        check_choice("input", self.kind, INPUT_KINDS)
        check_positive("input std", self.std)


@dataclass(frozen=True)
class LayerActivity:
    """Mean-field activity of one layer over ``T`` steps."""

    rate: np.ndarray
    membrane_mean: np.ndarray
    membrane_variance: np.ndarray
    autocorrelation: np.ndarray

    @property
    def mean_rate(self) -> float:
        return float(self.rate.mean())

    @property
    def mean_variance(self) -> float:
        return float(self.membrane_variance.mean())


@dataclass(frozen=True)
class TemporalMeanField:
    """Per-layer, per-step predictions; arrays are shaped ``(depth, T)`` (R: ``(depth, T, T)``)."""

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
    """

    def __init__(self, steps: int, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> None:
        self.steps = check_positive_int("steps", steps)
        self.samples = check_positive_int("samples", samples)
        self.seed = seed
        self._draws: dict[int, torch.Tensor] = {}

    def normals(self, layer: int) -> torch.Tensor:
        """``(samples, T)`` standard normals for ``layer`` (drawn once, then cached)."""
        if layer not in self._draws:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + layer)
            self._draws[layer] = torch.randn(
                self.samples, self.steps, generator=generator, dtype=torch.float32
            )
        return self._draws[layer]


def input_layer_currents(
    inputs: InputStatistics, population: MonteCarloPopulation
) -> torch.Tensor:
    """``(samples, T)`` currents of the first layer: one draw per neuron, or one per step."""
    z = population.normals(0)
    if inputs.kind == "constant":
        z = z[:, :1].expand(-1, population.steps)
    return inputs.mean + inputs.std * z


def gaussian_process_currents(
    mean: np.ndarray, covariance: np.ndarray, normals: torch.Tensor
) -> torch.Tensor:
    """Sample currents ``mean + L z`` with ``L L^T = covariance`` (PSD-clipped eigh)."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    root_t = torch.as_tensor(root.T, dtype=normals.dtype)
    return torch.as_tensor(mean, dtype=normals.dtype) + normals @ root_t


def simulate_population(currents: torch.Tensor, params: LIFParameters) -> LayerActivity:
    """Run the LIF update on ``(samples, T)`` currents and summarize the population."""
    time_major = currents.T.contiguous()
    membranes = torch.empty_like(time_major)
    spikes, _ = lif_multistep(time_major, params, membranes_out=membranes)
    spikes64, membranes64 = spikes.double(), membranes.double()
    return LayerActivity(
        rate=spikes64.mean(dim=1).numpy(),
        membrane_mean=membranes64.mean(dim=1).numpy(),
        membrane_variance=membranes64.var(dim=1, unbiased=False).numpy(),
        autocorrelation=(spikes64 @ spikes64.T / spikes64.shape[1]).numpy(),
    )


def next_layer_activity(
    activity: LayerActivity,
    gain: float,
    params: LIFParameters,
    normals: torch.Tensor,
    mean_gain: float = 0.0,
) -> LayerActivity:
    r"""One application of the map :math:`R_l \mapsto R_{l+1}`.

    ``gain`` is :math:`g = n\,v_w` and ``mean_gain`` is :math:`n\,m_w`; the current covariance is
    :math:`g R + (n m_w^2)(R - r r^\top)`, with :math:`n m_w^2 = ` ``mean_gain**2 / n`` neglected
    for wide layers unless the caller folds it into ``gain``.
    """
    mean = mean_gain * activity.rate
    covariance = gain * activity.autocorrelation
    return simulate_population(gaussian_process_currents(mean, covariance, normals), params)


def temporal_mean_field(
    depth: int,
    gain: float | np.ndarray,
    params: LIFParameters,
    steps: int,
    inputs: InputStatistics | None = None,
    mean_gain: float | np.ndarray = 0.0,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> TemporalMeanField:
    r"""Per-layer, per-step rate, membrane mean/variance and :math:`R` of a deep LIF network.

    Layer 1 is driven by ``inputs`` (default: :math:`N(0,1)` held constant over the steps);
    each further layer by the Gaussian process of gain :math:`g = n\,\mathrm{Var}[w]` (scalar or
    ``depth - 1`` values) over the spikes of the layer below.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)
        >>> mf = temporal_mean_field(10, 6.3, p, steps=20)
        >>> mf.rate.shape
        (10, 20)
    """
    depth = check_positive_int("depth", depth)
    inputs = inputs or InputStatistics()
    gains = np.broadcast_to(np.asarray(gain, dtype=float), (max(depth - 1, 0),))
    mean_gains = np.broadcast_to(np.asarray(mean_gain, dtype=float), (max(depth - 1, 0),))
    population = MonteCarloPopulation(steps, samples, seed)
    activity = simulate_population(input_layer_currents(inputs, population), params)
    layers = [activity]
    for layer in range(1, depth):
        activity = next_layer_activity(
            activity, float(gains[layer - 1]), params, population.normals(layer),
            float(mean_gains[layer - 1]),
        )
        layers.append(activity)
    return TemporalMeanField(
        rate=np.stack([a.rate for a in layers]),
        membrane_mean=np.stack([a.membrane_mean for a in layers]),
        membrane_variance=np.stack([a.membrane_variance for a in layers]),
        autocorrelation=np.stack([a.autocorrelation for a in layers]),
    )
