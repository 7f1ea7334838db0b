"""Shared checks for the per-framework adapter tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from spikeinit.adapters import describe_neuron

STEPS, NEURONS = 30, 3000


def currents() -> torch.Tensor:
    """Seeded ``(T, N)`` float64 currents that make about a third of the neurons fire."""
    generator = torch.Generator().manual_seed(0)
    return 1.5 * torch.randn(STEPS, NEURONS, generator=generator, dtype=torch.float64) + 0.3


def assert_description_reproduces(
    module: torch.nn.Module,
    expected: dict[str, Any],
    framework: str,
    reset_order: str,
    run: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """The adapter's description has the expected fields and replays the module's spikes."""
    description = describe_neuron(module)
    assert description.framework == framework and description.reset_order == reset_order
    for key, value in expected.items():
        actual = getattr(description, key)
        assert actual == (pytest.approx(value) if isinstance(value, float) else value)
    x = currents()
    reference = description.simulate(x)
    assert 0.05 < float(reference.mean()) < 0.6
    torch.testing.assert_close(run(x).double(), reference, rtol=0, atol=0)
