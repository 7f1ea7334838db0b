"""docs/depth.md's training table from the result folders of `spikeinit depth`.

    python docs/scripts/depth_table.py runs/depth-mnist runs/depth-mnist50 runs/depth-fmnist \
        runs/depth-w256 runs/depth-lif

One row per (dataset, encoding, width, depth, init, reset order, lr, hidden lr, atan slope):
the final test accuracy as mean ± std over the seeds found (the std needs two), and the seeds.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from spikeinit.sweep.aggregate import collect_rows

KEYS = ("dataset", "encoding", "width", "depth", "init", "reset_order", "lr", "hidden_lr",
        "surrogate_slope")
HEADER = ("dataset", "encoding", "width", "depth", "init", "reset", "lr", "hidden lr", "slope",
          "test accuracy", "seeds")
#: Fields a run's config leaves out at their defaults (TrainConfig.to_dict).
DEFAULTS = {"reset_order": "delayed", "hidden_lr": "-"}


def _cell(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def main(folders: list[str]) -> None:
    cells: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    for folder in folders:
        if not (Path(folder) / "runs").is_dir():
            print(f"(no results yet in {folder})", file=sys.stderr)
            continue
        for row in collect_rows(Path(folder) / "runs"):
            key = tuple(row.get(name, DEFAULTS.get(name)) for name in KEYS)
            cells[key].append((row["seed"], row["test_accuracy"]))
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for key in sorted(cells, key=str):
        runs = sorted(cells[key])
        values = np.array([accuracy for _, accuracy in runs])
        spread = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
        seeds = ", ".join(f"{seed}: {accuracy:.4f}" for seed, accuracy in runs)
        print(f"| {' | '.join(map(_cell, key))} | {values.mean():.3f}{spread} | {seeds} |")


if __name__ == "__main__":
    main(sys.argv[1:])
