r"""Tensor initializers in the style of ``torch.nn.init``: in place, under ``no_grad``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spikeinit.errors import InvalidArgumentError
from spikeinit.init.fan import select_fan
from spikeinit.theory.static import spike_std

#: How many standard deviations a normal draw is allowed to reach within the tensor's range.
_NORMAL_REACH = 8.0


def check_fill_target(tensor: Tensor, generator: torch.Generator | None, largest: float,
                      threshold: float) -> None:
    r"""Check that ``tensor`` can take the draw: a floating-point tensor, on the generator's
    device type, whose dtype holds ``largest`` (the uniform bound, or 8 standard deviations of
    a normal draw: :math:`8\,\mathrm{std} \le` ``torch.finfo(dtype).max``).

    Raises:
        InvalidArgumentError: an integer or boolean tensor, a generator on another device, or
            a spread beyond the dtype's range (naming the threshold that made it).
    """
    if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
        kind = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
        raise InvalidArgumentError(f"tensor must be a floating-point torch.Tensor, got {kind}")
    if generator is not None and generator.device.type != tensor.device.type:
        raise InvalidArgumentError(
            f"generator is on {generator.device.type}, the tensor on {tensor.device.type}; "
            "give a generator of the tensor's device type")
    limit = torch.finfo(tensor.dtype).max
    if not largest <= limit:
        raise InvalidArgumentError(
            f"threshold: theta={threshold} gives weights up to about {largest:.3g}, beyond "
            f"what {tensor.dtype} holds ({limit:.3g}); use a float32 tensor or a lower "
            "threshold")


def spike_normal_(
    tensor: Tensor,
    threshold: float,
    sigma: float = 1.0,
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill ``tensor`` from :math:`N(0, \mathrm{std}^2)` with the paper's spike-aware std.

    .. math::

        \mathrm{std} = \sqrt{\frac{\sigma^2}{n\,Q(\theta/\sigma)}},\qquad
        Q(x) = \tfrac12\,\mathrm{erfc}(x/\sqrt2),

    where ``n`` is the fan selected by ``mode``. A layer fed by the spikes of neurons whose
    membrane is :math:`N(0,\sigma^2)` then has membrane variance :math:`\sigma^2` too. For
    :math:`\theta = 0` this is ``kaiming_normal_`` (:math:`2/n`).

    Args:
        tensor: a Linear ``(out, in)`` or Conv ``(out, in, *kernel)`` weight.
        threshold: firing threshold :math:`\theta \ge 0` of the presynaptic neurons.
        sigma: target membrane std :math:`\sigma > 0`.
        mode: ``'fan_in'`` (forward, default) or ``'fan_out'`` (backward).
        generator: optional ``torch.Generator`` for reproducibility.

    Example:
        >>> w = torch.empty(1000, 1000)
        >>> _ = spike_normal_(w, threshold=1.0)
    """
    std = spike_std(select_fan(tensor, mode), threshold, sigma)
    check_fill_target(tensor, generator, _NORMAL_REACH * std, threshold)
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def spike_uniform_(
    tensor: Tensor,
    threshold: float,
    sigma: float = 1.0,
    mode: str = "fan_in",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill ``tensor`` from :math:`U(-b, b)` with the same variance as :func:`spike_normal_`.

    .. math::

        b = \sqrt{3}\,\sqrt{\frac{\sigma^2}{n\,Q(\theta/\sigma)}}

    Example:
        >>> w = torch.empty(64, 3, 3, 3)
        >>> _ = spike_uniform_(w, threshold=0.5)
    """
    bound = math.sqrt(3.0) * spike_std(select_fan(tensor, mode), threshold, sigma)
    check_fill_target(tensor, generator, bound, threshold)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)
