r"""What :func:`~spikeinit.init.model.initialize` did: one :class:`InitRecord` per layer, and
the :class:`InitResult` that holds them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, overload

from spikeinit.tables import TabularResult, fmt

__all__ = ["AttentionRecord", "InitRecord", "InitResult"]


@dataclass(frozen=True)
class InitRecord:
    r"""What :func:`~spikeinit.init.model.initialize` did to one layer.

    ``method`` is the method as it was asked for (``"trainable=0.05"``), ``mean`` and ``std``
    those of the weights drawn, ``threshold`` and ``beta`` those the method used (the effective
    threshold :math:`\tilde\theta = \theta/g`), ``input_second_moment`` the :math:`E[x^2]` it
    assumed for the layer's input (``None``: spikes of Gaussian membranes,
    :math:`Q(\tilde\theta_{src}/\sigma)`), and ``notes`` how pooling, normalization, dropout or
    unknown operations were taken into account.

    ``sigma`` is the target membrane std :math:`\sigma` of the neurons the layer drives (for the
    temporal methods: :math:`\sigma_1`, the std of the first layer's current, which sets their
    target rate). ``sigma_auto`` says whether ``initialize`` chose it (no ``sigma=`` passed,
    the method has an operating point), and ``sigma_reason`` why, with the slope
    :math:`a\varphi(a)/(2Q(a))`, :math:`a = \tilde\theta/\sigma`, at :math:`\sigma = 1` and at
    the chosen :math:`\sigma`. ``sigma_fixed_point`` says whether ``sigma`` is a fixed point of
    the one-step variance map, :math:`\sigma^2 \mapsto n\,\mathrm{Var}[w]\,Q(\tilde\theta/\sigma)`
    (the method draws :math:`\mathrm{Var}[w] = \sigma^2/(n\,E[x^2])`), whose stability
    :func:`spikeinit.report` checks.

    Example:
        >>> from spikeinit.init.model import initialize
        >>> from spikeinit.models import SpikingMLP
        >>> from spikeinit.theory import tail_probability
        >>> record = initialize(SpikingMLP([4, 8, 2]), "paper")[0]
        >>> record.name, record.fan_in, record.sigma, record.sigma_fixed_point
        ('blocks.0.0', 4, 1.0, True)
        >>> round(record.std, 4) == round((1 / (4 * tail_probability(1.0))) ** 0.5, 4)
        True
    """

    name: str
    method: str
    fan_in: int
    mean: float
    std: float
    neuron: str | None = None
    threshold: float | None = None
    beta: float | None = None
    input_second_moment: float | None = None
    notes: tuple[str, ...] = ()
    sigma: float | None = None
    sigma_auto: bool = False
    sigma_reason: str = ""
    sigma_fixed_point: bool = False


@dataclass(frozen=True)
class AttentionRecord:
    r"""What :func:`~spikeinit.init.model.initialize` did to one attention population (a
    spiking neuron driven by a product of spike matrices, :mod:`spikeinit.init.attention`):
    the ``knob`` it set (``"blocks.0.attn.scale"``, or a neuron's threshold), its value
    ``before`` and ``after`` (``None``: nothing set), the ``rate`` the sample then gives, and
    ``notes``.

    Example:
        >>> AttentionRecord("attn_lif", "attn.matmul1", "attn.scale", 0.125, 0.25, 0.1).knob
        'attn.scale'
    """

    neuron: str
    product: str
    knob: str | None
    before: float | None
    after: float | None
    rate: float | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitResult(TabularResult):
    """What :func:`~spikeinit.init.model.initialize` returns: one :class:`InitRecord` per layer
    it drew, in forward order (``layers``), with :meth:`table`, :meth:`print`, :meth:`to_csv`
    and :meth:`as_dicts`, like :func:`spikeinit.calibrate`'s and :func:`spikeinit.report`'s
    results. ``len``, iteration and indexing reach the records, and it compares equal to the
    list of its records. ``attention`` holds an :class:`AttentionRecord` per attention
    population.

    Example:
        >>> result = InitResult((InitRecord("fc", "paper", 4, 0.0, 0.5),))
        >>> len(result), result[0] is result.layers[0], [r.name for r in result]
        (1, True, ['fc'])
        >>> result == list(result.layers), InitResult() == []
        (True, True)
    """

    layers: tuple[InitRecord, ...] = ()
    attention: tuple[AttentionRecord, ...] = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, InitResult):
            return self.layers == other.layers
        if isinstance(other, (list, tuple)):
            return list(self.layers) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[InitRecord]:
        return iter(self.layers)

    @overload
    def __getitem__(self, index: int) -> InitRecord: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[InitRecord, ...]: ...

    def __getitem__(self, index: int | slice) -> InitRecord | tuple[InitRecord, ...]:
        return self.layers[index]

    def by_layer(self) -> dict[str, InitRecord]:
        """The records by layer name."""
        return {record.name: record for record in self.layers}

    def as_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per layer (``notes`` joined by ``; ``)."""
        return [{**asdict(record), "notes": "; ".join(record.notes)} for record in self.layers]

    def csv_fields(self) -> list[str]:
        return list(InitRecord.__dataclass_fields__)

    def table_rows(self) -> list[list[str]]:
        rows = [["layer", "method", "neuron", "fan_in", "theta/g", "beta", "sigma", "w mean",
                 "w std", "notes"]]
        for record in self.layers:
            sigma = fmt(record.sigma) + ("*" if record.sigma_auto else "")
            rows.append([record.name, record.method, record.neuron or "-", str(record.fan_in),
                         fmt(record.threshold), fmt(record.beta), sigma, fmt(record.mean),
                         fmt(record.std), ""])
        return rows

    def table_notes(self) -> tuple[str, ...]:
        reasons = {record.sigma_reason for record in self.layers if record.sigma_auto}
        notes = [f"sigma* chosen by initialize: {reason}" for reason in sorted(reasons)]
        notes += [f"attention population {record.neuron}: {record.knob} {fmt(record.before)} -> "
                  f"{fmt(record.after)}, rate {fmt(record.rate)} on the sample"
                  if record.knob is not None and record.after is not None else
                  f"attention population {record.neuron}: left as it was "
                  f"({'; '.join(record.notes)})"
                  for record in self.attention]
        return tuple(notes)
