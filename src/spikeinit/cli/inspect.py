"""``spikeinit inspect``: the health report of a built-in model at initialization.

Builds :class:`~spikeinit.models.SpikingMLP` (``--model mlp --sizes ...``) or the paper's deep
network (``--model deep --width W --depth D``), initializes it with ``--init`` (``none`` keeps
PyTorch's default), optionally calibrates it (``--calibrate``), runs it on a seeded random batch
of ``(T, B, n_0)`` input currents and prints :func:`spikeinit.report`'s table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from spikeinit._validation import check_choice, check_positive_int
from spikeinit.calibration import calibrate
from spikeinit.cli.budget import check_time, layer_operations
from spikeinit.health import HealthReport, report
from spikeinit.init.model import initialize
from spikeinit.init.registry import available_methods
from spikeinit.io import write_text_atomic
from spikeinit.machine import check_fits
from spikeinit.models import SpikingMLP, deep_network
from spikeinit.neurons.parameters import RESET_ORDERS, RESETS

MODELS = ("deep", "mlp")
INPUTS = ("uniform", "gaussian")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``inspect`` on the ``spikeinit`` sub-command parsers."""
    parser = subparsers.add_parser(
        "inspect", help="health report (rates, variances, dead/saturated layers) of a model"
    )
    parser.add_argument("--model", choices=MODELS, default="deep",
                        help="deep: --depth LIF layers of --width; mlp: SpikingMLP(--sizes)")
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 10],
                        help="layer sizes of --model mlp")
    parser.add_argument("--init", default="none",
                        help=f"none (PyTorch's default) or one of {', '.join(available_methods())}")
    parser.add_argument("--calibrate", action="store_true",
                        help="calibrate the rates to --target after the init")
    parser.add_argument("--target", type=float, default=None,
                        help="target rate for --calibrate (default: 0.1, which trains best)")
    parser.add_argument("--steps", type=int, default=5, help="time steps T")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--input", choices=INPUTS, default="uniform",
                        help="input currents: uniform in [0, 1) or standard normal")
    parser.add_argument("--threshold", type=float, default=1.0)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--reset", choices=RESETS, default="subtract")
    parser.add_argument("--reset-order", choices=RESET_ORDERS, default="delayed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None, help="also write the report as CSV")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    return parser


def build_model(args: argparse.Namespace) -> SpikingMLP:
    """The model named by ``args.model`` with the neuron options of ``args``."""
    check_choice("model", args.model, MODELS)
    lif = {"beta": args.beta, "threshold": args.threshold, "reset": args.reset,
           "reset_order": args.reset_order}
    if args.model == "deep":
        return deep_network(args.width, args.depth, **lif)
    return SpikingMLP(args.sizes, **lif)


def inspect_memory(args: argparse.Namespace, steps: int, batch: int) -> int:
    """Bytes ``inspect`` needs, about: the float32 weights, and per layer the ``(T, B, n)``
    currents, spikes and recorded membranes of the report (four of them, as measured)."""
    if args.model == "deep":
        width, depth = check_positive_int("width", args.width), check_positive_int(
            "depth", args.depth)
        return 4 * (depth * width * width + 4 * steps * batch * (depth + 1) * width)
    sizes = _sizes(args)
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 4 * (weights + 4 * steps * batch * sum(sizes))


def _sizes(args: argparse.Namespace) -> list[int]:
    """The layer sizes of the model ``args`` describe (checked, not built)."""
    if args.model == "deep":
        width = check_positive_int("width", args.width)
        return [width] * (check_positive_int("depth", args.depth) + 1)
    return [check_positive_int("sizes", size) for size in args.sizes]


def inspect_operations(args: argparse.Namespace, steps: int, batch: int) -> int:
    """Operations of ``inspect``, about: the init, the report and a calibration each run the
    model a few times (four passes are counted)."""
    if args.model == "deep":
        depth, width = check_positive_int("depth", args.depth), args.width
        return 4 * steps * batch * depth * layer_operations(width, width)
    sizes = _sizes(args)
    return 4 * steps * batch * sum(layer_operations(a, b) for a, b in zip(sizes, sizes[1:]))


def run(args: argparse.Namespace) -> int:
    """Build, initialize, (calibrate,) report; print the table and write the exports."""
    steps = check_positive_int("steps", args.steps)
    batch = check_positive_int("batch", args.batch)
    check_fits(inspect_memory(args, steps, batch), "--width/--depth/--sizes/--steps/--batch")
    check_time(inspect_operations(args, steps, batch), "--width/--depth/--sizes/--steps/--batch")
    torch.manual_seed(args.seed)
    model = build_model(args)
    generator = torch.Generator().manual_seed(args.seed)
    shape = (steps, batch, model.sizes[0])
    if args.input == "uniform":
        currents = torch.rand(shape, generator=generator)
    else:
        currents = torch.randn(shape, generator=generator)
    initialized = None
    if args.init != "none":
        initialized = initialize(model, args.init, sample=currents, steps=steps,
                                 generator=torch.Generator().manual_seed(args.seed + 1))
    if args.calibrate:  # the weights change: the records of initialize no longer hold
        print(calibrate(model, currents, target=args.target))
        print()
        initialized = None
    health = report(model, currents, init=initialized)
    print(health.table())
    summary = (f"dead: {', '.join(health.dead) or 'none'}; "
               f"saturated: {', '.join(health.saturated) or 'none'}; "
               f"exploding: {', '.join(health.exploding) or 'none'}")
    print(summary)
    _export(health, args.csv, args.json)
    return 0


def _export(health: HealthReport, csv_path: Path | None, json_path: Path | None) -> None:
    written = []
    if csv_path is not None:
        health.to_csv(csv_path)
        written.append(str(csv_path))
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(health.as_dicts(), indent=2) + "\n")
        written.append(str(json_path))
    if written:
        print("wrote " + ", ".join(written))
