"""``spikeinit sweep`` (resumable grids, local process pool or Ray) and ``spikeinit aggregate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from spikeinit.cli.progress import add_progress_option
from spikeinit.errors import InvalidArgumentError
from spikeinit.sweep.aggregate import aggregate, completeness_line
from spikeinit.sweep.runner import BACKENDS, run_sweep
from spikeinit.sweep.spec import TASKS, build_spec


def add_parsers(subparsers: Any) -> None:
    """Add the ``sweep`` and ``aggregate`` subcommands to ``subparsers``."""
    sweep = subparsers.add_parser(
        "sweep", help="run a grid of propagate/conditions/train runs, one result file each; "
                      "reruns skip finished runs",
    )
    sweep.add_argument("spec", nargs="?", type=Path, default=None,
                       help="sweep file (.toml, .yaml, .json) with task, [grid] and [base]")
    sweep.add_argument("--task", choices=TASKS, default=None,
                       help="what each run does (default: the file's task, else propagate)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="sweep a parameter over values (repeatable), e.g. threshold=0.5,1")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="fix a parameter for every run (repeatable), e.g. depth=100")
    sweep.add_argument("--results", type=Path, default=Path("runs/sweep"),
                       help="results directory (one <key>.json per run)")
    sweep.add_argument("--backend", choices=BACKENDS, default="local")
    sweep.add_argument("--workers", type=int, default=1,
                       help="local worker processes (ray without --address: its CPUs)")
    sweep.add_argument("--threads", type=int, default=None,
                       help="torch threads per local worker (default: CPUs / workers)")
    sweep.add_argument("--address", default=None,
                       help="Ray cluster address (default: start a local Ray instance)")
    sweep.add_argument("--cpus-per-task", type=float, default=1.0, help="Ray CPUs per run")
    sweep.add_argument("--gpus-per-task", type=float, default=0.0, help="Ray GPUs per run")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="run again the runs recorded as failed")
    sweep.add_argument("--dry-run", action="store_true",
                       help="list the runs and whether they are done, run nothing")
    add_progress_option(sweep)

    agg = subparsers.add_parser(
        "aggregate", help="collect a sweep's results into results.csv, heatmaps and plots"
    )
    agg.add_argument("results", type=Path, help="results directory of a sweep")
    agg.add_argument("--out", type=Path, default=None,
                     help="output directory (default: <results>-aggregate)")
    agg.add_argument("--rows", default=None, help="heatmap rows (default: threshold)")
    agg.add_argument("--columns", default=None, help="heatmap columns (default: beta)")
    agg.add_argument("--strict", action="store_true",
                     help="fail (exit 2) when a configuration of the sweep has no result or a "
                          "file is not a record")
    agg.add_argument("--value", default=None,
                     help="heatmap value (default: relative_rate; train: test_accuracy)")


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run ``spikeinit sweep``."""
    spec = build_spec(args.task, args.spec, args.grid, args.set)
    runs = spec.runs()
    wants_cuda = sum(run.config.get("device") == "cuda" for run in runs)
    if wants_cuda and args.backend == "local" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"device: {wants_cuda} of the {len(runs)} runs ask for cuda, and this "
                         "machine has no CUDA device; set device=cpu (or run them on a Ray "
                         "cluster with GPUs: --backend ray --address ...)")
    if args.dry_run:
        from spikeinit.sweep import store

        for run in runs:
            state = ("done" if store.is_done(args.results, run.key) else
                     "failed" if store.is_failed(args.results, run.key) else "todo")
            changed = {k: run.config[k] for k in spec.grid if k in run.config}
            print(f"{run.key}  {state:6s}  {changed}")
        print(f"{len(runs)} runs")
        return 0
    summary = run_sweep(
        runs, args.results, backend=args.backend, workers=args.workers,
        retry_failed=args.retry_failed, address=args.address,
        cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
        threads=args.threads, progress=False if args.no_progress else None,
    )
    print(summary.line())
    for key in summary.failures:
        print(f"failed: {args.results / (key + '.failed.json')}")
    return 1 if summary.failed else 0


def run_aggregate_command(args: argparse.Namespace) -> int:
    """Run ``spikeinit aggregate``."""
    written = aggregate(args.results, args.out, args.rows, args.columns, args.value,
                        strict=args.strict)
    print(f"{written['rows']} rows -> {written['csv']}")
    if written["missing"] or written["failed"] or written["unreadable"]:
        print(f"warning: {completeness_line(written['done'], written)} (--strict makes this "
              "an error)",
              file=sys.stderr)
    if written["non_finite"]:
        cells = written["non_finite"]
        print(f"warning: {len(cells)} value(s) are NaN or infinite and were left empty in "
              f"{written['csv']}: {', '.join(cells[:3])}{', ...' if len(cells) > 3 else ''}",
              file=sys.stderr)
    for figure in written["figures"]:
        print(f"wrote {figure}")
    return 0


COMMANDS = {"sweep": run_sweep_command, "aggregate": run_aggregate_command}
