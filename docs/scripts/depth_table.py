"""docs/depth.md's training table from the result folders of `spikeinit depth`.

    python docs/scripts/depth_table.py runs/depth-mnist runs/depth-mnist50 runs/depth-fmnist \
        runs/depth-w256 runs/depth-lif

One row per (dataset, encoding, width, depth, init): the final test accuracy as mean ± std over
the seeds found (the std needs two), and the seeds.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from spikeinit.sweep.aggregate import collect_rows

KEYS = ("dataset", "encoding", "width", "depth", "init")


def main(folders: list[str]) -> None:
    cells: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    for folder in folders:
        if not (Path(folder) / "runs").is_dir():
            print(f"(no results yet in {folder})", file=sys.stderr)
            continue
        for row in collect_rows(Path(folder) / "runs"):
            cells[tuple(row[k] for k in KEYS)].append((row["seed"], row["test_accuracy"]))
    print("| dataset | encoding | width | depth | init | test accuracy | seeds |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(cells, key=lambda k: (k[0], k[1], k[2], k[3], k[4])):
        runs = sorted(cells[key])
        values = np.array([accuracy for _, accuracy in runs])
        spread = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
        seeds = ", ".join(f"{seed}: {accuracy:.4f}" for seed, accuracy in runs)
        print(f"| {' | '.join(map(str, key))} | {values.mean():.3f}{spread} | {seeds} |")


if __name__ == "__main__":
    main(sys.argv[1:])
