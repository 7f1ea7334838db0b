"""Model-level initialization: find every synaptic layer and the neurons around it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import check_finite_nonnegative, check_unit_interval
from spikeinit.init.context import LayerContext
from spikeinit.init.fan import compute_fans
from spikeinit.init.registry import get_method
from spikeinit.neurons.lif import LIF

SYNAPTIC_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class SynapticLayer:
    """A Linear/Conv layer with the LIF populations that feed it and that it drives."""

    name: str
    module: nn.Module
    source: LIF | None
    target: LIF | None


@dataclass(frozen=True)
class InitRecord:
    """What :func:`initialize` did to one layer."""

    name: str
    method: str
    fan_in: int
    mean: float
    std: float


def find_synaptic_layers(model: nn.Module) -> list[SynapticLayer]:
    """Every Linear/Conv layer of ``model`` in module order, with its source and target LIF."""
    ordered = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, (*SYNAPTIC_TYPES, LIF))
    ]
    layers = []
    for index, (name, module) in enumerate(ordered):
        if isinstance(module, LIF):
            continue
        before = [m for _, m in ordered[:index] if isinstance(m, LIF)]
        after = [m for _, m in ordered[index + 1 :] if isinstance(m, LIF)]
        layers.append(SynapticLayer(name, module, before[-1] if before else None,
                                    after[0] if after else None))
    return layers


def layer_context(
    layer: SynapticLayer,
    threshold: float | None = None,
    beta: float | None = None,
    input_second_moment: float = 1.0,
    sigma: float = 1.0,
    steps: int = 1,
) -> LayerContext:
    """The :class:`LayerContext` of one layer, from its neurons (explicit values override)."""
    fan_in, fan_out = compute_fans(layer.module.weight)
    neuron = layer.target or layer.source
    params = neuron.params if neuron is not None else None
    own_threshold = params.threshold if params is not None else 1.0
    source_threshold = layer.source.params.threshold if layer.source is not None else None
    return LayerContext(
        fan_in=fan_in,
        fan_out=fan_out,
        threshold=own_threshold if threshold is None else threshold,
        beta=(params.beta if params is not None else 0.5) if beta is None else beta,
        reset=params.reset if params is not None else "subtract",
        reset_order=params.reset_order if params is not None else "delayed",
        surrogate=params.surrogate if params is not None else "fast-sigmoid",
        surrogate_slope=params.surrogate_slope if params is not None else None,
        sigma=sigma,
        steps=steps,
        input_threshold=(source_threshold if threshold is None else threshold)
        if layer.source is not None
        else None,
        input_second_moment=None if layer.source is not None else input_second_moment,
    )


def initialize(
    model: nn.Module,
    method: str = "paper",
    threshold: float | None = None,
    beta: float | None = None,
    sample: Tensor | None = None,
    input_second_moment: float | None = None,
    sigma: float = 1.0,
    steps: int = 1,
    generator: torch.Generator | None = None,
    **options: Any,
) -> list[InitRecord]:
    r"""Initialize every Linear/Conv layer of a model built from spikeinit's :class:`LIF`.

    Each layer gets the weight statistics of ``method`` (see
    :func:`~spikeinit.init.registry.available_methods`) for its fan-in and its neurons: a layer
    fed by spikes of neurons with threshold :math:`\theta` sees :math:`E[x^2] = Q(\theta/\sigma)`;
    the first layer, fed by data, sees :math:`E[x^2]` of ``sample`` (or
    ``input_second_moment``, default 1). For ``paper``: :math:`\mathrm{Var}[w]=\sigma^2/(n E[x^2])`.

    ``threshold`` and ``beta`` override the values read from the model's neurons. Layers with no
    :class:`LIF` around them are initialized with the defaults and named in a warning.

    Example:
        >>> from spikeinit.models import SpikingMLP
        >>> records = initialize(SpikingMLP([100, 100, 10]), method="paper")
    """
    chosen, parsed = get_method(method)
    options = {**parsed, **options}
    if threshold is not None:
        check_finite_nonnegative("threshold", threshold)
    if beta is not None:
        check_unit_interval("beta", beta)
    second_moment = _input_second_moment(sample, input_second_moment)
    layers = find_synaptic_layers(model)
    orphans = [layer.name for layer in layers if layer.source is None and layer.target is None]
    if orphans:
        warnings.warn(
            f"no LIF neurons found around {', '.join(orphans)}; initialized with default "
            "threshold/beta (pass threshold= and beta=, or use spikeinit's LIF)",
            stacklevel=2,
        )
    records = []
    for layer in layers:
        ctx = layer_context(layer, threshold, beta, second_moment, sigma, steps)
        bias = getattr(layer.module, "bias", None)
        mean, variance = chosen.initialize_(layer.module.weight, bias, ctx, generator, **options)
        records.append(InitRecord(layer.name, method, ctx.fan_in, mean, variance**0.5))
    return records


def _input_second_moment(sample: Tensor | None, given: float | None) -> float:
    if sample is not None and given is not None:
        raise ValueError("pass either sample or input_second_moment, not both")
    if sample is not None:
        return float(sample.detach().double().pow(2).mean())
    return 1.0 if given is None else float(given)
