"""The networks that ``spikeinit train`` builds, and their initialization from the data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from spikeinit.experiments.training.config import TrainConfig
from spikeinit.init.model import InitRecord, find_synaptic_layers, initialize, layer_context
from spikeinit.init.registry import get_method
from spikeinit.models.cnn import SpikingCNN
from spikeinit.models.mlp import SpikingMLP


def build_model(config: TrainConfig, input_shape: Sequence[int], classes: int) -> nn.Module:
    """The network of ``config``: the paper's MLP or a :class:`SpikingCNN`.

    ``input_shape`` is ``(C, H, W)`` of one frame; the MLP sees it flattened. The encoded
    input (:func:`~spikeinit.experiments.training.encoding.encode`) goes straight into the
    first Linear/Conv layer: the ``lif`` encoding's input LIF layer is part of the encoding.
    MLP sizes are ``[C*H*W] + [width] * depth + [classes]``.
    """
    lif = {"beta": config.beta, "threshold": config.threshold, "surrogate": config.surrogate,
           "surrogate_slope": config.surrogate_slope}
    if config.model == "mlp":
        sizes = [math.prod(input_shape), *[config.width] * config.depth, classes]
        return SpikingMLP(sizes, input_layer=False, **lif)
    hidden = (config.width,) if config.width else ()
    return SpikingCNN(tuple(input_shape), classes, config.channels, hidden, norm=config.norm,
                      **lif)


def initialize_model(
    model: nn.Module,
    method: str,
    sample: Tensor,
    steps: int = 1,
    generator: torch.Generator | None = None,
) -> list[InitRecord]:
    """Initialize every layer with ``method``; the first layer uses the data's statistics.

    ``sample`` is a batch of encoded inputs ``(T, B, ...)``: the first synaptic layer sees
    them, so :func:`spikeinit.initialize` draws it from their second moment ``E[x^2]``. A
    :class:`SpikingMLP` that keeps its own input LIF layer (``input_layer=True``) feeds the first
    Linear *that layer's* spikes: their measured second moment (the input layer's firing rate on
    the data) replaces the Gaussian-membrane assumption ``Q(theta)`` for that layer.
    """
    records = initialize(model, method=method, sample=sample, steps=steps, generator=generator)
    if not isinstance(model, SpikingMLP) or model.input_neurons is None or not model.blocks:
        return records
    with torch.no_grad():
        spikes = model.input_neurons(sample)
        model.input_neurons.reset_state()
    second_moment = max(float(spikes.double().pow(2).mean()), 1e-6)
    layers = find_synaptic_layers(model)
    depth = len({id(layer.target) for layer in layers if layer.target is not None}) + 1
    first = layers[0]
    ctx = replace(layer_context(first, steps=steps, depth=depth), input_threshold=None,
                  input_second_moment=second_moment)
    chosen, options = get_method(method)
    mean, variance = chosen.initialize_(first.module.weight, getattr(first.module, "bias", None),
                                        ctx, generator, **options)
    records[0] = InitRecord(first.name, method, ctx.fan_in, mean, variance**0.5)
    return records
