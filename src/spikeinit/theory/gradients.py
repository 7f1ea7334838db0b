r"""Mean-field theory of surrogate gradients across depth at initialization.

Backpropagation through a LIF layer (reset detached, as in snnTorch and our default) gives, per
neuron, the error on the membrane :math:`\varepsilon[t] = h'(u[t]-\theta)\,d[t]
+ a[t+1]\,\varepsilon[t+1]` and on the input current :math:`\gamma[t] = c[t]\,\varepsilon[t]`,
where :math:`d[t] = \partial L/\partial s[t]`, :math:`a[t] = \partial u[t]/\partial u[t-1]` and
:math:`c[t] = \partial u[t]/\partial I[t]`:

==================  =========================  =====================
reset               :math:`a[t]`               :math:`c[t]`
==================  =========================  =====================
subtract, none      :math:`\beta`              1
zero                :math:`\beta(1-s[t-1])`    1
==================  =========================  =====================

Under the usual gradient-independence assumption (backward weights independent of the forward
ones), the error arriving at the spikes of layer :math:`l` is a Gaussian process with covariance
:math:`G_l = g\,E[\gamma_{l+1}\gamma_{l+1}^\top]`, :math:`g = n_{out}\mathrm{Var}[w]`. Starting
from white errors at the last layer (:math:`G_L = I`: a loss :math:`\sum \xi\,s_L` with
:math:`\xi \sim N(0,1)`), we propagate :math:`E[\gamma_l[t]^2]` down the network on the same
Monte Carlo population as the forward mean-field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikeinit._validation import check_positive_int
from spikeinit.engine.threads import single_threaded
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import surrogate_derivative
from spikeinit.theory.temporal import (
    DEFAULT_SAMPLES,
    InputCurrentProcess,
    MonteCarloPopulation,
    gaussian_process_currents,
    input_layer_currents,
)

_BACKWARD_SEED_OFFSET = 7_919


@dataclass(frozen=True)
class GradientMeanField:
    r"""Predicted error covariance :math:`\Gamma_l = E[\gamma_l\gamma_l^\top]` on each layer's
    input current, ``(depth, T, T)``, beside the forward spike autocorrelation ``R``.

    Example:
        >>> mf = GradientMeanField(np.ones((2, 1, 1)), np.full((2, 1, 1), 0.25))
        >>> mf.per_layer.tolist()
        [1.0, 1.0]
        >>> mf.weight_gradient_norm(100, 100, batch=1).tolist()  # sqrt(B n m Gamma R)
        [50.0]
    """

    current_gradient_covariance: np.ndarray
    autocorrelation: np.ndarray

    @property
    def current_gradient_square(self) -> np.ndarray:
        r""":math:`E[\gamma_l[t]^2]`, shaped ``(depth, T)``."""
        return np.diagonal(self.current_gradient_covariance, axis1=1, axis2=2)

    @property
    def per_layer(self) -> np.ndarray:
        """:math:`E[\\gamma_l^2]` averaged over the time steps, one value per layer."""
        return self.current_gradient_square.mean(axis=1)

    def weight_gradient_norm(self, fan_in: int, fan_out: int, batch: int) -> np.ndarray:
        r"""Predicted :math:`\|\partial L/\partial W_l\|_F` for layers 2..depth.

        :math:`E\|\partial L/\partial W\|^2 = B\,n_{in}\,n_{out}\sum_{t,t'}\Gamma_l(t,t')
        R_{l-1}(t,t')`, with :math:`\Gamma_l = E[\gamma_l\gamma_l^\top]`.
        """
        return np.array([
            np.sqrt(batch * fan_in * fan_out * np.sum(gamma * r))
            for gamma, r in zip(self.current_gradient_covariance[1:], self.autocorrelation[:-1])
        ])


def backward_factors(
    membranes: torch.Tensor, spikes: torch.Tensor, params: LIFParameters
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``(h', a, c)`` per step for ``(T, samples)`` forward membranes and spikes (see module).

    :math:`h'[t] = h'(u[t] - \theta)`; :math:`a[t] = \beta(1 - s[t-1])` for ``reset="zero"``,
    else :math:`\beta`; :math:`c[t] = 1`.

    Example:
        >>> u, s = torch.tensor([[1.0], [0.0]]), torch.tensor([[1.0], [0.0]])
        >>> h, a, c = backward_factors(u, s, LIFParameters(beta=0.5, reset="zero"))
        >>> h[0].item(), a.flatten().tolist(), c.flatten().tolist()  # the spike zeroes a[1]
        (1.0, [0.5, 0.0], [1.0, 1.0])
    """
    surrogate = surrogate_derivative(params.surrogate, membranes - params.threshold, params.slope)
    previous = torch.cat([torch.zeros_like(spikes[:1]), spikes[:-1]])
    ones = torch.ones_like(membranes)
    decay = params.beta * (1.0 - previous) if params.reset == "zero" else params.beta * ones
    return surrogate, decay, ones


def current_gradients(
    spike_errors: torch.Tensor, factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    r"""Back-propagate ``(T, samples)`` spike errors through time; returns errors on currents.

    :math:`\varepsilon[t] = h'[t]\,d[t] + a[t+1]\,\varepsilon[t+1]` from the last step down,
    then :math:`\gamma[t] = c[t]\,\varepsilon[t]`, with ``factors`` :math:`(h', a, c)` from
    :func:`backward_factors`.

    Example:
        >>> ones = torch.ones(3, 1)
        >>> errors = torch.tensor([[0.0], [0.0], [1.0]])  # an error at the last step only
        >>> current_gradients(errors, (ones, 0.5 * ones, ones)).flatten().tolist()  # beta^k
        [0.25, 0.5, 1.0]
    """
    surrogate, decay, gate = factors
    steps = spike_errors.shape[0]
    membrane_error = torch.zeros_like(spike_errors)
    running = torch.zeros_like(spike_errors[0])
    for t in reversed(range(steps)):
        carried = decay[t + 1] * running if t + 1 < steps else 0.0
        running = surrogate[t] * spike_errors[t] + carried
        membrane_error[t] = running
    return gate * membrane_error


def gradient_mean_field(
    depth: int,
    gain: float,
    params: LIFParameters,
    steps: int,
    inputs: InputCurrentProcess | None = None,
    samples: int = DEFAULT_SAMPLES // 2,
    seed: int = 0,
) -> GradientMeanField:
    r"""Predicted :math:`E[(\partial L/\partial I_l[t])^2]` for every layer and step.

    Example:
        >>> mf = gradient_mean_field(5, 6.3, LIFParameters(surrogate="atan"), steps=3)
        >>> mf.per_layer.shape
        (5,)
    """
    depth = check_positive_int("depth", depth)
    inputs = inputs or InputCurrentProcess()
    population = MonteCarloPopulation(steps, samples, seed)
    backward_population = MonteCarloPopulation(steps, samples, seed + _BACKWARD_SEED_OFFSET)
    with single_threaded():
        factors, autocorrelations = [], []
        currents = input_layer_currents(inputs, population)
        for layer in range(depth):
            if layer > 0:
                currents = gaussian_process_currents(
                    np.zeros(steps), gain * autocorrelations[-1], population.normals(layer)
                )
            membranes = torch.empty_like(currents)
            spikes, _ = lif_multistep(currents, params, membranes_out=membranes)
            factors.append(backward_factors(membranes, spikes, params))
            autocorrelations.append((spikes @ spikes.T).double().numpy() / samples)
        covariances = np.empty((depth, steps, steps))
        error_covariance = np.eye(steps)
        for layer in reversed(range(depth)):
            errors = gaussian_process_currents(
                np.zeros(steps), error_covariance, backward_population.normals(layer)
            )
            gamma = current_gradients(errors, factors[layer])
            covariances[layer] = (gamma @ gamma.T).double().numpy() / samples
            error_covariance = gain * covariances[layer]
    return GradientMeanField(covariances, np.stack(autocorrelations))


def backward_gain_ratio(
    gain: float, params: LIFParameters, steps: int, inputs: InputCurrentProcess | None = None,
    depth: int = 30,
) -> float:
    r"""Per-layer growth :math:`\rho` of :math:`E[\gamma^2]` going backward, at gain ``g``.

    The geometric mean of :math:`E[\gamma_l^2]/E[\gamma_{l+1}^2]` over the middle of a
    ``depth``-layer network; the backward condition is :math:`\rho = 1`.

    Example:
        >>> from spikeinit.theory.surrogate import surrogate_second_moment
        >>> p = LIFParameters(threshold=0.0, surrogate="atan")
        >>> round(backward_gain_ratio(2.0, p, steps=1), 2)  # T = 1: g E[h'(u)^2], u ~ N(0, 1)
        0.38
        >>> round(2.0 * surrogate_second_moment("atan", 0.0, sigma=1.0), 2)
        0.38
    """
    per_layer = gradient_mean_field(depth, gain, params, steps, inputs).per_layer
    start, stop = depth // 6, depth - depth // 6 - 1
    if per_layer[stop] <= 0 or per_layer[start] <= 0:
        return 0.0
    return float((per_layer[start] / per_layer[stop]) ** (1.0 / (stop - start)))
