"""Held-out rates after the bare call ``initialize(model, sample=x)`` on models users have.

- SpikingJelly's Fashion-MNIST tutorial CNN, without and with BatchNorm: (Conv3x3 16 [+ BN] +
  ``LIFNode(tau=2)`` + MaxPool2) x 2, Linear(16*7*7, 256) + LIF, Linear(256, 10) + LIF,
  multi-step, T = 4; sample: 64 training images; held out: 256 test images.
- SpikingJelly's model-zoo ``sew_resnet18`` and ``ms_resnet18`` (BatchNorm, ``LIFNode``),
  T = 4, batch 8 of 64 x 64 images (CIFAR-10 test images upscaled when ``--data-dir`` has
  them, else uniform noise); held out: the next 8.

Prints, per model, every population's held-out rate, the worst relative deviation from the
target 0.1 and the time of the call. The 20-layer MLPs: ``docs/scripts/operating_point.py
--held-out``; the 20-block SEW stacks: ``docs/scripts/residual_rates.py``.

    OMP_NUM_THREADS=1 python docs/scripts/initialize_families.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import spikeinit
from spikeinit.data import load_dataset
from spikeinit.experiments.zoo import spikingjelly_tutorial_cnn, zoo_resnet

TARGET = 0.1


def frames(dataset: str, data_dir: str | None, split: str, start: int, count: int,
           size: int | None = None) -> torch.Tensor:
    """``count`` images from ``start`` (``(B, C, H, W)`` in [0, 1]), resized to ``size``."""
    try:
        data = load_dataset(dataset, data_dir, split=split, limit=start + count)
        images = torch.stack([data[i][0] for i in range(start, start + count)])
    except (OSError, RuntimeError, ValueError) as error:  # no data here: noise instead
        print(f"  ({dataset} not loaded ({error}); uniform noise instead)")
        generator = torch.Generator().manual_seed(start)
        side = 28 if dataset == "fashion-mnist" else 32
        images = torch.rand(count, 1 if dataset == "fashion-mnist" else 3, side, side,
                            generator=generator)
    if size is not None:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images


def over_steps(images: torch.Tensor, steps: int = 4) -> torch.Tensor:
    return images.unsqueeze(0).repeat(steps, *([1] * images.ndim))


def check(name: str, model: nn.Module, sample: torch.Tensor, held: torch.Tensor,
          realize: bool | None = None) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        spikeinit.initialize(model, sample=sample, realize=realize)
        took = time.perf_counter() - start
    rates = [row.measured_rate for row in spikeinit.report(model, held).layers]
    worst = max(abs(rate / TARGET - 1) for rate in rates)
    print(f"{name}: {len(rates)} populations, held-out rates "
          f"{' '.join(f'{rate:.3f}' for rate in rates)}; worst {worst:.0%} off; "
          f"initialize {took:.2f} s")
    for warning in caught:
        print(f"  warning: {str(warning.message)[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--theory-alone", action="store_true",
                        help="initialize(..., realize=False): the theory without the measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    realize = False if args.theory_alone else None
    for norm in (False, True):
        torch.manual_seed(args.seed)
        sample = over_steps(frames("fashion-mnist", args.data_dir, "train", 0, 64))
        held = over_steps(frames("fashion-mnist", args.data_dir, "test", 0, 256))
        check(f"SpikingJelly tutorial CNN{' + BN' if norm else ''}",
              spikingjelly_tutorial_cnn(norm), sample, held, realize)
    for name in ("sew_resnet18", "ms_resnet18"):
        torch.manual_seed(args.seed)
        sample = over_steps(frames("cifar10", args.data_dir, "test", 0, 8, size=64))
        held = over_steps(frames("cifar10", args.data_dir, "test", 8, 8, size=64))
        check(f"SpikingJelly {name}", zoo_resnet(name), sample, held, realize)


if __name__ == "__main__":
    main()
