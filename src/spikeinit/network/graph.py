"""Find the synaptic layers of any model and the spiking neurons that feed them and that they drive.

With a sample input, :func:`discover` runs the model once with forward hooks on every layer and
follows the tensors: a layer's input is the output of the layer that produced it (the same
tensor, a view of it, or an equal copy such as a reshape). Without a sample it falls back to
module order (the order of ``model.named_modules()``), which is right for ``nn.Sequential`` and
for models that declare their layers in the order they run.

What sits between a neuron and a synaptic layer, or between a synaptic layer and its neurons, is
recorded as :class:`Operation` s: pooling, normalization, dropout, reshapes, unknown modules and
tensor operations that no module performed (a scaling, a concatenation): the initializers use or
report them, they are never skipped silently.

Additions written as a plain ``+`` (or ``torch.add``, ``+=``) in a ``forward``, outside any
synaptic, neuron or other leaf module, are seen during the traced run (a
:class:`~torch.overrides.TorchFunctionMode`) and become :class:`Addition` nodes of the map:
the residual connections of SEW-ResNets (spikes + spikes), MS-ResNets (currents + currents) and
spiking ResNets (normalized current + spikes). A layer fed by an addition has input ``"sum"``;
an addition between a layer and its neurons is a ``residual-add`` operation in its ``after``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from spikeinit._validation import check_module
from spikeinit.adapters.description import NeuronDescription, UnsupportedNeuronError
from spikeinit.adapters.registry import (
    adapter_for,
    all_tensors,
    first_tensor,
    is_spiking_neuron,
    reset_neurons,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.network.notes import Note
from spikeinit.network.probe import ActivityProbe
from spikeinit.network.time_axis import CalledNeuron, check_time_axis, run_failure
from spikeinit.network.time_axis import SampleError as SampleError  # its old home
from spikeinit.theory.residual import sum_moments

SYNAPTIC_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
INPUT_KINDS = ("data", "spikes", "synaptic", "sum")

_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
              nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
              nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
          nn.modules.instancenorm._InstanceNorm)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)

Forward = Callable[[nn.Module, Any], Any]


def sample_argument(sample: Any, batch: Any, function: str) -> Any:
    """The sample a user passed: ``sample`` (the one name), or ``batch=`` (its old name in
    ``calibrate`` and ``report``, accepted with a :class:`DeprecationWarning`)."""
    if batch is not None:
        if sample is not None:
            raise InvalidArgumentError(f"{function}: pass sample= only (batch= is its old name)")
        warnings.warn(f"{function}(batch=...) is now {function}(sample=...)", DeprecationWarning,
                      stacklevel=3)
        return batch
    if sample is None:
        raise InvalidArgumentError(
            f"{function}: sample is required (a batch of inputs to run the model "
                         "on)")
    return sample


def check_finite_sample(sample: Any) -> None:
    """Raise a ``ValueError`` naming ``sample`` when one of its tensors holds NaN or inf: one
    such value would skew every measured moment (and so every scale) without an error."""
    for tensor in all_tensors(sample):
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise InvalidArgumentError(
                    f"sample: {bad} of its {tensor.numel()} values are NaN or "
                                 "infinite; pass finite inputs")


#: Dropouts of the frameworks that are not subclasses of torch's (SpikingJelly's share one mask
#: over the time steps), by the module and name of their class.
FRAMEWORK_DROPOUTS = ("spikingjelly.activation_based.layer.dropout.Dropout",
                      "spikingjelly.activation_based.layer.dropout.Dropout2d")


def is_dropout(module: nn.Module) -> bool:
    """Whether ``module`` is a dropout: torch's, or a framework's in :data:`FRAMEWORK_DROPOUTS`."""
    return isinstance(module, _DROPOUTS) or any(
        f"{cls.__module__}.{cls.__qualname__}" in FRAMEWORK_DROPOUTS
        for cls in type(module).__mro__)


@dataclass(frozen=True, eq=False)
class Operation:
    """A module, or a tensor operation done outside any module, on the path between two layers.

    ``kind`` is one of ``avg-pool``, ``max-pool``, ``normalization`` (BatchNorm, LayerNorm, ...),
    ``dropout``, ``reshape`` (Flatten, Identity), ``residual-add`` (an :class:`Addition` of the
    map, named by ``name``, that adds other operands to the current; ``addend`` is their sum's
    mean and second moment measured on the sample), ``unknown`` (a module
    spikeinit does not model) or ``tensor-op`` (the input was computed outside any module by an
    operation other than an addition). ``window`` is the number of elements one pooling output
    reads (0 when unknown).
    """

    name: str
    kind: str
    module: nn.Module | None = None
    window: int = 0
    addend: tuple[float, float] | None = None  # residual-add: (E[x], E[x^2]) of the others

    @property
    def dropout_probability(self) -> float:
        """The drop probability of a dropout in training mode (0 in eval mode or otherwise)."""
        if self.kind != "dropout" or self.module is None or not self.module.training:
            return 0.0
        return float(getattr(self.module, "p", 0.0))

    def label(self) -> str:
        """Short text such as ``pool (avg-pool, 4 elements)``."""
        detail = f", {self.window} elements" if self.window and "pool" in self.kind else ""
        return f"{self.name} ({self.kind}{detail})"


@dataclass(frozen=True)
class Operand:
    """One term of an :class:`Addition`: what produced it and the operations on the way.

    ``kind`` is ``spikes`` (of the neuron ``source``), ``synaptic`` (the current of the layer
    ``source``), ``sum`` (another addition) or ``data``; ``ops`` are the operations between
    ``source`` and the addition. ``shared`` says that ``source``'s output also goes elsewhere
    (the shortcut of a residual block, which the block's branch reads as well). ``mean`` and
    ``second_moment`` were measured on the sample (at the first call).
    """

    source: str | None
    kind: str
    ops: tuple[Operation, ...] = ()
    shared: bool = False
    mean: float = 0.0
    second_moment: float = 0.0


@dataclass(frozen=True)
class Addition:
    """A sum of tensors computed outside any module, e.g. ``out + identity`` in a residual
    block's ``forward``, and its operands."""

    name: str
    operands: tuple[Operand, ...]

    def others(self, source: str | None) -> tuple[Operand, ...]:
        """The operands not produced by ``source``."""
        return tuple(operand for operand in self.operands if operand.source != source)


@dataclass(frozen=True, eq=False)
class NeuronSite:
    """One spiking population of the model: its module, its description (or why there is none)."""

    name: str
    module: nn.Module
    description: NeuronDescription | None
    problem: str | None = None
    driven_by_data: bool = False


@dataclass(frozen=True, eq=False)
class SynapticLayer:
    """A Linear/Conv layer, the neurons that feed it (``source``) and that it drives (``target``).

    ``input`` says what feeds it: ``"spikes"`` of ``source``, ``"data"`` (no neuron and no
    synaptic layer upstream), ``"synaptic"`` (another weight layer directly) or ``"sum"`` (an
    :class:`Addition`, named by ``source_name``; ``source`` is then ``None``). ``before`` and
    ``after`` are the operations between ``source`` and the layer, and between the layer and
    ``target``. ``measured_second_moment`` is :math:`E[x^2]` of the layer's input on the sample
    (when one was run). ``problem`` says why the layer must be left unchanged.

    Example:
        >>> import torch
        >>> from spikeinit.models import deep_network
        >>> layers = discover(deep_network(20, 3), torch.rand(2, 4, 20)).layers
        >>> for layer in layers:
        ...     print(layer.name, layer.input, layer.source_name, layer.target_name)
        blocks.0.0 spikes input_neurons blocks.0.1
        blocks.1.0 spikes blocks.0.1 blocks.1.1
    """

    name: str
    module: nn.Module
    source: nn.Module | None = None
    target: nn.Module | None = None
    source_name: str | None = None
    target_name: str | None = None
    source_description: NeuronDescription | None = None
    target_description: NeuronDescription | None = None
    before: tuple[Operation, ...] = ()
    after: tuple[Operation, ...] = ()
    input: str = "spikes"
    source_driven_by_data: bool = False
    measured_second_moment: float | None = None
    problem: str | None = None
    notes: tuple[Note, ...] = ()


@dataclass
class NetworkMap:
    """What :func:`discover` found: synaptic layers and neurons in forward (or module) order."""

    layers: list[SynapticLayer]
    neurons: list[NeuronSite]
    traced: bool
    internal: list[str] = field(default_factory=list)
    activity: ActivityProbe | None = None
    additions: dict[str, Addition] = field(default_factory=dict)
    data_inputs: dict[str, Tensor] = field(default_factory=dict)  # layer -> its data input

    def neuron(self, name: str) -> NeuronSite | None:
        """The neuron site called ``name``."""
        return next((site for site in self.neurons if site.name == name), None)

    def steps(self) -> int | None:
        """The time steps of the traced run, read from the first understood population: its
        calls for a single-step neuron, the leading axis of its output for a multi-step one
        (``None`` without a trace)."""
        if self.activity is None:
            return None
        for site in self.neurons:
            activity = self.activity.neurons.get(site.name)
            if site.description is None or activity is None or not activity.calls:
                continue
            if site.description.step_mode == "multi":
                return activity.shape[0] if activity.shape else None
            return activity.calls
        return None

    def driver(self, neuron_name: str) -> SynapticLayer | None:
        """The (first) synaptic layer whose target is the neuron ``neuron_name``."""
        return next((layer for layer in self.layers if layer.target_name == neuron_name), None)


def run_model(model: nn.Module, batch: Any, forward: Forward | None = None) -> Any:
    """One pass from rest without gradients: ``forward(model, batch)`` or ``model(batch)``."""
    reset_neurons(model)
    try:
        with torch.no_grad():
            return forward(model, batch) if forward is not None else model(batch)
    finally:
        reset_neurons(model)


@contextlib.contextmanager
def dropout_off(model: nn.Module) -> Iterator[None]:
    """Put ``model``'s dropout layers in eval mode for the probing passes (restored after)."""
    changed = [m for m in model.modules() if is_dropout(m) and m.training]
    for module in changed:
        module.eval()
    try:
        yield
    finally:
        for module in changed:
            module.train()


@contextlib.contextmanager
def kept_statistics(model: nn.Module) -> Iterator[None]:
    """Restore normalization running statistics (BatchNorm buffers) after the probing passes."""
    saved = [(module, {k: v.clone() for k, v in module.named_buffers(recurse=False)
                       if v is not None})
             for module in model.modules() if isinstance(module, _NORMS)]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, buffers in saved:
                for key, value in buffers.items():
                    getattr(module, key).copy_(value)


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
    units, internal = _units(model)
    sites = {name: _site(name, module) for name, (module, role) in units.items()
             if role == "neuron"}
    if sample is None:
        return _module_order_map(units, sites, internal)
    return _traced_map(model, sample, forward, units, sites, internal)


def _display(name: str) -> str:
    return name or "<model>"


def _inside(name: str, prefix: str) -> bool:
    return name != prefix and (prefix == "" or name.startswith(prefix + "."))


def _units(model: nn.Module) -> tuple[dict[str, tuple[nn.Module, str]], list[str]]:
    """Neurons (as wholes), synaptic layers and the other leaf modules, in module order."""
    units: dict[str, tuple[nn.Module, str]] = {}
    internal: list[str] = []
    wholes: list[str] = []
    for name, module in model.named_modules():
        if any(_inside(name, prefix) for prefix in wholes):
            continue
        if is_spiking_neuron(module):
            units[name] = (module, "neuron")
            wholes.append(name)
            adapter = adapter_for(module)
            internal += [f"{name}.{rel}" if name else rel
                         for rel in adapter.internal_layers(module)]
        elif isinstance(module, SYNAPTIC_TYPES):
            units[name] = (module, "synaptic")
            wholes.append(name)
        elif next(module.children(), None) is None:
            units[name] = (module, "other")
    return units, internal


def _site(name: str, module: nn.Module) -> NeuronSite:
    adapter = adapter_for(module)
    try:
        return NeuronSite(name, module, adapter.describe(module))
    except UnsupportedNeuronError as error:
        return NeuronSite(name, module, None, problem=str(error))


def _operation(name: str, module: nn.Module, shapes: tuple[int, int] | None = None) -> Operation:
    if isinstance(module, _AVG_POOLS + _MAX_POOLS):
        kind = "avg-pool" if isinstance(module, _AVG_POOLS) else "max-pool"
        kernel = getattr(module, "kernel_size", None)
        if kernel is not None:
            if isinstance(kernel, (tuple, list)):
                sizes = tuple(kernel)
            elif isinstance(module, (nn.AvgPool1d, nn.MaxPool1d)):
                sizes = (kernel,)
            elif isinstance(module, (nn.AvgPool3d, nn.MaxPool3d)):
                sizes = (kernel,) * 3
            else:
                sizes = (kernel,) * 2
            window = math.prod(int(k) for k in sizes)
        elif shapes is not None and shapes[1] > 0:
            window = max(int(round(shapes[0] / shapes[1])), 1)
        else:
            window = 0
        return Operation(name, kind, module, window)
    if isinstance(module, _NORMS):
        return Operation(name, "normalization", module)
    if is_dropout(module):
        return Operation(name, "dropout", module)
    if isinstance(module, _RESHAPES):
        return Operation(name, "reshape", module)
    return Operation(name, "unknown", module)


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
        problem = f"drives {_display(tgt.name)}, which is not understood: {tgt.problem}"
    elif tgt is None and src is not None and src.description is None:
        problem = f"is fed by {_display(src.name)}, which is not understood: {src.problem}"
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


def _module_order_map(
    units: dict[str, tuple[nn.Module, str]], sites: dict[str, NeuronSite], internal: list[str]
) -> NetworkMap:
    names = list(units)
    roles = [units[name][1] for name in names]
    driven = {}
    for index, name in enumerate(names):
        if roles[index] == "neuron":
            driven[name] = "synaptic" not in roles[:index]
    sites = {name: _with_data_flag(site, driven.get(name, False)) for name, site in sites.items()}
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
            after.append(_operation(other, units[other][0]))
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
            before.insert(0, _operation(other, units[other][0]))
        layers.append(_layer(name, units[name][0], sites, source, target, before, after,
                             input_kind, []))
    neurons = [sites[name] for name in names if name in sites]
    return NetworkMap(layers, neurons, traced=False, internal=internal)


def _with_data_flag(site: NeuronSite, driven_by_data: bool) -> NeuronSite:
    return NeuronSite(site.name, site.module, site.description, site.problem, driven_by_data)


def _storage_key(tensor: Tensor) -> int | None:
    try:
        if tensor.numel() == 0 or tensor.is_sparse:
            return None
        pointer = tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None
    return pointer or None


#: The tensor functions that :class:`_Tracer` records as additions.
_ADDITIONS = frozenset({torch.add, Tensor.add, Tensor.add_, Tensor.__add__, Tensor.__radd__,
                        Tensor.__iadd__})


class _Tracer:
    """Forward hooks that record, for the first call of every unit, who produced its input, and
    the additions done outside any unit (see :class:`_AdditionMode`)."""

    def __init__(self, units: dict[str, tuple[nn.Module, str]], sample: Any) -> None:
        self.units = units
        self.order: list[str] = []
        self.outputs: dict[str, Tensor | None] = {}
        self.producer: dict[str, tuple[str | None, str]] = {}
        self.shapes: dict[str, tuple[int, int]] = {}
        self.input_shapes: dict[str, tuple[int, ...] | None] = {}  # at the first call
        self.additions: dict[str, list[tuple[str | None, str, float, float]]] = {}
        self.inputs: dict[str, list[Tensor]] = {}  # every input of the layers fed by data
        self.depth = 0  # units being run: an addition inside one is part of it
        self.scopes: list[list[Any]] = [["", 0]]  # [container name, additions so far]
        self._by_id: dict[int, str] = {}
        self._by_storage: dict[int, str] = {}
        self._data = {key for t in all_tensors(sample) if (key := _storage_key(t)) is not None}
        self._keep: list[Any] = []

    def hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if name in self.producer:  # later calls: only the first is linked (and kept)
                if name in self.inputs:  # ... except the data a first layer reads at each step
                    self.inputs[name].append(first_tensor(args))
                return
            x = first_tensor(args)
            self.producer[name] = self._find(x)
            self.input_shapes[name] = tuple(x.shape) if x is not None else None
            out = first_tensor(output)
            if x is not None and out is not None:
                self.shapes[name] = (x.numel(), out.numel())
            self.order.append(name)
            self.outputs[name] = out
            self._remember(name, output)
            self._keep.append((x, output))
            if self.units[name][1] == "synaptic" and x is not None and (
                    self.producer[name][0] is None):
                self.inputs[name] = [x]

        return record

    def _remember(self, name: str, output: Any) -> None:
        for tensor in all_tensors(output):
            self._by_id[id(tensor)] = name
            key = _storage_key(tensor)
            if key is not None:
                self._by_storage[key] = name

    def enter_unit(self, *_: Any) -> None:
        self.depth += 1

    def leave_unit(self, *_: Any) -> None:
        self.depth -= 1

    def enter_scope(self, name: str) -> Callable[..., None]:
        def enter(*_: Any) -> None:
            self.scopes.append([name, 0])
        return enter

    def leave_scope(self, *_: Any) -> None:
        if len(self.scopes) > 1:
            self.scopes.pop()

    def next_addition(self) -> tuple[str, bool]:
        """The name of the addition about to run, named after the module whose ``forward``
        does it (``blocks.3.add``; its second one ``blocks.3.add1``), and whether it is new."""
        scope = self.scopes[-1]
        name = (f"{scope[0]}." if scope[0] else "") + ("add" if scope[1] == 0
                                                        else f"add{scope[1]}")
        scope[1] += 1
        return name, name not in self.additions

    def operand(self, x: Tensor) -> tuple[str | None, str, float, float]:
        """Who produced ``x``, and its mean and second moment (before an in-place addition)."""
        return (*self._find(x), *_moments(x))

    def addition(self, name: str, operands: list[tuple[str | None, str, float, float]] | None,
                 out: Tensor) -> None:
        """Record ``out`` as the addition ``name`` of ``operands`` (``None``: seen before, at an
        earlier step)."""
        if operands is None:  # seen before: only the first is linked (and kept)
            return
        self.additions[name] = operands
        self.order.append(name)
        self.outputs[name] = out
        self._keep.append(out)  # alive, so that its storage is not reused by a later tensor
        self._remember(name, out)

    def _find(self, x: Tensor | None) -> tuple[str | None, str]:
        if x is None:
            return None, "data"
        if id(x) in self._by_id:
            return self._by_id[id(x)], "exact"
        key = _storage_key(x)
        if key is not None and key in self._by_storage:
            return self._by_storage[key], "view"
        if (key is not None and key in self._data) or not self.order:
            return None, "data"
        for name in reversed(self.order):
            out = self.outputs[name]
            if out is not None and out.dtype == x.dtype and (
                    _same_values(out, x) or _repeated_over_time(out, x)
                    or _stacked_over_time(out, x)):
                return name, "copy"
        return self.order[-1], "unknown"


def _joined(inputs: list[Tensor]) -> Tensor:
    """The inputs of every call (the steps of a per-step model) as one batch, when they have
    the same shape; else the first call's."""
    if len(inputs) > 1 and all(t is not None and t.shape == inputs[0].shape for t in inputs):
        return torch.cat(inputs, dim=0)
    return inputs[0]


def _moments(x: Tensor) -> tuple[float, float]:
    values = x.detach().double()
    return float(values.mean()), float(values.square().mean())


class _AdditionMode(TorchFunctionMode):
    """Sees every tensor function of the traced run and hands the additions of two tensors done
    outside any unit to the tracer (the mode is off while it handles one)."""

    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        tensors = [a for a in args[:2] if isinstance(a, Tensor)]
        if (func not in _ADDITIONS or self.tracer.depth != 0 or len(tensors) != 2
                or not all(t.is_floating_point() for t in tensors)):
            return func(*args, **(kwargs or {}))
        name, new = self.tracer.next_addition()
        operands = [self.tracer.operand(t) for t in tensors] if new else None
        out = func(*args, **(kwargs or {}))
        if isinstance(out, Tensor):
            self.tracer.addition(name, operands, out)
        return out


def _same_values(out: Tensor, x: Tensor) -> bool:
    return out.numel() == x.numel() and torch.equal(out.reshape(-1), x.reshape(-1))


def _repeated_over_time(out: Tensor, x: Tensor) -> bool:
    """``x`` is ``out`` copied over a new leading time axis, as a per-frame layer run once on a
    static frame returns it (``spikeinit.models.time_distributed.once_over_time``)."""
    return (x.ndim == out.ndim + 1 and x.shape[1:] == out.shape
            and torch.equal(x, out.unsqueeze(0).expand_as(x)))


def _stacked_over_time(out: Tensor, x: Tensor) -> bool:
    """``x`` stacks, over a new leading time axis (or flattened into the batch axis), the
    outputs of a module called once per step, starting with ``out`` (its first call):
    ``torch.stack(spikes)`` between layers, the idiom of single-step neurons looped over time."""
    if x.ndim == out.ndim + 1:
        return x.shape[1:] == out.shape and x.shape[0] > 1 and torch.equal(x[0], out)
    # the same, flattened to (T * B, ...) for a layer-major synapse
    return (x.ndim == out.ndim >= 1 and x.shape[1:] == out.shape[1:] and out.shape[0] > 0
            and x.shape[0] > out.shape[0] and x.shape[0] % out.shape[0] == 0
            and torch.equal(x[:out.shape[0]], out))


def _containers(model: nn.Module, units: dict[str, tuple[nn.Module, str]]
                ) -> list[tuple[str, nn.Module]]:
    """The modules that are neither units nor inside one: where residual additions are done."""
    return [(name, module) for name, module in model.named_modules()
            if name not in units and not any(_inside(name, unit) for unit in units)]


def _hooks(model: nn.Module, units: dict[str, tuple[nn.Module, str]], tracer: _Tracer
           ) -> list[Any]:
    """The tracer's hooks: recording every unit's first call, and keeping count of the units
    and containers being run (registered before the probe's; :func:`_leave_hooks` after)."""
    handles = []
    for name, (module, _) in units.items():
        handles.append(module.register_forward_pre_hook(tracer.enter_unit))
        handles.append(module.register_forward_hook(tracer.hook(name)))
    for name, module in _containers(model, units):
        handles.append(module.register_forward_pre_hook(tracer.enter_scope(name)))
    return handles


def _leave_hooks(model: nn.Module, units: dict[str, tuple[nn.Module, str]], tracer: _Tracer
                 ) -> list[Any]:
    """Hooks that close a unit or container, registered last so that they run after the
    probe's (whose sums must not count as the model's additions)."""
    handles = [module.register_forward_hook(tracer.leave_unit) for module, _ in units.values()]
    handles += [module.register_forward_hook(tracer.leave_scope)
                for _, module in _containers(model, units)]
    return handles


#: Which consumer of a layer's output ``downstream`` follows first: a neuron, then an
#: operation or addition on the way to one, then a synaptic layer (which ends the walk).
_FOLLOW_ORDER = {"neuron": 0, "add": 1, "synaptic": 2}


def _check_axes(sample: Any, units: dict[str, tuple[nn.Module, str]],
                sites: dict[str, NeuronSite], tracer: _Tracer, probe: ActivityProbe) -> None:
    """:func:`~spikeinit.network.time_axis.check_time_axis` on the traced run: the understood
    neurons in the order they ran, and the first synaptic layer that ran."""
    called = [CalledNeuron(name, sites[name].description, probe.neurons[name].calls,
                           tracer.input_shapes.get(name))
              for name in tracer.order
              if name in sites and sites[name].description is not None
              and probe.neurons[name].calls]
    first = next((name for name in tracer.order
                  if name in units and units[name][1] == "synaptic"), None)
    layer = None if first is None else (_display(first), tracer.input_shapes.get(first),
                                        isinstance(units[first][0], nn.Linear))
    check_time_axis(sample, called, layer)


def _traced_map(
    model: nn.Module,
    sample: Any,
    forward: Forward | None,
    units: dict[str, tuple[nn.Module, str]],
    sites: dict[str, NeuronSite],
    internal: list[str],
) -> NetworkMap:
    tracer = _Tracer(units, sample)
    neurons = {name: (site.module, site.description.spike_amplitude if site.description else 1.0)
               for name, site in sites.items()}
    synapses = {name: module for name, (module, role) in units.items() if role == "synaptic"}
    handles = _hooks(model, units, tracer)
    try:
        with kept_statistics(model), ActivityProbe(neurons, synapses) as probe:
            handles += _leave_hooks(model, units, tracer)
            try:
                with _AdditionMode(tracer):
                    run_model(model, sample, forward)
            except Exception as error:  # the model rejected the sample: say how it was run
                raise run_failure(error, sample, forward is not None,
                                  [site.description for site in sites.values()
                                   if site.description is not None]) from error
    finally:
        for handle in handles:
            handle.remove()
    if forward is None:  # the axes spikeinit took: stop where the run shows them wrong
        _check_axes(sample, units, sites, tracer, probe)

    def role(name: str) -> str:
        return "add" if name in tracer.additions else units[name][1]

    def inputs_of(name: str) -> list[tuple[str | None, str]]:
        if name in tracer.additions:
            return [(source, how) for source, how, _, _ in tracer.additions[name]]
        return [tracer.producer.get(name, (None, "data"))]

    consumers: dict[str, list[tuple[str, str]]] = {}
    for name in tracer.order:
        for producer, how in inputs_of(name):
            if producer is not None:
                consumers.setdefault(producer, []).append((name, how))

    def walk_up(current: str, producer: str | None, how: str
                ) -> tuple[str | None, str, list[Operation]]:
        """From the input ``(producer, how)`` of ``current`` back to a neuron, a synaptic
        layer, an addition or the data."""
        ops: list[Operation] = []
        seen = {current}
        while True:
            if how == "unknown":
                ops.insert(0, Operation(f"<operation before {_display(current)}>", "tensor-op"))
            if producer is None or producer in seen:
                return None, "data", ops
            kind = {"neuron": "spikes", "synaptic": "synaptic", "add": "sum"}.get(role(producer))
            if kind is not None:
                return producer, kind, ops
            ops.insert(0, _operation(producer, units[producer][0], tracer.shapes.get(producer)))
            current = producer
            seen.add(current)
            producer, how = tracer.producer.get(current, (None, "data"))

    def upstream(name: str) -> tuple[str | None, str, list[Operation]]:
        """Walk back from ``name`` to a neuron, a synaptic layer, an addition or the data."""
        return walk_up(name, *tracer.producer.get(name, (None, "data")))

    def downstream(name: str) -> tuple[str | None, list[Operation], list[Note]]:
        """Walk forward from ``name`` to the neuron it drives (or stop at a synaptic layer);
        an addition on the way is a ``residual-add`` operation."""
        ops: list[Operation] = []
        notes: list[Note] = []
        current, seen = name, {name}
        while True:
            following = consumers.get(current, [])
            if not following:
                return None, ops, notes
            plain = [n for n, _ in following if role(n) != "add"]  # additions: modelled
            # a neuron reading the output drives the rate; a synaptic layer reading the same
            # tensor (an MS-ResNet's downsample on the membrane stream) is a side branch
            nxt, how = min(following, key=lambda item: _FOLLOW_ORDER.get(role(item[0]), 1))
            if len(plain) > 1:
                notes.append(Note("branch", name, f"the output of {_display(current)} goes to "
                                  f"{', '.join(_display(n) for n in plain)}; "
                                  f"followed {_display(nxt)}"))
            if how == "unknown":
                ops.append(Operation(f"<operation before {_display(nxt)}>", "tensor-op"))
            if nxt in seen:
                return None, ops, notes
            if role(nxt) == "neuron":
                return nxt, ops, notes
            if role(nxt) == "synaptic":
                notes.append(Note("branch", name,
                                  f"feeds the synaptic layer {_display(nxt)} directly"))
                return None, ops, notes
            if role(nxt) == "add":
                others = [(mean, second) for source, _, mean, second in tracer.additions[nxt]
                          if source != current]
                ops.append(Operation(nxt, "residual-add", addend=sum_moments(others)))
            else:
                ops.append(_operation(nxt, units[nxt][0], tracer.shapes.get(nxt)))
            current = nxt
            seen.add(current)

    def driven_by_data(name: str) -> bool:
        current, seen = name, set()
        while current not in seen:
            seen.add(current)
            producer, kind, _ = upstream(current)
            if kind == "data":
                return True
            if kind in ("synaptic", "sum"):
                return False
            current = producer
        return False

    additions = {}
    for name, operands in tracer.additions.items():
        terms = []
        for source, how, mean, second in operands:
            origin, kind, ops = walk_up(name, source, how)
            shared = source is not None and len(consumers.get(source, [])) > 1
            terms.append(Operand(origin, kind, tuple(ops), shared, mean, second))
        additions[name] = Addition(name, tuple(terms))

    called = [name for name in tracer.order if name not in tracer.additions]
    data_inputs: dict[str, Tensor] = {}
    sites = {name: _with_data_flag(site, name in tracer.producer and driven_by_data(name))
             for name, site in sites.items()}
    layers = []
    for name in called + [n for n in units if n not in tracer.producer]:
        module, unit_role = units[name]
        if unit_role != "synaptic":
            continue
        if name not in tracer.producer:
            layers.append(SynapticLayer(name, module, problem="was not used when running the "
                                                              "sample"))
            continue
        source, input_kind, before = upstream(name)
        target, after, notes = downstream(name)
        measured = probe.inputs[name].second_moment if probe.inputs[name].count else None
        layer = _layer(name, module, sites, source if input_kind == "spikes" else None,
                       target, before, after, input_kind, notes, measured)
        if input_kind == "sum":
            layer = replace(layer, source_name=source)
        if input_kind == "data" and name in tracer.inputs:
            data_inputs[name] = _joined(tracer.inputs[name])
        layers.append(layer)
    ordered = [sites[name] for name in called if name in sites]
    ordered += [site for name, site in sites.items() if name not in tracer.producer]
    return NetworkMap(layers, ordered, traced=True, internal=internal, activity=probe,
                      additions=additions, data_inputs=data_inputs)
