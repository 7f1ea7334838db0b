"""Print the Markdown tables of docs/results.md from the runs of docs/scripts/results.sh.

Usage: python docs/scripts/tables.py [RESULTS_DIR]   (default runs/results)
For every ``compare`` folder: final accuracy per init (mean ± std over seeds), the seed-mean
accuracy after epochs 1, 3 and 10, epochs to 90 % / 97 % of the best, training seconds per
epoch and samples/s (means over seeds and epochs), and the paired comparisons.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _epoch_stats(folder: Path, init: str, seeds: list[int]) -> tuple[float, float]:
    seconds, speed = [], []
    for seed in seeds:
        history = json.loads((folder / init / f"seed-{seed}" / "metrics.json").read_text())
        seconds += [r["seconds"] for r in history["history"]]
        speed += [r["samples_per_second"] for r in history["history"]]
    return float(np.mean(seconds)), float(np.mean(speed))


def table(folder: Path) -> str:
    summary = json.loads((folder / "compare.json").read_text())
    seeds = summary["seeds"]
    lines = [f"**{folder.name}**: {summary['title']}, seeds {', '.join(map(str, seeds))}", "",
             "| init | final test acc (mean ± std) | epoch 1 | epoch 3 | epoch 10 | epochs to 90% "
             "/ 97% of best | s / epoch | samples/s |", "|---|---|---|---|---|---|---|---|"]
    for init, data in summary["inits"].items():
        curve, std = data["mean_curve"], data["std_curve"]
        picks = [f"{curve[e]:.4f} ± {std[e]:.4f}" if e < len(curve) else "-" for e in (0, 2, 9)]
        reach = [str(v) if v is not None else "never" for v in data["epochs_to"].values()]
        seconds, speed = _epoch_stats(folder, init, seeds)
        lines.append(f"| {init} | **{data['final_mean']:.4f} ± {data['final_std']:.4f}** | "
                     + " | ".join(picks) + f" | {' / '.join(reach)} | {seconds:.1f} | "
                     f"{speed:.0f} |")
    comparisons = summary.get("comparisons", {})
    if comparisons:
        lines += ["", f"| {summary['reference']} − other (paired by seed) | mean difference | "
                  "95% bootstrap CI | paired t-test p |", "|---|---|---|---|"]
        for other, c in comparisons.items():
            ci = ("-" if c["ci_low"] is None
                  else f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]")
            p = "-" if c["p_value"] is None else f"{c['p_value']:.3g}"
            lines.append(f"| − {other} | {c['mean_difference']:+.4f} | {ci} | {p} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/results")
    for folder in sorted(p.parent for p in root.glob("*/compare.json")):
        print(table(folder))


if __name__ == "__main__":
    main()
