"""The spike nonlinearity: Heaviside forward, a surrogate derivative backward."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spikeinit.theory.surrogate import surrogate_derivative


class SpikeFunction(torch.autograd.Function):
    r"""``s = H(x)`` with :math:`x = u - \theta`; backward multiplies by :math:`h'(x)`."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, surrogate: str, slope: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.slope = surrogate, slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(ctx.surrogate, x, ctx.slope), None, None


def spike(x: Tensor, surrogate: str = "fast-sigmoid", slope: float = 25.0) -> Tensor:
    r"""Emit spikes :math:`H(x)` (strict: ``x > 0``) with a surrogate gradient."""
    if not x.requires_grad:
        return (x > 0).to(x.dtype)
    return SpikeFunction.apply(x, surrogate, slope)
