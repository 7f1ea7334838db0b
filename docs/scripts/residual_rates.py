"""Per-block firing rates of 20-block residual SNNs on CIFAR-10 (docs/architectures.md).

For every seed, framework (spikeinit, snnTorch, SpikingJelly), form (SEW, MS) and BatchNorm
(with, without), builds :func:`spikeinit.experiments.residual.framework_resnet` and measures the
rate of each block on CIFAR-10 test images (standardized, direct encoding: the image repeated
over T = 4 steps) at the framework's default init, after ``initialize(net, "paper")``, after
``initialize(net)`` (the residual-aware default) and, for the ``--calibrate-seeds``, after
``calibrate`` on top of it (run last: minutes per network). Every result is one line of
``results.jsonl`` in ``--out``; a rerun skips what is there.

    python docs/scripts/residual_rates.py --data-dir ../shared/data --out runs/residual-rates
    python docs/scripts/residual_rates.py --out runs/residual-rates --table \\
        --csv docs/data/residual_rates.csv --figure docs/figures/residual_rates.png
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
import warnings
from pathlib import Path

import torch

import spikeinit
from spikeinit.data import load_dataset
from spikeinit.experiments.residual import block_rates, framework_resnet
from spikeinit.io import save_figure_atomic
from spikeinit.machine import cpu_model

TARGET = 0.1  # spikeinit's default, trainable
FORMS = ("sew", "ms")
INITS = ("default", "paper", "residual-aware", "calibrate")


def cifar_sample(data_dir: str, images: int, steps: int) -> torch.Tensor:
    data = load_dataset("cifar10", data_dir, split="test", limit=images)
    batch = torch.stack([data[i][0] for i in range(images)])
    batch = (batch - batch.mean((0, 2, 3), keepdim=True)) / batch.std((0, 2, 3), keepdim=True)
    return batch.unsqueeze(0).expand(steps, *batch.shape)


def measure(framework: str, form: str, norm: bool, seed: int, blocks: int,
            sample: torch.Tensor, calibrate: bool) -> list[dict]:
    rows = []

    def record(init: str, net: torch.nn.Module, seconds: float) -> None:
        rates = block_rates(net, sample)
        rows.append({"framework": framework, "form": form, "norm": norm, "seed": seed,
                     "init": init, "rates": list(rates.values()), "seconds": round(seconds, 1)})

    def build() -> torch.nn.Module:
        torch.manual_seed(seed)
        return framework_resnet(framework, form, blocks=blocks, channels=16, norm=norm)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = build()
        if not calibrate:
            record("default", net, 0.0)
            start = time.perf_counter()
            spikeinit.initialize(net, "paper", sample=sample)
            record("paper", net, time.perf_counter() - start)
            net = build()
        start = time.perf_counter()
        spikeinit.initialize(net, sample=sample)
        if not calibrate:
            record("residual-aware", net, time.perf_counter() - start)
            return rows
        start = time.perf_counter()
        spikeinit.calibrate(net, sample)
        record("calibrate", net, time.perf_counter() - start)
    return rows


def load(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def deviation(rates: list[float]) -> float:
    return max(abs(rate - TARGET) / TARGET for rate in rates)


def write_table(rows: list[dict], csv_path: Path | None) -> None:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["framework"], row["form"], row["norm"], row["init"]), []).append(row)
    table = []
    for (framework, form, norm, init), runs in sorted(groups.items()):
        devs = [deviation(r["rates"]) for r in runs]
        inside = [sum(abs(x - TARGET) <= 0.25 * TARGET for x in r["rates"]) / len(r["rates"])
                  for r in runs]
        table.append({"framework": framework, "form": form, "norm": "BN" if norm else "none",
                      "init": init, "seeds": len(runs),
                      "max_deviation_mean": round(statistics.mean(devs), 3),
                      "max_deviation_std": round(statistics.stdev(devs), 3) if len(devs) > 1
                      else 0.0,
                      "blocks_within_25pct": round(statistics.mean(inside), 3),
                      "min_rate": round(min(min(r["rates"]) for r in runs), 4),
                      "max_rate": round(max(max(r["rates"]) for r in runs), 4)})
    cells = {(t["form"], t["norm"], t["framework"], t["init"]): t for t in table}
    print("| form | norm | framework | " + " | ".join(INITS) + " |")
    print("|---|---|---|" + "---|" * len(INITS))
    for form, norm, framework in sorted({key[:3] for key in cells},
                                        key=lambda k: (FORMS.index(k[0]), k[1], k[2])):
        row = []
        for init in INITS:
            t = cells.get((form, norm, framework, init))
            row.append("-" if t is None else
                       f"{t['max_deviation_mean']:.2f} ± {t['max_deviation_std']:.2f} "
                       f"({100 * t['blocks_within_25pct']:.0f}%, n={t['seeds']})")
        print(f"| {form.upper()} | {norm} | {framework} | " + " | ".join(row) + " |")
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)


def write_figure(rows: list[dict], path: Path, cpu: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(form, norm) for form in FORMS for norm in (False, True)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True)
    styles = {"spikeinit": "-", "snntorch": "--", "spikingjelly": ":"}
    colors = {"default": "tab:gray", "paper": "tab:red", "residual-aware": "tab:blue",
              "calibrate": "tab:green"}
    for axis, (form, norm) in zip(axes, panels):
        for row in rows:
            if row["form"] != form or row["norm"] != norm or row["seed"] != 0:
                continue
            blocks = range(1, len(row["rates"]) + 1)
            axis.plot(blocks, [max(r, 1e-4) for r in row["rates"]], styles[row["framework"]],
                      color=colors[row["init"]], lw=1.2)
        axis.axhspan(0.075, 0.125, color="tab:blue", alpha=0.08)
        axis.set_yscale("log")
        axis.set_title(f"{form.upper()}, {'BatchNorm' if norm else 'no norm'}")
        axis.set_xlabel("block")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("block firing rate (seed 0)")
    handles = [plt.Line2D([], [], color=c, label=i) for i, c in colors.items()]
    handles += [plt.Line2D([], [], color="k", ls=s, label=f) for f, s in styles.items()]
    axes[-1].legend(handles=handles, fontsize=7, loc="lower right")
    fig.suptitle(f"20 blocks x 16 channels, CIFAR-10, T = 4; shaded: target 0.1 +- 25%; {cpu}",
                 fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/residual-rates"))
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--calibrate-seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--frameworks", nargs="+",
                        default=["spikeinit", "snntorch", "spikingjelly"])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--table", action="store_true", help="only summarize existing results")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        sample = cifar_sample(args.data_dir, args.images, 4)
        done = {(r["framework"], r["form"], r["norm"], r["seed"], r["init"] == "calibrate")
                for r in load(args.out)}
        # the inits first, at every seed; calibrate (minutes per network) last
        passes = [(seed, False) for seed in args.seeds]
        passes += [(seed, True) for seed in args.calibrate_seeds]
        for seed, calibrate in passes:
            for framework in args.frameworks:
                for form in FORMS:
                    for norm in (False, True):
                        if (framework, form, norm, seed, calibrate) in done:
                            continue
                        rows = measure(framework, form, norm, seed, args.blocks, sample,
                                       calibrate)
                        with (args.out / "results.jsonl").open("a") as handle:
                            handle.write("".join(json.dumps(r) + "\n" for r in rows))
                            handle.flush()
                        print(framework, form, "BN" if norm else "none", seed,
                              {r["init"]: round(deviation(r["rates"]), 2) for r in rows},
                              flush=True)
    rows = load(args.out)
    write_table(rows, args.csv)
    if args.figure is not None:
        write_figure(rows, args.figure, cpu_model())


if __name__ == "__main__":
    main()
