r"""``EventLinear``: a Linear layer that runs event-driven when its input is sparse spikes.

A dense GEMM costs :math:`R \cdot n_{in} \cdot n_{out}` multiply-adds for ``R`` rows whatever
the input. Spikes are binary and sparse: a row with :math:`k` nonzero inputs needs only the
:math:`k` matching weight columns,

.. math::

    y_{r,o} = b_o + \sum_{j:\,x_{r,j} \neq 0} x_{r,j}\, W_{o,j},

that is :math:`\text{rate} \cdot R \cdot n_{in} \cdot n_{out}` additions, read as contiguous
rows of the transpose :math:`W^\top`. The compiled kernel
(``spikeinit/neurons/event_kernel.cpp``) measured 0.09x the GEMM time at rate 0.01, 0.38x at
0.1 and 0.87x at 0.3, for 1280 x 1000 x 1000 on 2 cores (``benchmarks/kernels.py``,
``docs/engine.md``). ``EventLinear`` uses it automatically when there is no graph to build, the
input is float32 on the CPU, the layer has at least :data:`MIN_OUT_FEATURES` outputs and
:data:`MIN_SYNAPSES` weights, and the measured fraction of nonzero inputs is at most
:data:`MAX_EVENT_RATE`. Otherwise it is ``nn.Linear``.

The result is the same sum in a different order, so it can differ from the GEMM in the last
bits of float32 (a spike can flip only where the membrane lands within rounding of the
threshold; ``benchmarks/engine.py`` measures how often).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeinit.neurons.compiled import compiled_kernel, kernel_threads

MAX_EVENT_RATE = 0.25
"""Largest fraction of nonzero inputs for which the event-driven path is used."""

MIN_OUT_FEATURES = 64
"""Narrower layers stay dense (the event kernel works in blocks of 64 outputs)."""

MIN_SYNAPSES = 65_536
"""Smaller weight matrices stay dense: below this the call overhead eats the saving."""

_RATE_SAMPLE_ROWS = 128


def input_rate(x: Tensor) -> float:
    """Fraction of nonzero entries, estimated from at most 128 rows spread over the input."""
    rows = x.reshape(-1, x.shape[-1])
    stride = max(1, rows.shape[0] // _RATE_SAMPLE_ROWS)
    sample = rows[::stride]
    return float(torch.count_nonzero(sample)) / max(sample.numel(), 1)


def event_linear(x: Tensor, weight_t: Tensor, bias: Tensor | None = None) -> Tensor:
    r"""``x @ weight_t + bias`` from the nonzero entries of ``x`` only (CPU, float32).

    ``x`` is ``(..., in)``, ``weight_t`` the contiguous transpose ``(in, out)`` of a Linear
    weight, ``bias`` ``(out,)`` or ``None``. Raises ``RuntimeError`` if the compiled kernel is
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
    out = torch.empty(rows.shape[0], out_features, dtype=x.dtype)
    bias_pointer = None if bias is None else bias.detach().contiguous().data_ptr()
    status = kernel.event_linear_f32(rows.data_ptr(), weight_t.data_ptr(), bias_pointer,
                                     out.data_ptr(), rows.shape[0], in_features, out_features,
                                     kernel_threads())
    if status != 0:
        raise RuntimeError(f"event_linear kernel failed with status {status}")
    return out.view(*x.shape[:-1], out_features)


class EventLinear(nn.Linear):
    """``nn.Linear`` that switches to the event-driven kernel for sparse inputs at inference.

    Drop-in: same parameters, state dict and initializers. ``event_driven=False`` keeps it
    dense. :attr:`last_path` says which path the last call took (``"event"`` or ``"dense"``).

    Example:
        >>> layer = EventLinear(1000, 500, bias=False)
        >>> spikes = (torch.rand(20, 8, 1000) < 0.05).float()
        >>> with torch.no_grad():
        ...     y = layer(spikes)
        >>> torch.allclose(y, spikes @ layer.weight.T, atol=1e-4)
        True
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 event_driven: bool = True, **factory: object) -> None:
        super().__init__(in_features, out_features, bias=bias, **factory)  # type: ignore[arg-type]
        self.event_driven = event_driven
        self.last_path = "dense"

    def _eligible(self, x: Tensor) -> bool:
        if not self.event_driven or torch.is_grad_enabled() and (
                x.requires_grad or self.weight.requires_grad):
            return False
        if x.device.type != "cpu" or x.dtype != torch.float32 or self.weight.dtype != x.dtype:
            return False
        if self.out_features < MIN_OUT_FEATURES or compiled_kernel() is None:
            return False
        if self.in_features * self.out_features < MIN_SYNAPSES:
            return False
        return input_rate(x) <= MAX_EVENT_RATE

    def weight_transpose(self) -> Tensor:
        """The contiguous ``W^T``, made at every call (0.4 ms for 1000 x 1000 on 2 cores).

        It is not cached: PyTorch's fused Adam updates weights in place without bumping their
        version counter, so a cache keyed on it would serve stale weights after training.
        """
        return self.weight.detach().t().contiguous()

    def forward(self, x: Tensor) -> Tensor:
        if self._eligible(x):
            self.last_path = "event"
            return event_linear(x, self.weight_transpose(), self.bias)
        self.last_path = "dense"
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", event_driven={self.event_driven}"
