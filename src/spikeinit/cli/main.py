"""``spikeinit``: run the experiments from the command line.

A user error prints one line ``spikeinit: error: ...`` and exits with code 2; an internal
error prints one line with a bug-report hint and exits with code 1 (:func:`main`).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import spikeinit
from spikeinit.cli import depth as depth_cli
from spikeinit.cli import inspect as inspect_cli
from spikeinit.cli import sweep as sweep_cli
from spikeinit.cli import train as train_cli
from spikeinit.cli.budget import check_time, layer_operations
from spikeinit.cli.links import REPOSITORY_URL, docs_page, link_docs_paths
from spikeinit.cli.preflight import describe_os_error, preflight
from spikeinit.cli.progress import add_progress_option, progress_disabled
from spikeinit.engine import settings
from spikeinit.errors import BUG_REPORT_URL, UserError
from spikeinit.experiments import figures
from spikeinit.experiments.conditions import (
    DEFAULT_THRESHOLDS,
    DEFAULT_WIDTHS,
    ConditionsConfig,
    run_conditions,
)
from spikeinit.experiments.propagation import (
    DEFAULT_INITS,
    PropagationConfig,
    gradient_rows,
    memory_estimate,
    run_propagation,
    summary_rows,
)
from spikeinit.init.registry import available_methods, get_method
from spikeinit.io import write_json_atomic
from spikeinit.machine import check_fits
from spikeinit.neurons.parameters import RESET_ORDERS, RESETS
from spikeinit.neurons.surrogate import SURROGATES
from spikeinit.tables import format_table
from spikeinit.theory.temporal import INPUT_KINDS


def default_device() -> str:
    """``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


DEVICE_HELP = "cpu or cuda (default: cuda when available, else cpu)"


def _add_neuron_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beta", type=float, default=0.5, help="membrane decay in [0, 1]")
    parser.add_argument("--reset", choices=RESETS, default="subtract",
                        help="what a spike does to the membrane")
    parser.add_argument("--batch", type=int, default=64, help="input samples per run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and the input")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default_device(),
                        help=DEVICE_HELP)
    parser.add_argument("--out", type=Path, default=Path("out"), help="output directory")


class LineHelpFormatter(argparse.HelpFormatter):
    """argparse's help layout, with each line of a description or epilog wrapped on its own
    (the line breaks stay) and URLs never broken across lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(textwrap.fill(" ".join(line.split()), width, initial_indent=indent,
                                       subsequent_indent=indent, break_long_words=False,
                                       break_on_hyphens=False)
                         for line in text.splitlines())

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False,
                             break_on_hyphens=False)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with :class:`LineHelpFormatter` (the parsers of the subcommands
    are of this class too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", LineHelpFormatter)
        super().__init__(*args, **kwargs)


def _default_text(value: Any) -> str:
    """A default as a user types it: lists space-separated, paths and numbers as text."""
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return str(value)


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Give every command a description (its one-line help, when it has none) and every
    option whose default means something a ``(default: ...)`` in its help, recursively.

    Options whose default is ``None`` (not given: a preset or the command decides), flags and
    options whose help already states the default are left as they are."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                if subparser.description is None and helps.get(name):
                    subparser.description = helps[name][0].upper() + helps[name][1:] + "."
                show_defaults(subparser)
            continue
        if (not action.option_strings or action.help == argparse.SUPPRESS
                or action.default is None or action.default is argparse.SUPPRESS
                or isinstance(action.default, bool) or "default" in (action.help or "")):
            continue
        shown = _default_text(action.default).replace("%", "%%")
        action.help = f"{action.help} (default: {shown})" if action.help else \
            f"default: {shown}"


def build_parser() -> argparse.ArgumentParser:
    """The ``spikeinit`` command line: one subcommand per experiment or tool."""
    parser = CommandParser(
        prog="spikeinit",
        description="Weight initialization for deep spiking neural networks: the experiments "
                    "of Micheli et al., arXiv:2410.00580, and the tools around them.",
        epilog=f"Documentation: {docs_page('cli.md')}\n"
               f"The library: import spikeinit; spikeinit.initialize(model, sample=x)\n"
               f"Source and issues: {REPOSITORY_URL}",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {spikeinit.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    propagate = commands.add_parser(
        "propagate", help="experiments 1-2: activity through a deep LIF network"
    )
    propagate.add_argument("--init", nargs="+", default=list(DEFAULT_INITS),
                           help=f"init methods ({', '.join(available_methods())})")
    propagate.add_argument("--depth", type=int, default=100, help="LIF layers")
    propagate.add_argument("--width", type=int, default=1000, help="neurons per layer")
    propagate.add_argument("--steps", type=int, default=1, help="time steps T")
    propagate.add_argument("--threshold", type=float, default=1.0, help="firing threshold")
    propagate.add_argument("--reset-order", choices=RESET_ORDERS, default="delayed",
                           help="delayed: snnTorch; immediate: SpikingJelly/Norse")
    propagate.add_argument("--input", choices=INPUT_KINDS, default="constant",
                           help="I_0 held constant over the steps, or drawn i.i.d. per step")
    propagate.add_argument("--gradients", action="store_true",
                           help="also run a real backward pass and report per-layer gradients "
                                "beside the mean-field prediction")
    propagate.add_argument("--surrogate", choices=SURROGATES, default="atan",
                           help="surrogate gradient for --gradients")
    _add_neuron_options(propagate)
    add_progress_option(propagate)

    conditions = commands.add_parser(
        "conditions", help="experiment 3: width x threshold grid of the deep-layer rate"
    )
    conditions.add_argument("--widths", type=int, nargs="+", default=list(DEFAULT_WIDTHS),
                            help="layer widths (the grid's columns)")
    conditions.add_argument("--thresholds", type=float, nargs="+",
                            default=list(DEFAULT_THRESHOLDS),
                            help="firing thresholds (the grid's rows)")
    conditions.add_argument("--init", default="paper",
                            help=f"init method ({', '.join(available_methods())})")
    conditions.add_argument("--depth", type=int, default=100, help="LIF layers")
    conditions.add_argument("--steps", type=int, default=1, help="time steps T")
    _add_neuron_options(conditions)
    add_progress_option(conditions)

    commands.add_parser("methods", help="list the registered init methods")
    train_cli.add_parsers(commands)
    inspect_cli.add_parser(commands)
    sweep_cli.add_parsers(commands)
    depth_cli.add_parser(commands)
    show_defaults(parser)
    return parser


def run_propagate(args: argparse.Namespace) -> int:
    config = PropagationConfig(
        inits=tuple(args.init), depth=args.depth, width=args.width, steps=args.steps,
        threshold=args.threshold, beta=args.beta, reset=args.reset, reset_order=args.reset_order,
        input=args.input, batch=args.batch, seed=args.seed, device=args.device,
    )
    check_fits(memory_estimate(config, args.gradients), "--width/--depth/--batch/--steps",
               config.device)
    check_time(len(config.inits) * config.depth * config.steps * config.batch
               * layer_operations(config.width, config.width) * (3 if args.gradients else 1),
               "--width/--depth/--batch/--steps")
    with tqdm(total=len(config.inits) * config.depth, desc="propagate", unit="layer",
              disable=progress_disabled(args)) as bar:
        result = run_propagation(config, on_layer=lambda: bar.update(1),
                                 gradients=args.gradients, surrogate=args.surrogate)
    print(format_table(summary_rows(result)))
    written = [args.out / "propagation.json", args.out / "propagation.png"]
    write_json_atomic(written[0], result)
    figures.plot_propagation(result, written[1])
    if config.steps > 1:
        written.append(args.out / "rate_by_step.png")
        figures.plot_rate_by_step(result, written[-1])
    if args.gradients:
        print()
        print(format_table(gradient_rows(result)))
        written.append(args.out / "gradients.png")
        figures.plot_gradients(result, written[-1])
    print("wrote " + ", ".join(map(str, written)))
    return 0


def run_conditions_command(args: argparse.Namespace) -> int:
    config = ConditionsConfig(
        widths=tuple(args.widths), thresholds=tuple(args.thresholds), init=args.init,
        depth=args.depth, steps=args.steps, beta=args.beta, reset=args.reset, batch=args.batch,
        seed=args.seed, device=args.device,
    )
    widest = config.propagation(max(config.widths), config.thresholds[0])
    check_fits(memory_estimate(widest), "--widths/--depth/--batch/--steps", config.device)
    check_time(len(config.thresholds) * config.depth * config.steps * config.batch
               * sum(layer_operations(width, width) for width in config.widths),
               "--widths/--thresholds/--depth/--batch/--steps")
    total = len(config.widths) * len(config.thresholds)
    with tqdm(total=total, desc="conditions", unit="run",
              disable=progress_disabled(args)) as bar:
        result = run_conditions(config, on_run=lambda: bar.update(1))
    relative = np.array(
        [[np.nan if v is None else v for v in row] for row in result["relative_rate"]]
    )
    rows = [["theta \\ width", *map(str, config.widths), "slope"]]
    for threshold, values, slope in zip(config.thresholds, relative, result["stability_slope"]):
        rows.append([f"{threshold:g}", *[f"{v:.2f}" for v in values], f"{slope:.2f}"])
    print(format_table(rows))
    write_json_atomic(args.out / "conditions.json", result)
    figures.plot_heatmap(
        relative, config.thresholds, config.widths, args.out / "conditions.png",
        row_label="threshold θ", column_label="width n",
        title=f"{config.init}: rate at layer {config.depth} / rate at layer 1 "
              f"(T={config.steps}, β={config.beta})",
        colorbar_label="relative rate", vmin=0.0, vmax=2.0,
    )
    print(f"wrote {args.out / 'conditions.json'} and {args.out / 'conditions.png'}")
    return 0


def run_methods(args: argparse.Namespace) -> int:
    for name in available_methods():
        method = get_method(name)[0]
        options = ", ".join(f"{key}={value}" for key, value in method.options.items())
        print(f"{name:18s} {link_docs_paths(method.summary)}"
              + (f" [options: {options}]" if options else ""))
    return 0


COMMANDS = {"propagate": run_propagate, "conditions": run_conditions_command,
            "methods": run_methods, **train_cli.COMMANDS,
            "inspect": inspect_cli.run, **sweep_cli.COMMANDS,
            **depth_cli.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeinit`` console script.

    The caller's mistakes (a :class:`~spikeinit.errors.UserError`: bad input, unusable outputs
    or devices, files the system cannot read or write, sizes that do not fit in memory) end in
    one line ``spikeinit: error: ...`` and exit code 2. Anything else is a bug in spikeinit: one
    line naming the exception, a bug-report hint, and exit code 1 (``SPIKEINIT_TRACEBACK=1``
    prints the traceback as well)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        preflight(args)
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"spikeinit: error: {error}", file=sys.stderr)
    except OSError as error:
        print(f"spikeinit: error: {describe_os_error(error)}", file=sys.stderr)
    except (MemoryError, torch.OutOfMemoryError) as error:
        detail = " ".join(str(error).split())[:160]
        print(f"spikeinit: error: out of memory ({type(error).__name__}{': ' if detail else ''}"
              f"{detail}); use a smaller --batch, --width, --depth or sample", file=sys.stderr)
    except KeyboardInterrupt:
        print("spikeinit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the last line of defence: a bug, said so
        return report_bug(error)
    return 2


def report_bug(error: BaseException) -> int:
    """Print one line naming an unexpected exception and where to report it; return 1."""
    detail = " ".join(str(error).split())[:200]
    print(f"spikeinit: internal error: {type(error).__name__}: {detail}\n"
          f"spikeinit: this is a bug in spikeinit; please report it at {BUG_REPORT_URL} with "
          "the command line and the output of the same command run with "
          "SPIKEINIT_TRACEBACK=1", file=sys.stderr)
    if settings.TRACEBACK.environment_value() == "1":
        traceback.print_exception(error, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
