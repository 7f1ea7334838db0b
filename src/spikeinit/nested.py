"""Tensors inside nested values: the outputs and inputs of neurons and layers of any framework.

A module's input or output is a tensor, or a tuple, list or dict of them, nested to any depth
(snnTorch's ``(spikes, membrane)``, Norse's ``(spikes, state)``, a dict of named states). One
traversal rule: depth first, in order, tuples, lists and dict values alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

__all__ = ["all_tensors", "first_tensor"]


def all_tensors(value: Any) -> Iterator[Tensor]:
    """Every tensor in ``value`` (nested tuples, lists and dict values), depth first, in order.

    Example:
        >>> import torch
        >>> value = (torch.zeros(1), {"state": [torch.ones(2), None]})
        >>> [tuple(t.shape) for t in all_tensors(value)]
        [(1,), (2,)]
    """
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from all_tensors(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from all_tensors(item)


def first_tensor(value: Any) -> Tensor | None:
    """The first tensor of :func:`all_tensors` (``None`` when ``value`` holds none).

    Example:
        >>> import torch
        >>> spikes, membrane = torch.ones(2), torch.zeros(2)
        >>> first_tensor((spikes, membrane)) is spikes
        True
        >>> first_tensor([None, {"state": (membrane,)}]) is membrane
        True
        >>> first_tensor([None, "text"]) is None
        True
    """
    return next(all_tensors(value), None)
