"""Find the synaptic layers of any model and the spiking neurons that feed them and that they drive.

With a sample input, :func:`discover` runs the model once with forward hooks on every layer and
follows the tensors: a layer's input is the output of the layer that produced it (the same
tensor, a view of it, or an equal copy such as a reshape: :mod:`.provenance`). Without a sample
it falls back to module order (the order of ``model.named_modules()``), which is right for
``nn.Sequential`` and for models that declare their layers in the order they run.

What sits between a neuron and a synaptic layer, or between a synaptic layer and its neurons, is
recorded as :class:`~spikeinit.network.nodes.Operation` s (:mod:`.module_kinds`): pooling,
normalization, dropout, reshapes, unknown modules and tensor operations that no module
performed (a scaling, a concatenation): the initializers use or report them, they are never
skipped silently.

Additions written as a plain ``+`` (or ``torch.add``, ``+=``) in a ``forward``, outside any
synaptic, neuron or other leaf module, are seen during the traced run (:mod:`.tensor_ops`) and
become :class:`~spikeinit.network.nodes.Addition` nodes of the map: the residual connections of
SEW-ResNets (spikes + spikes), MS-ResNets (currents + currents) and spiking ResNets (normalized
current + spikes). A layer fed by an addition has input ``"sum"``; an addition between a layer
and its neurons is a ``residual-add`` operation in its ``after``.

Products of two tensors (``@``, ``matmul``, ``bmm``, ``einsum``, ``*`` of two traced tensors)
become :class:`~spikeinit.network.nodes.Product` nodes the same way: the attention of spiking
transformers. A population driven by one is an attention population
(:class:`~spikeinit.network.nodes.AttentionInput`); a layer fed by one has input
``"product"``; a product between a layer and its neurons is a ``product`` operation in its
``after``, which is not modelled (a note says so).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import Tensor, nn

from spikeinit._validation import check_module
from spikeinit.adapters.description import UnsupportedNeuronError
from spikeinit.adapters.registry import adapter_for
from spikeinit.network.module_kinds import operation_of
from spikeinit.network.nodes import (
    Addition,
    AttentionInput,
    NetworkMap,
    NeuronSite,
    Operand,
    Operation,
    Product,
    SynapticLayer,
)
from spikeinit.network.notes import Note
from spikeinit.network.probe import ActivityProbe
from spikeinit.network.run import Forward, kept_statistics, run_model
from spikeinit.network.sample import check_finite_sample
from spikeinit.network.tensor_ops import TensorOperationMode
from spikeinit.network.time_axis import CalledNeuron, check_time_axis, run_failure
from spikeinit.network.tracer import Tracer
from spikeinit.network.units import Units, display, model_units
from spikeinit.theory.residual import sum_moments

#: Which consumer of a layer's output :meth:`_Links.downstream` follows first: a neuron, then
#: an operation, addition or product on the way to one, then a synaptic layer (which ends the
#: walk).
_FOLLOW_ORDER = {"neuron": 0, "add": 1, "product": 1, "synaptic": 2}

#: The kind of input a producer of each role gives.
_INPUT_OF_ROLE = {"neuron": "spikes", "synaptic": "synaptic", "add": "sum", "product": "product"}

#: The roles of the nodes of tensor operations (not units).
_NODE_ROLES = ("add", "product")


def discover(model: nn.Module, sample: Any = None, forward: Forward | None = None) -> NetworkMap:
    """Synaptic layers, neurons and what lies between them.

    With ``sample`` the model runs once (from rest, without gradients, normalization statistics
    restored afterwards) and the layers are linked by the tensors that flow between them;
    ``forward(model, sample)`` replaces ``model(sample)`` when given. Without ``sample`` they are
    linked in module order.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from spikeinit.neurons import LIF
        >>> net = nn.Sequential(nn.Linear(4, 3), LIF(), nn.Linear(3, 2), LIF())
        >>> [(layer.name, layer.target_name) for layer in discover(net).layers]
        [('0', '1'), ('2', '3')]
    """
    check_module("model", model)
    check_finite_sample(sample)
    units, internal = model_units(model)
    sites = {name: _site(name, module) for name, (module, role) in units.items()
             if role == "neuron"}
    if sample is None:
        return _module_order_map(units, sites, internal)
    tracer, probe = _trace(model, sample, forward, units, sites)
    if forward is None:  # the axes spikeinit took: stop where the run shows them wrong
        _check_axes(sample, units, sites, tracer, probe)
    return _Links(units, tracer).network_map(sites, internal, probe)


def _site(name: str, module: nn.Module) -> NeuronSite:
    adapter = adapter_for(module)
    try:
        return NeuronSite(name, module, adapter.describe(module))
    except UnsupportedNeuronError as error:
        return NeuronSite(name, module, None, problem=str(error))


def _layer(
    name: str,
    module: nn.Module,
    sites: dict[str, NeuronSite],
    source: str | None,
    target: str | None,
    before: list[Operation],
    after: list[Operation],
    input_kind: str,
    notes: list[Note],
    measured: float | None = None,
) -> SynapticLayer:
    src, tgt = sites.get(source) if source else None, sites.get(target) if target else None
    problem = None
    if tgt is not None and tgt.description is None:
        problem = f"drives {display(tgt.name)}, which is not understood: {tgt.problem}"
    elif tgt is None and src is not None and src.description is None:
        problem = f"is fed by {display(src.name)}, which is not understood: {src.problem}"
    elif input_kind == "synaptic":
        problem = "is fed directly by another synaptic layer (no spiking neuron in between)"
    return SynapticLayer(
        name=name, module=module,
        source=src.module if src else None, target=tgt.module if tgt else None,
        source_name=source, target_name=target,
        source_description=src.description if src else None,
        target_description=tgt.description if tgt else None,
        before=tuple(before), after=tuple(after), input=input_kind,
        source_driven_by_data=bool(src and src.driven_by_data),
        measured_second_moment=measured, problem=problem, notes=tuple(notes),
    )


def _module_order_map(units: Units, sites: dict[str, NeuronSite], internal: list[str]
                      ) -> NetworkMap:
    names = list(units)
    roles = [units[name][1] for name in names]
    driven = {}
    for index, name in enumerate(names):
        if roles[index] == "neuron":
            driven[name] = "synaptic" not in roles[:index]
    sites = {name: replace(site, driven_by_data=driven.get(name, False))
             for name, site in sites.items()}
    layers = []
    for index, name in enumerate(names):
        if roles[index] != "synaptic":
            continue
        after: list[Operation] = []
        target = None
        for other in names[index + 1:]:
            role = units[other][1]
            if role == "neuron":
                target = other
                break
            if role == "synaptic":
                break
            after.append(operation_of(other, units[other][0]))
        before: list[Operation] = []
        source, input_kind = None, "data"
        for other in reversed(names[:index]):
            role = units[other][1]
            if role == "neuron":
                source, input_kind = other, "spikes"
                break
            if role == "synaptic":
                input_kind = "synaptic"
                break
            before.insert(0, operation_of(other, units[other][0]))
        layers.append(_layer(name, units[name][0], sites, source, target, before, after,
                             input_kind, []))
    neurons = [sites[name] for name in names if name in sites]
    return NetworkMap(layers, neurons, traced=False, internal=internal)


def _trace(model: nn.Module, sample: Any, forward: Forward | None, units: Units,
           sites: dict[str, NeuronSite]) -> tuple[Tracer, ActivityProbe]:
    """Run ``model`` on ``sample`` once with the tracer's hooks, the tensor-operation mode and
    an :class:`ActivityProbe` on every neuron and synaptic layer (all removed afterwards)."""
    tracer = Tracer(units, sample)
    neurons = {name: (site.module, site.description.spike_amplitude if site.description else 1.0)
               for name, site in sites.items()}
    synapses = {name: module for name, (module, role) in units.items() if role == "synaptic"}
    handles = tracer.enter_hooks(model)
    try:
        with kept_statistics(model), ActivityProbe(neurons, synapses) as probe:
            handles += tracer.leave_hooks(model)
            try:
                with TensorOperationMode(tracer):
                    run_model(model, sample, forward)
            except Exception as error:  # the model rejected the sample: say how it was run
                raise run_failure(error, sample, forward is not None,
                                  [site.description for site in sites.values()
                                   if site.description is not None]) from error
    finally:
        for handle in handles:
            handle.remove()
    return tracer, probe


def _check_axes(sample: Any, units: Units, sites: dict[str, NeuronSite], tracer: Tracer,
                probe: ActivityProbe) -> None:
    """:func:`~spikeinit.network.time_axis.check_time_axis` on the traced run: the understood
    neurons in the order they ran, and the first synaptic layer that ran."""
    called = [CalledNeuron(name, sites[name].description, probe.neurons[name].calls,
                           tracer.input_shapes.get(name))
              for name in tracer.order
              if name in sites and sites[name].description is not None
              and probe.neurons[name].calls]
    first = next((name for name in tracer.order
                  if name in units and units[name][1] == "synaptic"), None)
    layer = None if first is None else (display(first), tracer.input_shapes.get(first),
                                        isinstance(units[first][0], nn.Linear))
    check_time_axis(sample, called, layer)


class _Links:
    """The graph of a traced run: who feeds whom, walked back from a unit to what feeds it and
    forward to the neuron it drives."""

    def __init__(self, units: Units, tracer: Tracer) -> None:
        self.units = units
        self.tracer = tracer
        self.consumers: dict[str, list[tuple[str, str]]] = {}
        for name in tracer.order:
            for producer, how in self.inputs_of(name):
                if producer is not None:
                    self.consumers.setdefault(producer, []).append((name, how))

    def role(self, name: str) -> str:
        """``"add"`` for an addition, ``"product"`` for a product, else the unit's role."""
        if name in self.tracer.additions:
            return "add"
        return "product" if name in self.tracer.products else self.units[name][1]

    def inputs_of(self, name: str) -> list[tuple[str | None, str]]:
        """``(producer, how)`` of each input of the unit, addition or product ``name``."""
        if name in self.tracer.additions:
            return [(source, how) for source, how, _, _ in self.tracer.additions[name]]
        if name in self.tracer.products:
            return [(source, how) for source, how, _, _ in self.tracer.products[name].operands]
        return [self.tracer.producer.get(name, (None, "data"))]

    def _operation(self, name: str) -> Operation:
        return operation_of(name, self.units[name][0], self.tracer.shapes.get(name))

    def walk_up(self, current: str, producer: str | None, how: str
                ) -> tuple[str | None, str, list[Operation]]:
        """From the input ``(producer, how)`` of ``current`` back to a neuron, a synaptic
        layer, an addition or the data: ``(origin, input kind, operations on the way)``."""
        ops: list[Operation] = []
        seen = {current}
        while True:
            if how == "unknown":
                ops.insert(0, Operation(f"<operation before {display(current)}>", "tensor-op"))
            if producer is None or producer in seen:
                return None, "data", ops
            kind = _INPUT_OF_ROLE.get(self.role(producer))
            if kind is not None:
                return producer, kind, ops
            ops.insert(0, self._operation(producer))
            current = producer
            seen.add(current)
            producer, how = self.tracer.producer.get(current, (None, "data"))

    def upstream(self, name: str) -> tuple[str | None, str, list[Operation]]:
        """Walk back from ``name`` to a neuron, a synaptic layer, an addition or the data."""
        return self.walk_up(name, *self.tracer.producer.get(name, (None, "data")))

    def downstream(self, name: str) -> tuple[str | None, list[Operation], list[Note]]:
        """Walk forward from ``name`` to the neuron it drives (or stop at a synaptic layer);
        an addition on the way is a ``residual-add`` operation."""
        ops: list[Operation] = []
        notes: list[Note] = []
        current, seen = name, {name}
        while True:
            following = self.consumers.get(current, [])
            if not following:
                return None, ops, notes
            plain = [n for n, _ in following if self.role(n) not in _NODE_ROLES]
            # a neuron reading the output drives the rate; a synaptic layer reading the same
            # tensor (an MS-ResNet's downsample on the membrane stream) is a side branch
            nxt, how = min(following, key=lambda item: _FOLLOW_ORDER.get(self.role(item[0]), 1))
            if len(plain) > 1:
                notes.append(Note("branch", name, f"the output of {display(current)} goes to "
                                  f"{', '.join(display(n) for n in plain)}; "
                                  f"followed {display(nxt)}"))
            if how == "unknown":
                ops.append(Operation(f"<operation before {display(nxt)}>", "tensor-op"))
            if nxt in seen:
                return None, ops, notes
            if self.role(nxt) == "neuron":
                return nxt, ops, notes
            if self.role(nxt) == "synaptic":
                notes.append(Note("branch", name,
                                  f"feeds the synaptic layer {display(nxt)} directly"))
                return None, ops, notes
            ops.append(self._node_operation(nxt, current))
            current = nxt
            seen.add(current)

    def _node_operation(self, name: str, current: str) -> Operation:
        """The operation that the unit or node ``name`` is on the way from ``current``."""
        role = self.role(name)
        if role == "add":
            return self._residual_add(name, current)
        if role == "product":
            return Operation(name, "product")
        return self._operation(name)

    def _residual_add(self, addition: str, current: str) -> Operation:
        """The ``residual-add`` operation that ``addition`` is on the way from ``current``:
        it adds the sum of its other operands (their measured moments)."""
        others = [(mean, second) for source, _, mean, second in self.tracer.additions[addition]
                  if source != current]
        return Operation(addition, "residual-add", addend=sum_moments(others))

    def driven_by_data(self, name: str) -> bool:
        """Whether the data reach ``name`` through neurons and operations only (no synaptic
        layer or addition on the way)."""
        current, seen = name, set()
        while current not in seen:
            seen.add(current)
            producer, kind, _ = self.upstream(current)
            if kind == "data":
                return True
            if kind in ("synaptic", "sum", "product"):
                return False
            current = producer
        return False

    def additions(self) -> dict[str, Addition]:
        """Every addition of the run with its operands, each walked back to its origin."""
        additions = {}
        for name, operands in self.tracer.additions.items():
            terms = []
            for source, how, mean, second in operands:
                origin, kind, ops = self.walk_up(name, source, how)
                shared = source is not None and len(self.consumers.get(source, [])) > 1
                terms.append(Operand(origin, kind, tuple(ops), shared, mean, second))
            additions[name] = Addition(name, tuple(terms))
        return additions

    def products(self) -> dict[str, Product]:
        """Every product of the run with its operands, each walked back to its origin."""
        products = {}
        for name, record in self.tracer.products.items():
            terms = []
            for source, how, mean, second in record.operands:
                origin, kind, ops = self.walk_up(name, source, how)
                shared = source is not None and len(self.consumers.get(source, [])) > 1
                terms.append(Operand(origin, kind, tuple(ops), shared, mean, second))
            products[name] = Product(name, record.kind, record.scope, tuple(terms),
                                     record.contracted, record.mean, record.second_moment,
                                     record.elements)
        return products

    def attention(self, called: list[str]) -> dict[str, AttentionInput]:
        """The populations among ``called`` that a product drives, through operations only."""
        found = {}
        for name in called:
            if self.units.get(name, (None, ""))[1] != "neuron":
                continue
            origin, kind, ops = self.upstream(name)
            if kind == "product" and origin is not None:
                found[name] = AttentionInput(name, origin, tuple(ops))
        return found

    def synaptic_layer(self, name: str, sites: dict[str, NeuronSite], probe: ActivityProbe
                       ) -> SynapticLayer:
        """The synaptic layer ``name`` linked to what feeds it and what it drives."""
        source, input_kind, before = self.upstream(name)
        target, after, notes = self.downstream(name)
        measured = probe.inputs[name].second_moment if probe.inputs[name].count else None
        layer = _layer(name, self.units[name][0], sites,
                       source if input_kind == "spikes" else None, target, before, after,
                       input_kind, notes, measured)
        return (replace(layer, source_name=source) if input_kind in ("sum", "product")
                else layer)

    def network_map(self, sites: dict[str, NeuronSite], internal: list[str],
                    probe: ActivityProbe) -> NetworkMap:
        """The map of the traced run: layers and neurons in the order they first ran, then
        those the run did not use."""
        tracer = self.tracer
        called = [name for name in tracer.order
                  if name not in tracer.additions and name not in tracer.products]
        sites = {name: replace(site, driven_by_data=name in tracer.producer
                               and self.driven_by_data(name))
                 for name, site in sites.items()}
        layers = []
        data_inputs: dict[str, Tensor] = {}
        for name in called + [n for n in self.units if n not in tracer.producer]:
            if self.units[name][1] != "synaptic":
                continue
            if name not in tracer.producer:
                layers.append(SynapticLayer(name, self.units[name][0],
                                            problem="was not used when running the sample"))
                continue
            layers.append(self.synaptic_layer(name, sites, probe))
            if layers[-1].input == "data" and name in tracer.inputs:
                data_inputs[name] = tracer.data_input(name)
        ordered = [sites[name] for name in called if name in sites]
        ordered += [site for name, site in sites.items() if name not in tracer.producer]
        return NetworkMap(layers, ordered, traced=True, internal=internal, activity=probe,
                          additions=self.additions(), data_inputs=data_inputs,
                          products=self.products(), attention=self.attention(called))
