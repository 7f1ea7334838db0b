"""Early CIFAR-10 training of spiking ResNet-20s under three inits (docs/architectures.md).

Runs ``spikeinit train --model resnet`` for every variant x init x seed (skipping runs whose
``metrics.json`` exists, so a killed grid resumes), two at a time with one thread each, then
writes the table (mean +- std over seeds of the test accuracy after each epoch) and the figure
(mean with a +-1 std band).

    python docs/scripts/residual_training.py --data-dir ../shared/data --out runs/residual
    python docs/scripts/residual_training.py --out runs/residual --table \\
        --figure docs/figures/residual_training.png --csv docs/data/residual_training.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spikeinit.io import save_figure_atomic
from spikeinit.machine import cpu_model

VARIANTS = ("sew", "ms")
INITS = ("pytorch", "paper", "trainable")
SEEDS = (0, 1, 2)
BUDGET = ["--model", "resnet", "--dataset", "cifar10", "--blocks", "3", "3", "3",
          "--channels", "16", "32", "64", "--norm", "none", "--steps", "4", "--epochs", "6",
          "--limit-train", "800", "--limit-test", "500", "--batch", "32", "--no-progress"]


def run_dir(out: Path, variant: str, init: str, seed: int) -> Path:
    return out / f"{variant}-{init}-seed{seed}"


def train(out: Path, data_dir: str, variant: str, init: str, seed: int) -> str:
    target = run_dir(out, variant, init, seed)
    if (target / "metrics.json").exists():
        return f"{target.name}: done before"
    command = [sys.executable, "-m", "spikeinit.cli.main", "train", *BUDGET, "--data-dir", data_dir,
               "--variant", variant, "--init", init, "--seed", str(seed), "--out", str(target)]
    if (target / "checkpoint.pt").exists():
        command.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return f"{target.name}: FAILED\n{done.stderr[-2000:]}"
    return f"{target.name}: {done.stdout.strip().splitlines()[-1]}"


def curves(out: Path, variants: list[str]) -> dict[tuple[str, str], list[list[float]]]:
    """``(variant, init) -> [per-seed test accuracy per epoch]``."""
    found: dict[tuple[str, str], list[list[float]]] = {}
    for variant in variants:
        for init in INITS:
            for seed in SEEDS:
                path = run_dir(out, variant, init, seed) / "metrics.json"
                if path.exists():
                    history = json.loads(path.read_text())["history"]
                    found.setdefault((variant, init), []).append(
                        [100 * row["test_accuracy"] for row in history])
    return found


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def write_table(found: dict[tuple[str, str], list[list[float]]], csv_path: Path | None) -> None:
    rows = []
    for (variant, init), runs in found.items():
        for epoch in range(min(len(r) for r in runs)):
            mean, std = summary([r[epoch] for r in runs])
            rows.append({"variant": variant, "init": init, "epoch": epoch + 1, "seeds": len(runs),
                         "test_accuracy_mean": round(mean, 2), "test_accuracy_std": round(std, 2)})
    print("| variant | init | " + " | ".join(f"epoch {e}" for e in (1, 3, 6)) + " |")
    print("|---|---|---|---|---|")
    for (variant, init), runs in found.items():
        cells = []
        for epoch in (1, 3, 6):
            if epoch <= min(len(r) for r in runs):
                mean, std = summary([r[epoch - 1] for r in runs])
                cells.append(f"{mean:.1f} ± {std:.1f}")
            else:
                cells.append("-")
        print(f"| {variant} | {init} | " + " | ".join(cells) + " |")
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def write_figure(found: dict[tuple[str, str], list[list[float]]], path: Path, cpu: str,
                 variants: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.6), sharey=True,
                             squeeze=False)
    for axis, variant in zip(axes[0], variants):
        for init in INITS:
            runs = found.get((variant, init))
            if not runs:
                continue
            data = np.array([r[:min(len(x) for x in runs)] for r in runs])
            epochs = np.arange(1, data.shape[1] + 1)
            mean, std = data.mean(0), data.std(0, ddof=1) if len(data) > 1 else 0 * data[0]
            axis.plot(epochs, mean, marker="o", label=init)
            axis.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        axis.set_title(f"{variant.upper()} ResNet-20, no BatchNorm")
        axis.set_xlabel("epoch (800 CIFAR-10 images each)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%), mean ± std, 3 seeds")
    axes[0][0].legend()
    fig.suptitle(f"T = 4, AdamW 3e-3, batch 32; {cpu}", fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/residual"))
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--table", action="store_true", help="only summarize existing runs")
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    if not args.table:
        jobs = [(v, i, s) for s in SEEDS for v in args.variants for i in INITS]
        with ThreadPoolExecutor(args.workers) as pool:
            for line in pool.map(lambda job: train(args.out, args.data_dir, *job), jobs):
                print(line, flush=True)
    found = curves(args.out, args.variants)
    write_table(found, args.csv)
    if args.figure is not None:
        write_figure(found, args.figure, cpu_model(), args.variants)


if __name__ == "__main__":
    main()
