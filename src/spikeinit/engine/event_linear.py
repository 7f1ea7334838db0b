r"""``EventLinear``: a Linear layer that runs event-driven when its input is sparse spikes.

A dense GEMM costs :math:`R \cdot n_{in} \cdot n_{out}` multiply-adds for ``R`` rows whatever
the input. Spikes are binary and sparse: a row with :math:`k` nonzero inputs needs only the
:math:`k` matching weight columns,

.. math::

    y_{r,o} = b_o + \sum_{j:\,x_{r,j} \neq 0} x_{r,j}\, W_{o,j},

that is :math:`\text{rate} \cdot R \cdot n_{in} \cdot n_{out}` additions, read as contiguous
rows of the transpose :math:`W^\top`. The compiled kernel
(``spikeinit/engine/kernels/event_kernel.cpp``) beats a dense GEMM below a rate that depends on the
CPU, the GEMM backend and the layer's shape (``docs/benchmarks.md`` and ``docs/engine.md``,
measured with ``benchmarks/kernels.py``). ``EventLinear`` uses it automatically when the input
is float32 on the CPU, the kernel is compiled, the layer has at least :data:`MIN_OUT_FEATURES`
outputs and :data:`MIN_SYNAPSES` weights, and the fraction of nonzero inputs is at most
:func:`max_event_rate`.

That rate is measured, not fixed (``SPIKEINIT_EVENT_RATE=auto``, the default): the first time
a process meets a layer shape whose input rate is at most :data:`MAX_MEASURED_RATE`, it times,
on synthetic spikes of that shape (at most 512 rows), the GEMM path and the event path at
input rates 0.02 and 0.15 (forward alone at inference, forward plus weight gradient in
training), fits the event time as a line in the rate and takes the rate where it meets the
GEMM's time. The measurement shares the per-process budget of :mod:`spikeinit.engine.tuning`
and is kept per CPU, torch version and thread count beside the GEMM choices;
:func:`event_rate_choices` lists them. Where nothing could be measured (budget spent) fixed
rates apply (break-even rates of docs/engine.md): :data:`MAX_EVENT_RATE` against the oneDNN GEMM
(:data:`MAX_EVENT_RATE_TRAINING` in training), :data:`MAX_EVENT_RATE_MM` against
``torch.mm``. ``SPIKEINIT_EVENT_RATE=<number>`` (or :func:`use_event_rate`) fixes the rate
instead, the same for every layer, at inference and in training (``0`` leaves the event path
only to inputs without a spike).

In training the same events also give the weight gradient. With :math:`g = \partial L/\partial y`,

.. math::

    (\nabla_W)^\top_{j,:} = \sum_{r:\,x_{r,j} \neq 0} x_{r,j}\, g_{r,:},

which is the same kernel applied to :math:`x^\top` and :math:`g`
(:class:`EventLinearFunction`). The input gradient :math:`g W` is dense (the surrogate
gradient is nonzero everywhere) and stays a GEMM.

Dense products go through :func:`spikeinit.engine.gemm.linear_nt` (oneDNN where available,
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

import contextlib
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeinit.engine import settings, tuning
from spikeinit.engine.gemm import gemm_backend, linear_nt, uses_onednn
from spikeinit.engine.kernels import compiled_kernel, kernel_threads
from spikeinit.engine.layout import once_over_time
from spikeinit.errors import InvalidArgumentError

EVENT_RATE_VARIABLE = settings.EVENT_RATE.variable
"""``auto`` (default: the rate is measured per CPU and layer shape) or a fixed rate in [0, 1]."""

MAX_MEASURED_RATE = 0.5
"""Inputs denser than this always run the GEMM (and trigger no measurement); a measured
break-even rate is clipped to it."""

PROBE_RATES = (0.02, 0.15)
"""The input rates at which the event path is timed to find its break-even rate."""

MAX_PROBE_ROWS = 512
"""The measurement of the break-even rate uses at most this many rows."""

MAX_EVENT_RATE = 0.15
"""Fallback (nothing measured) largest fraction of nonzero inputs for the event-driven path
when the GEMM is oneDNN's: a break-even rate measured with ``benchmarks/kernels.py``
(docs/engine.md)."""

MAX_EVENT_RATE_TRAINING = 0.08
"""The same in training, where the events also give the weight gradient (docs/engine.md)."""

MAX_EVENT_RATE_MM = 0.25
"""The same when the GEMM is ``torch.mm``."""

MIN_OUT_FEATURES = 64
"""Narrower layers stay dense (the event kernel works in blocks of 64 outputs)."""

MIN_SYNAPSES = 65_536
"""Smaller weight matrices stay dense: below this the call overhead eats the saving."""

_RATE_SAMPLE_ROWS = 128
_RATE_SAMPLE_ENTRIES = 32_768


def event_rate_setting() -> float | None:
    """The fixed rate in force (the innermost :func:`use_event_rate`, else
    ``$SPIKEINIT_EVENT_RATE``), or ``None`` for ``auto`` (measured, the default)."""
    return settings.EVENT_RATE.value()


def use_event_rate(rate: float | str | None) -> contextlib.AbstractContextManager[None]:
    """Run the enclosed code with a fixed event-path rate (``None`` or ``"auto"``: measured).

    Example:
        >>> layer = EventLinear(1000, 500, bias=False)
        >>> with use_event_rate(0.1), torch.no_grad():
        ...     _ = layer((torch.rand(160, 1000) < 0.05).float())
        >>> layer.last_path
        'event'
    """
    return settings.EVENT_RATE.use(rate)


def static_event_rate(x: Tensor, weight: Tensor, training: bool = False) -> float:
    """The fallback rate where nothing was measured: :data:`MAX_EVENT_RATE_MM` against
    ``torch.mm``; against oneDNN :data:`MAX_EVENT_RATE`, or :data:`MAX_EVENT_RATE_TRAINING` when
    a graph is built (the weight gradient then needs two more transposes, and the input gradient
    stays a GEMM); docs/engine.md gives the measurements behind them."""
    rows = x.reshape(-1, x.shape[-1])
    if not uses_onednn(rows, weight):
        return MAX_EVENT_RATE_MM
    return MAX_EVENT_RATE_TRAINING if training else MAX_EVENT_RATE


def max_event_rate(x: Tensor, weight: Tensor, training: bool = False) -> float:
    """The input rate up to which events beat the GEMM that :func:`linear_nt` would run for
    ``x @ weight.T``: ``$SPIKEINIT_EVENT_RATE`` if set to a number; else the break-even rate
    measured on this machine for the layer's shape class (:func:`measured_event_rate`,
    measured now if it is new); else :func:`static_event_rate`."""
    fixed = event_rate_setting()
    if fixed is not None:
        return fixed
    rows = x.reshape(-1, x.shape[-1])
    measured = None
    if compiled_kernel() is not None:
        measured = measured_event_rate(rows.shape[0], weight.shape[1], weight.shape[0],
                                       training)
    return static_event_rate(rows, weight, training) if measured is None else measured


def _valid_entry(entry: Any) -> bool:
    # max_rate None: nothing was measured, the fixed fallback rates apply (kept as well)
    return isinstance(entry, dict) and "max_rate" in entry and (
        entry["max_rate"] is None or isinstance(entry["max_rate"], (int, float))
        and 0.0 <= entry["max_rate"] <= MAX_MEASURED_RATE)


_choices = tuning.Choices("event", _valid_entry)


def event_class(rows: int, in_features: int, out_features: int, training: bool) -> str:
    """The class of layers that share a measured break-even rate: inference or training, the
    GEMM backend setting, and rows x in x out rounded to powers of two."""
    size = tuning.size_class
    return (f"{'training' if training else 'inference'} {gemm_backend()} "
            f"{size(rows)}x{size(in_features)}x{size(out_features)}")


def measured_event_rate(rows: int, in_features: int, out_features: int,
                        training: bool = False) -> float | None:
    """The measured break-even input rate of a layer of this shape on this machine, measured
    now if its :func:`event_class` is new and the budget allows; ``None`` if unmeasured."""
    entry = tuning.decide(
        _choices, event_class(rows, in_features, out_features, training),
        lambda: _measure(min(rows, MAX_PROBE_ROWS), in_features, out_features, training))
    rate = entry.get("max_rate")
    return None if rate is None else float(rate)


def crossover_rate(dense_s: float, low_s: float, high_s: float,
                   rates: tuple[float, float] = PROBE_RATES) -> float:
    """The input rate at which the event path (``low_s`` and ``high_s`` seconds at the two
    ``rates``, a line in between and beyond) takes as long as the GEMM (``dense_s``), clipped
    to ``[0, MAX_MEASURED_RATE]``.

    Example:
        >>> crossover_rate(dense_s=2.0, low_s=1.0, high_s=3.5, rates=(0.05, 0.3))
        0.15
    """
    low_rate, high_rate = rates
    if high_s <= low_s:  # no growth with the rate: noise; events win everywhere or nowhere
        return MAX_MEASURED_RATE if high_s < dense_s else 0.0
    rate = low_rate + (dense_s - low_s) * (high_rate - low_rate) / (high_s - low_s)
    return round(min(max(rate, 0.0), MAX_MEASURED_RATE), 4)


def _measure(rows: int, in_features: int, out_features: int, training: bool) -> dict[str, Any]:
    """Time the GEMM path and the event path at :data:`PROBE_RATES` on synthetic spikes."""
    generator = torch.Generator().manual_seed(0)  # never the global generator
    weight = torch.randn(out_features, in_features, generator=generator)
    inputs = [(torch.rand(rows, in_features, generator=generator) < rate).float()
              for rate in PROBE_RATES]
    grad = torch.randn(rows, out_features, generator=generator)
    # The GEMM backend of these shapes is decided (and measured, if new) before timing.
    uses_onednn(inputs[0], weight)
    if training:
        uses_onednn(grad.t(), inputs[0].t())
        weight.requires_grad_()

    def run(x: Tensor, event: bool) -> None:
        if training:
            with torch.enable_grad():  # a scalar loss: backward(grad) would import sympy
                (EventLinearFunction.apply(x, weight, None, event) * grad).sum().backward()
            weight.grad = None
        else:
            with torch.no_grad():
                EventLinearFunction.apply(x, weight, None, event)

    samples = tuning.time_interleaved({"gemm": lambda: run(inputs[1], False),
                                       "low": lambda: run(inputs[0], True),
                                       "high": lambda: run(inputs[1], True)})
    if samples is None:
        return {"max_rate": None, "source": "unmeasured (budget spent)"}
    best = tuning.best(samples)
    rates = (float(inputs[0].mean()), float(inputs[1].mean()))
    rate = crossover_rate(best["gemm"], best["low"], best["high"], rates)
    clean = tuning.stable(samples) and best["low"] < best["high"] and tuning.machine_quiet()
    return {"max_rate": rate, "gemm_s": best["gemm"], "event_s": [best["low"], best["high"]],
            "rates": [round(r, 4) for r in rates], "rows": rows,
            "source": "measured" if clean else "measured (noisy)", tuning.MEASURED: True}


def event_rate_choices() -> dict[str, dict[str, Any]]:
    """The measured break-even rates for the current thread count, by :func:`event_class`:
    ``max_rate``, the best seconds of the GEMM path and of the event path at the probe rates,
    and ``source`` (as in :func:`spikeinit.engine.gemm.backend_choices`)."""
    return _choices.items()


def forget_event_choices() -> None:
    """Drop this process's measured rates (the cache file stays)."""
    _choices.clear()


def input_rate(x: Tensor) -> float:
    r"""Fraction of nonzero entries, estimated from rows spread over the input: at most 128
    rows and at most 32768 entries (but at least one row).

    Counted as :math:`\sum \operatorname{sign}|x|` (exact in float32 below :math:`2^{24}`
    entries; a NaN counts as zero), which is faster than ``torch.count_nonzero`` on float
    input (docs/engine.md).

    Example:
        >>> input_rate(torch.tensor([[0.0, 1.0, 0.0, -0.5]]))
        0.5
    """
    rows = x.reshape(-1, x.shape[-1])
    picked = min(_RATE_SAMPLE_ROWS, max(1, _RATE_SAMPLE_ENTRIES // max(rows.shape[1], 1)))
    sample = rows[::max(1, rows.shape[0] // picked)][:picked].detach()
    if sample.is_floating_point():
        nonzero = float(sample.abs().sign_().sum())
    else:
        nonzero = float(torch.count_nonzero(sample))
    return nonzero / max(sample.numel(), 1)


def event_linear(x: Tensor, weight_t: Tensor, bias: Tensor | None = None,
                 out: Tensor | None = None) -> Tensor:
    r"""``x @ weight_t + bias`` from the nonzero entries of ``x`` only (CPU, float32).

    ``x`` is ``(..., in)``, ``weight_t`` the contiguous transpose ``(in, out)`` of a Linear
    weight, ``bias`` ``(out,)`` or ``None``; ``out``, if given, a contiguous ``(rows, out)``
    float32 tensor to write into. Raises ``RuntimeError`` if the compiled kernel is
    unavailable.

    Example:
        >>> generator = torch.Generator().manual_seed(0)
        >>> x = (torch.rand(4, 6, generator=generator) < 0.3).float()  # sparse spikes
        >>> weight_t = torch.randn(6, 3, generator=generator)
        >>> torch.allclose(event_linear(x, weight_t), x @ weight_t, atol=1e-6)
        True
    """
    kernel = compiled_kernel()
    if kernel is None:
        raise RuntimeError("event_linear needs the compiled kernel (see docs/engine.md)")
    if x.dtype != torch.float32 or weight_t.dtype != torch.float32 or x.device.type != "cpu":
        raise InvalidArgumentError("event_linear takes float32 CPU tensors")
    in_features, out_features = weight_t.shape
    if x.shape[-1] != in_features:
        raise InvalidArgumentError(
            f"x has {x.shape[-1]} features, the weight expects {in_features}")
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
        raise InvalidArgumentError(f"out must be a contiguous {dtype} tensor of shape {shape}, got "
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


def linear_rows(rows: Tensor, weight: Tensor, bias: Tensor | None, event: bool) -> Tensor:
    r""":math:`y = x W^\top + b` on 2-D ``rows`` ``(R, in)``, with no autograd graph.

    ``event=True`` runs the event kernel on the nonzero entries of ``rows`` (:func:`event_linear`,
    CPU float32 only), else the GEMM of :func:`~spikeinit.engine.gemm.linear_nt`. This is the
    forward of :class:`EventLinearFunction`, shared with the fused MLP
    (:mod:`spikeinit.models.fused_mlp`) so that both give the same numbers.
    """
    if event:
        # W^T is made at every call, never cached: PyTorch's fused Adam updates weights in
        # place without bumping their version counter, so a cache would go stale.
        in_features, out_features = weight.shape[1], weight.shape[0]
        weight_t = contiguous_transpose(weight, workspace("weight_t", in_features, out_features))
        return event_linear(rows, weight_t, bias)
    return linear_nt(rows, weight, bias)


def linear_rows_backward(
    grad_rows: Tensor, rows: Tensor, weight: Tensor, event: bool,
    needs: tuple[bool, bool, bool],
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    r"""Gradients of :func:`linear_rows` for the output gradient ``grad_rows`` ``(R, out)``:

    .. math::

        \nabla_x = g W, \qquad \nabla_W = (x^\top g)^\top, \qquad \nabla_b = \sum_r g_r,

    each computed only where ``needs`` (input, weight, bias) asks. :math:`\nabla_x` is always a
    GEMM; :math:`\nabla_W` comes from the events of :math:`x^\top` when ``event``, else a GEMM.
    """
    grad_x = grad_weight = grad_bias = None
    if needs[0]:
        grad_x = linear_nt(grad_rows, weight.t())
    if needs[1]:
        if event:
            count, in_features = rows.shape
            rows_t = contiguous_transpose(rows, workspace("input_t", in_features, count))
            grad_weight_t = event_linear(
                rows_t, grad_rows, out=workspace("grad_weight_t", in_features, weight.shape[0]))
            grad_weight = contiguous_transpose(grad_weight_t)
        else:
            grad_weight = linear_nt(grad_rows.t(), rows.t())
    if needs[2]:
        grad_bias = grad_rows.sum(0)
    return grad_x, grad_weight, grad_bias


class EventLinearFunction(torch.autograd.Function):
    r""":math:`y = x W^\top + b` with an event-driven or GEMM forward and weight gradient.

    Forward: ``event_linear`` (sparse ``x``, ``event=True``) or :func:`linear_nt`
    (:func:`linear_rows`). Backward (:func:`linear_rows_backward`): :math:`\nabla_x = g W`
    (always a GEMM); :math:`\nabla_W = (x^\top g)^\top`, from the events of :math:`x^\top`
    or a GEMM; :math:`\nabla_b = \sum_r g_r`. It saves the input and the weight, as
    ``nn.Linear`` does.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None,
                event: bool) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])
        out = linear_rows(rows, weight, bias, event)
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
        grad_x, grad_weight, grad_bias = linear_rows_backward(
            grad_rows, rows, weight, ctx.event, tuple(ctx.needs_input_grad[:3]))
        if grad_x is not None:
            grad_x = grad_x.view(ctx.input_shape)
        return grad_x, grad_weight, grad_bias, None


class EventLinear(nn.Linear):
    """``nn.Linear`` that runs event-driven when its input is sparse (spikes).

    Drop-in: same parameters, state dict and initializers. Float32 CPU inputs go through
    :class:`EventLinearFunction` (the event kernel when it is compiled and the measured input
    rate is at most :func:`max_event_rate`, else the GEMM of :mod:`spikeinit.engine.gemm`), in
    training and at inference; other inputs give ``nn.Linear``.
    ``event_driven=False`` keeps it a GEMM. :attr:`last_path` says which path the last call
    took (``"event"`` or ``"dense"``).

    Example (with a fixed rate: the measured one depends on the machine):
        >>> layer = EventLinear(1000, 500, bias=False)
        >>> spikes = (torch.rand(20, 8, 1000) < 0.05).float()
        >>> with use_event_rate(0.1):
        ...     y = layer(spikes)
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
        rate = input_rate(x)
        fixed = event_rate_setting()
        if fixed is None and (rate > MAX_MEASURED_RATE or tuning.exact()):
            return False  # dense input, or exact mode: no need to know the break-even rate
        return rate <= max_event_rate(x, self.weight, training)

    def forward(self, x: Tensor) -> Tensor:
        return once_over_time(self._forward_rows, x)

    def choose_path(self, rows: Tensor, needs_graph: bool) -> bool | None:
        """For the 2-D input ``rows``: ``None`` when the layer would fall back to ``F.linear``
        (not CPU float32), else whether it takes the event path (and :attr:`last_path`)."""
        if not self._runs_our_kernels(rows):
            self.__dict__["last_path"] = "dense"
            return None
        event = self._event_eligible(rows, needs_graph)
        self.__dict__["last_path"] = "event" if event else "dense"  # a plain attribute
        return event

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
