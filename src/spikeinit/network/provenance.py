"""Which unit produced a tensor of the traced run: the links of the network graph.

During the traced run every unit's (and every recorded tensor operation's) output is
remembered. A later input ``x`` is then traced back to its producer, in this order:

- ``exact``: ``x`` is one of the output tensors itself (the same Python object);
- ``view``: ``x`` shares an output's storage (a view, a slice, an in-place result);
- ``data``: ``x`` shares the sample's storage, or nothing was produced yet;
- ``copy``: ``x`` equals, value for value (``torch.equal``), an output of the same dtype, the
  latest first (only the latest when ``x`` is constant, as a silent population's zeros are):
  a reshape that copied, that output repeated over a new leading time axis
  (:func:`repeated_over_time`), or stacked with the later calls of the same module
  (:func:`stacked_over_time`);
- ``unknown``: none of these; the latest output is taken as the producer, and the graph
  records a ``tensor-op`` operation in between.

The tracer adds one kind of its own: ``loop``, the input of a recurrent block's neuron, which
is its ``input`` layer's output plus the block's own recurrent current
(:mod:`spikeinit.network.tracer`).

The outputs (and the inputs of the units) are kept alive for the whole run, so that no later
tensor reuses their storage and is mistaken for a view of them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spikeinit.nested import all_tensors


def storage_key(tensor: Tensor) -> int | None:
    """The address of ``tensor``'s storage, or ``None`` for an empty or sparse tensor (or one
    without a storage)."""
    try:
        if tensor.numel() == 0 or tensor.is_sparse:
            return None
        pointer = tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None
    return pointer or None


def is_constant(x: Tensor) -> bool:
    """Every element of ``x`` is the same (or ``x`` is empty): its values cannot tell which
    output it copies.

    Example:
        >>> is_constant(torch.zeros(2, 3)), is_constant(torch.tensor([0.0, 1.0]))
        (True, False)
    """
    flat = x.reshape(-1)
    return flat.numel() == 0 or bool((flat == flat[0]).all())


def same_values(out: Tensor, x: Tensor) -> bool:
    """``x`` holds the elements of ``out`` in the same order, whatever its shape.

    Example:
        >>> same_values(torch.arange(6.0), torch.arange(6.0).reshape(2, 3))
        True
    """
    return out.numel() == x.numel() and torch.equal(out.reshape(-1), x.reshape(-1))


def repeated_over_time(out: Tensor, x: Tensor) -> bool:
    """``x`` is ``out`` copied over a new leading time axis, as a per-frame layer run once on a
    static frame returns it (``spikeinit.models.time_distributed.once_over_time``).

    Example:
        >>> frame = torch.rand(2, 3)
        >>> repeated_over_time(frame, frame.expand(4, 2, 3).clone())
        True
    """
    return (x.ndim == out.ndim + 1 and x.shape[1:] == out.shape
            and torch.equal(x, out.unsqueeze(0).expand_as(x)))


def stacked_over_time(out: Tensor, x: Tensor) -> bool:
    """``x`` stacks, over a new leading time axis (or flattened into the batch axis), the
    outputs of a module called once per step, starting with ``out`` (its first call):
    ``torch.stack(spikes)`` between layers, the idiom of single-step neurons looped over time.

    Example:
        >>> first, second = torch.rand(2, 3), torch.rand(2, 3)
        >>> stacked_over_time(first, torch.stack([first, second]))
        True
        >>> stacked_over_time(first, torch.cat([first, second]))  # flattened: (T * B, ...)
        True
    """
    if x.ndim == out.ndim + 1:
        return x.shape[1:] == out.shape and x.shape[0] > 1 and torch.equal(x[0], out)
    # the same, flattened to (T * B, ...) for a layer-major synapse
    return (x.ndim == out.ndim >= 1 and x.shape[1:] == out.shape[1:] and out.shape[0] > 0
            and x.shape[0] > out.shape[0] and x.shape[0] % out.shape[0] == 0
            and torch.equal(x[:out.shape[0]], out))


class Provenance:
    """The producers of the tensors of one traced run (module docstring).

    Example:
        >>> sample = torch.rand(2, 3)
        >>> origins = Provenance(sample)
        >>> out = sample * 2
        >>> origins.record("layer", out, out)
        >>> origins.find(out), origins.find(out[0]), origins.find(out.clone().reshape(3, 2))
        (('layer', 'exact'), ('layer', 'view'), ('layer', 'copy'))
        >>> origins.find(sample), origins.find(None)
        ((None, 'data'), (None, 'data'))
    """

    def __init__(self, sample: Any) -> None:
        self.order: list[str] = []
        self.outputs: dict[str, Tensor | None] = {}
        self._by_id: dict[int, str] = {}
        self._by_storage: dict[int, str] = {}
        self._data = {key for t in all_tensors(sample) if (key := storage_key(t)) is not None}
        self._alive: list[Any] = []

    def record(self, name: str, output: Any, first: Tensor | None) -> None:
        """Remember every tensor of ``output`` as produced by ``name``; ``first`` (its first
        tensor) is the one later inputs are compared with value for value."""
        self.order.append(name)
        self.outputs[name] = first
        for tensor in all_tensors(output):
            self._by_id[id(tensor)] = name
            key = storage_key(tensor)
            if key is not None:
                self._by_storage[key] = name
        self.keep_alive(output)

    def keep_alive(self, *objects: Any) -> None:
        """Hold ``objects`` until the run ends, so that their storage is not reused."""
        self._alive.append(objects)

    def find(self, x: Tensor | None) -> tuple[str | None, str]:
        """``(producer, how)``: who produced ``x`` and how it was recognized (module
        docstring); the producer is ``None`` for the data."""
        if x is None:
            return None, "data"
        if id(x) in self._by_id:
            return self._by_id[id(x)], "exact"
        key = storage_key(x)
        if key is not None and key in self._by_storage:
            return self._by_storage[key], "view"
        if (key is not None and key in self._data) or not self.order:
            return None, "data"
        # A constant tensor (a silent population's zeros) equals every other one: only the
        # latest output can be its copy.
        candidates = self.order[-1:] if is_constant(x) else reversed(self.order)
        for name in candidates:
            out = self.outputs[name]
            if out is not None and out.dtype == x.dtype and (
                    same_values(out, x) or repeated_over_time(out, x)
                    or stacked_over_time(out, x)):
                return name, "copy"
        return self.order[-1], "unknown"
