r"""``EventLinear``: a Linear layer that runs event-driven when its input is sparse spikes.

A dense GEMM costs :math:`R \cdot n_{in} \cdot n_{out}` multiply-adds for ``R`` rows whatever
the input. Spikes are binary and sparse: a row with :math:`k` nonzero inputs needs only the
:math:`k` matching weight columns,

.. math::

    y_{r,o} = b_o + \sum_{j:\,x_{r,j} \neq 0} x_{r,j}\, W_{o,j},

that is :math:`\text{rate} \cdot R \cdot n_{in} \cdot n_{out}` additions, read as contiguous
rows of the transpose :math:`W^\top`. The compiled kernel
(``spikeinit/kernels/event_kernel.cpp``) beats a dense GEMM below a rate that depends on the
CPU and the GEMM backend (measured in ``docs/benchmarks.md`` and ``docs/engine.md``, with
``benchmarks/kernels.py``). ``EventLinear`` uses it automatically when the input is float32
on the CPU, the kernel is compiled, the layer has at least :data:`MIN_OUT_FEATURES` outputs
and :data:`MIN_SYNAPSES` weights, and the fraction of nonzero inputs is at most
:func:`max_event_rate` (:data:`MAX_EVENT_RATE` against the oneDNN GEMM,
:data:`MAX_EVENT_RATE_MM` against ``torch.mm``). Otherwise it is a GEMM.

In training the same events also give the weight gradient. With :math:`g = \partial L/\partial y`,

.. math::

    (\nabla_W)^\top_{j,:} = \sum_{r:\,x_{r,j} \neq 0} x_{r,j}\, g_{r,:},

which is the same kernel applied to :math:`x^\top` and :math:`g`
(:class:`EventLinearFunction`). The input gradient :math:`g W` is dense (the surrogate
gradient is nonzero everywhere) and stays a GEMM.

Dense products go through :func:`spikeinit.models.gemm.linear_nt` (oneDNN where available,
see that module); the transposes the event kernel needs are made by a tiled kernel
(:func:`contiguous_transpose`, faster than ``w.t().contiguous()``: docs/benchmarks.md).

A frame repeated over time (a stride-0 ``image.expand(T, ...)``, see
:func:`~spikeinit.models.time_distributed.repeated_over_time`) is multiplied once and
copied back over ``T``.

The result is the same sum in a different order, so it can differ from the GEMM in the last
bits of float32 (a spike can flip only where the membrane lands within rounding of the
threshold; ``benchmarks/engine.py`` measures how often).
"""

from __future__ import annotations

import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeinit.kernels import compiled_kernel, kernel_threads
from spikeinit.models.gemm import linear_nt, uses_onednn
from spikeinit.models.time_distributed import once_over_time

MAX_EVENT_RATE = 0.15
"""Largest fraction of nonzero inputs for the event-driven path when the GEMM is oneDNN's
(the break-even rates measured with ``benchmarks/kernels.py`` are in docs/benchmarks.md)."""

MAX_EVENT_RATE_TRAINING = 0.08
"""The same in training, where the events also give the weight gradient (docs/benchmarks.md)."""

MAX_EVENT_RATE_MM = 0.25
"""The same when the GEMM is ``torch.mm`` (``SPIKEINIT_GEMM=torch`` or no oneDNN)."""

MIN_OUT_FEATURES = 64
"""Narrower layers stay dense (the event kernel works in blocks of 64 outputs)."""

MIN_SYNAPSES = 65_536
"""Smaller weight matrices stay dense: below this the call overhead eats the saving."""

_RATE_SAMPLE_ROWS = 128


def max_event_rate(x: Tensor, weight: Tensor, training: bool = False) -> float:
    """The input rate up to which events beat the GEMM that :func:`linear_nt` would run:
    :data:`MAX_EVENT_RATE_MM` against ``torch.mm``; against oneDNN :data:`MAX_EVENT_RATE`, or
    :data:`MAX_EVENT_RATE_TRAINING` when a graph is built (the weight gradient then needs
    two more transposes, and the input gradient stays a GEMM)."""
    rows = x.reshape(-1, x.shape[-1])
    if not uses_onednn(rows, weight):
        return MAX_EVENT_RATE_MM
    return MAX_EVENT_RATE_TRAINING if training else MAX_EVENT_RATE


def input_rate(x: Tensor) -> float:
    """Fraction of nonzero entries, estimated from at most 128 rows spread over the input."""
    rows = x.reshape(-1, x.shape[-1])
    stride = max(1, rows.shape[0] // _RATE_SAMPLE_ROWS)
    sample = rows[::stride]
    return float(torch.count_nonzero(sample)) / max(sample.numel(), 1)


def event_linear(x: Tensor, weight_t: Tensor, bias: Tensor | None = None,
                 out: Tensor | None = None) -> Tensor:
    r"""``x @ weight_t + bias`` from the nonzero entries of ``x`` only (CPU, float32).

    ``x`` is ``(..., in)``, ``weight_t`` the contiguous transpose ``(in, out)`` of a Linear
    weight, ``bias`` ``(out,)`` or ``None``; ``out``, if given, a contiguous ``(rows, out)``
    float32 tensor to write into. Raises ``RuntimeError`` if the compiled kernel is
    unavailable.
    """
    kernel = compiled_kernel()
    if kernel is None:
        raise RuntimeError("event_linear needs the compiled kernel (see docs/engine.md)")
    if x.dtype != torch.float32 or weight_t.dtype != torch.float32 or x.device.type != "cpu":
        raise ValueError("event_linear takes float32 CPU tensors")
    in_features, out_features = weight_t.shape
    if x.shape[-1] != in_features:
        raise ValueError(f"x has {x.shape[-1]} features, the weight expects {in_features}")
    rows = x.reshape(-1, in_features).contiguous()
    weight_t = weight_t.contiguous()
    out = _output_buffer(out, (rows.shape[0], out_features), x.dtype)
    bias_pointer = None if bias is None else bias.detach().contiguous().data_ptr()
    status = kernel.event_linear_f32(rows.data_ptr(), weight_t.data_ptr(), bias_pointer,
                                     out.data_ptr(), rows.shape[0], in_features, out_features,
                                     kernel_threads())
    if status != 0:
        raise RuntimeError(f"event_linear kernel failed with status {status}")
    return out.view(*x.shape[:-1], out_features)


def _output_buffer(out: Tensor | None, shape: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """``out`` checked to be a contiguous ``shape`` tensor of ``dtype``, or a new one."""
    if out is None:
        return torch.empty(shape, dtype=dtype)
    if out.shape != shape or not out.is_contiguous() or out.dtype != dtype:
        raise ValueError(f"out must be a contiguous {dtype} tensor of shape {shape}, got "
                         f"{out.dtype} {tuple(out.shape)}")
    return out


_workspaces = threading.local()


def workspace(role: str, rows: int, cols: int) -> Tensor:
    """A float32 ``(rows, cols)`` scratch matrix, reused per thread, role and shape.

    The event path's transposes are read once and dropped. A fresh 4 MB tensor at every call
    costs its page faults, so they are written here instead. Whatever is written is only valid
    until the next call with the same role and shape on the same thread; two matrices alive at
    once need two roles (an input and an output of the same shape must not share memory).
    """
    cache = getattr(_workspaces, "cache", None)
    if cache is None:
        cache = _workspaces.cache = {}
    key = (role, rows, cols)
    buffer = cache.get(key)
    if buffer is None:
        buffer = cache[key] = torch.empty(rows, cols)
    return buffer


def contiguous_transpose(matrix: Tensor, out: Tensor | None = None) -> Tensor:
    """``matrix.t()`` as a contiguous tensor (the compiled tiled transpose for float32 CPU
    matrices, ``.contiguous()`` otherwise), written into ``out`` if given; a matrix whose
    transpose is already contiguous is returned as that view."""
    transpose = matrix.t()
    if transpose.is_contiguous():
        return transpose
    kernel = compiled_kernel()
    if (kernel is None or matrix.dtype != torch.float32 or matrix.device.type != "cpu"
            or not matrix.is_contiguous()):
        return transpose.contiguous() if out is None else out.copy_(transpose)
    rows, cols = matrix.shape
    out = _output_buffer(out, (cols, rows), matrix.dtype)
    status = kernel.transpose_f32(matrix.data_ptr(), out.data_ptr(), rows, cols, kernel_threads())
    if status != 0:
        raise RuntimeError(f"transpose kernel failed with status {status}")
    return out


class EventLinearFunction(torch.autograd.Function):
    r""":math:`y = x W^\top + b` with an event-driven or GEMM forward and weight gradient.

    Forward: ``event_linear`` (sparse ``x``, ``event=True``) or :func:`linear_nt`. Backward:
    :math:`\nabla_x = g W` (always a GEMM); :math:`\nabla_W = (x^\top g)^\top`, from the
    events of :math:`x^\top` or a GEMM; :math:`\nabla_b = \sum_r g_r`. It saves the input and
    the weight, as ``nn.Linear`` does.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None,
                event: bool) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if event:
            # W^T is made at every call, never cached: PyTorch's fused Adam updates weights in
            # place without bumping their version counter, so a cache would go stale.
            in_features, out_features = weight.shape[1], weight.shape[0]
            weight_t = contiguous_transpose(weight,
                                            workspace("weight_t", in_features, out_features))
            out = event_linear(rows, weight_t, bias)
        else:
            out = linear_nt(rows, weight, bias)
        ctx.event = event
        ctx.input_shape = x.shape
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(rows, weight)
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None) -> tuple[Tensor | None, ...]:
        if grad is None:
            return None, None, None, None
        rows, weight = ctx.saved_tensors
        grad_rows = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = linear_nt(grad_rows, weight.t()).view(ctx.input_shape)
        if ctx.needs_input_grad[1]:
            if ctx.event:
                count, in_features = rows.shape
                rows_t = contiguous_transpose(rows, workspace("input_t", in_features, count))
                grad_weight_t = event_linear(
                    rows_t, grad_rows, out=workspace("grad_weight_t", in_features,
                                                     weight.shape[0]))
                grad_weight = contiguous_transpose(grad_weight_t)
            else:
                grad_weight = linear_nt(grad_rows.t(), rows.t())
        if ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias, None


class EventLinear(nn.Linear):
    """``nn.Linear`` that runs event-driven when its input is sparse (spikes).

    Drop-in: same parameters, state dict and initializers. Float32 CPU inputs go through
    :class:`EventLinearFunction` (the event kernel when it is compiled and the measured input
    rate is at most :func:`max_event_rate`, else the GEMM of :mod:`spikeinit.models.gemm`), in
    training and at inference; other inputs give ``nn.Linear``.
    ``event_driven=False`` keeps it a GEMM. :attr:`last_path` says which path the last call
    took (``"event"`` or ``"dense"``).

    Example:
        >>> layer = EventLinear(1000, 500, bias=False)
        >>> spikes = (torch.rand(20, 8, 1000) < 0.05).float()
        >>> y = layer(spikes)
        >>> layer.last_path
        'event'
        >>> torch.allclose(y, spikes @ layer.weight.T, atol=1e-4)
        True
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 event_driven: bool = True, **factory: object) -> None:
        super().__init__(in_features, out_features, bias=bias, **factory)  # type: ignore[arg-type]
        self.event_driven = event_driven
        self.last_path = "dense"

    def _runs_our_kernels(self, x: Tensor) -> bool:
        return (x.device.type == "cpu" and x.dtype == torch.float32
                and self.weight.dtype == x.dtype)

    def _event_eligible(self, x: Tensor, training: bool) -> bool:
        if (not self.event_driven or self.out_features < MIN_OUT_FEATURES
                or self.in_features * self.out_features < MIN_SYNAPSES
                or compiled_kernel() is None):
            return False
        return input_rate(x) <= max_event_rate(x, self.weight, training)

    def forward(self, x: Tensor) -> Tensor:
        return once_over_time(self._forward_rows, x)

    def _forward_rows(self, x: Tensor) -> Tensor:
        if not self._runs_our_kernels(x):
            self.last_path = "dense"
            return F.linear(x, self.weight, self.bias)
        needs_graph = torch.is_grad_enabled() and (
            x.requires_grad or self.weight.requires_grad
            or (self.bias is not None and self.bias.requires_grad))
        event = self._event_eligible(x, needs_graph)
        self.last_path = "event" if event else "dense"
        return EventLinearFunction.apply(x, self.weight, self.bias, event)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", event_driven={self.event_driven}"
