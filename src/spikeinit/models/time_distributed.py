"""``TimeDistributed``: run a per-frame layer on all ``T`` steps at once (layer-major)."""

from __future__ import annotations

from torch import Tensor, nn


def fold_time(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a per-frame module to ``(T, B, ...)`` by folding time into the batch.

    ``y = module(x.flatten(0, 1)).unflatten(0, (T, B))``: one convolution (or pooling, or
    normalization) call over ``T * B`` frames instead of ``T`` calls over ``B``.
    """
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
