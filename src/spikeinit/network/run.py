"""Running a model to measure it: one pass from rest without gradients, with the dropouts off
and the normalization statistics kept as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from spikeinit.adapters.registry import reset_neurons
from spikeinit.network.module_kinds import NORMS, is_dropout

#: A user's ``forward(model, sample)``, run instead of ``model(sample)``.
Forward = Callable[[nn.Module, Any], Any]


def run_model(model: nn.Module, batch: Any, forward: Forward | None = None) -> Any:
    """One pass from rest without gradients: ``forward(model, batch)`` or ``model(batch)``.

    Example:
        >>> run_model(nn.Linear(2, 1, bias=False), torch.ones(1, 2)).requires_grad
        False
    """
    reset_neurons(model)
    try:
        with torch.no_grad():
            return forward(model, batch) if forward is not None else model(batch)
    finally:
        reset_neurons(model)


@contextlib.contextmanager
def dropout_off(model: nn.Module) -> Iterator[None]:
    """Put ``model``'s dropout layers in eval mode for the probing passes (restored after).

    Example:
        >>> net = nn.Sequential(nn.Dropout(0.5))
        >>> with dropout_off(net):
        ...     net[0].training
        False
        >>> net[0].training
        True
    """
    changed = [m for m in model.modules() if is_dropout(m) and m.training]
    for module in changed:
        module.eval()
    try:
        yield
    finally:
        for module in changed:
            module.train()


@contextlib.contextmanager
def kept_statistics(model: nn.Module) -> Iterator[None]:
    """Restore normalization running statistics (BatchNorm buffers) after the probing passes.

    Example:
        >>> norm = nn.BatchNorm1d(2)
        >>> with kept_statistics(norm):
        ...     _ = norm(torch.full((4, 2), 3.0))
        >>> norm.running_mean.tolist()
        [0.0, 0.0]
    """
    saved = [(module, {k: v.clone() for k, v in module.named_buffers(recurse=False)
                       if v is not None})
             for module in model.modules() if isinstance(module, NORMS)]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, buffers in saved:
                for key, value in buffers.items():
                    getattr(module, key).copy_(value)
