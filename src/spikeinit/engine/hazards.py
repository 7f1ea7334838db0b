"""Kernels known to crash or corrupt memory, which the engine never runs.

One table, :data:`KNOWN_BAD`, holds each upstream bug that a choice of the engine could walk
into, with its reference and the exact class of shapes it affects; the next one found is one
more :class:`KnownBad` line. :mod:`spikeinit.engine.conv_layout` reads it for every convolution,
in the forward pass, the backward pass and the timing trial, whatever ``SPIKEINIT_CONV_LAYOUT``
says: a convolution in an affected class always runs contiguous.

Bugs nobody has found yet are what :mod:`spikeinit.engine.vet` is for: a layout or backend
that the user did not ask for is run first in a child process, and used only if the child
survived it.

Example:
    >>> from torch import nn
    >>> bad = channels_last_hazard(nn.Conv2d(4, 8, 1, stride=2), x86=True)
    >>> bad.reference
    'oneDNN issue #6035'
    >>> channels_last_hazard(nn.Conv2d(16, 8, 1, stride=2), x86=True) is None
    True
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ConvShape:
    """What decides which oneDNN kernel runs a 2-D convolution."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    groups: int

    @classmethod
    def of(cls, conv: nn.Conv2d) -> ConvShape:
        return cls(conv.in_channels, conv.out_channels, tuple(conv.kernel_size),
                   tuple(conv.stride), conv.groups)


@dataclass(frozen=True)
class KnownBad:
    """One upstream bug: where it is tracked, what it does, and the shapes it affects."""

    reference: str
    what: str
    affects: Callable[[ConvShape], bool]
    x86_only: bool = True


KNOWN_BAD: tuple[KnownBad, ...] = (
    KnownBad(
        reference="oneDNN issue #6035",
        what=("a strided 1x1 convolution over channels-last input with fewer input channels "
              "than oneDNN's channel block, backpropagated to its weight, writes outside its "
              "scratchpad (jit_avx2_1x1_convolution_bwd_weights_t below 8 channels, "
              "jit_avx512_common_1x1_convolution_bwd_weights_t below 16): glibc aborts with "
              "'corrupted size vs. prev_size', or memory is corrupted silently"),
        affects=lambda s: (s.kernel_size == (1, 1) and max(s.stride) > 1
                           and s.in_channels // s.groups < 16),
    ),
)
"""The kernels never run channels-last. Each entry: the upstream reference, what goes wrong,
and the class of shapes (the whole class, on every x86 ISA, whatever the frame size)."""


@functools.lru_cache(maxsize=1)
def on_x86() -> bool:
    """Whether this CPU is x86 (the ISA every entry of :data:`KNOWN_BAD` so far is on)."""
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def channels_last_hazard(conv: nn.Conv2d, x86: bool | None = None) -> KnownBad | None:
    """The entry of :data:`KNOWN_BAD` that forbids running ``conv`` channels-last here, or
    ``None`` (``x86``: the ISA to assume; default this machine's)."""
    return _hazard(ConvShape.of(conv), on_x86() if x86 is None else x86)


@functools.lru_cache(maxsize=1024)
def _hazard(shape: ConvShape, x86: bool) -> KnownBad | None:
    """:func:`channels_last_hazard` by shape (asked on every convolution call: cached)."""
    return next((entry for entry in KNOWN_BAD
                 if (x86 or not entry.x86_only) and entry.affects(shape)), None)
