"""Experiment 3 of the paper: when does the theory hold? A grid of width x threshold.

For the paper's initialization we record the deep-layer rate relative to layer 1. The Gaussian
(CLT) assumption needs many spikes per layer, ``n * p`` with ``p = Q(theta)``; the fixed point
also needs the stability slope ``a phi(a) / (2 Q(a)) < 1`` with ``a = theta / sigma``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from spikeinit._validation import check_finite_nonnegative, check_positive_int
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.propagation import PropagationConfig, simulate
from spikeinit.theory.gaussian import tail_probability
from spikeinit.theory.static import stability_slope

DEFAULT_WIDTHS = (10, 30, 100, 300, 1000, 2000)
DEFAULT_THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


@dataclass(frozen=True)
class ConditionsConfig:
    """A width x threshold grid for one init (default: the paper's)."""

    widths: tuple[int, ...] = DEFAULT_WIDTHS
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    init: str = "paper"
    depth: int = 100
    steps: int = 1
    beta: float = 0.5
    reset: str = "subtract"
    batch: int = 64
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.widths or not self.thresholds:
            raise InvalidArgumentError("widths and thresholds must each list at least one value")
        for width in self.widths:
            check_positive_int("width", width)
        for threshold in self.thresholds:
            check_finite_nonnegative("threshold", threshold)
        check_positive_int("depth", self.depth)

    def propagation(self, width: int, threshold: float) -> PropagationConfig:
        return PropagationConfig(
            inits=(self.init,), depth=self.depth, width=width, steps=self.steps,
            threshold=threshold, beta=self.beta, reset=self.reset, batch=self.batch,
            seed=self.seed, device=self.device,
        )


def run_conditions(
    config: ConditionsConfig, on_run: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Deep-layer rate / layer-1 rate for every (threshold, width); plus n*p and the slope.

    ``relative_rate[i][j]`` is for ``thresholds[i]`` and ``widths[j]``; NaN when layer 1 is
    silent.
    """
    relative = np.full((len(config.thresholds), len(config.widths)), np.nan)
    for i, threshold in enumerate(config.thresholds):
        for j, width in enumerate(config.widths):
            rates = simulate(config.propagation(width, threshold), config.init)["rate"]
            if rates[0] > 0:
                relative[i, j] = rates[-1] / rates[0]
            if on_run is not None:
                on_run()
    spikes_per_layer = [
        [width * float(tail_probability(threshold)) for width in config.widths]
        for threshold in config.thresholds
    ]
    return {
        "config": asdict(config),
        "relative_rate": [[None if np.isnan(v) else float(v) for v in row] for row in relative],
        "spikes_per_layer": spikes_per_layer,
        "stability_slope": [stability_slope(threshold) for threshold in config.thresholds],
    }
