"""Per-time-step membrane and spike statistics of a neuron population."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ActivityStatistics:
    r"""Running sums per time step over batch and neurons.

    ``rate[t]`` is the mean spikes per neuron at step ``t``; ``membrane_variance[t]`` is
    :math:`E[u_t^2] - E[u_t]^2` over batch and neurons.
    """

    membrane_sum: list[float] = field(default_factory=list)
    membrane_square_sum: list[float] = field(default_factory=list)
    spike_sum: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def add_sequence(self, first_step: int, membranes: Tensor, spikes: Tensor) -> None:
        """Accumulate ``T`` steps, from tensors shaped ``(T, ...)``, starting at ``first_step``."""
        membranes = membranes.detach().double().flatten(1)
        spikes = spikes.detach().double().flatten(1)
        sums, squares, fired = membranes.sum(1), (membranes * membranes).sum(1), spikes.sum(1)
        self._extend_to(first_step + membranes.shape[0])
        for offset in range(membranes.shape[0]):
            step = first_step + offset
            self.membrane_sum[step] += float(sums[offset])
            self.membrane_square_sum[step] += float(squares[offset])
            self.spike_sum[step] += float(fired[offset])
            self.counts[step] += membranes.shape[1]

    def _extend_to(self, steps: int) -> None:
        while len(self.counts) < steps:
            for series in (self.membrane_sum, self.membrane_square_sum, self.spike_sum):
                series.append(0.0)
            self.counts.append(0)

    @property
    def steps(self) -> int:
        return len(self.counts)

    @property
    def rate(self) -> list[float]:
        return [s / max(n, 1) for s, n in zip(self.spike_sum, self.counts)]

    @property
    def membrane_mean(self) -> list[float]:
        return [s / max(n, 1) for s, n in zip(self.membrane_sum, self.counts)]

    @property
    def membrane_variance(self) -> list[float]:
        return [
            max(q / max(n, 1) - m * m, 0.0)
            for q, n, m in zip(self.membrane_square_sum, self.counts, self.membrane_mean)
        ]

    @property
    def mean_rate(self) -> float:
        """Spikes per neuron per time step, averaged over all recorded steps."""
        return sum(self.spike_sum) / max(sum(self.counts), 1)

    @property
    def mean_variance(self) -> float:
        """Membrane variance averaged over the recorded time steps."""
        variances = self.membrane_variance
        return sum(variances) / max(len(variances), 1)
