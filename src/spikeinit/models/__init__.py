"""Spiking network architectures built on spikeinit's LIF engine."""

from spikeinit.models.cnn import POOLS, ConvBlock, SpikingCNN, classifier_mlp
from spikeinit.models.mlp import SpikingMLP, deep_network

__all__ = ["POOLS", "ConvBlock", "SpikingCNN", "SpikingMLP", "classifier_mlp", "deep_network"]
