"""``spikeinit depth``: a depth x init grid of plain MLP trainings, with the measures at init."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spikeinit.cli.progress import progress_disabled
from spikeinit.cli.train import _add_training_options, _config
from spikeinit.init.registry import available_methods
from spikeinit.sweep.depth import DEFAULT_DEPTHS, DEFAULT_INITS, DepthGrid, run_depth
from spikeinit.tables import format_table

_GRID_AXES = ("model", "depth", "init", "seed")


def add_parser(subparsers: Any) -> None:
    """Add the ``depth`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "depth", help="train plain deep MLPs over depth x init (and seeds); accuracy heatmap, "
                      "class gap and linear probe per layer at init; reruns skip finished runs")
    _add_training_options(parser)
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEFAULT_DEPTHS),
                        help="hidden layers of each MLP (default: 20 50)")
    parser.add_argument("--inits", nargs="+", default=list(DEFAULT_INITS),
                        help=f"init methods ({', '.join(available_methods())})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--probe-samples", type=int, default=2000,
                        help="training images for the measures at init (a quarter held out)")
    parser.add_argument("--workers", type=int, default=1, help="trainings run at once")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per training (default: CPUs / workers)")
    parser.add_argument("--out", type=Path, default=Path("runs/depth"),
                        help="output directory (runs/, init/, depth.csv, figures)")


def run(args: argparse.Namespace) -> int:
    """Run ``spikeinit depth`` and print the table."""
    base = {name: value for name, value in asdict(_config(args, "paper", 0)).items()
            if name not in _GRID_AXES}
    grid = DepthGrid(tuple(args.depths), tuple(args.inits), tuple(args.seeds), base,
                     args.probe_samples)
    result = run_depth(grid, args.out, workers=args.workers, threads=args.threads,
                       progress=False if progress_disabled(args) else None)
    rows = [["depth", "init", "seeds", "test accuracy", "class gap ratio / layer",
             "probe (last hidden)"]]
    for row in result.table:
        spread = "" if row["seeds"] < 2 else f" ± {row['accuracy_std']:.3f}"
        rows.append([str(row["depth"]), row["init"], str(row["seeds"]),
                     f"{row['accuracy_mean']:.3f}{spread}",
                     f"{row['gap_ratio_per_layer']:.3f}", f"{row['probe_last_hidden']:.3f}"])
    print(format_table(rows))
    print(f"wrote {result.csv}, " + ", ".join(map(str, result.figures)))
    return 0


COMMANDS = {"depth": run}
