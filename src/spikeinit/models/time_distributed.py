"""``TimeDistributed``: run a per-frame layer on all ``T`` steps at once (layer-major)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from spikeinit._validation import check_positive_int
from spikeinit.engine.layout import repeat_frame, repeated_over_time
from spikeinit.errors import InvalidArgumentError


def check_frame_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``input_shape`` as a ``(C, H, W)`` tuple of integers >= 1, or a ``ValueError``."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise InvalidArgumentError(f"input_shape must be (C, H, W), got {shape!r}")
    return tuple(check_positive_int(f"input_shape {name}", value)  # type: ignore[return-value]
                 for name, value in zip(("C", "H", "W"), shape))


def check_frames(currents: Tensor, frame_shape: tuple[int, ...]) -> None:
    """Raise a ``ValueError`` unless ``currents`` is ``(T, B, *frame_shape)``."""
    if currents.ndim != 2 + len(frame_shape) or tuple(currents.shape[2:]) != frame_shape:
        raise InvalidArgumentError(
            f"currents must have shape (T, B, {', '.join(map(str, frame_shape))}), "
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
        return repeat_frame(module(x[0]), x.shape[0])
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
            raise InvalidArgumentError(
                f"TimeDistributed expects (T, B, ...) input, got shape {tuple(x.shape)}")
        return fold_time(self.module, x)
