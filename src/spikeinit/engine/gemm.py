r"""The dense GEMMs of the synaptic layers: oneDNN or ``torch.mm``, whichever is faster here.

A Linear layer costs three matrix products per training step, all of the form
:math:`C = A B^\top`:

.. math::

    y = x W^\top, \qquad \nabla_x = g\, (W^\top)^\top, \qquad
    \nabla_W = g^\top (x^\top)^\top,

with ``x`` the ``(R, in)`` input rows, ``W`` the ``(out, in)`` weight and ``g`` the
``(R, out)`` output gradient. :func:`linear_nt` computes :math:`A B^\top` (+ bias) for any
strides of ``A`` and ``B``, so the transposes are views, never copies.

PyTorch's CPU builds send ``torch.mm`` to MKL's SGEMM, whose code path depends on the CPU's
vendor as well as its features; oneDNN, which PyTorch also ships (it runs PyTorch's CPU
convolutions), picks its kernels from the CPU's features. Which is faster depends on the CPU
and the shape (``docs/engine.md`` gives the figures of the CPUs measured), so it is measured
here. The sums are the same but in another order, so results agree with ``torch.mm`` to
float32 rounding, not bit for bit.

``SPIKEINIT_GEMM`` (or the :func:`use_backend` context manager) chooses the backend:

- ``auto`` (default): ``torch.mm`` for products under :data:`MIN_ONEDNN_MACS` multiply-adds;
  for larger float32 CPU products, whichever of oneDNN and ``torch.mm`` was measured faster
  on this machine for the product's shape class (:func:`shape_class`: the layout of the two
  operands and each dimension rounded to a power of two). The first product of a class is
  timed on both backends, interleaved (one warm-up and two timed runs each, in CPU time of the
  calling thread; oneDNN must be :data:`MIN_SPEEDUP` times faster, best run against best run;
  on a busy machine the one-thread choice serves several threads), within the per-process budget
  of :mod:`spikeinit.engine.tuning`, and the choice is kept per CPU, torch version and
  thread count. A class met after the budget is spent gets ``torch.mm`` (kept too). Under
  ``SPIKEINIT_TUNING=exact``, ``torch.mm``. oneDNN is only a candidate where PyTorch has it,
  a probe product matches ``torch.mm``, and the class's product ran in a child process first
  (:mod:`spikeinit.engine.vet`).
  :func:`backend_choices` lists the decisions.
- ``onednn``: oneDNN for every float32 CPU product (an error if it is unavailable).
- ``torch``: ``torch.mm``, bit-identical to ``nn.Linear``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch import Tensor

from spikeinit.engine import settings, tuning, vet

GEMM_BACKENDS = settings.GEMM_BACKENDS
"""Values of the ``SPIKEINIT_GEMM`` environment variable."""

MIN_ONEDNN_MACS = 2**21
"""Smaller products (multiply-adds ``M * K * N``) go to ``torch.mm`` under ``auto``, unmeasured:
oneDNN's call has a fixed overhead that small products do not repay (docs/engine.md gives the
timings)."""

MIN_SPEEDUP = 1.1
"""Under ``auto``, oneDNN is chosen for a shape class only when ``torch.mm``'s best time is
at least this many times oneDNN's: a tie goes to ``torch.mm``, bit-identical to
``nn.Linear``."""


_setting = settings.GEMM


def gemm_backend() -> str:
    """The backend in force: the innermost :func:`use_backend`, else ``SPIKEINIT_GEMM``
    (default ``auto``)."""
    return _setting.value()


def use_backend(backend: str) -> contextlib.AbstractContextManager[None]:
    """Run the enclosed code with another GEMM backend (``auto``, ``onednn`` or ``torch``).

    Example:
        >>> from spikeinit.models import EventLinear
        >>> layer, x = EventLinear(8, 4, event_driven=False), torch.randn(2, 8)
        >>> with use_backend("torch"):  # bit-identical to nn.Linear
        ...     torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        True
    """
    return _setting.use(backend)


def _onednn_linear(a: Tensor, b: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


@functools.lru_cache(maxsize=1)
def onednn_available() -> bool:
    """True when PyTorch's oneDNN linear runs here and matches ``torch.mm`` on a probe."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(7, 33, generator=generator)
        b = torch.randn(19, 33, generator=generator)
        bias = torch.randn(19, generator=generator)
        result = _onednn_linear(a, b.t().contiguous().t(), bias)
        return bool(torch.allclose(result, torch.addmm(bias, a, b.t()), atol=1e-4, rtol=1e-4))
    except (AttributeError, RuntimeError, NotImplementedError, TypeError):
        return False


def uses_onednn(a: Tensor, b: Tensor) -> bool:
    """Whether :func:`linear_nt` sends ``a @ b.T`` to oneDNN under the current backend."""
    backend = gemm_backend()
    if backend == "torch" or a.ndim != 2 or b.ndim != 2:
        return False
    if backend == "auto" and tuning.exact():
        return False  # SPIKEINIT_TUNING=exact: torch.mm, bit-identical to nn.Linear
    if backend == "auto" and a.shape[0] * a.shape[1] * b.shape[0] < MIN_ONEDNN_MACS:
        return False  # checked first: the cheapest test, and the answer for small products
    eligible = (a.device.type == "cpu" and b.device.type == "cpu"
                and a.dtype == torch.float32 and b.dtype == torch.float32
                and a.numel() > 0 and b.numel() > 0
                and 0 not in a.stride() and 0 not in b.stride())
    if not eligible:
        return False
    if not onednn_available():
        if backend == "onednn":
            raise RuntimeError("SPIKEINIT_GEMM=onednn, but PyTorch's oneDNN linear is not "
                               "available here (torch.backends.mkldnn)")
        return False
    return backend == "onednn" or measured_choice(a, b) == "onednn"


# ----------------------------------------------------------------------------- measured choice


def _valid_entry(entry: Any) -> bool:
    return tuning.valid_entry(entry, "backend", ("onednn", "torch"), ("onednn_s", "torch_s"))


_choices = tuning.Choices("gemm", _valid_entry)
_fast: dict[tuple[int, ...], str] = {}  # (threads, M, K, N, layout bits) -> backend


def _layout(t: Tensor) -> str:
    return "r" if t.stride(1) == 1 else "c"


def shape_class(a: Tensor, b: Tensor) -> str:
    """The class of ``a @ b.T`` that shares a measured backend: each operand's layout (``r``
    rows contiguous, ``c`` columns contiguous, i.e. a transposed view) and ``M x K x N``, each
    rounded to a power of two.

    Example:
        >>> w = torch.zeros(1000, 784)
        >>> shape_class(torch.zeros(384, 784), w), shape_class(torch.zeros(384, 1000), w.t())
        ('rr 512x1024x1024', 'rc 512x1024x1024')
    """
    size = tuning.size_class
    return (f"{_layout(a)}{_layout(b)} {size(a.shape[0])}x{size(a.shape[1])}"
            f"x{size(b.shape[0])}")


def _onednn_product(a: Tensor, b: Tensor) -> Tensor:
    return _onednn_linear(a, b, None)


def _torch_product(a: Tensor, b: Tensor) -> Tensor:
    return torch.mm(a, b.t())


def measured_choice(a: Tensor, b: Tensor) -> str:
    """``"onednn"`` or ``"torch"``: the backend measured faster on this machine for
    :func:`shape_class` of ``a @ b.T`` (measured now on ``a`` and ``b`` if the class is new,
    and the budget allows; else ``"torch"`` for this process)."""
    threads = torch.get_num_threads()
    fast_key = (threads, a.shape[0], a.shape[1], b.shape[0], a.stride(1) == 1, b.stride(1) == 1)
    choice = _fast.get(fast_key)
    if choice is not None:
        return choice
    entry = tuning.decide(_choices, shape_class(a, b), lambda: _measure(a, b))
    _fast[fast_key] = entry["backend"]
    return str(entry["backend"])


def _measure(a: Tensor, b: Tensor) -> dict[str, Any]:
    if tuning.budget().exhausted:
        return {"backend": "torch", "source": "unmeasured (budget spent)"}
    request = vet.linear_request(a.shape[0], a.shape[1], b.shape[0], _layout(a), _layout(b))
    if not vet.vetted(request):
        return {"backend": "torch", "source": "oneDNN failed in a child process",
                tuning.MEASURED: True}
    samples = tuning.time_interleaved({"onednn": lambda: _onednn_product(a, b),
                                       "torch": lambda: _torch_product(a, b)})
    assert samples is not None  # the budget was checked above, and vetting spends none
    best = tuning.best(samples)
    faster = best["torch"] >= MIN_SPEEDUP * best["onednn"]
    # Cached when the runs agree, or when every run of one backend beats every run of the other.
    worst = {name: max(times) for name, times in samples.items()}
    decisive = (best["torch"] >= MIN_SPEEDUP * worst["onednn"] if faster
                else worst["torch"] < MIN_SPEEDUP * best["onednn"])
    clean = (tuning.stable(samples) or decisive) and tuning.machine_quiet()
    source = "measured" if clean else "measured (noisy)"
    return {"backend": "onednn" if faster else "torch", "onednn_s": best["onednn"],
            "torch_s": best["torch"], "source": source, tuning.MEASURED: True}


def backend_choices() -> dict[str, dict[str, Any]]:
    """The ``auto`` backend's decisions for the current thread count, by :func:`shape_class`:
    ``backend``, the best seconds ``onednn_s`` and ``torch_s`` where measured,
    ``measured: True`` where the decision rests on a measurement
    (:data:`spikeinit.engine.tuning.MEASURED`), and ``source``, a text for display
    (``measured`` in this process, ``measured (noisy)`` when the repeated runs disagreed,
    ``cache`` from an earlier process, ``unmeasured (budget spent)``, or why oneDNN was not a
    candidate)."""
    return _choices.items()


def forget_choices() -> None:
    """Drop this process's decisions (the cache file stays): the next product of each class
    reads the cache again, or measures."""
    with tuning.lock:
        _choices.clear()
        _fast.clear()


def linear_nt(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    r""":math:`C = A B^\top + \text{bias}` for 2-D ``a`` ``(M, K)`` and ``b`` ``(N, K)``.

    Any strides work (pass ``w.t()`` for :math:`A W`, ``g.t()`` and ``x.t()`` for
    :math:`g^\top x`); the result is a new contiguous ``(M, N)`` tensor. Run with no autograd
    graph: it is the kernel of :class:`~spikeinit.engine.event_linear.EventLinearFunction`.

    Example:
        >>> a, w = torch.randn(4, 3), torch.randn(5, 3)
        >>> torch.allclose(linear_nt(a, w), a @ w.T, atol=1e-6)
        True
    """
    if uses_onednn(a, b):
        return _onednn_linear(a, b, bias)
    if bias is None:
        return torch.mm(a, b.t())
    return torch.addmm(bias, a, b.t())
