"""Spiking network architectures built on spikeinit's LIF engine."""

from spikeinit.models.mlp import SpikingMLP, deep_network

__all__ = ["SpikingMLP", "deep_network"]
