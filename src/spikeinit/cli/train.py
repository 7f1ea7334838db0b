"""``spikeinit train`` and ``spikeinit compare`` (experiment 4: classification with BPTT).

Both run unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spikeinit.cli.budget import check_time, layer_operations
from spikeinit.cli.links import docs_page
from spikeinit.cli.progress import add_progress_option
from spikeinit.data import DATASET_NAMES, DatasetError
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.compare import (
    comparison_table,
    markdown_table,
    run_compare,
    summary_table,
)
from spikeinit.experiments.distributed import DEVICES, default_device
from spikeinit.experiments.training import (
    ENCODINGS,
    LOSSES,
    MODELS,
    NORMS,
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    TrainConfig,
    train,
)
from spikeinit.experiments.training.config import (
    DEFAULT_DEPTH,
    DEFAULT_RESNET_BLOCKS,
    DEFAULT_RESNET_CHANNELS,
    DEFAULT_WIDTH,
    TRANSFORMER_DEFAULTS,
    VARIANTS,
)
from spikeinit.init.registry import available_methods
from spikeinit.models.transformer import ATTENTIONS
from spikeinit.neurons.parameters import RESET_ORDERS
from spikeinit.neurons.surrogate import SURROGATES

DEFAULT_COMPARE_INITS = ("paper", "kaiming", "xavier", "pytorch")


_DEFAULTS = TrainConfig()


def _default(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def thread_count(text: str) -> int | str:
    """``--threads``: ``auto`` or a positive integer (an argparse type)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an integer >= 1, got {text!r}")
    return value


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N|auto`` of ``train`` and ``compare`` (``depth`` has its own, per
    worker)."""
    parser.add_argument("--threads", type=thread_count, default=None, metavar="N|auto",
                        help="torch's intra-op threads: N fixes them; auto measures 1 thread "
                             "against the process's count over the first training steps and "
                             "keeps the faster. Default: auto on the CPU, unless "
                             "OMP_NUM_THREADS or MKL_NUM_THREADS fixes the count. A resumed "
                             "run reuses its checkpoint's count")


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`TrainConfig`. Their argparse default is ``None`` ("not given"),
    so that ``--preset`` can fill them and explicit options override the preset."""
    add = parser.add_argument
    add("--preset", choices=sorted(PRESETS), default=None,
        help="a named set of options; explicit options override it. paper-protocol: the "
             "authors' protocol and init (input LIF layer, spike-count loss, Adam 1e-3, init "
             f"paper; {docs_page('results.md')})")
    add("--dataset", choices=DATASET_NAMES, help=f"default {_default('dataset')}")
    add("--data-dir", type=Path, help="data root (default: $SPIKEINIT_DATA_DIR)")
    add("--limit-train", type=int, help="train on this many samples (default: all)")
    add("--limit-test", type=int, help="test on this many samples (default: all)")
    add("--model", choices=MODELS, help=f"default {_default('model')}")
    add("--width", type=int, help="mlp: hidden width (default 100); cnn: hidden classifier "
                                  "width (default 0: none); resnet: 0 only; rsnn: neurons per "
                                  "recurrent population (default 128); transformer: embedding "
                                  f"width (default {DEFAULT_WIDTH['transformer']})")
    add("--depth", type=int, help=f"mlp: hidden Linear->LIF layers (default {_default('depth')}); "
                                  "rsnn: stacked recurrent LIF populations (default 1); "
                                  "transformer: blocks (default "
                                  f"{DEFAULT_DEPTH['transformer']})")
    add("--channels", type=int, nargs="+",
        help=f"cnn: output channels of each conv->LIF->pool block (default {_default('channels')});"
             " resnet: channels of each stage (default "
             f"{' '.join(map(str, DEFAULT_RESNET_CHANNELS))}, or 16 doubling per stage of "
             "--blocks)")
    add("--variant", choices=VARIANTS,
        help="resnet: sew (SEW-ResNet, spikes added, the default), ms (MS-ResNet, membrane "
             "shortcut) or plain (no shortcut)")
    add("--blocks", type=int, nargs="+",
        help="resnet: basic blocks of each stage, one per --channels entry (default "
             f"{DEFAULT_RESNET_BLOCKS} per stage: ResNet-20 with the default channels)")
    add("--heads", type=int, help="transformer: attention heads, dividing --width (default "
                                  f"{TRANSFORMER_DEFAULTS['heads']})")
    add("--patch", type=int, help="transformer: patch size, dividing the image size (default "
                                  f"{TRANSFORMER_DEFAULTS['patch']})")
    add("--attention", choices=ATTENTIONS,
        help="transformer: ssa (Spikformer's spiking self-attention, the default) or sdsa "
             "(spike-driven self-attention)")
    add("--norm", choices=NORMS, help="cnn, resnet: a BatchNorm after each conv; transformer: "
                                      "after the stem conv and each Linear but the head (it "
                                      "rescales "
                                      "the currents, so the init then matters only at the first "
                                      "step)")
    add("--encoding", choices=ENCODINGS,
        help="static images: pixels into the first layer (direct, the default), Bernoulli "
             "spikes (rate), or the authors' input LIF layer (lif); event data keeps its frames")
    add("--epochs", type=int, help=f"default {_default('epochs')}")
    add("--steps", type=int, help=f"time steps T (default {_default('steps')}; a sequence "
                                  "dataset: its length, 28 for smnist-rows, 784 for "
                                  "smnist-pixels and psmnist)")
    add("--batch", type=int, help=f"global batch, split evenly over torchrun processes "
                                  f"(default {_default('batch')})")
    add("--lr", type=float, help=f"learning rate (default {_default('lr')})")
    add("--hidden-lr", type=float,
        help="mlp: learning rate of the hidden-to-hidden layers (default: --lr); for deep "
             f"copy chains, where every layer's update adds up ({docs_page('depth.md')})")
    add("--clip-grad", type=float, metavar="NORM",
        help="scale the gradients down to this total L2 norm and skip a step whose gradients "
             "are not finite (default: no clipping); for recurrent networks over hundreds of "
             "steps (smnist-pixels, psmnist)")
    add("--optimizer", choices=OPTIMIZERS, help=f"default {_default('optimizer')}")
    add("--weight-decay", type=float, help="L2 (adam) or decoupled (adamw) weight decay "
                                          f"(default {_default('weight_decay')})")
    add("--schedule", choices=SCHEDULES, help="per-step learning-rate schedule after the "
                                              f"warm-up (default {_default('schedule')})")
    add("--warmup", type=float, help="epochs of linear learning-rate warm-up, may be "
                                     f"fractional (default {_default('warmup')})")
    add("--threshold", type=float, help=f"default {_default('threshold')}")
    add("--beta", type=float, help=f"membrane decay in [0, 1] (default {_default('beta')})")
    add("--reset-order", choices=RESET_ORDERS,
        help="when the reset acts: at the step after the spike (delayed, snnTorch's Leaky, the "
             "default) or at the spike step (immediate, SpikingJelly's and Norse's)")
    add("--loss", choices=LOSSES, help="cross-entropy on the output membrane (membrane, the "
                                       "default) or on output spike counts (the authors')")
    add("--augment", action=argparse.BooleanOptionalAction,
        help="random crops (and flips for CIFAR-10) in training (default: on for MNIST and "
             "CIFAR-10)")
    add("--normalize", action=argparse.BooleanOptionalAction,
        help="per-channel standardisation with the training set's statistics "
             "(default: CIFAR-10 only)")
    add("--surrogate", choices=SURROGATES,
        help="surrogate gradient (default atan: snnTorch Leaky's default)")
    add("--surrogate-slope", type=float,
        help="slope of the surrogate (default: 1 for atan, where snnTorch uses 2; 25 for "
             "fast-sigmoid)")
    parser.add_argument("--device", choices=DEVICES, default=default_device(),
                        help="default: cuda when available, else cpu")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --out (exactly)")
    add_progress_option(parser)


def add_parsers(subparsers: Any) -> None:
    """Add the ``train`` and ``compare`` subcommands to ``subparsers``."""
    train_parser = subparsers.add_parser(
        "train", help="experiment 4: train an SNN classifier with BPTT (torchrun-ready)"
    )
    _add_training_options(train_parser)
    _add_threads_option(train_parser)
    train_parser.add_argument("--init", default=None,
                              help=f"init method ({', '.join(available_methods())}; default "
                                   f"{_default('init')}, spikeinit.initialize's default: every "
                                   "population at the rate that trains best; --preset "
                                   "paper-protocol: paper)")
    train_parser.add_argument("--seed", type=int, default=0,
                              help="seeds the weights, the shuffling and every RNG")
    train_parser.add_argument("--out", type=Path, default=Path("runs/train"),
                              help="output directory")
    train_parser.add_argument("--overwrite", action="store_true",
                              help="replace a run already in --out (else refused, unless "
                                   "--resume)")

    compare = subparsers.add_parser(
        "compare", help="train one model with several inits and seeds; accuracy per init",
        description="Train the same model (every option of spikeinit train) once per init and "
                    "seed, then print the final test accuracy of each init (mean and std over "
                    "the seeds) and, paired by seed, the first init (paper when listed) minus "
                    "each other one. Writes compare.json, compare.csv, compare.md and "
                    "compare.png to --out; one run folder per init and seed, resumable.",
    )
    _add_training_options(compare)
    _add_threads_option(compare)
    compare.add_argument("--init", nargs="+", default=list(DEFAULT_COMPARE_INITS),
                         help=f"init methods ({', '.join(available_methods())})")
    compare.add_argument("--seeds", type=int, nargs="+", default=[0],
                         help="one training per init and seed")
    compare.add_argument("--out", type=Path, default=Path("runs/compare"),
                         help="output directory")
    compare.add_argument("--overwrite", action="store_true",
                         help="replace runs already in --out (else refused, unless --resume)")


_CONFIG_OPTIONS = ("dataset", "data_dir", "limit_train", "limit_test", "model", "width", "depth",
                   "channels", "variant", "blocks", "heads", "patch", "attention", "norm",
                   "encoding", "epochs", "steps",
                   "batch", "lr", "hidden_lr", "clip_grad", "optimizer", "weight_decay",
                   "schedule", "warmup",
                   "threshold", "beta", "reset_order", "loss", "augment", "normalize",
                   "surrogate", "surrogate_slope")


def _config(args: argparse.Namespace, init: str | None, seed: int) -> TrainConfig:
    """The preset's options (if any), overridden by every option given on the command line
    (``init=None``: the preset's init, else :class:`TrainConfig`'s)."""
    options = dict(PRESETS[args.preset]) if args.preset else {}
    for name in _CONFIG_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    for name in ("channels", "blocks"):
        if name in options:
            options[name] = tuple(options[name])
    if options.get("data_dir") is not None:
        options["data_dir"] = str(options["data_dir"])
    if init is not None:
        options["init"] = init
    return TrainConfig(**options, seed=seed)


#: The largest training split of the built-in datasets (MNIST's), for the time estimate.
LARGEST_SPLIT = 60_000


def training_operations(config: TrainConfig) -> int:
    """Operations of an MLP training, about: forward and backward (three passes) of every
    layer per sample, step and epoch over ``limit_train`` samples (else the largest built-in
    split), for a 784-pixel input. The convolutional models are bounded by their channel
    lists and count 0."""
    if config.model != "mlp" or not config.width:
        return 0
    samples = min(config.limit_train or LARGEST_SPLIT, LARGEST_SPLIT)
    per_sample = (layer_operations(784, config.width)
                  + (config.depth - 1) * layer_operations(config.width, config.width))
    return 3 * config.epochs * samples * config.steps * per_sample


def run_train(args: argparse.Namespace) -> int:
    """Run ``spikeinit train``; data problems become a one-line ValueError."""
    config = _config(args, args.init, args.seed)
    check_time(training_operations(config), "--epochs/--width/--depth/--steps/--limit-train")
    try:
        result = train(config, args.out, device=args.device, resume=args.resume,
                       progress=not args.no_progress, overwrite=args.overwrite,
                       threads=args.threads)
    except DatasetError as error:
        raise InvalidArgumentError(str(error)) from error
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
                              progress=not args.no_progress, resume=args.resume,
                              overwrite=args.overwrite, threads=args.threads)
    except DatasetError as error:
        raise InvalidArgumentError(str(error)) from error
    print(markdown_table(summary_table(summary)), end="")
    comparisons = comparison_table(summary)
    if len(comparisons) > 1:
        print(f"\npaired by seed, final test accuracy of {summary['reference']} minus each init:")
        print(markdown_table(comparisons), end="")
    print(f"wrote {args.out}/compare.json, compare.csv, compare.md, compare.png")
    return 0


COMMANDS = {"train": run_train, "compare": run_compare_command}
