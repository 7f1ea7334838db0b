r"""``SpikingRNN``: a recurrent SNN, LIF populations that receive their own spikes back.

A recurrent block drives its LIF neurons with the feed-forward input and with its own spikes of
the previous step through the recurrent weights :math:`W_{rec}`:

.. math::

    I_t = W_{in} x_t + b + W_{rec} s_{t-1},\qquad s_{-1} = 0,

and :math:`u_t`, :math:`s_t = H(u_t - \theta)` follow the LIF update of the block's neurons
(:class:`~spikeinit.neurons.LIFParameters`: reset mode and order, detached or not). The
feed-forward part :math:`W_{in} x_t + b` runs once over all ``T`` steps (one matrix product);
only the recurrent part loops over the steps, in :class:`RecurrentLIFFunction`, one autograd
node with a hand-written backward through time. With :math:`a_t = \partial L/\partial u_t`,
:math:`c_t = \partial L/\partial I_t` and :math:`\bar s_t` the incoming gradient of the spikes:

.. math::

    g_t &= \bar s_t + W_{rec}^\top c_{t+1}
          + \frac{\partial u_{t+1}}{\partial s_t} a_{t+1}
          \quad(\text{last term only when the reset is not detached}) \\
    a_t &= g_t\,h'(u_t - \theta) + \frac{\partial u_{t+1}}{\partial u_t} a_{t+1},\qquad
    c_t = a_t + \bar I_t \\
    \frac{\partial L}{\partial (W_{in} x_t + b)} &= c_t,\qquad
    \frac{\partial L}{\partial W_{rec}} = \sum_{t \ge 1} c_t\, s_{t-1}^\top

(:math:`\bar I_t`: the gradient of the currents when a readout uses them), the partial
derivatives per reset being those of :mod:`spikeinit.neurons.fused`. The weight gradient is one
matrix product over all steps after the loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import check_positive_int
from spikeinit.engine.event_linear import EventLinear
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.dynamics import LIFState, initial_state, integrate
from spikeinit.neurons.fused import _carry, _reset_sensitivity, neuron_vector
from spikeinit.neurons.lif import LIF
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import surrogate_derivative

__all__ = ["RecurrentBlock", "RecurrentLIFFunction", "SpikingRNN", "recurrent_lif"]

#: LIF options a recurrent block refuses: its loop runs whole sequences from rest with fixed
#: (not learned) beta and threshold.
_UNSUPPORTED_LIF_OPTIONS = ("step_mode", "stateful", "learn_beta", "learn_threshold",
                            "neuron_shape", "engine")


class RecurrentLIFFunction(torch.autograd.Function):
    """The recurrent LIF loop over ``T`` steps as one autograd node (see the module docstring).

    Inputs: the feed-forward currents ``drive`` ``(T, B, n)``, the recurrent weight ``(n, n)``,
    ``beta`` and ``theta`` as ``(n,)`` vectors and the :class:`LIFParameters`. Outputs: the
    spikes ``(T, B, n)``, the total currents :math:`I_t` ``(T, B, n)`` and the last membranes
    ``(B, n)``. It saves the membranes, the spikes and the weight for backward.

    Example:
        >>> drive = torch.tensor([0.5, 1.0, 0.0]).reshape(3, 1, 1).requires_grad_()
        >>> weight, vector = torch.tensor([[0.5]], requires_grad=True), torch.ones(1)
        >>> spikes, currents, _ = RecurrentLIFFunction.apply(drive, weight, vector * 0.5,
        ...                                                  vector, LIFParameters())
        >>> spikes.flatten().tolist(), currents.flatten().tolist()
        ([0.0, 1.0, 0.0], [0.5, 1.0, 0.5])
        >>> currents.sum().backward()
        >>> weight.grad.tolist()  # dI_2/dW = s_1 = 1
        [[1.0]]
    """

    @staticmethod
    def forward(ctx: Any, drive: Tensor, weight: Tensor, beta: Tensor, theta: Tensor,
                params: LIFParameters) -> tuple[Tensor, Tensor, Tensor]:
        spikes = torch.empty_like(drive)
        currents = torch.empty_like(drive)
        membranes = torch.empty_like(drive)
        state = initial_state(drive[0])
        weight_t = weight.t()
        for t in range(drive.shape[0]):
            if t == 0:
                currents[0].copy_(drive[0])
            else:
                torch.addmm(drive[t], state.spikes, weight_t, out=currents[t])
            membranes[t] = integrate(currents[t], state, params, beta, theta)
            torch.gt(membranes[t], theta, out=spikes[t])
            state = LIFState(membranes[t], spikes[t])
        ctx.params = params
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(weight, beta, theta, membranes, spikes)
        return spikes, currents, membranes[-1].clone()

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_currents: Tensor | None,
                 grad_u_last: Tensor | None) -> tuple[Tensor | None, ...]:
        weight, beta, theta, membranes, spikes = ctx.saved_tensors
        params: LIFParameters = ctx.params
        steps = membranes.shape[0]
        slopes = surrogate_derivative(params.surrogate, membranes - theta, params.slope)
        carry = _carry(spikes, beta, params)
        grad_drive = torch.empty_like(membranes)
        a_next = c_next = None
        for t in range(steps - 1, -1, -1):
            g = (torch.zeros_like(membranes[t]) if grad_spikes is None
                 else grad_spikes[t].clone())
            if c_next is not None:
                g.addmm_(c_next, weight)
                if not params.detach_reset:
                    g += _reset_sensitivity(membranes[t], beta, theta, params) * a_next
            a = g.mul_(slopes[t])
            if a_next is not None:
                a.addcmul_(carry[t], a_next)
            if t == steps - 1 and grad_u_last is not None:
                a += grad_u_last
            grad_drive[t] = a if grad_currents is None else a + grad_currents[t]
            a_next, c_next = a, grad_drive[t]
        grad_weight = None
        if ctx.needs_input_grad[1] and steps > 1:
            grad_weight = grad_drive[1:].flatten(0, 1).t().mm(spikes[:-1].flatten(0, 1))
        elif ctx.needs_input_grad[1]:
            grad_weight = torch.zeros_like(weight)
        return grad_drive, grad_weight, None, None, None


def recurrent_lif(drive: Tensor, weight: Tensor, lif: LIF) -> tuple[Tensor, Tensor, Tensor]:
    """Spikes, total currents and last membranes of ``lif``'s neurons driven by ``drive``
    ``(T, B, n)`` and their own spikes through ``weight`` ``(n, n)``, from rest:
    :math:`I_t = \\mathrm{drive}_t + W s_{t-1}` (:class:`RecurrentLIFFunction`).

    Example:
        >>> lif = LIF(beta=0.5, threshold=1.0)
        >>> drive = torch.tensor([1.5, 0.0, 0.0]).reshape(3, 1, 1)
        >>> spikes, currents, _ = recurrent_lif(drive, torch.tensor([[2.0]]), lif)
        >>> spikes.flatten().tolist(), currents.flatten().tolist()
        ([1.0, 1.0, 1.0], [1.5, 2.0, 2.0])
    """
    if drive.ndim != 3:
        raise InvalidArgumentError(
            f"drive must be (T, B, n) currents, got shape {tuple(drive.shape)}")
    neurons = drive.shape[-1]
    beta = neuron_vector(lif.beta, neurons, drive)
    theta = neuron_vector(lif.threshold, neurons, drive)
    return RecurrentLIFFunction.apply(drive, weight, beta, theta, lif.params)


class RecurrentBlock(nn.Module):
    """``input`` Linear -> ``lif`` neurons that also receive their own previous spikes through
    ``recurrent`` (a Linear without bias): :math:`I_t = W_{in} x_t + b + W_{rec} s_{t-1}`.

    Takes ``(T, B, in_features)`` and returns the spikes ``(T, B, out_features)``, from rest at
    every call. The ``lif`` module is called (through :meth:`LIF.replay`) with the total
    currents :math:`I_t` and the spikes, so its forward hooks see them as for any LIF layer.

    Example:
        >>> block = RecurrentBlock(28, 64)
        >>> block(torch.rand(5, 2, 28)).shape
        torch.Size([5, 2, 64])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 **lif_options: Any) -> None:
        super().__init__()
        refused = sorted(set(lif_options) & set(_UNSUPPORTED_LIF_OPTIONS))
        if refused:
            raise InvalidArgumentError(
                f"a recurrent block runs whole sequences from rest with fixed beta and "
                f"threshold; the LIF options {refused} are not supported")
        self.input = EventLinear(check_positive_int("in_features", in_features),
                                 check_positive_int("out_features", out_features), bias=bias)
        self.recurrent = nn.Linear(out_features, out_features, bias=False)
        self.lif = LIF(**lif_options)

    def forward(self, x: Tensor) -> Tensor:
        drive = self.input(x)
        spikes, currents, u_last = recurrent_lif(drive, self.recurrent.weight, self.lif)
        return self.lif.replay(currents, spikes, LIFState(u_last, spikes[-1]))


class SpikingRNN(nn.Module):
    """Recurrent SNN: ``depth`` :class:`RecurrentBlock` s of ``hidden`` neurons, then a
    ``Linear -> LIF`` output layer over the last block's spikes.

    Inputs are ``(T, B, input_size)`` (a sequence: the time axis is the data's); the output is
    the output layer's spikes ``(T, B, classes)``, read out over time by the training loop
    (membrane average or spike counts, :mod:`spikeinit.experiments.training.readout`).
    ``lif_options`` (beta, threshold, reset, reset order, surrogate) apply to every LIF layer.

    Example:
        >>> net = SpikingRNN(1, 32, 10, depth=2)
        >>> net(torch.rand(784, 4, 1)).shape
        torch.Size([784, 4, 10])
        >>> [name for name, _ in net.named_children()]
        ['blocks', 'classifier', 'output']
    """

    def __init__(self, input_size: int, hidden: int, classes: int, depth: int = 1,
                 bias: bool = True, **lif_options: Any) -> None:
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("hidden", hidden)
        check_positive_int("classes", classes)
        check_positive_int("depth", depth)
        sizes = [input_size] + [hidden] * depth
        self.blocks = nn.ModuleList(RecurrentBlock(n_in, n_out, bias=bias, **lif_options)
                                    for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.classifier = EventLinear(hidden, classes, bias=bias)
        self.output = LIF(**lif_options)

    @property
    def lif_layers(self) -> list[LIF]:
        """The recurrent populations' LIF layers, then the output layer."""
        return [block.lif for block in self.blocks] + [self.output]

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3:
            raise InvalidArgumentError(
                f"x must be a (T, B, features) sequence, got shape {tuple(x.shape)}")
        for block in self.blocks:
            x = block(x)
        return self.output(self.classifier(x))
