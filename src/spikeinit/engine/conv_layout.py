r"""Memory layout of the convolutions: channels-last or contiguous, whichever is faster here.

A ``(N, C, H, W)`` tensor can lie in memory as ``N, C, H, W`` (contiguous, PyTorch's default)
or as ``N, H, W, C`` (``torch.channels_last``). The numbers are the same; the speed is not.
oneDNN, which runs PyTorch's CPU convolutions, has faster kernels for channels-last at many
shapes, and PyTorch's max pooling is faster over channels-last frames (docs/engine.md gives the
timings). Which layout is faster depends on the CPU and the shape, so it is measured, not
assumed, like the GEMM backend (:mod:`spikeinit.engine.gemm`).

``SPIKEINIT_CONV_LAYOUT`` (or the :func:`use_layout` context manager) chooses:

- ``auto`` (default): for float CPU convolutions, the layout measured faster on this machine for
  the convolution's class (:func:`conv_class`: channels, kernel, stride, groups, the frame size
  and the number of frames rounded to powers of two, and whether the pass trains). The first
  convolution of a class times both layouts, forward and (when training) backward, interleaved,
  on at most :data:`PROBE_MACS` multiply-adds worth of its frames; channels-last must be
  :data:`MIN_SPEEDUP` times faster. The measurement spends the per-process budget of
  :mod:`spikeinit.engine.tuning` and is kept per CPU, torch version and thread count (the
  same choice in every later process). Before channels-last is timed for a class, it is run
  once in a child process (:mod:`spikeinit.engine.vet`); a class whose child died stays
  contiguous. A class met after the budget is spent, every non-CPU tensor, and everything
  under ``SPIKEINIT_TUNING=exact`` stays contiguous.
- ``channels_last``: every 2-D convolution of spikeinit's models runs channels-last.
- ``contiguous``: the frames are left as they come (PyTorch's default behaviour).

Whatever the setting, a convolution in :data:`spikeinit.engine.hazards.KNOWN_BAD` (a strided
1x1 convolution with fewer than 16 input channels: oneDNN issue #6035) runs contiguous, frames
and weight, in the forward and the backward pass, and is never timed channels-last.

The layout changes the order of the sums inside the convolution, so results agree to float32
rounding, not bit for bit. Everything downstream follows the layout without copies: the fused
LIF runs over channels-last currents in their memory order
(:class:`spikeinit.engine.layout.NeuronLayout`), pooling keeps it, and
:func:`keep_grad_layout` makes gradients that come back in the other layout (from a
``Flatten``) turn into this one once, before the pooling's backward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.engine import hazards, settings, tuning, vet
from spikeinit.engine.layout import is_channels_last

CONV_LAYOUTS = settings.CONV_LAYOUTS
"""Values of the ``SPIKEINIT_CONV_LAYOUT`` environment variable."""

LAYOUT_VARIABLE = settings.CONV_LAYOUT.variable

MIN_SPEEDUP = 1.05
"""Under ``auto``, channels-last is chosen only when the contiguous layout's best time is at
least this many times channels-last's: a tie leaves the frames as they come."""

PROBE_MACS = 2**28
"""The measurement runs the convolution on as many of the real frames as keep its forward
pass under this many multiply-adds (at least one frame), so that timing both layouts, forward
and backward, costs a bounded part of the measuring budget whatever the convolution's size."""

_setting = settings.CONV_LAYOUT


def conv_layout() -> str:
    """The layout setting in force: the innermost :func:`use_layout`, else
    ``SPIKEINIT_CONV_LAYOUT`` (default ``auto``)."""
    return _setting.value()


def use_layout(layout: str) -> contextlib.AbstractContextManager[None]:
    """Run the enclosed code with another layout setting (``auto``, ``channels_last`` or
    ``contiguous``).

    Example:
        >>> conv, frames = nn.Conv2d(3, 4, 3, padding=1), torch.rand(2, 3, 8, 8)
        >>> with use_layout("channels_last"):
        ...     conv_frames(conv, frames).is_contiguous(memory_format=torch.channels_last)
        True
    """
    return _setting.use(layout)


# ----------------------------------------------------------------------------- measured choice


def _valid_entry(entry: Any) -> bool:
    return tuning.valid_entry(entry, "layout", ("channels_last", "contiguous"),
                              ("channels_last_s", "contiguous_s", "frames"))


_choices = tuning.Choices("conv", _valid_entry)
_fast: dict[tuple[Any, ...], str] = {}


def _mode(conv: nn.Conv2d, frames: Tensor) -> str:
    if not (torch.is_grad_enabled() and conv.weight.requires_grad):
        return "infer"
    return "train+input" if frames.requires_grad else "train"


def conv_class(conv: nn.Conv2d, frames: Tensor) -> str:
    """The class of convolutions that share a measured layout.

    Example:
        >>> conv = nn.Conv2d(32, 64, 3, padding=1)
        >>> with torch.no_grad():
        ...     conv_class(conv, torch.rand(96, 32, 16, 16))
        'f32 32>64 k3x3 s1 g1 16x16 n128 infer'
    """
    size = tuning.size_class
    dtype = {torch.float32: "f32", torch.float64: "f64"}.get(frames.dtype, str(frames.dtype))
    kh, kw = conv.kernel_size
    return (f"{dtype} {conv.in_channels}>{conv.out_channels} k{kh}x{kw} s{conv.stride[0]} "
            f"g{conv.groups} {size(frames.shape[2])}x{size(frames.shape[3])} "
            f"n{size(frames.shape[0])} {_mode(conv, frames)}")


def frame_layout(conv: nn.Conv2d, frames: Tensor) -> str:
    """``"channels_last"`` or ``"contiguous"``: the layout ``conv`` runs ``frames``
    ``(N, C, H, W)`` in, under the setting in force (:func:`conv_layout`). Never
    channels-last for a convolution in :data:`spikeinit.engine.hazards.KNOWN_BAD`."""
    if hazards.channels_last_hazard(conv) is not None:
        return "contiguous"
    setting = conv_layout()
    if setting != "auto":
        return setting
    if tuning.exact():
        return "contiguous"
    if frames.device.type != "cpu" or not frames.is_floating_point() or frames.ndim != 4 \
            or frames.numel() == 0:
        return "contiguous"
    fast_key = (torch.get_num_threads(), conv.in_channels, conv.out_channels, conv.kernel_size,
                conv.stride, conv.groups, frames.dtype, *frames.shape, _mode(conv, frames))
    choice = _fast.get(fast_key)
    if choice is None:
        entry = tuning.decide(_choices, conv_class(conv, frames), lambda: _measure(conv, frames))
        choice = _fast[fast_key] = str(entry["layout"])
    return choice


def _probe_frames(conv: nn.Conv2d, frames: Tensor) -> Tensor:
    kh, kw = conv.kernel_size
    out_pixels = (frames.shape[2] // conv.stride[0]) * (frames.shape[3] // conv.stride[1])
    per_frame = max(out_pixels * kh * kw * conv.in_channels * conv.out_channels
                    // conv.groups, 1)
    count = max(1, min(frames.shape[0], PROBE_MACS // per_frame))
    return frames[:count].detach().clone()


def _probe_run(conv: nn.Conv2d, probe: Tensor, layout: str, mode: str) -> Callable[[], None]:
    """One timed run of the measurement: ``conv`` on ``probe`` in ``layout``, forward, and in
    training backward to the weight (and the input, for ``"train+input"``)."""
    x = probe.contiguous(memory_format=torch.channels_last) if layout == "channels_last" \
        else probe.contiguous()
    x.requires_grad_(mode == "train+input")
    weight = conv.weight.detach().clone().requires_grad_(mode != "infer")
    bias = None if conv.bias is None else conv.bias.detach()
    with torch.no_grad():
        out = conv._conv_forward(x, weight, bias)
        grad = torch.randn(out.shape, dtype=out.dtype,
                           generator=torch.Generator().manual_seed(0))  # not the user's
    wrt = [weight, x] if mode == "train+input" else [weight]

    def run() -> None:
        if mode == "infer":
            with torch.no_grad():
                conv._conv_forward(x, weight, bias)
            return
        with torch.enable_grad():
            torch.autograd.grad(conv._conv_forward(x, weight, bias), wrt, grad)

    return run


def _measure(conv: nn.Conv2d, frames: Tensor) -> dict[str, Any]:
    mode = _mode(conv, frames)
    probe = _probe_frames(conv, frames)
    if tuning.budget().exhausted:
        return {"layout": "contiguous", "source": "unmeasured (budget spent)"}
    if not vet.vetted(vet.conv_request(conv, probe.shape, mode, probe.dtype)):
        return {"layout": "contiguous", "source": "channels-last failed in a child process",
                tuning.MEASURED: True}
    samples = tuning.time_interleaved(
        {layout: _probe_run(conv, probe, layout, mode) for layout in ("channels_last",
                                                                      "contiguous")})
    assert samples is not None  # the budget was checked above, and vetting spends none
    best = tuning.best(samples)
    faster = best["contiguous"] >= MIN_SPEEDUP * best["channels_last"]
    clean = tuning.stable(samples) and tuning.machine_quiet()
    return {"layout": "channels_last" if faster else "contiguous",
            "channels_last_s": best["channels_last"], "contiguous_s": best["contiguous"],
            "frames": int(probe.shape[0]),
            "source": "measured" if clean else "measured (noisy)", tuning.MEASURED: True}


def layout_choices() -> dict[str, dict[str, Any]]:
    """The ``auto`` setting's decisions for the current thread count, by :func:`conv_class`:
    ``layout``, the best seconds ``channels_last_s`` and ``contiguous_s`` of the probe,
    ``frames`` (how many frames it ran) and ``source`` (as in
    :func:`spikeinit.engine.gemm.backend_choices`)."""
    return _choices.items()


def forget_choices() -> None:
    """Drop this process's decisions (the cache file stays)."""
    with tuning.lock:
        _choices.clear()
        _fast.clear()


# ----------------------------------------------------------------------------- running


def conv_frames(conv: nn.Conv2d, frames: Tensor) -> Tensor:
    """``conv(frames)`` for frames ``(N, C, H, W)``, with the frames in the layout of
    :func:`frame_layout` (the output follows it). The gradient of ``frames`` comes back in
    the layout the convolution ran in. A convolution of
    :data:`spikeinit.engine.hazards.KNOWN_BAD` gets contiguous frames and weight even when
    they arrive channels-last (PyTorch would run channels-last if either were)."""
    if hazards.channels_last_hazard(conv) is not None:
        if not conv.weight.is_contiguous():
            with torch.no_grad():
                conv.weight.data = conv.weight.data.contiguous()
        return conv(frames.contiguous())
    if frame_layout(conv, frames) == "channels_last" and not is_channels_last(frames):
        frames = frames.contiguous(memory_format=torch.channels_last)
    return conv(frames)


def _channels_last(grad: Tensor) -> Tensor:
    """``grad`` (4-D frames or 5-D steps of frames) with channels-last frames."""
    if is_channels_last(grad):
        return grad
    if grad.ndim == 4:
        return grad.contiguous(memory_format=torch.channels_last)
    return grad.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


class _KeepGradLayout(torch.autograd.Function):
    """Identity on a channels-last ``x``; its gradient made channels-last."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return _channels_last(grad)


def keep_grad_layout(x: Tensor) -> Tensor:
    """``x`` itself, except that a gradient reaching it in another memory layout is converted
    to ``x``'s (channels-last) layout before it flows further back.

    The operations behind ``x`` (max pooling, convolutions) run their backward pass slower on a
    mix of layouts than on one (docs/engine.md); a ``Flatten`` after a channels-last block sends
    its gradient back contiguous.

    Example:
        >>> x = torch.rand(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
        >>> y, seen = x.requires_grad_() * 2, []
        >>> _ = y.register_hook(lambda g: seen.append(is_channels_last(g)))
        >>> keep_grad_layout(y).flatten(1).sum().backward()  # flatten: a contiguous gradient
        >>> seen  # what reached y: converted back to channels-last
        [True]
    """
    if not (x.requires_grad and torch.is_grad_enabled() and is_channels_last(x)):
        return x
    return _KeepGradLayout.apply(x)
