"""The networks that ``spikeinit train`` builds, and their initialization from the data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training.config import TrainConfig
from spikeinit.init.model import InitRecord, initialize
from spikeinit.models.cnn import SpikingCNN
from spikeinit.models.mlp import SpikingMLP
from spikeinit.models.resnet import SpikingResNet
from spikeinit.models.rsnn import SpikingRNN
from spikeinit.models.transformer import SpikingTransformer


def build_model(config: TrainConfig, input_shape: Sequence[int], classes: int) -> nn.Module:
    """The network of ``config``: the paper's MLP, a :class:`SpikingCNN`, a
    :class:`SpikingResNet`, a :class:`SpikingRNN` or a :class:`SpikingTransformer`.

    ``input_shape`` is ``(C, H, W)`` of one frame; the MLP sees it flattened. The encoded
    input (:func:`~spikeinit.experiments.training.encoding.encode`) goes straight into the
    first Linear/Conv layer: the ``lif`` encoding's input LIF layer is part of the encoding.
    MLP sizes are ``[C*H*W] + [width] * depth + [classes]``. The resnet has
    ``config.blocks[i]`` basic blocks of ``config.channels[i]`` channels in stage ``i``, of
    ``config.variant`` (``sew``, ``ms`` or ``plain``), with ``config.norm``. The rsnn has
    ``config.depth`` recurrent populations of ``config.width`` neurons over the flattened
    frame (``C*H*W`` features per step; a sequence dataset's features per step).
    The transformer
    has ``config.depth`` blocks of ``config.attention`` (``ssa`` or ``sdsa``) with
    ``config.heads`` heads on ``config.width`` channels, ``config.patch`` x ``config.patch``
    patches, with ``config.norm``.
    """
    lif = {"beta": config.beta, "threshold": config.threshold, "surrogate": config.surrogate,
           "surrogate_slope": config.surrogate_slope, "reset_order": config.reset_order}
    if config.model == "mlp":
        sizes = [math.prod(input_shape), *[config.width] * config.depth, classes]
        return SpikingMLP(sizes, input_layer=False, **lif)
    if config.model == "rsnn":
        return SpikingRNN(math.prod(input_shape), config.width, classes, config.depth, **lif)
    if config.model == "resnet":
        return SpikingResNet(tuple(input_shape), classes, config.variant, config.blocks,
                             config.channels, norm=config.norm, **lif)
    if config.model == "transformer":
        return SpikingTransformer(tuple(input_shape), classes, config.depth, config.width,
                                  config.heads, config.patch, config.attention,
                                  norm=config.norm, **lif)
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
    """Initialize every layer with ``method`` (:func:`spikeinit.initialize` on ``sample``).

    ``sample`` is a batch of encoded inputs ``(T, B, ...)``: the first synaptic layer sees
    them, so it is drawn from their second moment ``E[x^2]``; a :class:`SpikingMLP` that keeps
    its own input LIF layer (``input_layer=True``) feeds its first Linear that layer's spikes,
    whose second moment on the sample ``initialize`` measures as well.
    """
    return initialize(model, method=method, sample=sample, steps=steps, generator=generator)


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: everything at ``config.lr``, except, with
    ``config.hidden_lr``, the MLP's hidden-to-hidden layers (all synapses but the first and
    the last) at ``hidden_lr``.

    Example:
        >>> config = TrainConfig(depth=3, width=8, hidden_lr=1e-4)
        >>> groups = parameter_groups(build_model(config, (1, 4, 4), 10), config)
        >>> [(len(g["params"]), g["lr"]) for g in groups]
        [(2, 0.003), (2, 0.0001)]
    """
    if config.hidden_lr is None:
        return [{"params": list(model.parameters()), "lr": config.lr}]
    if not isinstance(model, SpikingMLP):
        raise InvalidArgumentError(f"hidden_lr applies to the mlp, got a {type(model).__name__}")
    hidden = {id(p) for layer in model.synapses[1:-1] for p in layer.parameters()}
    return [
        {"params": [p for p in model.parameters() if id(p) not in hidden], "lr": config.lr},
        {"params": [p for p in model.parameters() if id(p) in hidden], "lr": config.hidden_lr},
    ]
