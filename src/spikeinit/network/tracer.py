"""The tracer: forward hooks that record one run of a model, for the network graph.

For the first call of every unit (:mod:`.units`) the tracer records who produced its input
(:class:`~spikeinit.network.provenance.Provenance`), the input's shape and the element counts
of its input and output; for the synaptic layers fed by the data, the data of every call.
With :class:`~spikeinit.network.tensor_ops.TensorOperationMode` it records the additions and
the products of two tensors done in a container's ``forward``, outside any unit: each is named
after that container and its kind (``blocks.3.add``, its second one ``blocks.3.add1``;
``blocks.3.attn.matmul``, ``blocks.3.attn.mul``) and keeps its operands' producers and
moments (a product also its own moments and the terms it sums per entry). Only the first call
of a unit or node is linked: at the later steps of a single-step model the same graph runs
again. Inside a recurrent block (:func:`~spikeinit.network.recurrent.is_recurrent_block`) the
loop over the steps is the population's own: its operations are not nodes, and its neuron's
input is linked to the block's ``input`` layer as a ``loop`` (its currents are that layer's
output plus :math:`W_{rec} s[t-1]`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.errors import InternalError
from spikeinit.nested import first_tensor
from spikeinit.network.provenance import Provenance
from spikeinit.network.recurrent import is_recurrent_block, recurrent_block_parts
from spikeinit.network.tensor_ops import NODE_FUNCTIONS, PRODUCT_KINDS, OperandRecord
from spikeinit.network.units import Units, containers


def tensor_moments(x: Tensor) -> tuple[float, float]:
    """``(E[x], E[x^2])`` over the elements of ``x``, in float64.

    Example:
        >>> tensor_moments(torch.tensor([1.0, 3.0]))
        (2.0, 5.0)
    """
    values = x.detach().double()
    return float(values.mean()), float(values.square().mean())


@dataclass(frozen=True)
class ProductRecord:
    """What the tracer keeps of a product of two tensors: its kind (``"matmul"``, ``"mul"``),
    the container whose ``forward`` computed it, its operands, the terms a matrix product sums
    per entry (0: elementwise, or unknown), its output's mean and second moment and its
    element count."""

    kind: str
    scope: str
    operands: list[OperandRecord]
    contracted: int
    mean: float
    second_moment: float
    elements: int


class Tracer:
    """Forward hooks that record, for the first call of every unit, who produced its input,
    and the additions and products done outside any unit (the module docstring; the
    :class:`~spikeinit.network.tensor_ops.OperationRecorder` of the traced run).

    :meth:`enter_hooks` are registered before any other hooks of the run and
    :meth:`leave_hooks` after them, so that the sums another hook computes (the activity
    probe's) are not counted as the model's additions.
    """

    def __init__(self, units: Units, sample: Any) -> None:
        self.units = units
        self.origins = Provenance(sample)
        self.producer: dict[str, tuple[str | None, str]] = {}
        self.shapes: dict[str, tuple[int, int]] = {}
        self.input_shapes: dict[str, tuple[int, ...] | None] = {}  # at the first call
        self.additions: dict[str, list[OperandRecord]] = {}
        self.products: dict[str, ProductRecord] = {}
        self.inputs: dict[str, list[Tensor]] = {}  # every input of the layers fed by data
        self.depth = 0  # units being run: an addition inside one is part of it
        self.loop_inputs: dict[str, str] = {}  # a recurrent block's neuron -> its input layer
        self.scopes: list[tuple[str, dict[str, int]]] = [("", {})]  # name, nodes so far by kind

    @property
    def order(self) -> list[str]:
        """The units, additions and products in the order of their first call."""
        return self.origins.order

    def enter_hooks(self, model: nn.Module) -> list[Any]:
        """Register the hooks that record every unit's first call and count the units and
        containers being entered; returns their handles."""
        handles = []
        for name, (module, _) in self.units.items():
            handles.append(module.register_forward_pre_hook(self.enter_unit))
            handles.append(module.register_forward_hook(self.hook(name)))
        for name, module in containers(model, self.units):
            handles.append(module.register_forward_pre_hook(self.enter_scope(name)))
            if is_recurrent_block(module):  # its loop over the steps is the population's
                handles.append(module.register_forward_pre_hook(self.enter_unit))
                neuron, feed, _ = recurrent_block_parts(name)
                self.loop_inputs[neuron] = feed
        return handles

    def leave_hooks(self, model: nn.Module) -> list[Any]:
        """Register the hooks that close a unit or a container; returns their handles."""
        handles = [module.register_forward_hook(self.leave_unit)
                   for module, _ in self.units.values()]
        for _, module in containers(model, self.units):
            handles.append(module.register_forward_hook(self.leave_scope))
            if is_recurrent_block(module):
                handles.append(module.register_forward_hook(self.leave_unit))
        return handles

    def hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        """The forward hook that records the unit ``name``."""
        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if name in self.producer:  # later calls: only the first is linked (and kept)
                if name in self.inputs:  # ... except the data a first layer reads at each step
                    self.inputs[name].append(first_tensor(args))
                return
            x = first_tensor(args)
            self.producer[name] = self.origins.find(x)
            if self.producer[name] == (self.loop_inputs.get(name), "unknown"):
                self.producer[name] = (self.loop_inputs[name], "loop")
            self.input_shapes[name] = tuple(x.shape) if x is not None else None
            out = first_tensor(output)
            if x is not None and out is not None:
                self.shapes[name] = (x.numel(), out.numel())
            self.origins.record(name, output, out)
            self.origins.keep_alive(x)
            if self.units[name][1] == "synaptic" and x is not None and (
                    self.producer[name][0] is None):
                self.inputs[name] = [x]

        return record

    def enter_unit(self, *_: Any) -> None:
        self.depth += 1

    def leave_unit(self, *_: Any) -> None:
        self.depth -= 1

    def enter_scope(self, name: str) -> Callable[..., None]:
        def enter(*_: Any) -> None:
            self.scopes.append((name, {}))
        return enter

    def leave_scope(self, *_: Any) -> None:
        if len(self.scopes) > 1:
            self.scopes.pop()

    def next_node(self, kind: str) -> tuple[str, bool]:
        """The name of the node of ``kind`` about to run, named after the module whose
        ``forward`` does it and the kind (``blocks.3.add``; its second one ``blocks.3.add1``),
        and whether it is new."""
        _check_kind(kind)
        scope, counts = self.scopes[-1]
        count = counts.get(kind, 0)
        counts[kind] = count + 1
        name = (f"{scope}." if scope else "") + (kind if count == 0 else f"{kind}{count}")
        return name, name not in self.additions and name not in self.products

    def operand(self, x: Tensor) -> OperandRecord:
        """Who produced ``x``, and its mean and second moment (before an in-place addition)."""
        return (*self.origins.find(x), *tensor_moments(x))

    def node(self, kind: str, name: str, operands: list[OperandRecord] | None,
             out: Tensor, contracted: int = 0) -> None:
        """Record ``out`` as the addition or product ``name`` of ``operands`` (``None``: seen
        before, at an earlier step); ``contracted``: the terms a matrix product sums."""
        _check_kind(kind)
        if operands is None:  # seen before: only the first is linked (and kept)
            return
        if kind in PRODUCT_KINDS:
            self.products[name] = ProductRecord(kind, self.scopes[-1][0], operands, contracted,
                                                *tensor_moments(out), out.numel())
        else:
            self.additions[name] = operands
        self.origins.record(name, out, out)

    def data_input(self, name: str) -> Tensor:
        """The data the synaptic layer ``name`` read at every call (the steps of a per-step
        model) as one batch, when they have the same shape; else its first call's."""
        inputs = self.inputs[name]
        if len(inputs) > 1 and all(t is not None and t.shape == inputs[0].shape
                                   for t in inputs):
            return torch.cat(inputs, dim=0)
        return inputs[0]


def _check_kind(kind: str) -> None:
    if kind not in NODE_FUNCTIONS:
        raise InternalError(f"the tracer records {', '.join(NODE_FUNCTIONS)} nodes, got a "
                            f"{kind!r} node")
