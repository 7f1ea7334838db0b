"""SpikingJelly's full-size ``spikformer_cifar10(T=4)`` at initialization, on CIFAR-10 test images.

Every spiking population's rate on a held-out batch at SpikingJelly's default init and after the
bare ``spikeinit.initialize(net, sample=x)`` (target 0.1), the sample and the held-out batch
being CIFAR-10 test images in [0, 1] held over the 4 steps (docs/architectures.md, "Spiking
transformers: the init"). Needs spikingjelly (``pip install --no-deps spikingjelly``) and the
CIFAR-10 files; a few minutes on one core.

    python docs/scripts/spikformer_full.py --data-dir ../shared/data --batch 16
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import spikeinit
from spikeinit.data.cifar import load_cifar10
from spikeinit.experiments.zoo import stub_torchvision
from spikeinit.machine import cpu_model

STEPS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = torch.as_tensor(load_cifar10(args.data_dir, "test", limit=2 * args.batch).images)
    images = images[: 2 * args.batch].float()
    images = images / 255.0 if images.max() > 1.5 else images

    def batch(index: int) -> torch.Tensor:
        frames = images[index * args.batch:(index + 1) * args.batch]
        return frames.unsqueeze(0).expand(STEPS, -1, -1, -1, -1).contiguous()

    def rates(net: torch.nn.Module) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {row.neuron: row.measured_rate
                    for row in spikeinit.report(net, batch(1)).layers}

    stub_torchvision()
    from spikingjelly.activation_based.model.spikformer import spikformer_cifar10

    torch.manual_seed(0)
    net = spikformer_cifar10(T=STEPS)
    before = rates(net)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = spikeinit.initialize(net, sample=batch(0))
    seconds = time.perf_counter() - start
    after = rates(net)
    knobs = {record.neuron: f"{record.knob}: {record.before:.3g} -> {record.after:.3g}"
             for record in result.attention if record.after is not None}
    print(f"spikformer_cifar10(T={STEPS}), {sum(p.numel() for p in net.parameters())} "
          f"parameters; a sample of {args.batch} CIFAR-10 test images, {args.batch} held out; "
          f"initialize took {seconds:.0f} s on one thread of {cpu_model()}")
    print("| population | default init | after initialize | set through |")
    print("|---|---|---|---|")
    for name, rate in after.items():
        print(f"| {name} | {before.get(name, float('nan')):.3f} | {rate:.3f} | "
              f"{knobs.get(name, 'its driving layer')} |")
    off = [name for name, rate in after.items() if abs(rate / 0.1 - 1) > 0.25]
    print(f"\n{len(off)} of {len(after)} populations off by more than 25 %: {off}")
    for warning in caught:
        print("warning:", str(warning.message)[:300])


if __name__ == "__main__":
    main()
