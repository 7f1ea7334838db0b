"""Which operating point trains best: accuracy against the init's target rate, per framework.

Trains a small MLP and a small CNN, each with and without BatchNorm, on MNIST and
Fashion-MNIST, with the default neuron of each framework (spikeinit ``LIF`` as ``spikeinit
train`` builds it, snnTorch ``Leaky(beta=0.5)``, SpikingJelly ``LIFNode(tau=2.0)``, Norse
``LIFCell()``), after one of these inits:

- ``framework``: nothing (PyTorch's default for the layers, as a user of the framework has it);
- ``default``: the bare call, ``spikeinit.initialize(model, sample=x)``;
- ``paper``: ``spikeinit.initialize(model, method="paper", sample=x)``, the published init;
- ``stable``: ``spikeinit.initialize(model, method="stable", sample=x)``, the static stable
  operating point (rate 0.287 at the first step);
- ``trainable=<r>``: ``spikeinit.initialize(model, method="trainable=<r>", sample=x)``, every
  population at rate r held by the temporal fixed point over the sample's T steps (``trainable``
  is the library's default since this measurement);
- ``rate=<r>``: ``initialize(method="stable")`` then ``spikeinit.calibrate(model, x, target=r)``,
  every spiking population at rate r (with BatchNorm, ``initialize`` draws unit-scale weights
  and calibrate scales the BatchNorm's affine weight).

Models (``T`` steps, direct input: the image is the current of every step; synaptic layers run
once over all ``T * B`` samples, the neurons over the steps; the readout is the mean over the
steps of a Linear layer's output, trained with cross-entropy):

- ``mlp``: 784 -> ``--hidden`` x ``--mlp-depth`` -> 10, each hidden layer Linear [+ BatchNorm1d]
  + neuron;
- ``cnn``: in the style of SpikingJelly's Fashion-MNIST tutorial: [Conv3x3 (16, then 32)
  [+ BatchNorm2d] + neuron + MaxPool2] x 2, Linear(32*7*7, 128) [+ BatchNorm1d] + neuron,
  Linear(128, 10).

Training: AdamW (lr 3e-3, weight decay 0.1 on weights), cosine schedule, batch 64, ``--epochs``
over the first ``--train`` training images; accuracy on the first ``--test`` test images.

Every run is written atomically to
``<out>/<dataset>/<arch>-<norm>/<framework>/<init>/seed-<s>.json`` and skipped when it
exists, so an interrupted grid resumes. ``--table`` prints the markdown tables of
docs/operating-point.md from the files, ``--figure`` draws accuracy against rate.

Usage (one CPU thread per process)::

    OMP_NUM_THREADS=1 python docs/scripts/operating_point_training.py --data-dir ../shared/data \
        --out runs/operating-point [--datasets mnist] [--archs mlp] [--norms none] \
        [--frameworks spikeinit] [--inits framework stable rate=0.1] [--seeds 0 1 2]
    python docs/scripts/operating_point_training.py --out runs/operating-point --table \
        --figure docs/figures/operating_point_training.png \
        --csv docs/data/operating_point_training.csv
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from copy import deepcopy
from pathlib import Path

import torch
from torch import Tensor, nn

import spikeinit
from spikeinit.data import load_dataset
from spikeinit.io import save_figure_atomic, write_json_atomic, write_text_atomic
from spikeinit.machine import cpu_model

FRAMEWORKS = ("spikeinit", "snntorch", "spikingjelly", "norse")
RATES = (0.02, 0.05, 0.1, 0.16, 0.25)
TRAINABLE_RATES = (0.1, 0.16)
INITS = ("framework", "stable", *(f"trainable={r:g}" for r in TRAINABLE_RATES),
         *(f"rate={r:g}" for r in RATES))
DATASETS = ("mnist", "fashion-mnist")
ARCHS = ("mlp", "cnn")
NORMS = ("none", "batch")


class SnnTorchSteps(nn.Module):
    """snnTorch's ``Leaky`` run over the steps of a ``(T, B, ...)`` current, from rest."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.lif = snn.Leaky(beta=0.5)

    def forward(self, current: Tensor) -> Tensor:
        mem = self.lif.reset_mem()
        spikes = []
        for step in current:
            spike, mem = self.lif(step, mem)
            spikes.append(spike)
        return torch.stack(spikes)


class NorseSteps(nn.Module):
    """Norse's ``LIFCell()`` run over the steps of a ``(T, B, ...)`` current, from rest."""

    def __init__(self) -> None:
        super().__init__()
        import norse.torch as norse

        self.cell = norse.LIFCell()

    def forward(self, current: Tensor) -> Tensor:
        state, spikes = None, []
        for step in current:
            spike, state = self.cell(step, state)
            spikes.append(spike)
        return torch.stack(spikes)


def make_neuron(framework: str) -> nn.Module:
    """The framework's default neuron as a module mapping ``(T, B, ...)`` to spikes."""
    if framework == "spikeinit":
        from spikeinit.experiments.training.config import TRAINING_SLOPES
        from spikeinit.neurons import LIF

        return LIF(surrogate="atan", surrogate_slope=TRAINING_SLOPES["atan"])
    if framework == "snntorch":
        return SnnTorchSteps()
    if framework == "spikingjelly":
        from spikingjelly.activation_based import neuron

        return neuron.LIFNode(tau=2.0, step_mode="m")
    if framework == "norse":
        return NorseSteps()
    raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")


class Stage(nn.Module):
    """A synaptic layer (and norm) over ``(T*B, ...)``, then the neurons over the steps."""

    def __init__(self, synapse: nn.Module, norm: nn.Module | None, neuron: nn.Module,
                 pool: bool = False) -> None:
        super().__init__()
        self.synapse = synapse
        self.norm = norm if norm is not None else nn.Identity()
        self.neuron = neuron
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: Tensor, steps: int, static: bool) -> Tensor:
        """``x``: ``(B, ...)`` if ``static`` (same input at every step), else ``(T, B, ...)``."""
        if static:
            current = self.norm(self.synapse(x))
            current = current.unsqueeze(0).expand(steps, *current.shape)
        else:
            flat = x.flatten(0, 1)
            current = self.norm(self.synapse(flat)).unflatten(0, (steps, x.shape[1]))
        spikes = self.neuron(current.contiguous())
        if isinstance(self.pool, nn.MaxPool2d):
            spikes = self.pool(spikes.flatten(0, 1)).unflatten(0, spikes.shape[:2])
        return spikes


class Net(nn.Module):
    """Stages of synapse, norm and neuron, then a Linear readout averaged over the steps."""

    def __init__(self, stages: list[Stage], readout: nn.Linear, steps: int, flatten_at: int):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.readout = readout
        self.steps = steps
        self.flatten_at = flatten_at

    def forward(self, images: Tensor) -> Tensor:
        spikeinit.reset(self)
        x = images.flatten(1) if self.flatten_at == 0 else images
        for index, stage in enumerate(self.stages):
            if index == self.flatten_at and index > 0:
                x = x.flatten(2)
            x = stage(x, self.steps, static=index == 0)
        return self.readout(x.flatten(2)).mean(0)


def build(arch: str, norm: str, framework: str, steps: int, hidden: int, depth: int) -> Net:
    """The MLP or the CNN of the module docstring with ``framework``'s neuron."""
    batch = norm == "batch"
    if arch == "mlp":
        stages, width = [], 28 * 28
        for _ in range(depth):
            stages.append(Stage(nn.Linear(width, hidden, bias=not batch),
                                nn.BatchNorm1d(hidden) if batch else None, make_neuron(framework)))
            width = hidden
        return Net(stages, nn.Linear(width, 10), steps, flatten_at=0)
    if arch == "cnn":
        stages = [
            Stage(nn.Conv2d(1, 16, 3, padding=1, bias=not batch),
                  nn.BatchNorm2d(16) if batch else None, make_neuron(framework), pool=True),
            Stage(nn.Conv2d(16, 32, 3, padding=1, bias=not batch),
                  nn.BatchNorm2d(32) if batch else None, make_neuron(framework), pool=True),
            Stage(nn.Linear(32 * 7 * 7, 128, bias=not batch),
                  nn.BatchNorm1d(128) if batch else None, make_neuron(framework)),
        ]
        return Net(stages, nn.Linear(128, 10), steps, flatten_at=2)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def apply_init(model: Net, init: str, sample: Tensor) -> dict:
    """Apply ``init`` and return what it did (the calibrated rates, the warnings)."""
    info: dict = {"warnings": []}
    if init == "framework":
        return info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if init == "default":  # the bare call a user makes
            spikeinit.initialize(model, sample=sample)
        else:
            method = init if init.startswith("trainable") or init == "paper" else "stable"
            spikeinit.initialize(model, method=method, sample=sample)
        if init.startswith("rate="):
            target = float(init.split("=", 1)[1])
            result = spikeinit.calibrate(model, sample, target=target)
            info["calibrated"] = [float(layer.rate_after) for layer in result.layers]
            info["calibration_converged"] = all(layer.converged for layer in result.layers)
    info["warnings"] = sorted({str(w.message)[:200] for w in caught})
    return info


def population_rates(model: Net, sample: Tensor) -> list[float]:
    """Spikes per neuron per step of each stage on ``sample``, in training mode (BatchNorm on
    the batch's statistics, as training sees it), on a copy so no running statistic moves."""
    copy = deepcopy(model).train()
    rates: list[float] = []
    for stage in copy.stages:
        stage.neuron.register_forward_hook(
            lambda _m, _i, out: rates.append(float(out.float().mean())))
    with torch.no_grad():
        copy(sample)
    return rates


def load(dataset: str, data_dir: str, split: str, limit: int) -> tuple[Tensor, Tensor]:
    data = load_dataset(dataset, data_dir, split, limit)
    return data.images.float().div_(255.0), data.labels


def accuracy(model: Net, images: Tensor, labels: Tensor, batch: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch):
            logits = model(images[start:start + batch])
            correct += int((logits.argmax(1) == labels[start:start + batch]).sum())
    model.train()
    return correct / len(labels)


def run_one(args: argparse.Namespace, dataset: str, arch: str, norm: str, framework: str,
            init: str, seed: int, data: dict) -> dict:
    """Train one configuration and return its record."""
    torch.manual_seed(seed)
    train_x, train_y, test_x, test_y = data[dataset]
    model = build(arch, norm, framework, args.steps, args.hidden, args.mlp_depth)
    generator = torch.Generator().manual_seed(seed)
    sample = train_x[torch.randperm(len(train_y), generator=generator)[:args.batch]]
    started = time.perf_counter()
    info = apply_init(model, init, sample)
    rates_at_init = population_rates(model, sample)
    decay, no_decay = [], []
    for parameter in model.parameters():
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = math.ceil(len(train_y) / args.batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                           steps_per_epoch * args.epochs)
    losses = []
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(train_y), generator=generator)
        for start in range(0, len(order), args.batch):
            index = order[start:start + args.batch]
            loss = nn.functional.cross_entropy(model(train_x[index]), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss))
    seconds = time.perf_counter() - started
    acc = accuracy(model, test_x, test_y)
    return {"dataset": dataset, "arch": arch, "norm": norm, "framework": framework,
            "init": init, "seed": seed, "test_accuracy": acc,
            "final_loss": statistics.mean(losses[-20:]), "finite": math.isfinite(losses[-1]),
            "rates_at_init": rates_at_init, "rates_after": population_rates(model, sample),
            "seconds": seconds, "n_train": len(train_y), "n_test": len(test_y),
            "epochs": args.epochs, "steps": args.steps, "cpu": cpu_model(), **info}


def result_path(out: Path, dataset: str, arch: str, norm: str, framework: str, init: str,
                seed: int) -> Path:
    return out / dataset / f"{arch}-{norm}" / framework / init / f"seed-{seed}.json"


def run_grid(args: argparse.Namespace) -> None:
    data = {}
    for dataset in args.datasets:
        data[dataset] = (*load(dataset, args.data_dir, "train", args.train),
                         *load(dataset, args.data_dir, "test", args.test))
    for dataset in args.datasets:
        for arch in args.archs:
            for norm in args.norms:
                for framework in args.frameworks:
                    for init in args.inits:
                        for seed in args.seeds:
                            path = result_path(args.out, dataset, arch, norm, framework, init,
                                               seed)
                            if path.exists():
                                continue
                            record = run_one(args, dataset, arch, norm, framework, init, seed,
                                             data)
                            write_json_atomic(path, record)
                            rates = " ".join(f"{r:.3f}" for r in record["rates_at_init"])
                            print(f"{dataset:<14}{arch}-{norm:<6}{framework:<13}{init:<10}"
                                  f"seed {seed}  acc {record['test_accuracy']:.4f}  "
                                  f"{record['seconds']:5.1f}s  rates {rates}", flush=True)


def load_records(out: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(out.rglob("seed-*.json"))]


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    mean = 100 * statistics.mean(values)
    spread = 100 * statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:.1f} ± {spread:.1f}" + ("" if len(values) >= 3 else f" (n={len(values)})")


def grouped(records: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        key = (record["dataset"], record["arch"], record["norm"], record["framework"],
               record["init"])
        groups.setdefault(key, []).append(record)
    return groups


def print_tables(records: list[dict]) -> None:
    """One markdown table per dataset: rows arch/norm/framework, columns the inits."""
    groups = grouped(records)
    inits = [init for init in ("default", "paper", *INITS)
             if any(key[4] == init for key in groups)]
    for dataset in DATASETS:
        keys = sorted({key[1:4] for key in groups if key[0] == dataset},
                      key=lambda k: (ARCHS.index(k[0]), NORMS.index(k[1]),
                                     FRAMEWORKS.index(k[2])))
        if not keys:
            continue
        print(f"\n{dataset}: test accuracy (%), mean ± std over seeds\n")
        print("| model | neurons | " + " | ".join(inits) + " |")
        print("|---|---|" + "---|" * len(inits))
        for arch, norm, framework in keys:
            cells = [_cell([r["test_accuracy"] for r in groups.get(
                (dataset, arch, norm, framework, init), [])]) for init in inits]
            label = f"{arch}{' + BN' if norm == 'batch' else ''}"
            print(f"| {label} | {framework} | " + " | ".join(cells) + " |")
    print("\nmean accuracy over frameworks and datasets per model and init, mean ± std over "
          "the seeds of the per-seed average:\n")
    print("| model | " + " | ".join(inits) + " |")
    print("|---|" + "---|" * len(inits))
    for arch in ARCHS:
        for norm in NORMS:
            cells = []
            for init in inits:
                by_seed: dict[int, list[float]] = {}
                for key, rs in groups.items():
                    if key[1:3] == (arch, norm) and key[4] == init:
                        for r in rs:
                            by_seed.setdefault(r["seed"], []).append(r["test_accuracy"])
                cells.append(_cell([statistics.mean(v) for v in by_seed.values()]))
            label = f"{arch}{' + BN' if norm == 'batch' else ''}"
            print(f"| {label} | " + " | ".join(cells) + " |")


def draw_figure(records: list[dict], path: Path) -> None:
    """Accuracy against the calibrated rate, one panel per dataset and model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = grouped(records)
    panels = [(d, a, n) for d in DATASETS for a in ARCHS for n in NORMS]
    figure, axes = plt.subplots(2, 4, figsize=(16, 7), sharex=True)
    for axis, (dataset, arch, norm) in zip(axes.flat, panels):
        for framework in FRAMEWORKS:
            points = []
            for rate in RATES:
                rs = groups.get((dataset, arch, norm, framework, f"rate={rate:g}"), [])
                if rs:
                    values = [100 * r["test_accuracy"] for r in rs]
                    spread = statistics.stdev(values) if len(values) > 1 else 0.0
                    points.append((rate, statistics.mean(values), spread))
            if points:
                xs, ys, es = zip(*points)
                line = axis.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=framework)
                color = line[0].get_color()
                stable = groups.get((dataset, arch, norm, framework, "stable"), [])
                if stable:
                    axis.axhline(100 * statistics.mean(r["test_accuracy"] for r in stable),
                                 color=color, linestyle="--", linewidth=0.8)
                for rate in TRAINABLE_RATES:
                    rs = groups.get((dataset, arch, norm, framework, f"trainable={rate:g}"), [])
                    if rs:
                        axis.plot([rate], [100 * statistics.mean(r["test_accuracy"] for r in rs)],
                                  marker="*", markersize=12, color=color, linestyle="none")
        axis.set_xscale("log")
        axis.set_xticks(RATES, [f"{rate:g}" for rate in RATES])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        axis.set_title(f"{dataset}, {arch}{' + BN' if norm == 'batch' else ''}")
        axis.set_xlabel("calibrated rate (spikes / neuron / step)")
        axis.set_ylabel("test accuracy (%)")
    axes.flat[0].legend(fontsize=8)
    cpus = ", ".join(sorted({r.get("cpu", "CPU not recorded") for r in records}))
    figure.suptitle("Test accuracy against the rate the init sets (circles: calibrated to the "
                    "rate; stars: init 'trainable' at its rate; dashed: init 'stable'); mean ± "
                    f"std over seeds 0-2; {cpus}")
    figure.tight_layout()
    save_figure_atomic(figure, path, dpi=110)


CSV_FIELDS = ("dataset", "arch", "norm", "framework", "init", "seed", "test_accuracy",
              "final_loss", "rates_at_init", "seconds", "n_train", "n_test", "epochs", "steps",
              "cpu")


def write_csv(records: list[dict], path: Path) -> None:
    """One row per run (the rates at init joined by spaces), written atomically."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for record in sorted(records, key=lambda r: tuple(str(r[f]) for f in CSV_FIELDS[:6])):
        row = dict(record, rates_at_init=" ".join(f"{v:.4f}" for v in record["rates_at_init"]))
        writer.writerow([row[field] if not isinstance(row[field], float) else
                         f"{row[field]:.6g}" for field in CSV_FIELDS])
    write_text_atomic(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", type=Path, default=Path("runs/operating-point"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--norms", nargs="+", default=list(NORMS), choices=NORMS)
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--inits", nargs="+", default=list(INITS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", type=int, default=6000, help="training images (first n)")
    parser.add_argument("--test", type=int, default=2000, help="test images (first n)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--mlp-depth", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--table", action="store_true", help="print the tables and stop")
    parser.add_argument("--figure", type=Path, help="draw the figure to this path and stop")
    parser.add_argument("--csv", type=Path, help="write one row per run to this CSV and stop")
    args = parser.parse_args()
    for init in args.inits:
        if init not in ("framework", "stable", "paper", "default") and not init.startswith(
                ("rate=", "trainable")):
            parser.error(f"--inits: {init!r} is not framework, default, paper, stable, "
                         "trainable[=<r>] or rate=<r>")
    if args.table or args.figure or args.csv:
        records = load_records(args.out)
        if args.csv:
            write_csv(records, args.csv)
        if args.table:
            print_tables(records)
        if args.figure:
            draw_figure(records, args.figure)
        return
    torch.set_num_threads(1)
    run_grid(args)


if __name__ == "__main__":
    main()
