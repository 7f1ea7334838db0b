"""``SpikingCNN``: convolutional SNNs (conv -> LIF -> pool blocks, then a spiking classifier).

Like :class:`~spikeinit.models.SpikingMLP`, the network runs layer-major over all time steps:
each convolution sees the ``T * B`` frames at once, and every forward starts from rest.
Module order equals computation order, which :func:`spikeinit.initialize` relies on to pair
each synaptic layer with the neurons that feed it and that it drives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from spikeinit._validation import check_choice, check_positive_int
from spikeinit.engine.conv_layout import conv_frames, keep_grad_layout
from spikeinit.engine.event_linear import EventLinear
from spikeinit.engine.layout import once_over_time, repeated_over_time
from spikeinit.errors import InvalidArgumentError
from spikeinit.models.mlp import SpikingMLP
from spikeinit.models.time_distributed import (
    check_frame_shape,
    check_frames,
    fold_time,
)
from spikeinit.neurons.lif import LIF, reset_states

POOLS = ("max", "avg", "none")
NORMS = ("none", "batch")


class ConvBlock(nn.Module):
    """``Conv2d [-> BatchNorm2d] -> LIF -> pool`` on ``(T, B, C, H, W)`` (same padding, stride 1).

    With ``norm="batch"`` a ``BatchNorm2d`` standardises each channel's current over the
    ``T * B`` frames and space before the neurons, ``I' = gamma (I - mean) / std + b``: it
    rescales the currents, so the conv's initial scale matters only for the first step.

    Max pooling keeps the output binary (a spike if any neuron of the window spiked); average
    pooling gives fractions of spikes; ``pool="none"`` keeps the resolution.

    Example:
        >>> import torch
        >>> block = ConvBlock(1, 4, beta=0.5, threshold=1.0)  # conv 3x3, LIF, max pool 2
        >>> spikes = block(torch.rand(3, 2, 1, 8, 8))  # (T, B, C, H, W)
        >>> spikes.shape, set(spikes.unique().tolist()) <= {0.0, 1.0}
        (torch.Size([3, 2, 4, 4, 4]), True)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        pool: str = "max",
        bias: bool = False,
        norm: str = "none",
        **lif_options: Any,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_choice("norm", norm, NORMS)
        check_positive_int("out_channels", out_channels)
        kernel_size = check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise InvalidArgumentError(
                f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
        self.pool_kind = check_choice("pool", pool, POOLS)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                              bias=bias)
        self.norm = nn.BatchNorm2d(out_channels) if norm == "batch" else None
        self.neurons = LIF(**lif_options)
        if pool == "max":
            self.pool: nn.Module = nn.MaxPool2d(2)
        elif pool == "avg":
            self.pool = nn.AvgPool2d(2)
        else:
            self.pool = nn.Identity()

    def _synapse(self, frames: Tensor) -> Tensor:
        """Input currents of the neurons for frames ``(N, C, H, W)``."""
        currents = conv_frames(self.conv, frames)
        return currents if self.norm is None else self.norm(currents)

    def forward(self, x: Tensor) -> Tensor:
        if repeated_over_time(x):  # a static frame: conv (and norm) once, on B frames
            currents = once_over_time(self._synapse, x)
        else:
            currents = self._synapse(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        spikes = self.neurons(currents)
        return keep_grad_layout(fold_time(self.pool, spikes))


class SpikingCNN(nn.Module):
    """Convolutional SNN: ``(Conv -> LIF -> pool) x len(channels)``, flatten, then a classifier.

    The classifier is ``(Linear -> LIF)`` for each entry of ``hidden`` and a final
    ``Linear -> LIF`` with ``classes`` outputs. Inputs are currents ``(T, B, C, H, W)``: the
    first convolution sees the data directly (so :func:`spikeinit.initialize` uses the data's
    second moment, from ``sample=`` or ``input_second_moment=``), every later layer sees
    spikes. The output is the spikes of the last layer, ``(T, B, classes)``.

    Args:
        input_shape: ``(C, H, W)`` of one frame.
        classes: number of output neurons (>= 1).
        channels: output channels of each conv block (at least one block).
        hidden: widths of the hidden fully-connected layers of the classifier.
        kernel_size: odd conv kernel size.
        pool: ``"max"`` (default), ``"avg"`` or ``"none"``; a 2x2 pooling after each block.
        bias: whether the Linear/Conv layers have a bias (the paper's networks have none).
        norm: ``"none"`` (default) or ``"batch"``: a BatchNorm after each convolution.
        **lif_options: passed to every :class:`~spikeinit.neurons.LIF` (``beta``,
            ``threshold``, ``reset``, ``surrogate``, ...).

    Example:
        >>> import torch
        >>> net = SpikingCNN((1, 28, 28), 10, channels=(8, 16))
        >>> net(torch.rand(3, 4, 1, 28, 28)).shape
        torch.Size([3, 4, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        classes: int = 10,
        channels: Sequence[int] = (16, 32),
        hidden: Sequence[int] = (),
        kernel_size: int = 3,
        pool: str = "max",
        bias: bool = False,
        norm: str = "none",
        **lif_options: Any,
    ) -> None:
        super().__init__()
        shape = check_frame_shape(input_shape)
        check_positive_int("classes", classes)
        if len(channels) < 1:
            raise InvalidArgumentError("channels must list at least one conv block (e.g. (16, 32))")
        for index, width in enumerate(channels):
            check_positive_int(f"channels[{index}]", width)
        for index, width in enumerate(hidden):
            check_positive_int(f"hidden[{index}]", width)
        self.input_shape = shape
        self.classes = int(classes)
        self.channels = [int(c) for c in channels]
        self.hidden = [int(h) for h in hidden]
        blocks = []
        in_channels, height, width = shape
        for out_channels in self.channels:
            blocks.append(ConvBlock(in_channels, out_channels, kernel_size, pool, bias, norm,
                                    **lif_options))
            in_channels = out_channels
            if pool != "none":
                if height < 2 or width < 2:
                    raise InvalidArgumentError(
                        f"channels has {len(self.channels)} pooled blocks, too many for an input "
                        f"of {shape[1]}x{shape[2]} (each halves the size); use fewer blocks"
                    )
                height, width = height // 2, width // 2
        self.features = nn.ModuleList(blocks)
        self.flat_features = in_channels * height * width
        sizes = [self.flat_features, *self.hidden, self.classes]
        self.classifier = nn.ModuleList(
            nn.Sequential(EventLinear(n_in, n_out, bias=bias), LIF(**lif_options))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )

    @property
    def lif_layers(self) -> list[LIF]:
        """All LIF layers in computation order (conv blocks, then the classifier)."""
        return [block.neurons for block in self.features] + [b[1] for b in self.classifier]

    def forward(self, currents: Tensor) -> Tensor:
        *_, last = self.iter_layers(currents)
        return last

    def iter_layers(self, currents: Tensor) -> Iterator[Tensor]:
        """Yield the output of every block in turn (pooled spikes for conv blocks)."""
        check_frames(currents, self.input_shape)
        reset_states(self)
        x = currents
        for block in self.features:
            x = block(x)
            yield x
        x = x.flatten(2)
        for block in self.classifier:
            x = block(x)
            yield x


def classifier_mlp(
    input_features: int, width: int = 100, depth: int = 10, classes: int = 10,
    bias: bool = False, **lif_options: Any,
) -> SpikingMLP:
    """The paper's classification MLP as a :class:`SpikingMLP`.

    The input (``input_features`` currents, e.g. 784 pixels) feeds a first LIF layer directly,
    then ``depth`` hidden ``Linear -> LIF`` layers of ``width`` neurons, then a
    ``Linear -> LIF`` output of ``classes`` neurons: sizes
    ``[input_features] + [width] * depth + [classes]``.

    Example:
        >>> net = classifier_mlp(784, width=100, depth=2)
        >>> net.sizes, len(net.lif_layers)
        ([784, 100, 100, 10], 4)
    """
    check_positive_int("input_features", input_features)
    check_positive_int("width", width)
    check_positive_int("depth", depth)
    check_positive_int("classes", classes)
    return SpikingMLP([input_features, *[width] * depth, classes], bias=bias, **lif_options)
