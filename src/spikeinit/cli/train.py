"""``spikeinit train`` and ``spikeinit compare`` (experiment 4: classification with BPTT).

Both run unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spikeinit.data import DATASET_NAMES, DatasetError
from spikeinit.experiments.compare import markdown_table, run_compare, summary_table
from spikeinit.experiments.distributed import DEVICES, default_device
from spikeinit.experiments.training import LOSSES, MODELS, TrainConfig, train
from spikeinit.init.registry import available_methods
from spikeinit.theory.surrogate import SURROGATES

DEFAULT_COMPARE_INITS = ("paper", "kaiming", "xavier", "pytorch")


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASET_NAMES, default="mnist")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data root (default: $SPIKEINIT_DATA_DIR)")
    parser.add_argument("--limit-train", type=int, default=None,
                        help="train on this many samples (default: all)")
    parser.add_argument("--limit-test", type=int, default=None,
                        help="test on this many samples (default: all)")
    parser.add_argument("--model", choices=MODELS, default="mlp")
    parser.add_argument("--width", type=int, default=None,
                        help="mlp: hidden width (default 100); cnn: hidden classifier width "
                             "(default 0: none)")
    parser.add_argument("--depth", type=int, default=10,
                        help="mlp: number of hidden Linear->LIF layers")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32],
                        help="cnn: output channels of each conv->LIF->pool block")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="time steps T")
    parser.add_argument("--batch", type=int, default=64,
                        help="global batch (split evenly over torchrun processes)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--threshold", type=float, default=1.0)
    parser.add_argument("--beta", type=float, default=0.5, help="membrane decay in [0, 1]")
    parser.add_argument("--loss", choices=LOSSES, default="counts",
                        help="cross-entropy on output spike counts, or on the output membrane")
    parser.add_argument("--surrogate", choices=SURROGATES, default="atan",
                        help="surrogate gradient (atan: snnTorch Leaky's default)")
    parser.add_argument("--device", choices=DEVICES, default=default_device())
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --out (exactly)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_parsers(subparsers: Any) -> None:
    """Add the ``train`` and ``compare`` subcommands to ``subparsers``."""
    train_parser = subparsers.add_parser(
        "train", help="experiment 4: train an SNN classifier with BPTT (torchrun-ready)"
    )
    _add_training_options(train_parser)
    train_parser.add_argument("--init", default="paper",
                              help=f"init method ({', '.join(available_methods())})")
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--out", type=Path, default=Path("runs/train"),
                              help="output directory")

    compare = subparsers.add_parser(
        "compare", help="train one model with several inits and seeds; accuracy per init"
    )
    _add_training_options(compare)
    compare.add_argument("--init", nargs="+", default=list(DEFAULT_COMPARE_INITS),
                         help=f"init methods ({', '.join(available_methods())})")
    compare.add_argument("--seeds", type=int, nargs="+", default=[0])
    compare.add_argument("--out", type=Path, default=Path("runs/compare"),
                         help="output directory")


def _config(args: argparse.Namespace, init: str, seed: int) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset,
        data_dir=str(args.data_dir) if args.data_dir is not None else None,
        model=args.model, width=args.width, depth=args.depth, channels=tuple(args.channels),
        init=init, epochs=args.epochs, steps=args.steps, batch=args.batch, lr=args.lr,
        threshold=args.threshold, beta=args.beta, loss=args.loss,
        surrogate=args.surrogate, seed=seed,
        limit_train=args.limit_train, limit_test=args.limit_test,
    )


def run_train(args: argparse.Namespace) -> int:
    """Run ``spikeinit train``; data problems become a one-line ValueError."""
    config = _config(args, args.init, args.seed)
    try:
        result = train(config, args.out, device=args.device, resume=args.resume,
                       progress=not args.no_progress)
    except DatasetError as error:
        raise ValueError(str(error)) from error
    if result.out is not None and result.history:
        final = result.final
        print(f"final test accuracy {final['test_accuracy']:.4f}; wrote {args.out}/metrics.json, "
              "metrics.csv, curves.png, checkpoint.pt")
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    """Run ``spikeinit compare``: one training per init and seed, then the summary."""
    base = _config(args, args.init[0], args.seeds[0])
    try:
        summary = run_compare(base, args.init, args.seeds, args.out, device=args.device,
                              progress=not args.no_progress, resume=args.resume)
    except DatasetError as error:
        raise ValueError(str(error)) from error
    print(markdown_table(summary_table(summary)), end="")
    print(f"wrote {args.out}/compare.json, compare.csv, compare.md, compare.png")
    return 0


COMMANDS = {"train": run_train, "compare": run_compare_command}
