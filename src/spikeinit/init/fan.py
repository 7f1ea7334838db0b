"""Fan-in and fan-out of weight tensors, as in ``torch.nn.init``."""

from __future__ import annotations

from torch import Tensor

from spikeinit._validation import check_choice
from spikeinit.errors import InvalidArgumentError

FAN_MODES = ("fan_in", "fan_out")


def compute_fans(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a Linear ``(out, in)`` or Conv ``(out, in/groups, *kernel)`` weight.

    ``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``.

    Example:
        >>> import torch
        >>> compute_fans(torch.empty(100, 784)), compute_fans(torch.empty(16, 3, 5, 5))
        ((784, 100), (75, 400))
    """
    if tensor.dim() < 2:
        raise InvalidArgumentError(
            f"tensor must have at least 2 dimensions (a Linear or Conv weight), got shape "
            f"{tuple(tensor.shape)}"
        )
    receptive_field = 1
    for size in tensor.shape[2:]:
        receptive_field *= int(size)
    return int(tensor.shape[1]) * receptive_field, int(tensor.shape[0]) * receptive_field


def select_fan(tensor: Tensor, mode: str = "fan_in") -> int:
    """The fan selected by ``mode`` (``'fan_in'`` or ``'fan_out'``); it must be at least 1.

    Example:
        >>> import torch
        >>> weight = torch.empty(16, 3, 5, 5)  # Conv2d(3, 16, 5)
        >>> select_fan(weight), select_fan(weight, "fan_out")
        (75, 400)
    """
    check_choice("mode", mode, FAN_MODES)
    fan_in, fan_out = compute_fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan < 1:
        raise InvalidArgumentError(
            f"{mode} must be >= 1, got {fan} for shape {tuple(tensor.shape)}")
    return fan
