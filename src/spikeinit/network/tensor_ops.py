r"""The tensor operations of a traced run that no module performs, seen as they happen.

A residual connection is written as a plain ``out + identity`` in a ``forward``: no module
runs it, so no forward hook sees it. :class:`TensorOperationMode`, a
:class:`~torch.overrides.TorchFunctionMode` entered around the traced run, sees every tensor
function instead, and hands those of :data:`NODE_FUNCTIONS` that take two floating-point
tensors and run outside any unit to an :class:`OperationRecorder` (the tracer), which makes
them nodes of the map: the additions (``+``, ``torch.add``, ``+=``), which become
:class:`~spikeinit.network.nodes.Addition` s, and the products of two tensors, which become
:class:`~spikeinit.network.nodes.Product` s: matrix products (``@``, ``matmul``, ``bmm``,
``einsum``: the :math:`QK^\top V` of spiking self-attention) and elementwise ones (``*``,
``torch.mul``: the :math:`K \odot V` and :math:`Q \odot g` of spike-driven attention). A
parameter or a 0-dimensional tensor is a weight or a scale, not a traced tensor: a product
with one stays an operation. A new kind of node is a new entry of :data:`NODE_FUNCTIONS` and
of what the recorder does with it.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

#: The tensor functions that become nodes of the map, by the kind of node (``"add"``: an
#: :class:`~spikeinit.network.nodes.Addition`; ``"matmul"`` and ``"mul"``: a matrix or an
#: elementwise :class:`~spikeinit.network.nodes.Product`).
NODE_FUNCTIONS: dict[str, frozenset[Any]] = {
    "add": frozenset({torch.add, Tensor.add, Tensor.add_, Tensor.__add__, Tensor.__radd__,
                      Tensor.__iadd__}),
    "matmul": frozenset({torch.matmul, Tensor.matmul, Tensor.__matmul__, Tensor.__rmatmul__,
                         torch.bmm, Tensor.bmm, torch.einsum}),
    "mul": frozenset({torch.mul, Tensor.mul, Tensor.mul_, Tensor.__mul__, Tensor.__rmul__,
                      Tensor.__imul__}),
}

#: The kinds of node that are products of two tensors.
PRODUCT_KINDS = ("matmul", "mul")

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
             out: Tensor, contracted: int = 0) -> None:
        """Record ``out`` as the node ``name`` of ``operands`` (``None``: seen before);
        ``contracted`` is the number of terms a matrix product sums per output entry."""


def node_operands(func: Any, args: tuple[Any, ...]) -> list[Tensor]:
    """The tensors that ``func`` combines: its first two arguments, or the operands of
    ``torch.einsum`` (after the equation, as arguments or as one list).

    Example:
        >>> x = torch.ones(2)
        >>> len(node_operands(torch.einsum, ("i,i->", x, x))), len(node_operands(torch.add, (x,)))
        (2, 1)
    """
    if func is torch.einsum:
        rest = args[1:]
        if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
            rest = tuple(rest[0])
        return [a for a in rest if isinstance(a, Tensor)]
    return [a for a in args[:2] if isinstance(a, Tensor)]


def node_kind(func: Any, args: tuple[Any, ...]) -> str | None:
    """The kind of node that calling ``func`` on ``args`` makes: one of
    :data:`NODE_FUNCTIONS` applied to two floating-point tensors (:func:`node_operands`), else
    ``None``. A product with a parameter or a 0-dimensional tensor (a weight, a scale) makes
    none.

    Example:
        >>> x = torch.ones(2)
        >>> node_kind(torch.add, (x, x)), node_kind(torch.add, (x, 1.0))
        ('add', None)
        >>> node_kind(torch.mul, (x, x)), node_kind(torch.mul, (x, torch.tensor(2.0)))
        ('mul', None)
    """
    kind = _KIND_OF.get(func)
    if kind is None:
        return None
    tensors = node_operands(func, args)
    if len(tensors) != 2 or not all(t.is_floating_point() for t in tensors):
        return None
    if kind in PRODUCT_KINDS and any(isinstance(t, nn.Parameter) or t.dim() == 0
                                     for t in tensors):
        return None
    return kind


def contracted_size(func: Any, args: tuple[Any, ...]) -> int:
    """The number of terms a matrix product sums per output entry: the last axis of its
    first operand, or for ``einsum`` the product of the sizes of the indices summed over;
    0 for any other function.

    Example:
        >>> a, b = torch.ones(3, 4), torch.ones(4, 5)
        >>> contracted_size(torch.matmul, (a, b))
        4
        >>> contracted_size(torch.einsum, ("ij,jk->ik", a, b))
        4
    """
    if _KIND_OF.get(func) != "matmul":
        return 0
    tensors = node_operands(func, args)
    if func is not torch.einsum:
        return int(tensors[0].shape[-1]) if tensors[0].dim() else 0
    equation = str(args[0]).replace(" ", "")
    inputs, _, output = equation.partition("->")
    sizes: dict[str, int] = {}
    for letters, tensor in zip(inputs.split(","), tensors):
        if "." in letters:  # an ellipsis: the summed sizes cannot be read
            return 0
        sizes.update(zip(letters, (int(n) for n in tensor.shape)))
    summed = [letter for letter in sizes if letter not in output] if "->" in equation else [
        letter for letter in sizes if inputs.count(letter) > 1]
    count = 1
    for letter in summed:
        count *= sizes[letter]
    return count


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
        operands = ([self.recorder.operand(t) for t in node_operands(func, args)] if new
                    else None)
        contracted = contracted_size(func, args)
        out = func(*args, **(kwargs or {}))
        if isinstance(out, Tensor):
            self.recorder.node(kind, name, operands, out, contracted)
        return out
