r"""The :class:`~spikeinit.init.context.LayerContext` of a traced layer: its fan-in, the neurons it
drives and what its input is, read from the network map."""

from __future__ import annotations

from dataclasses import replace

from spikeinit.init.context import LayerContext
from spikeinit.init.fan import compute_fans
from spikeinit.network import (
    NeuronDescription,
    Note,
    SynapticLayer,
    current_factor,
    input_statistics,
)
from spikeinit.neurons.parameters import LIFParameters

__all__ = ["layer_context", "layer_context_and_notes", "neuron_parameters"]


def neuron_parameters(description: NeuronDescription | None, threshold: float,
                      beta: float | None) -> LIFParameters:
    """The receiving neurons as the engine's :class:`LIFParameters` (unit gain, effective
    threshold), with ``threshold`` and a given ``beta`` in place of theirs."""
    base = description.lif_parameters() if description is not None else LIFParameters()
    return replace(base, threshold=threshold, beta=base.beta if beta is None else beta)


def _effective_threshold(description: NeuronDescription | None, given: float | None) -> float:
    r"""``given``, else the neurons' :math:`\tilde\theta = \theta/g`, else 1."""
    if given is not None:
        return given
    return description.effective_threshold if description is not None else 1.0


def _spike_input(layer: SynapticLayer, source_threshold: float, source_sigma: float,
                 factor: float, notes: list[Note]) -> float | None:
    r""":math:`E[x^2]` of a layer fed by spikes: measured when its source neurons are driven by
    the data, else :math:`a^2 Q(\tilde\theta_{src}/\sigma_{src})` through what lies between
    (``None`` for plain unit spikes: the method's own formula)."""
    measured = layer.measured_second_moment
    if layer.source_driven_by_data and measured is not None and measured > 0:
        notes.insert(0, Note("measured", layer.name,
                             f"input spikes of {layer.source_name} (driven by the data): "
                             f"E[x^2] = {measured:.4g} measured on the sample"))
        return measured * factor
    if layer.source_driven_by_data and measured is not None:
        notes.insert(0, Note("assumed", layer.name,
                             f"the input spikes of {layer.source_name} are silent on "
                             "the sample: assumed Q(theta/sigma) instead"))
    _, spikes, before = input_statistics(layer, source_sigma, source_threshold)
    notes[:0] = before
    plain = (not before and factor == 1.0 and (
        layer.source_description is None or layer.source_description.spike_amplitude == 1))
    return None if plain else spikes * factor


def _data_input(layer: SynapticLayer, input_second_moment: float, factor: float,
                notes: list[Note]) -> float:
    """:math:`E[x^2]` of a layer fed by data: measured on the sample, else the one given."""
    measured = layer.measured_second_moment
    data = measured if measured is not None and measured > 0 else input_second_moment
    if measured is not None and measured <= 0:
        notes.insert(0, Note("assumed", layer.name,
                             f"the input of {layer.name} is all zeros on the sample: "
                             f"assumed E[x^2] = {input_second_moment:g}"))
    return data * factor


def layer_context_and_notes(
    layer: SynapticLayer,
    threshold: float | None,
    beta: float | None,
    input_second_moment: float,
    sigma: float,
    steps: int,
    depth: int | None,
    input_sigma: float | None = None,
    first_sigma: float | None = None,
    summed: tuple[float, Note] | None = None,
) -> tuple[LayerContext, list[Note]]:
    """:func:`layer_context`, and the notes on how its input was read. ``summed`` is the
    predicted :math:`E[x^2]` of an addition that feeds the layer, with its note
    (:meth:`~spikeinit.init.residual.ResidualPlan.input_second_moment`)."""
    fan_in, fan_out = compute_fans(layer.module.weight)
    description = layer.target_description or layer.source_description
    factor, notes = current_factor(layer)
    source_threshold = None
    if summed is not None:
        second: float | None = summed[0] * factor
        notes.insert(0, summed[1])
    elif layer.source is not None:
        source_threshold = _effective_threshold(layer.source_description, threshold)
        source_sigma = sigma if input_sigma is None else input_sigma
        second = _spike_input(layer, source_threshold, source_sigma, factor, notes)
    else:
        second = _data_input(layer, input_second_moment, factor, notes)
    ctx = LayerContext(
        fan_in=fan_in,
        fan_out=fan_out,
        neuron=neuron_parameters(description, _effective_threshold(description, threshold),
                                 beta),
        sigma=sigma,
        steps=steps,
        depth=depth,
        input_threshold=source_threshold,
        input_second_moment=second,
        input_sigma=input_sigma,
        input_is_data=layer.source is None and summed is None,
        first_sigma=first_sigma,
        synaptic_decay=description.synaptic_decay if description is not None else 0.0,
    )
    return ctx, notes


def layer_context(
    layer: SynapticLayer,
    threshold: float | None = None,
    beta: float | None = None,
    input_second_moment: float = 1.0,
    sigma: float = 1.0,
    steps: int = 1,
    depth: int | None = None,
    input_sigma: float | None = None,
    first_sigma: float | None = None,
) -> LayerContext:
    r"""The :class:`LayerContext` of one layer, from its neurons (explicit values override).

    The threshold is the receiving neurons' effective :math:`\tilde\theta = \theta/g`; a layer
    fed by spikes sees :math:`E[x^2] = a^2 Q(\tilde\theta_{src}/\sigma)` (changed by pooling,
    dropout or normalization on the way, see :func:`~spikeinit.network.input_statistics`), or
    the value measured on the sample when its source neurons are driven by the data; a layer
    fed by data sees the measured :math:`E[x^2]`, else ``input_second_moment``. ``sigma`` is
    the receiving neurons' membrane std, ``input_sigma`` the source neurons' (``None``:
    ``sigma``), ``first_sigma`` the std of the current into the network's first spiking layer
    (the temporal methods').

    Example:
        >>> from spikeinit.models import SpikingMLP
        >>> from spikeinit.network import discover
        >>> layers = discover(SpikingMLP([4, 8, 2])).layers
        >>> ctx = layer_context(layers[1])
        >>> ctx.fan_in, ctx.fan_out, ctx.threshold, ctx.input_threshold
        (8, 2, 1.0, 1.0)
    """
    return layer_context_and_notes(layer, threshold, beta, input_second_moment, sigma, steps,
                                   depth, input_sigma, first_sigma)[0]
