r"""``SpikingResNet``: residual SNNs (SEW-ResNet, MS-ResNet) and their plain counterpart.

Like :class:`~spikeinit.models.SpikingCNN`, the network runs layer-major over all time steps on
``(T, B, C, H, W)``: every convolution (and BatchNorm) sees the ``T * B`` frames at once, a
static frame broadcast over time (stride 0, ``image.expand(T, ...)``) goes through the stem
once, and every forward starts from rest. Modules are registered in the order they run, so
that module order equals computation order within each block.

Three block variants (a *basic block* has two 3x3 convolutions, the first with the stage's
stride; ``N`` is a ``Conv2d(bias=False)`` followed by a ``BatchNorm2d`` when ``norm="batch"``,
nothing more when ``norm="none"``; ``S`` is a multi-step :class:`~spikeinit.neurons.LIF`):

``"sew"`` (Fang et al. 2021, SEW-ResNet with the ADD connect function)
    .. math::

        y = S_2(N_2(S_1(N_1(x)))) + \mathrm{sc}(x),\qquad
        \mathrm{sc}(x) = x \ \text{or}\ S_d(N_d(x)),

    the stream between blocks is a sum of spikes (integers); the stem is ``N -> S``.
``"ms"`` (Hu et al., MS-ResNet, membrane shortcut)
    .. math::

        y = x + N_2(S_2(N_1(S_1(x)))),\qquad \mathrm{sc}(x) = x \ \text{or}\ N_d(S_1(x)),

    the stream is real-valued (currents); the stem is ``N`` alone and a LIF after the last
    block turns the stream into spikes.
``"plain"``
    .. math::

        y = S_2(N_2(S_1(N_1(x)))),

    the ``"sew"`` block without the shortcut: a deep plain conv net of the same layers (it has
    no downsample convolutions, which only the shortcut uses).

``N_d`` is a 1x1 convolution with the block's stride, used where the stride is not 1 or the
number of channels changes. The residual additions are plain ``+`` in :meth:`BasicBlock.forward`,
so :func:`spikeinit.initialize` sees them as tensor operations between layers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from spikeinit._validation import check_choice, check_positive_int
from spikeinit.engine.conv_layout import conv_frames
from spikeinit.engine.event_linear import EventLinear
from spikeinit.engine.layout import once_over_time, repeated_over_time
from spikeinit.errors import InvalidArgumentError
from spikeinit.models.cnn import NORMS
from spikeinit.models.time_distributed import (
    TimeDistributed,
    check_frame_shape,
    check_frames,
)
from spikeinit.neurons.lif import LIF, reset_states

VARIANTS = ("sew", "ms", "plain")


def _check_widths(name: str, values: Any) -> tuple[int, ...]:
    """``values`` as a non-empty tuple of ints >= 1, or a ValueError naming ``name``."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidArgumentError(f"{name} must be a sequence of integers >= 1 (one per stage), "
                         f"got {values!r}")
    if len(values) < 1:
        raise InvalidArgumentError(f"{name} must list at least one stage, got {tuple(values)!r}")
    return tuple(check_positive_int(f"{name}[{index}]", value)
                 for index, value in enumerate(values))


class ConvNorm(nn.Module):
    """``Conv2d(bias=False) [-> BatchNorm2d]`` on ``(T, B, C, H, W)`` (padding ``k // 2``).

    Time is folded into the batch, so one convolution (and one normalization) runs over all
    ``T * B`` frames; a static frame repeated over time (stride 0) is computed once, on ``B``
    frames (:func:`~spikeinit.models.time_distributed.once_over_time`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, norm: str = "batch") -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("kernel_size", kernel_size)
        check_positive_int("stride", stride)
        check_choice("norm", norm, NORMS)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_channels) if norm == "batch" else None

    def _frames(self, frames: Tensor) -> Tensor:
        currents = conv_frames(self.conv, frames)
        return currents if self.norm is None else self.norm(currents)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5:
            raise InvalidArgumentError(f"ConvNorm expects (T, B, C, H, W) input, got shape "
                             f"{tuple(x.shape)}")
        if repeated_over_time(x):
            return once_over_time(self._frames, x)
        return self._frames(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class Downsample(nn.Module):
    """The projection shortcut: ``LIF(N(conv1x1(x)))`` for ``"sew"``; ``N(conv1x1(s))`` for
    ``"ms"``, on the spikes ``s = lif1(x)`` that the block's branch reads too (``N``: a
    BatchNorm when ``norm="batch"``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, variant: str,
                 norm: str = "batch", **lif_options: Any) -> None:
        super().__init__()
        self.variant = check_choice("variant", variant, ("sew", "ms"))
        self.conv = ConvNorm(in_channels, out_channels, 1, stride, norm)
        self.neurons = LIF(**lif_options) if variant == "sew" else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return out if self.neurons is None else self.neurons(out)


class BasicBlock(nn.Module):
    r"""One residual block of :class:`SpikingResNet` (two 3x3 convolutions; see the module).

    * ``"sew"``: ``y = lif2(conv2(lif1(conv1(x)))) + shortcut(x)``
    * ``"ms"``: ``y = x' + conv2(lif2(conv1(lif1(x))))`` with ``x' = shortcut(x)``
    * ``"plain"``: ``y = lif2(conv2(lif1(conv1(x))))``

    ``conv1`` and ``conv2`` are :class:`ConvNorm` (conv, then BatchNorm when ``norm="batch"``);
    ``conv1`` has the stride. ``downsample`` is the projection shortcut (:class:`Downsample`)
    where ``stride != 1`` or the channels change, else ``None`` (the identity, or no shortcut
    at all for ``"plain"``).

    Example:
        >>> import torch
        >>> block = BasicBlock(4, 8, stride=2)  # "sew": a 1x1 projection shortcut
        >>> block.residual, block.downsample is not None
        (True, True)
        >>> block(torch.rand(2, 3, 4, 8, 8)).shape  # (T, B, C, H, W): half the resolution
        torch.Size([2, 3, 8, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 variant: str = "sew", norm: str = "batch", **lif_options: Any) -> None:
        super().__init__()
        self.variant = check_choice("variant", variant, VARIANTS)
        # registered in the order they run
        if variant == "ms":
            self.lif1 = LIF(**lif_options)
            self.conv1 = ConvNorm(in_channels, out_channels, 3, stride, norm)
            self.lif2 = LIF(**lif_options)
            self.conv2 = ConvNorm(out_channels, out_channels, 3, 1, norm)
        else:
            self.conv1 = ConvNorm(in_channels, out_channels, 3, stride, norm)
            self.lif1 = LIF(**lif_options)
            self.conv2 = ConvNorm(out_channels, out_channels, 3, 1, norm)
            self.lif2 = LIF(**lif_options)
        projects = stride != 1 or in_channels != out_channels
        self.downsample = (Downsample(in_channels, out_channels, stride, variant, norm,
                                      **lif_options)
                           if projects and variant != "plain" else None)

    @property
    def residual(self) -> bool:
        """Whether the block adds a shortcut (``"sew"`` and ``"ms"``)."""
        return self.variant != "plain"

    def forward(self, x: Tensor) -> Tensor:
        if self.variant == "ms":
            spikes = self.lif1(x)
            out = self.conv2(self.lif2(self.conv1(spikes)))
            shortcut = x if self.downsample is None else self.downsample(spikes)
            return out + shortcut
        out = self.lif2(self.conv2(self.lif1(self.conv1(x))))
        if self.variant == "plain":
            return out
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class SpikingResNet(nn.Module):
    r"""Residual SNN: a 3x3 stem, stages of :class:`BasicBlock` s, then a spiking classifier.

    Stage ``i`` has ``blocks[i]`` basic blocks of ``channels[i]`` channels; the first stage has
    stride 1, every later one halves the resolution (stride 2 in its first block). Per variant
    (``N``: ``Conv2d(bias=False)`` then ``BatchNorm2d`` when ``norm="batch"``; ``S``: a LIF):

    * ``"sew"`` (SEW-ResNet, ADD): stem ``S(N(x))``; block
      ``y = S_2(N_2(S_1(N_1(x)))) + sc(x)``, ``sc(x) = x`` or ``S_d(N_d(x))`` (1x1 conv).
    * ``"ms"`` (MS-ResNet, membrane shortcut): stem ``N(x)`` (real-valued stream); block
      ``y = sc(x) + N_2(S_2(N_1(S_1(x))))``, ``sc(x) = x`` or ``N_d(S_1(x))``; a LIF after the
      last block (``final_lif``) turns the stream into spikes.
    * ``"plain"``: the ``"sew"`` block without the shortcut (no downsample convolutions).

    The head averages over ``H, W`` at every step (global average pooling), then
    ``EventLinear(channels[-1], classes) -> LIF``. Inputs are currents ``(T, B, C, H, W)``;
    the output is the spikes of the last LIF (``output_lif``), ``(T, B, classes)``, as for
    :class:`~spikeinit.models.SpikingCNN`, so the training loop's readouts work unchanged.

    Args:
        input_shape: ``(C, H, W)`` of one frame.
        classes: number of output neurons (>= 1).
        variant: ``"sew"`` (default), ``"ms"`` or ``"plain"``.
        blocks: number of basic blocks of each stage (each >= 1).
        channels: channels of each stage (same length as ``blocks``).
        norm: ``"batch"`` (default: a BatchNorm after every conv) or ``"none"``.
        stem_channels: output channels of the stem conv (``None``: ``channels[0]``).
        **lif_options: passed to every :class:`~spikeinit.neurons.LIF` (``beta``,
            ``threshold``, ``surrogate``, ``surrogate_slope``, ...).

    Attributes:
        stem: the stem's :class:`ConvNorm`; ``stem_lif`` its LIF (``None`` for ``"ms"``).
        stages: ``stages[i][j]`` is block ``j`` of stage ``i`` (a :class:`BasicBlock`).
        final_lif: the LIF after the last block (``"ms"`` only, else ``None``).
        pool, classifier, output_lif: the head.

    Example:
        >>> import torch
        >>> net = SpikingResNet((3, 32, 32), 10, blocks=(1, 1), channels=(8, 16))
        >>> net(torch.rand(2, 4, 3, 32, 32)).shape
        torch.Size([2, 4, 10])
        >>> [len(stage) for stage in net.stages], len(net.lif_layers)
        ([1, 1], 7)
        >>> net20 = SpikingResNet.resnet20((3, 32, 32), variant="ms")
        >>> sum(isinstance(m, torch.nn.Conv2d) for m in net20.modules())  # 19 + 2 downsample
        21
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        classes: int = 10,
        variant: str = "sew",
        blocks: Sequence[int] = (3, 3, 3),
        channels: Sequence[int] = (16, 32, 64),
        norm: str = "batch",
        stem_channels: int | None = None,
        **lif_options: Any,
    ) -> None:
        super().__init__()
        shape = check_frame_shape(input_shape)
        check_positive_int("classes", classes)
        self.variant = check_choice("variant", variant, VARIANTS)
        self.norm_kind = check_choice("norm", norm, NORMS)
        stage_blocks = _check_widths("blocks", blocks)
        stage_channels = _check_widths("channels", channels)
        if len(stage_blocks) != len(stage_channels):
            raise InvalidArgumentError(
                f"blocks and channels must have the same length (one entry per stage), got "
                f"blocks={stage_blocks!r} ({len(stage_blocks)} stages) and "
                f"channels={stage_channels!r} ({len(stage_channels)} stages)")
        stem_width = stage_channels[0] if stem_channels is None else check_positive_int(
            "stem_channels", stem_channels)
        height, width = shape[1], shape[2]
        for index in range(1, len(stage_channels)):
            if height < 2 or width < 2:
                raise InvalidArgumentError(
                    f"blocks/channels have {len(stage_channels)} stages, {len(stage_channels) - 1}"
                    f" of them stride-2, too many for an input of {shape[1]}x{shape[2]} (each "
                    f"stage after the first halves the size); use at most {index} stages")
            height, width = (height + 1) // 2, (width + 1) // 2
        self.input_shape = shape
        self.classes = int(classes)
        self.blocks_per_stage = stage_blocks
        self.channels = list(stage_channels)
        self.stem_channels = stem_width
        self.output_size = (height, width)

        self.stem = ConvNorm(shape[0], stem_width, 3, 1, norm)
        self.stem_lif = LIF(**lif_options) if variant != "ms" else None
        stages = []
        in_channels = stem_width
        for index, (count, out_channels) in enumerate(zip(stage_blocks, stage_channels)):
            stride = 1 if index == 0 else 2
            stage = []
            for position in range(count):
                stage.append(BasicBlock(in_channels, out_channels,
                                        stride if position == 0 else 1, variant, norm,
                                        **lif_options))
                in_channels = out_channels
            stages.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(stages)
        self.final_lif = LIF(**lif_options) if variant == "ms" else None
        self.pool = TimeDistributed(nn.AdaptiveAvgPool2d(1))
        self.classifier = EventLinear(stage_channels[-1], self.classes, bias=False)
        self.output_lif = LIF(**lif_options)

    @classmethod
    def resnet20(cls, input_shape: Sequence[int] = (3, 32, 32), classes: int = 10,
                 variant: str = "sew", norm: str = "batch", **lif_options: Any) -> SpikingResNet:
        """CIFAR-style ResNet-20: 3x3 stem, 3 stages x 3 basic blocks of 16/32/64 channels
        (strides 1/2/2): 19 convolutions (plus 2 downsample 1x1 convs for ``sew``/``ms``) and
        the classifier."""
        return cls(input_shape, classes, variant, (3, 3, 3), (16, 32, 64), norm, **lif_options)

    @classmethod
    def resnet18(cls, input_shape: Sequence[int] = (3, 32, 32), classes: int = 10,
                 variant: str = "sew", norm: str = "batch", **lif_options: Any) -> SpikingResNet:
        """CIFAR-style ResNet-18: 3x3 stem of 64 channels (no max pool), 4 stages x 2 basic
        blocks of 64/128/256/512 channels (strides 1/2/2/2): 17 convolutions (plus 3 downsample
        1x1 convs for ``sew``/``ms``) and the classifier."""
        return cls(input_shape, classes, variant, (2, 2, 2, 2), (64, 128, 256, 512), norm,
                   **lif_options)

    @property
    def blocks(self) -> list[BasicBlock]:
        """All basic blocks in forward order (``stages[0][0], stages[0][1], ...``)."""
        return [block for stage in self.stages for block in stage]

    def iter_blocks(self) -> Iterator[tuple[str, BasicBlock]]:
        """``(name, block)`` for every basic block in forward order (``"stages.1.0"``, ...)."""
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage):
                yield f"stages.{i}.{j}", block

    @property
    def lif_layers(self) -> list[LIF]:
        """All LIF layers in forward order (stem, blocks, final LIF of ``"ms"``, output)."""
        # modules are registered in the order they run
        return [module for module in self.modules() if isinstance(module, LIF)]

    def forward(self, currents: Tensor) -> Tensor:
        *_, last = self.iter_layers(currents)
        return last

    def iter_layers(self, currents: Tensor) -> Iterator[Tensor]:
        """Yield the stem's output, every block's output, then the output spikes."""
        check_frames(currents, self.input_shape)
        reset_states(self)
        x = self.stem(currents)
        if self.stem_lif is not None:
            x = self.stem_lif(x)
        yield x
        for block in self.blocks:
            x = block(x)
            yield x
        if self.final_lif is not None:
            x = self.final_lif(x)
        x = self.pool(x).flatten(2)
        yield self.output_lif(self.classifier(x))
