"""Training-time image augmentation and per-channel normalisation, on whole batches.

Both act on a float batch ``(B, C, H, W)`` in one vectorised call, so they cost little beside
the network; random numbers come from the global generator, whose state the checkpoint saves
(a resumed run draws the same crops).
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikeinit.errors import InvalidArgumentError


def crop_padding(height: int) -> int:
    """The random-crop padding used for an image of ``height`` rows: 4 for 32x32 (CIFAR-10's
    standard), 1 for 28x28 (MNIST, Fashion-MNIST: on the 10 x 100 MLP a 2-pixel shift
    underfits, docs/results.md), about ``height / 8`` otherwise."""
    if height == 28:
        return 1
    return max(1, round(height / 8))


def random_crop_flip(images: Tensor, padding: int, flip: bool,
                     generator: torch.Generator | None = None) -> Tensor:
    """Random ``H x W`` crops of the zero-padded batch, and random left-right flips.

    Each image ``i`` is shifted by ``(dy_i, dx_i)``, uniform in ``[-padding, padding]``, with
    zeros coming in at the border (the crop of a ``padding``-padded image); with ``flip``, each
    is mirrored with probability 1/2.

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> random_crop_flip(x, padding=0, flip=False).equal(x)
        True
    """
    if images.ndim != 4:
        raise InvalidArgumentError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if padding < 0:
        raise InvalidArgumentError(f"padding must be >= 0, got {padding}")
    batch, _, height, width = images.shape
    out = images
    if padding:
        padded = torch.nn.functional.pad(images, (padding,) * 4)
        offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator)
        rows = offsets[0, :, None] + torch.arange(height)  # (B, H)
        cols = offsets[1, :, None] + torch.arange(width)  # (B, W)
        index = torch.arange(batch)[:, None, None, None]
        channel = torch.arange(images.shape[1])[None, :, None, None]
        out = padded[index, channel, rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mirrored = torch.rand(batch, generator=generator) < 0.5
        out = torch.where(mirrored[:, None, None, None], out.flip(-1), out)
    return out


def channel_statistics(images: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of ``images * scale`` over ``(N, H, W)``.

    ``images`` is ``(N, C, H, W)`` (uint8 is fine: the sums are done in float64, by chunks).
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for chunk in images.split(4096):
        values = chunk.to(torch.float64) * scale
        total += values.sum((0, 2, 3))
        squares += values.pow(2).sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()
