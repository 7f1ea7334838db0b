"""Spiking network architectures built on spikeinit's LIF engine."""

from spikeinit.engine.event_linear import EventLinear, event_linear
from spikeinit.models.cnn import POOLS, ConvBlock, SpikingCNN, classifier_mlp
from spikeinit.models.mlp import SpikingMLP, deep_network
from spikeinit.models.resnet import VARIANTS, BasicBlock, SpikingResNet
from spikeinit.models.time_distributed import TimeDistributed, fold_time

__all__ = [
    "POOLS",
    "VARIANTS",
    "BasicBlock",
    "ConvBlock",
    "EventLinear",
    "SpikingCNN",
    "SpikingMLP",
    "SpikingResNet",
    "TimeDistributed",
    "classifier_mlp",
    "deep_network",
    "event_linear",
    "fold_time",
]
