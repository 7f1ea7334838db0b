"""Memory layouts of the engine's tensors: channels-last frames, the order in which the LIF
kernel sees a population's neurons, and one frame repeated over time.

A ``(N, C, H, W)`` tensor can lie in memory as ``N, C, H, W`` (contiguous) or ``N, H, W, C``
(channels-last, as :mod:`spikeinit.engine.conv_layout` may run convolutions). Everything after
a convolution follows its layout without copies: the fused LIF (:class:`NeuronLayout`), pooling,
and a frame repeated over the time steps (:func:`repeat_frame`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def is_channels_last(x: Tensor) -> bool:
    """Whether ``x`` is ``(N, C, H, W)`` or ``(T, B, C, H, W)`` with channels-last frames (and
    not also plainly contiguous, as a tensor with one channel or one pixel is).

    Example:
        >>> is_channels_last(torch.rand(2, 3, 4, 4).contiguous(memory_format=torch.channels_last))
        True
    """
    if x.ndim == 4:
        return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if x.ndim == 5:
        return not x.is_contiguous() and x.permute(0, 1, 3, 4, 2).is_contiguous()
    return False


class NeuronLayout:
    """The order in which the neurons of a ``(T, B, ...)`` tensor lie in memory.

    The kernel runs over a contiguous ``(T, B, N)`` block. A tensor whose frames are
    channels-last (``(T, B, C, H, W)`` with strides of ``(T, B, H, W, C)``, as channels-last
    convolutions return it) is such a block already, with the neurons in ``(H, W, C)`` order:
    it is run in that order, not copied to ``(C, H, W)`` order and back, and the spikes keep
    its layout. ``order`` is the permutation of the sample dimensions (``None``: as they are).
    """

    __slots__ = ("order",)

    def __init__(self, order: tuple[int, ...] | None) -> None:
        self.order = order

    @classmethod
    def of(cls, currents: Tensor) -> NeuronLayout:
        return cls((1, 2, 0) if currents.ndim == 5 and is_channels_last(currents) else None)

    def _permute(self, tensor: Tensor, leading: int) -> Tensor:
        if self.order is None:
            return tensor
        return tensor.permute(*range(leading), *(leading + d for d in self.order))

    def flatten(self, currents: Tensor) -> Tensor:
        """``(T, B, ...)`` -> contiguous ``(T, B, N)`` in memory order (a view when it is)."""
        steps, batch = currents.shape[:2]
        return self._permute(currents, 2).reshape(steps, batch, -1).contiguous()

    def flat_state(self, state: Tensor, batch: int, neurons: int) -> Tensor:
        """A ``(B, ...)`` state as ``(B, N)`` in the same neuron order."""
        return self._permute(state, 1).reshape(batch, neurons)

    def per_neuron(self, values: Tensor) -> Tensor:
        """One sample's values ``(...)`` as ``(N,)`` in the same neuron order."""
        return self._permute(values, 0).reshape(-1)

    def unflatten(self, flat: Tensor, shape: tuple[int, ...] | torch.Size) -> Tensor:
        """A ``(T, B, N)`` result as ``shape`` ``(T, B, ...)``, a view in this layout."""
        if self.order is None:
            return flat.view(shape)
        permuted = [shape[0], shape[1], *(shape[2 + d] for d in self.order)]
        inverse = [self.order.index(d) for d in range(len(self.order))]
        return flat.view(permuted).permute(0, 1, *(2 + d for d in inverse))



def repeated_over_time(x: Tensor) -> bool:
    """True when ``x`` is ``(T, ...)`` with ``T > 1`` and stride 0 along time.

    Such a tensor is one frame broadcast over ``T`` steps, as ``image.expand(T, ...)`` makes for
    a static image fed as a direct current (``spikeinit.experiments.training`` does this). Every
    step is the same frame by construction, so a per-frame layer need run only once.
    """
    return x.ndim >= 2 and x.shape[0] > 1 and x.stride(0) == 0


def once_over_time(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    r"""``function`` applied per frame, run once when ``x`` repeats one frame over time.

    For :func:`repeated_over_time` inputs, :math:`y_t = f(x_0)` for every ``t``: the result is
    ``f(x[0])`` copied back over ``T`` (a real tensor, so that in-place operations on it work
    as on any layer's output; the LIF that follows needs it contiguous anyway). Autograd sums the
    gradient over ``T`` through the broadcast, so the weight gradient is
    :math:`\nabla_W = \sum_t \partial L / \partial y_t \cdot \partial f(x_0) / \partial W`,
    computed on one frame instead of ``T``. Other inputs go to ``function`` unchanged.
    """
    return _run_once(function, x) if repeated_over_time(x) else function(x)


def _run_once(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return repeat_frame(function(x[0]), x.shape[0])


def repeat_frame(frame: Tensor, steps: int) -> Tensor:
    r"""``frame`` ``(B, ...)`` copied into a new ``(steps, B, ...)`` tensor, each step laid out
    as ``frame`` is (a channels-last frame stays channels-last; others are contiguous).

    The gradient is :math:`\nabla_{\text{frame}} = \sum_t \nabla_{y_t}`, summed in the same
    layout (PyTorch's own sum over the time axis of channels-last steps returns a contiguous
    frame, slowly, and the convolution behind it would convert it back).

    Example:
        >>> frame = torch.rand(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
        >>> y = repeat_frame(frame, 5)
        >>> y.shape, y[4].is_contiguous(memory_format=torch.channels_last), torch.equal(y[4], frame)
        (torch.Size([5, 2, 3, 4, 4]), True, True)
    """
    if frame.ndim != 4 or not is_channels_last(frame):
        return frame.unsqueeze(0).expand(steps, *frame.shape).contiguous()
    return _RepeatChannelsLast.apply(frame, steps)


class _RepeatChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, frame: Tensor, steps: int) -> Tensor:
        out = torch.empty_strided((steps, *frame.shape), (frame.numel(), *frame.stride()),
                                  dtype=frame.dtype, device=frame.device)
        return out.copy_(frame.unsqueeze(0).expand(steps, *frame.shape))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        # (T, B, C, H, W) with channels-last steps is (T, B, H, W, C) in memory: sum there
        total = grad.permute(0, 1, 3, 4, 2).sum(0)
        return total.permute(0, 3, 1, 2), None
