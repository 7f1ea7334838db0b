"""Gradients through time at init of the recurrent SNN on sequential MNIST, per init.

For each init and seed, ``spikeinit train``'s model (``--model rsnn``) is built and
initialized as the training would, then run on a batch of test sequences; the loss is the
training's (cross-entropy on the output membrane). Printed per init, over the seeds: the
hidden population's rate, the gradient of the loss with respect to the hidden spikes at the
first, middle and last steps (the L2 norm over the batch and the neurons), the ratio of the
first to the last, and the norm of the recurrent weights' gradient. A gradient that dies
through time shows as a small first-to-last ratio; a silent population as a zero gradient.

Usage (sequential MNIST rows, T = 28, width 256; about a minute)::

    OMP_NUM_THREADS=1 python benchmarks/rsnn_gradients.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.nn import functional

from spikeinit.experiments.training import TrainConfig
from spikeinit.experiments.training.data import load_data
from spikeinit.experiments.training.factory import build_model, initialize_model
from spikeinit.experiments.training.readout import TrainingProbe, logits
from spikeinit.machine import cpu_description

COLUMNS = ("rate", "first", "middle", "last", "ratio", "recurrent", "input")


def gradients_at_init(config: TrainConfig, batch: int, seed: int) -> dict[str, float]:
    """Rate, spike-gradient norms over time and recurrent-weight gradient norm at init."""
    _, test = load_data(config)
    torch.manual_seed(seed)
    x, labels = test.batch(torch.arange(batch))
    x = x.transpose(0, 1).contiguous()  # (T, B, features)
    model = build_model(config, tuple(x.shape[2:]), 10)
    if config.init != "pytorch":
        sample = test.batch(torch.arange(batch, 2 * batch))[0].transpose(0, 1).contiguous()
        initialize_model(model, config.init, sample, x.shape[0],
                         torch.Generator().manual_seed(seed))
    kept: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: object, output: torch.Tensor) -> None:
        output.retain_grad()
        kept.append(output)

    handle = model.blocks[0].register_forward_hook(keep)
    probe = TrainingProbe(model, keep_output_current=True)
    try:
        loss = functional.cross_entropy(logits(model(x), probe, "membrane"), labels)
        loss.backward()
    finally:
        handle.remove()
        probe.remove()
    spikes = kept[0]
    norms = spikes.grad.flatten(1).norm(dim=1)  # (T,)
    steps = norms.shape[0]
    return {"rate": float(spikes.detach().mean()), "first": float(norms[0]),
            "middle": float(norms[steps // 2]), "last": float(norms[-1]),
            "ratio": float(norms[0] / norms[-1]) if norms[-1] > 0 else float("nan"),
            "recurrent": float(model.blocks[0].recurrent.weight.grad.norm()),
            "input": float(model.blocks[0].input.weight.grad.norm())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="smnist-rows")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--inits", nargs="+", default=["pytorch", "trainable"])
    args = parser.parse_args()
    cpu = cpu_description()
    print(f"CPU: {cpu['model']} (family {cpu.get('family')} model {cpu.get('model_number')}), "
          f"torch {torch.__version__}; mean ± std over {args.seeds} seeds")
    print("| init | rate | dL/ds[0] | dL/ds[T/2] | dL/ds[T-1] | first/last | dL/dW_rec | "
          "dL/dW_in |\n|---|---|---|---|---|---|---|---|")
    for init in args.inits:
        config = TrainConfig(dataset=args.dataset, data_dir=args.data_dir, model="rsnn",
                             width=args.width, beta=args.beta, init=init, limit_train=16,
                             limit_test=2 * args.batch)
        runs = [gradients_at_init(config, args.batch, seed) for seed in range(args.seeds)]
        cells = []
        for key in COLUMNS:
            values = [run[key] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3g} ± {spread:.2g}")
        print(f"| {init} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
