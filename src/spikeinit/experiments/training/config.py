"""``TrainConfig``: everything that determines a training run, validated up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from spikeinit._validation import (
    check_choice,
    check_finite_nonnegative,
    check_positive,
    check_positive_int,
    check_seed,
    check_unit_interval,
)
from spikeinit.data import canonical_name, dataset_info
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training.encoding import ENCODINGS
from spikeinit.experiments.training.readout import LOSSES
from spikeinit.init.model import DEFAULT_METHOD
from spikeinit.init.registry import get_method
from spikeinit.models.transformer import ATTENTIONS
from spikeinit.neurons.parameters import RESET_ORDERS
from spikeinit.neurons.surrogate import DEFAULT_SLOPES, SURROGATES

MODELS = ("mlp", "cnn", "resnet", "rsnn", "transformer")

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "constant")
NORMS = ("none", "batch")
#: Block variants of the ``resnet`` model (:class:`~spikeinit.models.SpikingResNet`).
VARIANTS = ("sew", "ms", "plain")
DEFAULT_WIDTH = {"mlp": 100, "cnn": 0, "resnet": 0, "rsnn": 128, "transformer": 64}
#: ``depth`` when not given: hidden layers of the mlp (the paper's 10), recurrent
#: populations of the rsnn, blocks of the transformer (the cnn and the resnet do not read it).
DEFAULT_DEPTH = {"mlp": 10, "cnn": 10, "resnet": 10, "rsnn": 1, "transformer": 2}
#: Time steps ``T`` of the datasets that have no time axis of their own (``steps`` unset).
DEFAULT_STEPS = 3
#: The transformer's options when not given: attention heads, patch size, attention kind
#: (:meth:`TrainConfig.to_dict` leaves them out of the other models' dicts).
TRANSFORMER_DEFAULTS: dict[str, Any] = {"heads": 4, "patch": 4, "attention": "ssa"}
#: Channels of the cnn's conv blocks when ``channels`` is not given.
DEFAULT_CHANNELS = (16, 32)
#: Stage widths of the resnet when neither ``channels`` nor ``blocks`` is given (ResNet-20).
DEFAULT_RESNET_CHANNELS = (16, 32, 64)
#: Basic blocks per resnet stage when ``blocks`` is not given (ResNet-20: 3 per stage).
DEFAULT_RESNET_BLOCKS = 3
#: The surrogate slope that training uses when none is given (measured, docs/results.md).
TRAINING_SLOPES = {"atan": 1.0}
#: Named sets of options (``spikeinit train --preset NAME``); explicit options override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The authors' MLP on MNIST with the measured defaults (docs/results.md).
    "mnist-mlp": {"dataset": "mnist", "model": "mlp", "width": 100, "depth": 10},
    # The authors' protocol and init: input LIF layer, spike-count loss, Adam 1e-3, the paper's
    # init (docs/results.md).
    "paper-protocol": {"init": "paper", "encoding": "lif", "loss": "counts", "optimizer": "adam",
                       "lr": 1e-3, "weight_decay": 0.0, "surrogate_slope": 2.0,
                       "augment": False},
    # A CIFAR-10 baseline that trains on a 2-core CPU: 3 conv-BN-LIF-pool blocks (32-64-128
    # channels), a 256-wide hidden layer, augmentation and normalisation (docs/results.md).
    "cifar10-cnn": {"dataset": "cifar10", "model": "cnn", "channels": (32, 64, 128),
                    "norm": "batch", "width": 256, "weight_decay": 0.05, "warmup": 1.0},
    # Deep plain MLPs with init deep=0.1 (docs/depth.md: 93 % at depth 50): neurons that
    # reset at the spike step, the atan slope that makes the copy chain isometric backward
    # (isometric_copy_slope(1.1) = 2), and the hidden chain at a 100x smaller rate, which
    # keeps it from drifting out of its copy window.
    "deep-chain": {"model": "mlp", "reset_order": "immediate", "surrogate_slope": 2.0,
                   "lr": 3e-3, "hidden_lr": 3e-5},
}
#: Datasets that ``augment=None`` augments: CIFAR-10 (the standard crops and flips) and MNIST,
#: where 1-pixel shifts add 0.2 points to the 10 x 100 MLP; on Fashion-MNIST they cost about a
#: point, because that network underfits it (docs/results.md).
AUGMENTED_BY_DEFAULT = ("mnist", "cifar10")
#: Datasets whose images are flipped left-right by ``augment`` (digits are not symmetric).
FLIPPED_DATASETS = ("cifar10",)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the device does not).

    The defaults are measured, not copied: ``docs/results.md`` holds the runs that chose
    them (direct encoding, membrane readout, AdamW with lr 3e-3 and weight decay 0.1, a cosine
    schedule, 1-pixel random shifts, atan surrogate of slope 1, 10 epochs, the init
    ``trainable``). The preset ``paper-protocol`` (:data:`PRESETS`) is the authors' protocol
    with the paper's init.

    Args:
        dataset: ``mnist``, ``fashion-mnist``, ``cifar10``, ``nmnist``, or a sequential MNIST
            (``smnist-rows``, ``smnist-pixels``, ``psmnist``: the sequence is the time axis).
        data_dir: data root (``None``: ``$SPIKEINIT_DATA_DIR``).
        model: ``mlp`` (the paper's MLP), ``cnn`` (:class:`SpikingCNN`), ``resnet``
            (:class:`SpikingResNet`: a 3x3 stem, stages of basic residual blocks, global
            average pooling and a ``Linear -> LIF`` output), ``rsnn``
            (:class:`~spikeinit.models.SpikingRNN`: ``depth`` recurrent LIF populations of
            ``width`` neurons, then a ``Linear -> LIF`` output) or ``transformer``
            (:class:`SpikingTransformer`: a patch stem, blocks of spiking self-attention and
            MLP with spike-add residuals, a ``Linear -> LIF`` head on the tokens' mean).
        width: MLP hidden width (default 100); CNN hidden classifier width (default 0: none);
            the resnet has no hidden classifier layer (0 only); rsnn: neurons of each
            recurrent population (default 128); the transformer's embedding width (default 64).
        depth: number of hidden ``Linear -> LIF`` layers of the MLP (default 10); recurrent
            populations of the rsnn, stacked (default 1); transformer blocks (default 2).
        heads: the transformer's attention heads (must divide ``width``; default 4).
        patch: the transformer's patch size (must divide the image's height and width;
            default 4: 64 tokens on CIFAR-10, 49 on MNIST).
        attention: the transformer's attention: ``ssa`` (Spikformer's spiking self-attention,
            the default) or ``sdsa`` (spike-driven self-attention, Yao et al. 2023).
        channels: output channels of the CNN's conv blocks (``None``: ``(16, 32)``), or the
            widths of the resnet's stages (``None``: ``(16, 32, 64)``, ResNet-20; when only
            ``blocks`` is given, 16 doubling at every stage, one per entry of ``blocks``).
        variant: the resnet's blocks: ``sew`` (SEW-ResNet, spikes added), ``ms`` (MS-ResNet,
            membrane shortcut) or ``plain`` (no shortcut); ``sew`` for the other models.
        blocks: basic blocks of each resnet stage, one entry per entry of ``channels``
            (``None``: 3 per stage); resnet only (``None`` for the other models).
        norm: ``none`` or ``batch`` (a BatchNorm after each conv of the CNN or the resnet; after
            the stem conv and every Linear but the head of the transformer).
        encoding: how a static image enters the network (:mod:`.encoding`): ``direct``
            (pixels into the first Linear/Conv), ``rate`` (Bernoulli spikes) or ``lif`` (the
            authors' input LIF layer). Event data (N-MNIST) always keeps its frames.
        init: a method of the init registry (``spikeinit methods``). The default,
            ``trainable``, is :func:`spikeinit.initialize`'s: every spiking population at the
            rate 0.1 that trains best (docs/operating-point.md); ``paper`` is the paper's
            ``Var[w] = sigma^2 / (n Q(theta / sigma))`` with ``sigma = 1``, which the preset
            ``paper-protocol`` sets.
        epochs, steps, batch, lr: epochs, time steps ``T``, global batch, learning rate.
            ``steps`` ``None`` (the default) is the sequence length of a sequence dataset
            (28 or 784), :data:`DEFAULT_STEPS` for the others; a sequence dataset accepts
            only its own length.
        hidden_lr: learning rate of the MLP's hidden-to-hidden layers (``None``, the
            default: ``lr``); the first layer and the classifier keep ``lr``. In a deep chain
            of near-identity layers (``deep``) every layer receives nearly the same update, so
            the chain moves about depth times as far as one layer; a smaller ``hidden_lr``
            keeps it in the copy window (docs/depth.md); 0 freezes those layers at their
            init. Left out of :meth:`to_dict` when ``None``.
        clip_grad: the largest L2 norm of all the gradients together at a step (``None``, the
            default: no clipping): gradients beyond it are scaled down to it, and a step whose
            gradients are not finite is skipped (counted in the epoch's ``skipped_steps``), as
            backpropagation through hundreds of steps of a recurrent network can overflow.
            Left out of :meth:`to_dict` when ``None``.
        optimizer: ``adamw`` (decoupled weight decay, the default) or ``adam``.
        weight_decay: L2 penalty (Adam) or decoupled decay (AdamW), >= 0.
        schedule: ``cosine`` (to zero at the end of the last epoch) or ``constant``.
        warmup: epochs of linear learning-rate warm-up before the schedule (may be fractional).
        threshold, beta: LIF threshold (>= 0) and membrane decay (in [0, 1]).
        reset_order: when the subtractive reset acts: ``delayed`` (at the step after the
            spike, snnTorch's ``Leaky``, the default) or ``immediate`` (at the spike step,
            SpikingJelly's and Norse's); :class:`~spikeinit.neurons.LIFParameters`.
        surrogate: surrogate gradient of the spike (default ``atan``, the kind of snnTorch's
            ``Leaky`` that the authors used).
        surrogate_slope: its slope (``atan``: ``h'(x) = (a/2) / (1 + (pi a x / 2)^2)``).
            ``None`` (default) resolves to :data:`TRAINING_SLOPES`: 1 for ``atan``, half of
            snnTorch's 2, because the wider surrogate trains the 10-layer MLP better (measured
            in docs/results.md); the surrogate's library default otherwise.
        loss: ``membrane`` (cross-entropy on the output layer's membrane averaged over the
            steps) or ``counts`` (on output spike counts, the authors' readout).
        augment: random crops (padding 4 for 32x32 images, 1 for 28x28) and, for CIFAR-10,
            horizontal flips during training (``None``: on for the datasets of
            :data:`AUGMENTED_BY_DEFAULT`, MNIST and CIFAR-10).
        normalize: per-channel standardisation with the training set's mean and std
            (``None``: on for CIFAR-10 only).
        seed: seeds weights, shuffling and every RNG.
        limit_train, limit_test: use only this many samples (``None``: all).
        stats_samples: samples used to measure the input statistics for the first layer.
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    model: str = "mlp"
    width: int | None = None
    depth: int | None = None
    channels: tuple[int, ...] | None = None
    variant: str = "sew"
    blocks: tuple[int, ...] | None = None
    norm: str = "none"
    heads: int | None = None
    patch: int | None = None
    attention: str | None = None
    encoding: str = "direct"
    init: str = DEFAULT_METHOD
    epochs: int = 10
    steps: int | None = None
    batch: int = 64
    lr: float = 3e-3
    hidden_lr: float | None = None
    clip_grad: float | None = None
    optimizer: str = "adamw"
    weight_decay: float = 0.1
    schedule: str = "cosine"
    warmup: float = 0.0
    threshold: float = 1.0
    beta: float = 0.5
    reset_order: str = "delayed"
    loss: str = "membrane"
    surrogate: str = "atan"
    surrogate_slope: float | None = None
    augment: bool | None = None
    normalize: bool | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    stats_samples: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", canonical_name(self.dataset))
        check_choice("model", self.model, MODELS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("surrogate", self.surrogate, SURROGATES)
        if self.surrogate_slope is None:
            object.__setattr__(self, "surrogate_slope", TRAINING_SLOPES.get(
                self.surrogate, DEFAULT_SLOPES[self.surrogate]))
        check_positive("surrogate_slope", self.surrogate_slope)
        check_choice("encoding", self.encoding, ENCODINGS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("norm", self.norm, NORMS)
        get_method(self.init)  # raises ValueError listing the registry
        self._check_model()
        check_positive_int("epochs", self.epochs)
        self._resolve_steps()
        check_positive_int("batch", self.batch)
        check_positive("lr", self.lr)
        if self.clip_grad is not None:
            check_positive("clip_grad", self.clip_grad)
        if self.hidden_lr is not None:
            check_finite_nonnegative("hidden_lr", self.hidden_lr)
            if self.model != "mlp" or self.depth < 2:
                raise InvalidArgumentError(
                    f"hidden_lr applies to an mlp with depth >= 2 (hidden-to-hidden layers); "
                    f"got model={self.model!r}, depth={self.depth}; leave it unset")
        check_finite_nonnegative("weight_decay", self.weight_decay)
        check_finite_nonnegative("warmup", self.warmup)
        if self.warmup > self.epochs:
            raise InvalidArgumentError(f"warmup must be in [0, epochs={self.epochs}] epochs, "
                             f"got {self.warmup!r}")
        check_finite_nonnegative("threshold", self.threshold)
        check_unit_interval("beta", self.beta)
        check_choice("reset_order", self.reset_order, RESET_ORDERS)
        object.__setattr__(self, "seed", check_seed(self.seed))
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None:
                check_positive_int(name, value)
        check_positive_int("stats_samples", self.stats_samples)
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))
        self._resolve_preprocessing()

    def _resolve_steps(self) -> None:
        own = dataset_info(self.dataset).steps
        if self.steps is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS if own is None else own)
        check_positive_int("steps", self.steps)
        if own is not None and self.steps != own:
            raise InvalidArgumentError(
                f"steps must be {own} for {self.dataset} (its sequence length is the time "
                f"axis), got {self.steps!r}; leave it unset")

    def _check_model(self) -> None:
        if self.width is None:
            object.__setattr__(self, "width", DEFAULT_WIDTH[self.model])
        if self.depth is None:
            object.__setattr__(self, "depth", DEFAULT_DEPTH[self.model])
        if self.model in ("mlp", "rsnn"):
            check_positive_int("width", self.width)
            if self.norm != "none":
                raise InvalidArgumentError(
                    f"norm={self.norm!r} applies to the cnn and the resnet (and the "
                    f"transformer); the {self.model} has no normalisation (use norm='none')")
        elif dataset_info(self.dataset).sequential:
            raise InvalidArgumentError(
                f"model={self.model!r} needs images; {self.dataset} is a sequence of "
                "feature vectors (use model='rsnn' or 'mlp')")
        elif self.model == "transformer":
            check_positive_int("width", self.width)
        elif self.model == "resnet":
            if isinstance(self.width, bool) or self.width != 0:
                raise InvalidArgumentError(f"width must be 0 for the resnet (its classifier is one "
                                 f"Linear -> LIF, no hidden layer), got {self.width!r}")
        elif isinstance(self.width, bool) or int(self.width) != self.width or self.width < 0:
            raise InvalidArgumentError(
                f"width must be an integer >= 0 for the cnn, got {self.width!r}")
        check_positive_int("depth", self.depth)
        check_choice("variant", self.variant, VARIANTS)
        blocks = None if self.blocks is None else _int_tuple("blocks", self.blocks, "stage")
        if self.model != "resnet":
            if blocks is not None:
                raise InvalidArgumentError(
                    f"blocks applies to the resnet only (model={self.model!r}); "
                                 "leave it unset")
            if self.variant != "sew":
                raise InvalidArgumentError(f"variant={self.variant!r} applies to the resnet only "
                                 f"(model={self.model!r}); leave it unset")
        if self.model == "transformer":
            if self.channels is not None and tuple(self.channels):  # to_dict writes []
                raise InvalidArgumentError(
                    "channels does not apply to the transformer (its width is the embedding "
                    "width, --width); leave it unset")
            channels: tuple[int, ...] = ()
        elif self.channels is not None:
            channels = _int_tuple("channels", self.channels,
                                  "stage" if self.model == "resnet" else "conv block")
        elif self.model != "resnet":
            channels = DEFAULT_CHANNELS
        elif blocks is None:
            channels = DEFAULT_RESNET_CHANNELS
        else:
            channels = tuple(DEFAULT_RESNET_CHANNELS[0] * 2**i for i in range(len(blocks)))
        if self.model == "resnet":
            if blocks is None:
                blocks = (DEFAULT_RESNET_BLOCKS,) * len(channels)
            if len(blocks) != len(channels):
                raise InvalidArgumentError(
                    f"blocks and channels must have the same length for the resnet (one entry "
                    f"per stage), got blocks={' '.join(map(str, blocks))} and "
                    f"channels={' '.join(map(str, channels))}")
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "blocks", blocks)
        self._check_transformer_options()

    def _check_transformer_options(self) -> None:
        """Resolve ``heads``, ``patch`` and ``attention`` for the transformer; refuse them for
        the other models."""
        if self.model != "transformer":
            for name in TRANSFORMER_DEFAULTS:
                if getattr(self, name) is not None:
                    raise InvalidArgumentError(
                        f"{name}={getattr(self, name)!r} applies to the transformer only "
                        f"(model={self.model!r}); leave it unset")
            return
        for name, default in TRANSFORMER_DEFAULTS.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        check_positive_int("heads", self.heads)
        check_positive_int("patch", self.patch)
        check_choice("attention", self.attention, ATTENTIONS)
        if self.width % self.heads:
            raise InvalidArgumentError(
                f"heads must divide the transformer's width {self.width}, got heads="
                f"{self.heads!r}")
        _, height, width = dataset_info(self.dataset).sample_shape
        if height % self.patch or width % self.patch:
            raise InvalidArgumentError(
                f"patch must divide {self.dataset}'s image size {height}x{width}, got patch="
                f"{self.patch!r}")

    def _resolve_preprocessing(self) -> None:
        info = dataset_info(self.dataset)
        event_based = info.event_based or info.sequential
        kind = "a sequence" if info.sequential else "event-based"
        fed = ("a sequence and is fed as it is" if info.sequential
               else "event-based and is fed its event frames")
        defaults = {"augment": self.dataset in AUGMENTED_BY_DEFAULT,
                    "normalize": self.dataset == "cifar10"}
        for name, default in defaults.items():
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, default)
            elif not isinstance(value, bool):
                raise InvalidArgumentError(f"{name} must be True, False or None, got {value!r}")
            elif value and event_based:
                raise InvalidArgumentError(
                    f"{name}=True applies to static images; {self.dataset} is "
                    f"{kind} and keeps its frames as they are")
        if event_based and self.encoding != "direct":
            raise InvalidArgumentError(
                f"encoding={self.encoding!r} applies to static images; {self.dataset} is "
                f"{fed} (use encoding='direct')")

    @property
    def flip(self) -> bool:
        """Whether ``augment`` also flips images left-right (CIFAR-10 only)."""
        return bool(self.augment) and self.dataset in FLIPPED_DATASETS

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``channels`` and ``blocks`` as lists).

        ``variant`` and ``blocks`` are left out for the mlp, the cnn and the transformer, where
        they must keep their defaults (``"sew"``, ``None``), and ``heads``, ``patch`` and
        ``attention`` for every model but the transformer: the dicts of those models, and the
        sweep keys hashed from them, are as they were before the resnet and the transformer
        existed. ``reset_order`` is
        left out at its default (``"delayed"``), and ``hidden_lr`` and ``clip_grad`` when
        ``None``, for the same reason.
        """
        data = asdict(self)
        data["channels"] = list(self.channels or ())
        if self.model == "resnet":
            data["blocks"] = list(self.blocks or ())
        else:
            del data["variant"], data["blocks"]
        if self.model != "transformer":
            for name in TRANSFORMER_DEFAULTS:
                del data[name]
        if self.reset_order == "delayed":
            del data["reset_order"]
        for name in ("hidden_lr", "clip_grad"):
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("channels", "blocks"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def _int_tuple(name: str, values: Any, unit: str) -> tuple[int, ...]:
    """``values`` as a non-empty tuple of ints >= 1 (one per ``unit``), or a ValueError."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise InvalidArgumentError(f"{name} must be a sequence of integers >= 1 (one per {unit}), "
                         f"got {values!r}")
    items = tuple(values)
    if not items:
        raise InvalidArgumentError(f"{name} must list at least one {unit}, got {values!r}")
    return tuple(check_positive_int(f"{name}[{index}]", value)
                 for index, value in enumerate(items))
