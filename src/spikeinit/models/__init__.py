"""Spiking network architectures built on spikeinit's LIF engine."""

from spikeinit.engine.event_linear import EventLinear, event_linear
from spikeinit.models.cnn import POOLS, ConvBlock, SpikingCNN, classifier_mlp
from spikeinit.models.mlp import SpikingMLP, deep_network
from spikeinit.models.resnet import VARIANTS, BasicBlock, SpikingResNet
from spikeinit.models.rsnn import RecurrentBlock, RecurrentLIFFunction, SpikingRNN, recurrent_lif
from spikeinit.models.time_distributed import TimeDistributed, fold_time
from spikeinit.models.transformer import (
    ATTENTIONS,
    PatchEmbedding,
    PatchStem,
    SpikingProjection,
    SpikingSelfAttention,
    SpikingTransformer,
    TransformerBlock,
)

__all__ = [
    "ATTENTIONS",
    "POOLS",
    "VARIANTS",
    "BasicBlock",
    "ConvBlock",
    "EventLinear",
    "PatchEmbedding",
    "PatchStem",
    "RecurrentBlock",
    "RecurrentLIFFunction",
    "SpikingCNN",
    "SpikingMLP",
    "SpikingProjection",
    "SpikingResNet",
    "SpikingRNN",
    "SpikingSelfAttention",
    "SpikingTransformer",
    "TimeDistributed",
    "TransformerBlock",
    "classifier_mlp",
    "deep_network",
    "event_linear",
    "fold_time",
    "recurrent_lif",
]
