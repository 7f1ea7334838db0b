"""Immutable parameters of a leaky integrate-and-fire (LIF) neuron population."""

from __future__ import annotations

from dataclasses import dataclass

from spikeinit._validation import (
    check_choice,
    check_finite_nonnegative,
    check_positive,
    check_unit_interval,
)
from spikeinit.engine.kernels.abi import RESET_ORDERS, RESETS  # the names the kernel codes
from spikeinit.neurons.surrogate import DEFAULT_SLOPES, DEFAULT_SURROGATE, SURROGATES

__all__ = ["RESETS", "RESET_ORDERS", "LIFParameters"]


@dataclass(frozen=True)
class LIFParameters:
    r"""Parameters of the discrete-time LIF neuron.

    ``reset_order="delayed"`` is snnTorch's ``Leaky`` (the reset acts, undecayed, at the step
    after the spike)::

        subtract: u[t] = beta*u[t-1] + I[t] - theta*s[t-1]
        zero:     u[t] = beta*u[t-1]*(1 - s[t-1]) + I[t]
        none:     u[t] = beta*u[t-1] + I[t]

    ``reset_order="immediate"`` is SpikingJelly's and Norse's (the reset acts at the spike step
    and then decays with the membrane)::

        subtract: u[t] = beta*(u[t-1] - theta*s[t-1]) + I[t]
        zero:     u[t] = beta*u[t-1]*(1 - s[t-1]) + I[t]

    For ``zero`` both orders are the same equation (snnTorch 1.0 zeroes the decayed old
    membrane, not the new input). In both, ``s[t] = H(u[t] - theta)`` with a strict
    inequality, and ``u[-1] = s[-1] = 0``.

    Example:
        >>> p = LIFParameters(beta=0.9, reset="zero", surrogate="atan")
        >>> p.threshold, p.reset_order, p.slope  # the defaults, and atan's default slope
        (1.0, 'delayed', 2.0)
        >>> LIFParameters(beta=1.5)
        Traceback (most recent call last):
            ...
        spikeinit.errors.InvalidArgumentError: beta must lie in [0, 1], got 1.5
    """

    beta: float = 0.5
    threshold: float = 1.0
    reset: str = "subtract"
    reset_order: str = "delayed"
    surrogate: str = DEFAULT_SURROGATE
    surrogate_slope: float | None = None
    detach_reset: bool = True

    def __post_init__(self) -> None:
        check_unit_interval("beta", self.beta)
        check_finite_nonnegative("threshold", self.threshold)
        check_choice("reset", self.reset, RESETS)
        check_choice("reset_order", self.reset_order, RESET_ORDERS)
        check_choice("surrogate", self.surrogate, SURROGATES)
        if self.surrogate_slope is not None:
            check_positive("surrogate_slope", self.surrogate_slope)

    @property
    def slope(self) -> float:
        """The surrogate slope in use (the surrogate's default when none was given)."""
        if self.surrogate_slope is None:
            return DEFAULT_SLOPES[self.surrogate]
        return self.surrogate_slope
