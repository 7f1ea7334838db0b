r"""The spike nonlinearity: Heaviside forward, a surrogate derivative backward.

This module owns the table of surrogates: their names, default slopes and derivatives
:math:`h'(x)` of the Heaviside step at the membrane distance to threshold :math:`x = u -
\theta`. The derivatives are pure functions that work on NumPy arrays and on torch tensors
alike, so the LIF engine, the compiled kernel (built with the table's codes, see
:mod:`spikeinit.engine.kernels`) and the theory (:mod:`spikeinit.theory.surrogate`) share one
definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spikeinit._validation import check_choice, check_positive
from spikeinit.engine.kernels.abi import SURROGATES as KERNEL_SURROGATES

FAST_SIGMOID_SLOPE = 25.0  # snnTorch's fast_sigmoid default
ATAN_SLOPE = 2.0  # snnTorch's atan default


def fast_sigmoid_derivative(x: Any, slope: float = FAST_SIGMOID_SLOPE) -> Any:
    r"""Fast-sigmoid surrogate (SuperSpike): :math:`h'(x) = 1 / (k|x| + 1)^2`.

    Example:
        >>> fast_sigmoid_derivative(0.0), round(fast_sigmoid_derivative(0.04), 4)
        (1.0, 0.25)
    """
    return 1.0 / (slope * abs(x) + 1.0) ** 2


def atan_derivative(x: Any, slope: float = ATAN_SLOPE) -> Any:
    r"""Arc-tangent surrogate: :math:`h'(x) = (\alpha/2) / (1 + (\pi\alpha x/2)^2)`.

    Example:
        >>> atan_derivative(0.0)
        1.0
    """
    return (slope / 2.0) / (1.0 + (math.pi / 2.0 * slope * x) ** 2)


@dataclass(frozen=True)
class Surrogate:
    """One surrogate: its name, default slope and derivative ``derivative(x, slope)``."""

    name: str
    default_slope: float
    derivative: Callable[[Any, float], Any]


_ENTRIES = {"fast-sigmoid": (FAST_SIGMOID_SLOPE, fast_sigmoid_derivative),
            "atan": (ATAN_SLOPE, atan_derivative)}
#: Every surrogate, in the order of their codes in the compiled kernel
#: (:data:`spikeinit.engine.kernels.abi.SURROGATES`, which names them; a name without an entry here
#: fails at import).
SURROGATE_TABLE: tuple[Surrogate, ...] = tuple(
    Surrogate(name, *_ENTRIES[name]) for name in KERNEL_SURROGATES)
SURROGATES = tuple(entry.name for entry in SURROGATE_TABLE)
DEFAULT_SLOPES = {entry.name: entry.default_slope for entry in SURROGATE_TABLE}
DEFAULT_SURROGATE = "fast-sigmoid"


def surrogate_derivative(name: str, x: Any, slope: float | None = None) -> Any:
    """Evaluate the named surrogate derivative at ``x`` (default slope per surrogate).

    Example:
        >>> surrogate_derivative("atan", 0.0, slope=1.0)
        0.5
    """
    check_choice("surrogate", name, SURROGATES)
    slope = DEFAULT_SLOPES[name] if slope is None else check_positive("slope", slope)
    return SURROGATE_TABLE[SURROGATES.index(name)].derivative(x, slope)


class SpikeFunction(torch.autograd.Function):
    r"""``s = H(x)`` with :math:`x = u - \theta`; backward multiplies by :math:`h'(x)`.

    Example:
        >>> x = torch.tensor([-0.04, 0.0, 0.5], requires_grad=True)
        >>> s = SpikeFunction.apply(x, "fast-sigmoid", 25.0)
        >>> s.sum().backward()
        >>> s.tolist(), [round(g, 4) for g in x.grad.tolist()]  # 1 / (25 |x| + 1)^2
        ([0.0, 0.0, 1.0], [0.25, 1.0, 0.0055])
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, surrogate: str, slope: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.slope = surrogate, slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(ctx.surrogate, x, ctx.slope), None, None


def spike(x: Tensor, surrogate: str = DEFAULT_SURROGATE, slope: float | None = None) -> Tensor:
    r"""Emit spikes :math:`H(x)` (strict: ``x > 0``) with a surrogate gradient.

    ``slope=None`` is the surrogate's default (:data:`DEFAULT_SLOPES`).

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
        >>> s = spike(x, "atan")
        >>> s.sum().backward()
        >>> s.tolist(), x.grad.tolist()[1]  # h'(0) = slope/2 = 1 for atan's default slope 2
        ([0.0, 0.0, 1.0], 1.0)
    """
    if not x.requires_grad:
        return (x > 0).to(x.dtype)
    return SpikeFunction.apply(x, surrogate, DEFAULT_SLOPES[surrogate] if slope is None else slope)
