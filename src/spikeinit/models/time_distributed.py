"""``TimeDistributed``: run a per-frame layer on all ``T`` steps at once (layer-major)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import check_positive_int
from spikeinit.neurons.fused import is_channels_last


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


def check_frame_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``input_shape`` as a ``(C, H, W)`` tuple of integers >= 1, or a ``ValueError``."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {shape!r}")
    return tuple(check_positive_int(f"input_shape {name}", value)  # type: ignore[return-value]
                 for name, value in zip(("C", "H", "W"), shape))


def check_frames(currents: Tensor, frame_shape: tuple[int, ...]) -> None:
    """Raise a ``ValueError`` unless ``currents`` is ``(T, B, *frame_shape)``."""
    if currents.ndim != 2 + len(frame_shape) or tuple(currents.shape[2:]) != frame_shape:
        raise ValueError(f"currents must have shape (T, B, {', '.join(map(str, frame_shape))}), "
                         f"got {tuple(currents.shape)}")


def is_stochastic(module: nn.Module) -> bool:
    """True when ``module`` draws random numbers per frame: a dropout layer in training mode."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.training
               for m in module.modules())


def fold_time(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a per-frame module to ``(T, B, ...)`` by folding time into the batch.

    ``y = module(x.flatten(0, 1)).unflatten(0, (T, B))``: one convolution (or pooling, or
    normalization) call over ``T * B`` frames instead of ``T`` calls over ``B``. A static
    frame broadcast over time (:func:`repeated_over_time`) is computed once, on ``B`` frames,
    unless ``module`` is stochastic (dropout in training draws a new mask at every step).

    Example:
        >>> import torch
        >>> conv, x = nn.Conv2d(3, 4, 3), torch.rand(5, 2, 3, 8, 8)
        >>> y = fold_time(conv, x)
        >>> y.shape, torch.allclose(y[1], conv(x[1]), atol=1e-6)  # step 1 = conv of frame 1
        (torch.Size([5, 2, 4, 6, 6]), True)
    """
    if repeated_over_time(x) and not is_stochastic(module):
        return _run_once(module, x)
    steps, batch = x.shape[:2]
    return module(x.flatten(0, 1)).unflatten(0, (steps, batch))


class TimeDistributed(nn.Module):
    """Wrap a stateless per-frame layer (``Conv2d``, ``MaxPool2d``, ``BatchNorm2d``, ...) so
    that it takes ``(T, B, ...)`` sequences, as the multi-step :class:`~spikeinit.neurons.LIF`
    does. ``nn.Linear`` needs no wrapper: it already runs one GEMM over all leading dimensions.

    Example:
        >>> import torch
        >>> from spikeinit.neurons import LIF
        >>> net = nn.Sequential(TimeDistributed(nn.Conv2d(3, 8, 3, padding=1)), LIF())
        >>> net(torch.rand(4, 2, 3, 16, 16)).shape
        torch.Size([4, 2, 8, 16, 16])
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 3:
            raise ValueError(
                f"TimeDistributed expects (T, B, ...) input, got shape {tuple(x.shape)}")
        return fold_time(self.module, x)
