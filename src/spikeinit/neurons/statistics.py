r"""The one activity recorder: running moments of a stream of tensors, and per-step statistics.

:class:`Moments` accumulates the count, sum and sum of squares of every element it is given.
The sums stay tensors on the stream's device, so adding costs no host synchronisation (a
training loop on a GPU is not slowed by it); the properties read them as floats. Everything
that measures activity builds on it, through forward hooks on the neurons:
:class:`spikeinit.network.ActivityProbe` (any framework's neurons, pooled over the steps; used
by ``initialize``, ``calibrate``, ``report`` and the training loop) and
:class:`ActivityStatistics` (membranes and spikes per time step; the propagation experiment's,
:func:`spikeinit.experiments.propagation.recorded_activity`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spikeinit.engine.threads import single_threaded

EXACT_FLOAT32_SUM = 2**24
"""Up to this many elements a float32 sum of integers (spikes) is exact."""

PENDING_SUMS = 256
"""The cheap mode folds its float32 per-tensor sums into the float64 total this many at a
time."""


class Moments:
    r"""Running count, sum and sum of squares of the elements of a stream of tensors.

    With ``check_finite`` (default) non-finite elements are counted as 0 and flagged in
    :attr:`nonfinite`; with ``squares=False`` only the count and the sum are kept (the mean).
    Sums are accumulated in float64. In the cheap mode (``squares=False`` and
    ``check_finite=False``, the training loop's spike counter, called once per layer and step)
    a float32 tensor of at most :data:`EXACT_FLOAT32_SUM` elements is summed in float32 (no
    float64 copy of it: exact for spike counts, integers below 2^24, and within float32
    rounding otherwise), and these per-tensor sums are added up in float64 in batches of
    :data:`PENDING_SUMS`, or when the total is read: one tensor operation per call.

    Example:
        >>> m = Moments()
        >>> m.add(torch.tensor([1.0, 3.0]))
        >>> m.count, m.mean, m.second_moment, m.variance
        (2, 2.0, 5.0, 1.0)
    """

    def __init__(self, squares: bool = True, check_finite: bool = True) -> None:
        self.count = 0
        self.keep_squares = squares
        self.check_finite = check_finite
        self._total_: Tensor | None = None
        self._pending: list[Tensor] = []
        self._squares: Tensor | None = None
        self._nonfinite: Tensor | None = None

    @property
    def _total(self) -> Tensor | None:
        """The float64 sum so far (the pending float32 sums folded in)."""
        if self._pending:
            folded = torch.stack(self._pending).double().sum()
            self._pending = []
            self._total_ = folded if self._total_ is None else self._total_ + folded
        return self._total_

    @_total.setter
    def _total(self, value: Tensor | None) -> None:
        self._total_ = value

    def add(self, x: Tensor) -> None:
        """Accumulate every element of ``x`` (in float64)."""
        x = x.detach()
        numel = x.numel()
        if numel == 0:
            return
        if (not self.check_finite and not self.keep_squares and x.dtype == torch.float32
                and numel <= EXACT_FLOAT32_SUM):
            self._pending.append(x.sum())
            if len(self._pending) >= PENDING_SUMS:
                _ = self._total  # fold them in
            self.count += numel
            return
        # One pass each for the sum and the squares (squared in x's dtype, summed in float64),
        # on one thread: a parallel reduction waits for every thread, which on a busy machine
        # costs more than the sum; only when they are not finite is x scanned for the NaNs and
        # infinities to drop.
        with single_threaded():
            total = x.sum(dtype=torch.float64)
            squares = x.square().sum(dtype=torch.float64) if self.keep_squares else None
        if self.check_finite:
            finite = torch.isfinite(total) & (torch.isfinite(squares) if squares is not None
                                             else True)
            if not bool(finite):
                bad = ~torch.isfinite(x)
                x = x.masked_fill(bad, 0)
                total = x.sum(dtype=torch.float64)
                squares = x.square().sum(dtype=torch.float64) if self.keep_squares else None
            flagged = ~finite
            self._nonfinite = flagged if self._nonfinite is None else self._nonfinite | flagged
        self._total = total if self._total is None else self._total + total
        if squares is not None:
            self._squares = squares if self._squares is None else self._squares + squares
        self.count += x.numel()

    @property
    def total(self) -> float:
        """The sum of the elements seen."""
        return 0.0 if self._total is None else float(self._total)

    @property
    def squares(self) -> float:
        """The sum of their squares (NaN when ``squares=False``)."""
        if not self.keep_squares:
            return math.nan
        return 0.0 if self._squares is None else float(self._squares)

    @property
    def nonfinite(self) -> bool:
        """Whether a NaN or an infinity was seen."""
        return bool(self._nonfinite) if self._nonfinite is not None else False

    def sums(self, device: torch.device | str | None = None) -> Tensor:
        """``[sum, count]`` as a float64 tensor (to add up over processes)."""
        total = self._total if self._total is not None else torch.zeros((), dtype=torch.float64)
        if device is not None:
            total = total.to(device)
        return torch.stack([total, total.new_tensor(float(self.count))])

    @property
    def mean(self) -> float:
        """Mean of the elements seen (NaN before any)."""
        return self.total / self.count if self.count else math.nan

    @property
    def second_moment(self) -> float:
        """Mean square of the elements seen (NaN before any)."""
        return self.squares / self.count if self.count else math.nan

    @property
    def variance(self) -> float:
        """Population variance of the elements seen (NaN before any)."""
        if not self.count:
            return math.nan
        return max(self.second_moment - self.mean**2, 0.0)


class ActivityStatistics:
    r"""Membrane and spike :class:`Moments` per time step, over batch and neurons.

    ``rate[t]`` is the mean spikes per neuron at step ``t``; ``membrane_variance[t]`` is
    :math:`E[u_t^2] - E[u_t]^2` over batch and neurons.

    Example:
        >>> stats = ActivityStatistics()
        >>> membranes = torch.tensor([[0.0, 2.0], [1.0, 1.0]])  # (T, neurons)
        >>> stats.add_sequence(0, membranes, (membranes > 0.5).float())
        >>> stats.rate, stats.membrane_variance, stats.mean_rate
        ([0.5, 1.0], [1.0, 0.0], 0.75)
    """

    def __init__(self) -> None:
        self.membranes: list[Moments] = []
        self.spikes: list[Moments] = []

    def add_sequence(self, first_step: int, membranes: Tensor, spikes: Tensor) -> None:
        """Accumulate ``T`` steps, from tensors shaped ``(T, ...)``, starting at ``first_step``."""
        while len(self.membranes) < first_step + membranes.shape[0]:
            self.membranes.append(Moments())
            self.spikes.append(Moments(squares=False, check_finite=False))
        for offset in range(membranes.shape[0]):
            self.membranes[first_step + offset].add(membranes[offset])
            self.spikes[first_step + offset].add(spikes[offset])

    @property
    def steps(self) -> int:
        return len(self.membranes)

    @property
    def counts(self) -> list[int]:
        """Elements (batch x neurons) recorded at each step."""
        return [moments.count for moments in self.membranes]

    @property
    def rate(self) -> list[float]:
        return [moments.mean if moments.count else 0.0 for moments in self.spikes]

    @property
    def membrane_mean(self) -> list[float]:
        return [moments.mean if moments.count else 0.0 for moments in self.membranes]

    @property
    def membrane_variance(self) -> list[float]:
        return [moments.variance if moments.count else 0.0 for moments in self.membranes]

    @property
    def mean_rate(self) -> float:
        """Spikes per neuron per time step, averaged over all recorded steps."""
        spikes = sum(moments.total for moments in self.spikes)
        return spikes / max(sum(self.counts), 1)

    @property
    def mean_variance(self) -> float:
        """Membrane variance averaged over the recorded time steps."""
        variances = self.membrane_variance
        return sum(variances) / max(len(variances), 1)
