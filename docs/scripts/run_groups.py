"""Print a Markdown table of `spikeinit train` runs grouped by name, over their seeds.

Usage: python docs/scripts/run_groups.py RUN_FOLDER [RUN_FOLDER ...]

A run folder named ``<group>-s<seed>`` (e.g. ``rows-trainable-s0``) holds the ``metrics.json``
of one ``spikeinit train``. For every group: the runs found, the final test accuracy (mean ± std
over the seeds), the seed-mean test accuracy after the first epoch, the first epoch whose
seed-mean test accuracy reaches 97 % of the group's final mean, and the minutes of training per
run (the epochs' own seconds, evaluation included).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

SEED_SUFFIX = re.compile(r"^(?P<group>.+)-s(?P<seed>\d+)$")


def groups(folders: list[Path]) -> dict[str, list[list[dict]]]:
    """The histories of the finished runs in ``folders``, by group, in seed order."""
    found: dict[str, list[tuple[int, list[dict]]]] = defaultdict(list)
    for folder in folders:
        match = SEED_SUFFIX.match(folder.name)
        metrics = folder / "metrics.json"
        if match is None or not metrics.is_file():
            continue
        history = json.loads(metrics.read_text())["history"]
        found[match["group"]].append((int(match["seed"]), history))
    return {group: [history for _, history in sorted(runs, key=lambda run: run[0])]
            for group, runs in sorted(found.items())}


def row(group: str, histories: list[list[dict]]) -> str:
    """One table row: the group's accuracy, how early it learns and its cost."""
    epochs = min(len(history) for history in histories)
    curves = np.array([[r["test_accuracy"] for r in h[:epochs]] for h in histories])
    final = curves[:, -1]
    mean_curve = curves.mean(axis=0)
    reached = np.flatnonzero(mean_curve >= 0.97 * final.mean())
    minutes = np.mean([sum(r["seconds"] for r in h[:epochs]) for h in histories]) / 60
    spread = final.std(ddof=1) if len(final) > 1 else 0.0
    return (f"| {group} | {len(histories)} | {epochs} | **{final.mean():.4f} ± {spread:.4f}** | "
            f"{mean_curve[0]:.4f} | {int(reached[0]) + 1 if reached.size else '-'} | "
            f"{minutes:.1f} |")


def main() -> None:
    folders = [Path(arg) for arg in sys.argv[1:]]
    print("| runs | seeds | epochs | final test acc (mean ± std) | epoch 1 | epochs to 97 % of "
          "final | minutes per run |")
    print("|---|---|---|---|---|---|---|")
    for group, histories in groups(folders).items():
        print(row(group, histories))


if __name__ == "__main__":
    main()
