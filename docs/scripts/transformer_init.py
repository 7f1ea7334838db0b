"""Spiking transformers at initialization: every population's rate before and after
``spikeinit.initialize`` (docs/architectures.md, "Spiking transformers: the init").

Builds SpikingJelly's Spikformer and Spike-driven Transformer at the reduced size of
tests/test_transformer_init.py (32 x 32 RGB images, 64 tokens, 64 channels in 4 heads, 2 blocks,
T = 4), draws a sample of 8 random images and a held-out batch of 8 more, and prints a
Markdown table of each population's rate on the held-out batch at the framework's default init
and after the bare ``initialize(net, sample=x)`` (target 0.1), with the knob each attention
population was set through. About ten seconds on one core.

    python docs/scripts/transformer_init.py
"""

from __future__ import annotations

import time
import warnings

import torch
from torch import nn

import spikeinit
from spikeinit.experiments.zoo import TRANSFORMERS, zoo_transformer

STEPS, BATCH, IMAGE = 4, 8, 32


def images(seed: int) -> torch.Tensor:
    """``BATCH`` random images repeated over the steps, ``(T, B, 3, H, W)``."""
    frames = torch.rand(BATCH, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))
    return frames.unsqueeze(0).expand(STEPS, -1, -1, -1, -1).contiguous()


def rates(net: nn.Module, sample: torch.Tensor) -> dict[str, float]:
    """Every understood population's measured rate on ``sample`` (``spikeinit.report``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {row.neuron: row.measured_rate for row in spikeinit.report(net, sample).layers}


def main() -> None:
    torch.set_num_threads(1)
    print("| model | population | default init | after initialize | set through |")
    print("|---|---|---|---|---|")
    for name in TRANSFORMERS:
        torch.manual_seed(0)
        net = zoo_transformer(name, steps=STEPS, image=IMAGE)
        before = rates(net, images(2))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = spikeinit.initialize(net, sample=images(1))
        seconds = time.perf_counter() - start
        after = rates(net, images(2))
        knobs = {record.neuron: f"{record.knob}: {record.before:.3g} -> {record.after:.3g}"
                 for record in result.attention if record.after is not None}
        for population, rate in after.items():
            print(f"| {name} | {population} | {before[population]:.3f} | {rate:.3f} | "
                  f"{knobs.get(population, 'its driving layer')} |")
        print(f"| {name} | (initialize took {seconds:.1f} s) | | | |")


if __name__ == "__main__":
    main()
