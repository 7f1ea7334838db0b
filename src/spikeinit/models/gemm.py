r"""The dense GEMMs of the synaptic layers, through oneDNN where it is available.

A Linear layer costs three matrix products per training step, all of the form
:math:`C = A B^\top`:

.. math::

    y = x W^\top, \qquad \nabla_x = g\, (W^\top)^\top, \qquad
    \nabla_W = g^\top (x^\top)^\top,

with ``x`` the ``(R, in)`` input rows, ``W`` the ``(out, in)`` weight and ``g`` the
``(R, out)`` output gradient. :func:`linear_nt` computes :math:`A B^\top` (+ bias) for any
strides of ``A`` and ``B``, so the transposes are views, never copies.

PyTorch's CPU builds send ``torch.mm`` to MKL's SGEMM. On AMD CPUs MKL runs its AVX2 code
even where the CPU has AVX-512; oneDNN, which PyTorch also ships (it runs PyTorch's CPU
convolutions), picks its kernels from the CPU's features. Which is faster depends on the CPU
(``docs/benchmarks.md`` has the figures per CPU, measured with ``benchmarks/kernels.py``). The
sums are the same but in another order, so
results agree with ``torch.mm`` to float32 rounding, not bit for bit.

``SPIKEINIT_GEMM`` (or the :func:`use_backend` context manager) chooses the backend: ``auto``
(default: oneDNN for float32 CPU products of at least :data:`MIN_ONEDNN_MACS` multiply-adds,
when PyTorch has it and a probe product matches ``torch.mm``), ``onednn`` (oneDNN for every
float32 CPU product, an error if it is unavailable) or ``torch`` (``torch.mm``,
bit-identical to ``nn.Linear``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import torch
from torch import Tensor

GEMM_BACKENDS = ("auto", "onednn", "torch")
"""Values of the ``SPIKEINIT_GEMM`` environment variable."""

MIN_ONEDNN_MACS = 2**21
"""Smaller products (multiply-adds ``M * K * N``) go to ``torch.mm`` under ``auto``: oneDNN's
call has a fixed overhead that small products do not repay (docs/benchmarks.md)."""


_override: list[str] = []


def _checked(value: str, source: str) -> str:
    value = value.strip().lower() or "auto"
    if value not in GEMM_BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(GEMM_BACKENDS)}, got {value!r}")
    return value


def gemm_backend() -> str:
    """The backend in force: the innermost :func:`use_backend`, else ``SPIKEINIT_GEMM``
    (default ``auto``)."""
    if _override:
        return _override[-1]
    return _checked(os.environ.get("SPIKEINIT_GEMM", "auto"), "SPIKEINIT_GEMM")


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Run the enclosed code with another GEMM backend (``auto``, ``onednn`` or ``torch``).

    Example:
        >>> from spikeinit.models import EventLinear
        >>> layer, x = EventLinear(8, 4, event_driven=False), torch.randn(2, 8)
        >>> with use_backend("torch"):  # bit-identical to nn.Linear
        ...     torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        True
    """
    _override.append(_checked(backend, "backend"))
    try:
        yield
    finally:
        _override.pop()


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
    if backend == "torch":
        return False
    eligible = (a.device.type == "cpu" and b.device.type == "cpu"
                and a.dtype == torch.float32 and b.dtype == torch.float32
                and a.ndim == 2 and b.ndim == 2 and a.numel() > 0 and b.numel() > 0
                and 0 not in a.stride() and 0 not in b.stride())
    if not eligible:
        return False
    if backend == "auto" and a.shape[0] * a.shape[1] * b.shape[0] < MIN_ONEDNN_MACS:
        return False
    if not onednn_available():
        if backend == "onednn":
            raise RuntimeError("SPIKEINIT_GEMM=onednn, but PyTorch's oneDNN linear is not "
                               "available here (torch.backends.mkldnn)")
        return False
    return True


def linear_nt(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    r""":math:`C = A B^\top + \text{bias}` for 2-D ``a`` ``(M, K)`` and ``b`` ``(N, K)``.

    Any strides work (pass ``w.t()`` for :math:`A W`, ``g.t()`` and ``x.t()`` for
    :math:`g^\top x`); the result is a new contiguous ``(M, N)`` tensor. Run with no autograd
    graph: it is the kernel of :class:`~spikeinit.models.event_linear.EventLinearFunction`.

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
