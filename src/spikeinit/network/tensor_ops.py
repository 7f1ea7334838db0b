"""The tensor operations of a traced run that no module performs, seen as they happen.

A residual connection is written as a plain ``out + identity`` in a ``forward``: no module
runs it, so no forward hook sees it. :class:`TensorOperationMode`, a
:class:`~torch.overrides.TorchFunctionMode` entered around the traced run, sees every tensor
function instead, and hands those of :data:`NODE_FUNCTIONS` that take two floating-point
tensors and run outside any unit to an :class:`OperationRecorder` (the tracer), which makes
them nodes of the map. Today these are the additions (``+``, ``torch.add``, ``+=``), which
become :class:`~spikeinit.network.nodes.Addition` s; a new kind of node is a new entry of
:data:`NODE_FUNCTIONS` and of what the recorder does with it.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

#: The tensor functions that become nodes of the map, by the kind of node (``"add"``: an
#: :class:`~spikeinit.network.nodes.Addition`).
NODE_FUNCTIONS: dict[str, frozenset[Any]] = {
    "add": frozenset({torch.add, Tensor.add, Tensor.add_, Tensor.__add__, Tensor.__radd__,
                      Tensor.__iadd__}),
}

_KIND_OF = {func: kind for kind, functions in NODE_FUNCTIONS.items() for func in functions}

#: What the recorder keeps of an operand: its producer, how it was found, its mean and
#: second moment.
OperandRecord = tuple[str | None, str, float, float]


class OperationRecorder(Protocol):
    """What :class:`TensorOperationMode` asks of the tracer."""

    #: The units being run: an operation inside one is part of it (not a node).
    depth: int

    def next_node(self, kind: str) -> tuple[str, bool]:
        """The name of the node of ``kind`` about to run, and whether it is new."""

    def operand(self, x: Tensor) -> OperandRecord:
        """Who produced ``x``, and its moments (taken before the operation runs)."""

    def node(self, kind: str, name: str, operands: list[OperandRecord] | None,
             out: Tensor) -> None:
        """Record ``out`` as the node ``name`` of ``operands`` (``None``: seen before)."""


def node_kind(func: Any, args: tuple[Any, ...]) -> str | None:
    """The kind of node that calling ``func`` on ``args`` makes: one of
    :data:`NODE_FUNCTIONS` applied to two floating-point tensors (its first two arguments),
    else ``None``.

    Example:
        >>> x = torch.ones(2)
        >>> node_kind(torch.add, (x, x)), node_kind(torch.add, (x, 1.0))
        ('add', None)
        >>> node_kind(torch.mul, (x, x)) is None
        True
    """
    kind = _KIND_OF.get(func)
    if kind is None:
        return None
    tensors = [a for a in args[:2] if isinstance(a, Tensor)]
    if len(tensors) != 2 or not all(t.is_floating_point() for t in tensors):
        return None
    return kind


class TensorOperationMode(TorchFunctionMode):
    """Sees every tensor function of the traced run and hands those that make a node of the
    map (:func:`node_kind`), done outside any unit, to ``recorder`` (the mode is off while it
    handles one)."""

    def __init__(self, recorder: OperationRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kind = node_kind(func, args)
        if kind is None or self.recorder.depth != 0:
            return func(*args, **(kwargs or {}))
        name, new = self.recorder.next_node(kind)
        operands = [self.recorder.operand(t) for t in args[:2]] if new else None
        out = func(*args, **(kwargs or {}))
        if isinstance(out, Tensor):
            self.recorder.node(kind, name, operands, out)
        return out
