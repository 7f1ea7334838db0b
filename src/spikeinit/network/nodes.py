"""The nodes of a network map: what :func:`~spikeinit.network.discover` returns.

A :class:`NetworkMap` holds the model's :class:`SynapticLayer` s and :class:`NeuronSite` s in the
order they ran, its :class:`Addition` s (tensor sums done in a ``forward``, outside any
module) and its :class:`Product` s (products of two tensors, the attention of spiking
transformers), each with its :class:`Operand` s, and the :class:`AttentionInput` of every
population a product drives. What lies between two of them is a chain of
:class:`Operation` s. Nothing here runs a model: these are the records the tracer's run is
turned into.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from spikeinit.adapters.description import NeuronDescription
from spikeinit.network.notes import Note
from spikeinit.network.probe import ActivityProbe

#: What feeds a synaptic layer (:attr:`SynapticLayer.input`).
INPUT_KINDS = ("data", "spikes", "synaptic", "sum", "product")


@dataclass(frozen=True, eq=False)
class Operation:
    """A module, or a tensor operation done outside any module, on the path between two layers.

    ``kind`` is one of ``avg-pool``, ``max-pool``, ``normalization`` (BatchNorm, LayerNorm, ...),
    ``dropout``, ``reshape`` (Flatten, Identity), ``residual-add`` (an :class:`Addition` of the
    map, named by ``name``, that adds other operands to the current; ``addend`` is their sum's
    mean and second moment measured on the sample), ``product`` (a :class:`Product` of the
    map, named by ``name``, that multiplies the current by another tensor: not modelled),
    ``unknown`` (a module spikeinit does not model) or ``tensor-op`` (the input was computed
    outside any module by an operation other than an addition or a product). ``window`` is the
    number of elements one pooling output reads (0 when unknown).

    Example:
        >>> Operation("pool", "avg-pool", window=4).label()
        'pool (avg-pool, 4 elements)'
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
    ``source``), ``sum`` (another addition), ``product`` (a :class:`Product`) or ``data``;
    ``ops`` are the operations between ``source`` and the addition. ``shared`` says that
    ``source``'s output also goes elsewhere
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
    block's ``forward``, and its operands.

    Example:
        >>> add = Addition("block.add", (Operand("conv", "synaptic"), Operand("lif", "spikes")))
        >>> [operand.source for operand in add.others("conv")]
        ['lif']
    """

    name: str
    operands: tuple[Operand, ...]

    def others(self, source: str | None) -> tuple[Operand, ...]:
        """The operands not produced by ``source``."""
        return tuple(operand for operand in self.operands if operand.source != source)


@dataclass(frozen=True)
class Product:
    r"""A product of two tensors computed outside any module, and its operands: a matrix
    product (``kind`` ``"matmul"``: ``@``, ``matmul``, ``bmm``, ``einsum``), which sums
    ``contracted`` terms per output entry (0 when unknown), or an elementwise one (``"mul"``).

    The spiking self-attention :math:`(V K^\top) Q` is two of them, the second with the first
    as an operand; ``scope`` names the module whose ``forward`` computes it (where an attention
    scale :math:`s` lives). ``mean``, ``second_moment`` and ``elements`` (the count) are its
    output's, on the sample (at the first call).

    Example:
        >>> spikes = Operand("qkv_lif", "spikes")
        >>> first = Product("attn.matmul", "matmul", "attn", (spikes, spikes), 16)
        >>> second = Product("attn.matmul1", "matmul", "attn",
        ...                  (Operand("attn.matmul", "product"), spikes), 8)
        >>> second.terms({"attn.matmul": first})
        128
    """

    name: str
    kind: str
    scope: str
    operands: tuple[Operand, ...]
    contracted: int = 0
    mean: float = 0.0
    second_moment: float = 0.0
    elements: int = 0

    def terms(self, products: dict[str, Product]) -> int:
        """The products of spikes summed per output entry, through the products among its
        operands (:math:`N d` for :math:`Q K^\top V`; 1 for an elementwise product of two
        spike trains); 0 when a matrix product's size is unknown."""
        own = self.contracted if self.kind == "matmul" else 1
        for operand in self.operands:
            inner = products.get(operand.source) if operand.kind == "product" else None
            if inner is not None:
                own *= inner.terms(products)
        return own

    def spike_sources(self, products: dict[str, Product]) -> list[str | None]:
        """The neurons whose spikes the product multiplies, through the products among its
        operands (``None`` for an operand that is not spikes)."""
        sources: list[str | None] = []
        for operand in self.operands:
            inner = products.get(operand.source) if operand.kind == "product" else None
            if inner is not None:
                sources += inner.spike_sources(products)
            else:
                sources.append(operand.source if operand.kind == "spikes" else None)
        return sources


@dataclass(frozen=True)
class AttentionInput:
    """A spiking population driven by a :class:`Product` (an attention population): its
    neuron, the product and the operations between them (the scale of spiking
    self-attention is a ``tensor-op``, a column sum a ``tensor-op`` too).

    Example:
        >>> AttentionInput("attn_lif", "attn.matmul1").product
        'attn.matmul1'
    """

    neuron: str
    product: str
    ops: tuple[Operation, ...] = ()


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
        >>> from spikeinit.network import discover
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
    """What :func:`~spikeinit.network.discover` found: synaptic layers and neurons in forward
    (or module) order, the additions, the products and the populations they drive
    (``attention``, by neuron name), and the probe of the traced run."""

    layers: list[SynapticLayer]
    neurons: list[NeuronSite]
    traced: bool
    internal: list[str] = field(default_factory=list)
    activity: ActivityProbe | None = None
    additions: dict[str, Addition] = field(default_factory=dict)
    data_inputs: dict[str, Tensor] = field(default_factory=dict)  # layer -> its data input
    products: dict[str, Product] = field(default_factory=dict)
    attention: dict[str, AttentionInput] = field(default_factory=dict)

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
