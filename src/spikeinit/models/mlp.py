"""``SpikingMLP``: the paper's fully-connected SNN, run layer-major over all time steps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from spikeinit._validation import check_positive_int
from spikeinit.models.event_linear import EventLinear
from spikeinit.neurons.lif import LIF, reset_states


class SpikingMLP(nn.Module):
    """Input current -> LIF, then ``(Linear -> LIF)`` for each further size.

    ``sizes = [n_0, n_1, ..., n_L]`` gives ``L + 1`` LIF layers: the input (``n_0`` features)
    feeds the first LIF directly, as in the paper. With ``input_layer=False`` there is no input
    LIF layer: the input goes straight into the first Linear ("direct encoding"), and the
    network has ``L`` LIF layers. Inputs are ``(T, B, n_0)`` currents; the output is the spikes
    of the last layer, ``(T, B, n_L)``. Each Linear runs once over all ``T * B`` rows
    (layer-major execution), and every forward starts from the resting state.

    Example:
        >>> import torch
        >>> net = SpikingMLP([784, 100, 10], beta=0.5, threshold=1.0)
        >>> net(torch.rand(3, 8, 784)).shape
        torch.Size([3, 8, 10])
    """

    def __init__(self, sizes: Sequence[int], bias: bool = False, input_layer: bool = True,
                 **lif_options: Any) -> None:
        super().__init__()
        if len(sizes) < (1 if input_layer else 2):
            raise ValueError("sizes must list at least one layer size"
                             + ("" if input_layer else " after the input size"))
        for index, size in enumerate(sizes):
            check_positive_int(f"sizes[{index}]", size)
        self.sizes = list(sizes)
        self.input_neurons = LIF(**lif_options) if input_layer else None
        # Blocks keep module order equal to computation order (initializers rely on it).
        self.blocks = nn.ModuleList(
            nn.Sequential(EventLinear(n_in, n_out, bias=bias), LIF(**lif_options))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )

    @property
    def synapses(self) -> list[nn.Linear]:
        return [block[0] for block in self.blocks]

    @property
    def neurons(self) -> list[LIF]:
        return [block[1] for block in self.blocks]

    @property
    def lif_layers(self) -> list[LIF]:
        """All LIF layers, from the input layer (if any) to the output."""
        first = [] if self.input_neurons is None else [self.input_neurons]
        return [*first, *self.neurons]

    def forward(self, currents: Tensor) -> Tensor:
        *_, last = self.iter_layers(currents)
        return last

    def iter_layers(self, currents: Tensor) -> Iterator[Tensor]:
        """Yield the spikes ``(T, B, n_l)`` of every LIF layer in turn, from the resting state."""
        reset_states(self)
        spikes = currents
        if self.input_neurons is not None:
            spikes = self.input_neurons(currents)
            yield spikes
        for block in self.blocks:
            spikes = block(spikes)
            yield spikes


def deep_network(width: int, depth: int, **lif_options: Any) -> SpikingMLP:
    """The propagation network of the paper: ``depth`` LIF layers of ``width`` neurons.

    ``SpikingMLP([width] * depth)``: an input LIF layer, then ``depth - 1`` square
    ``Linear -> LIF`` blocks.

    Example:
        >>> import torch
        >>> net = deep_network(width=100, depth=5)
        >>> len(net.lif_layers), len(net.synapses)
        (5, 4)
        >>> net(torch.rand(3, 2, 100)).shape
        torch.Size([3, 2, 100])
    """
    width, depth = check_positive_int("width", width), check_positive_int("depth", depth)
    return SpikingMLP([width] * depth, **lif_options)
