"""Input encodings: how a static image becomes the ``(T, B, ...)`` input of a spiking network.

``direct``
    The pixels are a constant current into the first Linear/Conv layer at every step
    (the "direct encoding" of snnTorch and SpikingJelly tutorials): ``x_t = x``. The
    ``T`` copies are a stride-0 view, so the first layer runs once, not ``T`` times.
``rate``
    Bernoulli spikes with the pixel value as probability at every step:
    ``x_t ~ Bernoulli(x)``, independently over ``t``; ``E[x_t] = E[x_t^2] = x``.
``lif``
    The authors' protocol: the pixels drive an input LIF layer (the network's ``beta`` and
    ``threshold``), whose spikes go into the first Linear/Conv layer. With soft reset,
    ``u_t = beta u_{t-1} + x - theta s_{t-1}`` and ``s_t = H(u_t - theta)``: for ``theta = 1``
    and ``beta = 0.5``, ``u_t = (2 - 2^{1-t}) x`` until the first spike, so within 3 steps only
    pixels above ``4/7`` spike, once (those above ``2/3`` at the second step, the others at
    the third); none spikes at the first step.

Event data (N-MNIST frames ``(B, T, C, H, W)``) and sequences (sequential MNIST,
``(B, T, features)``) carry their own time axis: they are made time-major and kept as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.dynamics import lif_multistep
from spikeinit.neurons.parameters import LIFParameters

if TYPE_CHECKING:
    from spikeinit.experiments.training.config import TrainConfig

ENCODINGS = ("direct", "rate", "lif")
#: Models whose input is one feature vector per step ``(T, B, features)``.
FLAT_INPUT_MODELS = ("mlp", "rsnn")


def encode(
    x: Tensor,
    steps: int,
    encoding: str = "direct",
    event_based: bool = False,
    flatten: bool = False,
    neuron: LIFParameters | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Network input ``(T, B, ...)`` from a batch ``x``.

    Args:
        x: static images ``(B, C, H, W)`` with values in [0, 1] for ``rate`` (any real values
            for ``direct`` and ``lif``), or event frames ``(B, T, C, H, W)``.
        steps: number of time steps ``T`` (ignored for event frames, which carry their own).
        encoding: ``direct``, ``rate`` or ``lif`` (see the module docstring).
        event_based: ``x`` holds event frames (then ``encoding`` must be ``direct``).
        flatten: return ``(T, B, features)`` instead of ``(T, B, C, H, W)``.
        neuron: the input LIF layer's parameters for ``lif`` (default: ``LIFParameters()``,
            beta 0.5 and threshold 1 with soft reset).
        generator: random source of ``rate`` (default: the global one).

    Example:
        >>> images = torch.full((2, 1, 2, 2), 0.8)
        >>> encode(images, 3, "lif", flatten=True)[:, 0, 0].tolist()
        [0.0, 1.0, 0.0]
        >>> encode(images, 3, "direct").shape
        torch.Size([3, 2, 1, 2, 2])
    """
    if event_based:
        if encoding != "direct":
            raise InvalidArgumentError(
                f"encoding={encoding!r} applies to static images; event frames "
                             "are fed as they are (use encoding='direct')")
        currents = x.transpose(0, 1)
    elif encoding == "direct":
        currents = x.unsqueeze(0).expand(steps, *x.shape)
    elif encoding == "rate":
        probabilities = x.unsqueeze(0).expand(steps, *x.shape)
        currents = torch.bernoulli(probabilities.clamp(0.0, 1.0), generator=generator)
    elif encoding == "lif":
        currents = _input_layer_spikes(x, steps, neuron or LIFParameters())
    else:
        raise InvalidArgumentError(
            f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return currents.flatten(2) if flatten else currents


@torch.no_grad()
def _input_layer_spikes(x: Tensor, steps: int, neuron: LIFParameters) -> Tensor:
    """Spikes ``(T, B, ...)`` of an input LIF layer driven by the constant current ``x``."""
    drive = x.unsqueeze(0).expand(steps, *x.shape)
    spikes, _ = lif_multistep(drive, neuron)
    return spikes


class RunEncoder:
    """:func:`encode` with the settings of one run (``config``): its steps, encoding, neuron
    (for ``lif``) and layout (flattened for the MLP and the rsnn); ``rate`` draws from
    ``generator`` if given, else from the global generator."""

    def __init__(self, config: TrainConfig, event_based: bool,
                 generator: torch.Generator | None = None) -> None:
        self.config, self.event_based, self.generator = config, event_based, generator
        self.neuron = LIFParameters(beta=config.beta, threshold=config.threshold)

    def __call__(self, x: Tensor) -> Tensor:
        return encode(x, self.config.steps, self.config.encoding, self.event_based,
                      flatten=self.config.model in FLAT_INPUT_MODELS, neuron=self.neuron,
                      generator=self.generator)
