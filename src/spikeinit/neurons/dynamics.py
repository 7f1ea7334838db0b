r"""Pure LIF dynamics over tensors: one step, and a loop over T steps.

See :class:`~spikeinit.neurons.parameters.LIFParameters` for the update equations. ``beta`` and
``threshold`` may be floats or tensors that broadcast against the input (per-neuron values).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import spike


class LIFState(NamedTuple):
    """Membrane ``u[t-1]`` and spikes ``s[t-1]`` carried from one step to the next.

    Example:
        >>> _, state = lif_step(torch.tensor([1.5]), initial_state(torch.zeros(1)),
        ...                     LIFParameters())
        >>> state.membrane.tolist(), state.spikes.tolist()
        ([1.5], [1.0])
    """

    membrane: Tensor
    spikes: Tensor


def initial_state(like: Tensor) -> LIFState:
    """The resting state ``u[-1] = s[-1] = 0`` shaped like one time step of input.

    Example:
        >>> state = initial_state(torch.ones(2, 3))
        >>> state.membrane.shape, state.spikes.abs().sum().item()
        (torch.Size([2, 3]), 0.0)
    """
    zeros = torch.zeros_like(like)
    return LIFState(zeros, zeros)


def integrate(
    current: Tensor,
    state: LIFState,
    params: LIFParameters,
    beta: float | Tensor,
    threshold: float | Tensor,
) -> Tensor:
    """The membrane ``u[t]`` before thresholding, for the reset mode and order in ``params``."""
    previous_spikes = state.spikes.detach() if params.detach_reset else state.spikes
    if params.reset == "none":
        return beta * state.membrane + current
    if params.reset == "zero":
        return beta * state.membrane * (1.0 - previous_spikes) + current
    if params.reset_order == "delayed":
        return beta * state.membrane + current - threshold * previous_spikes
    return beta * (state.membrane - threshold * previous_spikes) + current


def lif_step(
    current: Tensor,
    state: LIFState,
    params: LIFParameters,
    beta: float | Tensor | None = None,
    threshold: float | Tensor | None = None,
) -> tuple[Tensor, LIFState]:
    """Advance one time step: returns the spikes ``s[t]`` and the new state.

    ``u[t]`` follows the reset mode and order of ``params`` (:class:`LIFParameters`), then
    ``s[t] = H(u[t] - theta)``; ``beta`` and ``threshold`` override those of ``params``.

    Example:
        >>> p = LIFParameters(beta=0.5, threshold=1.0)  # subtractive reset, delayed
        >>> s, state = lif_step(torch.tensor([1.5]), initial_state(torch.zeros(1)), p)
        >>> s, state = lif_step(torch.tensor([1.5]), state, p)  # u = 0.5*1.5 + 1.5 - 1*1
        >>> state.membrane.item(), s.item()
        (1.25, 1.0)
    """
    beta = params.beta if beta is None else beta
    threshold = params.threshold if threshold is None else threshold
    membrane = integrate(current, state, params, beta, threshold)
    spikes = spike(membrane - threshold, params.surrogate, params.slope)
    return spikes, LIFState(membrane, spikes)


def lif_steps(
    currents: Tensor,
    params: LIFParameters,
    state: LIFState | None = None,
    beta: float | Tensor | None = None,
    threshold: float | Tensor | None = None,
) -> Iterator[tuple[Tensor, LIFState]]:
    """The LIF time loop: :func:`lif_step` over ``t = 0 .. T-1`` of ``currents`` ``(T, ...)``,
    yielding the spikes ``s[t]`` and the state ``(u[t], s[t])`` of each step.

    Starts from ``state`` (default: rest, :func:`initial_state`). Every loop of the engine
    over the steps in PyTorch runs this one (:func:`lif_multistep`, :func:`lif_trace` and the
    fused function's PyTorch path).

    Example:
        >>> steps = lif_steps(torch.full((3, 1), 1.2), LIFParameters(beta=0.5))
        >>> [(s.item(), round(state.membrane.item(), 4)) for s, state in steps]
        [(1.0, 1.2), (0.0, 0.8), (1.0, 1.6)]
    """
    state = initial_state(currents[0]) if state is None else state
    for t in range(currents.shape[0]):
        spikes, state = lif_step(currents[t], state, params, beta, threshold)
        yield spikes, state


def lif_multistep(
    currents: Tensor,
    params: LIFParameters,
    state: LIFState | None = None,
    beta: float | Tensor | None = None,
    threshold: float | Tensor | None = None,
    membranes_out: Tensor | None = None,
) -> tuple[Tensor, LIFState]:
    """Run ``T = currents.shape[0]`` steps; returns spikes shaped like ``currents``.

    When ``membranes_out`` (shaped like ``currents``) is given, ``u[t]`` is written into it.
    Starts from ``state`` (default: rest, :func:`initial_state`); returns the final state too.

    Example:
        >>> currents, membranes = torch.full((3, 1), 1.2), torch.empty(3, 1)
        >>> spikes, _ = lif_multistep(currents, LIFParameters(beta=0.5, threshold=1.0),
        ...                           membranes_out=membranes)
        >>> spikes.flatten().tolist(), [round(u, 4) for u in membranes.flatten().tolist()]
        ([1.0, 0.0, 1.0], [1.2, 0.8, 1.6])
    """
    final = initial_state(currents[0]) if state is None else state
    outputs = []
    for t, (spikes, reached) in enumerate(lif_steps(currents, params, final, beta, threshold)):
        outputs.append(spikes)
        final = reached
        if membranes_out is not None:
            membranes_out[t] = reached.membrane.detach()
    return torch.stack(outputs), final


def lif_trace(
    currents: Tensor,
    params: LIFParameters,
    beta: float | Tensor | None = None,
    threshold: float | Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Spikes and membranes ``(T, ...)`` of ``T`` LIF steps from rest, both with gradient
    (the step-by-step autograd counterpart of :func:`spikeinit.neurons.fused.lif_membranes`).

    :math:`u_t` follows the reset mode and order of ``params``, :math:`s_t = H(u_t - \theta)`;
    a loss on the membranes backpropagates through every step's autograd nodes.

    Example:
        >>> currents = torch.full((3, 1), 1.2, requires_grad=True)
        >>> spikes, membranes = lif_trace(currents, LIFParameters(beta=0.5))
        >>> [round(u, 4) for u in membranes.flatten().tolist()]
        [1.2, 0.8, 1.6]
    """
    spikes, membranes = [], []
    for step_spikes, state in lif_steps(currents, params, None, beta, threshold):
        spikes.append(step_spikes)
        membranes.append(state.membrane)
    return torch.stack(spikes), torch.stack(membranes)
