"""Train spiking classifiers with BPTT and surrogate gradients (experiment 4 of the paper).

:func:`train` is what ``spikeinit train`` runs. Defaults follow the authors' code: ``T = 3``
steps, Adam (lr 1e-3, betas 0.9/0.999) with a cosine schedule, batch 64, cross-entropy on the
output spike counts. Static images are presented as a constant direct current over the ``T``
steps (pixels in [0, 1], no rate coding); N-MNIST frames are fed time-major as they are.

Single process or under ``torchrun`` (DistributedDataParallel), the run is the same: the
global batch is split evenly over the processes, each process draws its share of every global
batch from one shared permutation (``DistributedSampler``), and DDP averages the gradients,
so every optimizer step sees the mean gradient of the same global batch. Only rank 0 writes.
"""

from __future__ import annotations

import csv
import io
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, DistributedSampler
from tqdm import tqdm

from spikeinit._validation import (
    check_choice,
    check_finite_nonnegative,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from spikeinit.data import (
    DATASET_NAMES,
    ImageArrayDataset,
    canonical_name,
    dataset_info,
    load_dataset,
)
from spikeinit.experiments.distributed import (
    DistributedContext,
    all_reduce_sum,
    cleanup_distributed,
    setup_distributed,
)
from spikeinit.init.model import (
    InitRecord,
    find_synaptic_layers,
    initialize,
    layer_context,
)
from spikeinit.init.registry import get_method
from spikeinit.io import atomic_path, write_json_atomic, write_text_atomic
from spikeinit.models.cnn import SpikingCNN, classifier_mlp
from spikeinit.models.mlp import SpikingMLP
from spikeinit.neurons.dynamics import initial_state, lif_step
from spikeinit.neurons.lif import LIF
from spikeinit.theory.surrogate import SURROGATES

MODELS = ("mlp", "cnn")
LOSSES = ("counts", "membrane")
DEFAULT_WIDTH = {"mlp": 100, "cnn": 0}
CHECKPOINT = "checkpoint.pt"
EVAL_BATCH = 256


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the device does not).

    Args:
        dataset: ``mnist``, ``fashion-mnist``, ``cifar10`` or ``nmnist``.
        data_dir: data root (``None``: ``$SPIKEINIT_DATA_DIR``).
        model: ``mlp`` (the paper's MLP) or ``cnn`` (:class:`SpikingCNN`).
        width: MLP hidden width (default 100); CNN hidden classifier width (default 0: none).
        depth: number of hidden ``Linear -> LIF`` layers of the MLP (default 10).
        channels: output channels of the CNN's conv blocks.
        init: a method of the init registry (``spikeinit methods``), e.g. ``paper``.
        epochs, steps, batch, lr: epochs, time steps ``T``, global batch, Adam learning rate.
        threshold, beta: LIF threshold (>= 0) and membrane decay (in [0, 1]).
        surrogate: surrogate gradient of the spike (default ``atan`` with slope 2, the
            default of snnTorch's ``Leaky`` that the authors used).
        loss: ``counts`` (cross-entropy on output spike counts) or ``membrane`` (on the
            output layer's membrane potential averaged over the steps).
        seed: seeds weights, shuffling and every RNG.
        limit_train, limit_test: use only this many samples (``None``: all).
        stats_samples: samples used to measure the input statistics for the first layer.
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    model: str = "mlp"
    width: int | None = None
    depth: int = 10
    channels: tuple[int, ...] = (16, 32)
    init: str = "paper"
    epochs: int = 3
    steps: int = 3
    batch: int = 64
    lr: float = 1e-3
    threshold: float = 1.0
    beta: float = 0.5
    loss: str = "counts"
    surrogate: str = "atan"
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    stats_samples: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", canonical_name(self.dataset))
        check_choice("model", self.model, MODELS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("surrogate", self.surrogate, SURROGATES)
        get_method(self.init)  # raises ValueError listing the registry
        if self.width is None:
            object.__setattr__(self, "width", DEFAULT_WIDTH[self.model])
        if self.model == "mlp":
            check_positive_int("width", self.width)
        elif isinstance(self.width, bool) or int(self.width) != self.width or self.width < 0:
            raise ValueError(f"width must be an integer >= 0 for the cnn, got {self.width!r}")
        check_positive_int("depth", self.depth)
        channels = tuple(self.channels)
        if not channels:
            raise ValueError("channels must list at least one conv block, e.g. 16 32")
        for index, value in enumerate(channels):
            check_positive_int(f"channels[{index}]", value)
        object.__setattr__(self, "channels", tuple(int(c) for c in channels))
        check_positive_int("epochs", self.epochs)
        check_positive_int("steps", self.steps)
        check_positive_int("batch", self.batch)
        check_positive("lr", self.lr)
        check_finite_nonnegative("threshold", self.threshold)
        check_unit_interval("beta", self.beta)
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None:
                check_positive_int(name, value)
        check_positive_int("stats_samples", self.stats_samples)
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``channels`` as a list)."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return cls(**values)


# ----------------------------------------------------------------------------------- data


@dataclass
class ArrayData:
    """A dataset held in memory: ``inputs`` per sample (uint8 images or float frames)."""

    inputs: Tensor
    labels: Tensor
    scale: float
    event_based: bool

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Float inputs ``(B, ...)`` and labels ``(B,)`` of ``indices``."""
        x = self.inputs[indices].to(torch.float32)
        if self.scale != 1.0:
            x = x.mul_(self.scale)
        return x, self.labels[indices]


def to_arrays(dataset: Dataset, event_based: bool) -> ArrayData:
    """Materialize a map-style dataset (uint8 images stay uint8, 4x smaller than float)."""
    if isinstance(dataset, ImageArrayDataset):
        return ArrayData(dataset.images, dataset.labels, 1.0 / 255.0, event_based)
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    inputs = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in items])
    labels = torch.as_tensor([int(y) for _, y in items], dtype=torch.int64)
    return ArrayData(inputs, labels, 1.0, event_based)


def load_data(config: TrainConfig) -> tuple[ArrayData, ArrayData]:
    """Train and test splits of ``config.dataset`` (N-MNIST binned into ``config.steps``)."""
    event_based = dataset_info(config.dataset).event_based
    frames = config.steps if event_based else None
    train = load_dataset(config.dataset, config.data_dir, "train", config.limit_train,
                         n_frames=frames)
    test = load_dataset(config.dataset, config.data_dir, "test", config.limit_test,
                        n_frames=frames)
    return to_arrays(train, event_based), to_arrays(test, event_based)


def encode(x: Tensor, steps: int, event_based: bool, flatten: bool) -> Tensor:
    """Model input currents ``(T, B, ...)`` from a batch.

    Static images ``(B, C, H, W)`` become a direct current repeated over ``steps``; event
    frames ``(B, T, C, H, W)`` are made time-major. ``flatten`` gives ``(T, B, features)``.
    """
    currents = x.transpose(0, 1) if event_based else x.unsqueeze(0).expand(steps, *x.shape)
    return currents.flatten(2) if flatten else currents


# ---------------------------------------------------------------------------------- model


def build_model(config: TrainConfig, input_shape: Sequence[int], classes: int) -> nn.Module:
    """The network of ``config``: the paper's MLP or a :class:`SpikingCNN`.

    ``input_shape`` is ``(C, H, W)`` of one frame; the MLP sees it flattened.
    """
    lif = {"beta": config.beta, "threshold": config.threshold, "surrogate": config.surrogate}
    if config.model == "mlp":
        return classifier_mlp(math.prod(input_shape), config.width, config.depth, classes, **lif)
    hidden = (config.width,) if config.width else ()
    return SpikingCNN(tuple(input_shape), classes, config.channels, hidden, **lif)


def initialize_model(
    model: nn.Module,
    method: str,
    sample: Tensor,
    steps: int = 1,
    generator: torch.Generator | None = None,
) -> list[InitRecord]:
    """Initialize every layer with ``method``; the first layer uses the data's statistics.

    ``sample`` is a batch of input currents ``(T, B, ...)``. For a :class:`SpikingCNN` (or any
    model whose first synaptic layer sees the data) its second moment goes to
    :func:`spikeinit.initialize` as ``sample=``. In the paper's MLP the data first drives an
    input LIF layer, so the first Linear sees *its* spikes: their measured second moment (the
    input layer's firing rate on the data) replaces the Gaussian-membrane assumption
    ``Q(theta)`` for that layer.
    """
    records = initialize(model, method=method, sample=sample, steps=steps, generator=generator)
    if not isinstance(model, SpikingMLP) or not model.blocks:
        return records
    with torch.no_grad():
        spikes = model.input_neurons(sample)
        model.input_neurons.reset_state()
    second_moment = max(float(spikes.double().pow(2).mean()), 1e-6)
    layers = find_synaptic_layers(model)
    depth = len({id(layer.target) for layer in layers if layer.target is not None}) + 1
    first = layers[0]
    ctx = replace(layer_context(first, steps=steps, depth=depth), input_threshold=None,
                  input_second_moment=second_moment)
    chosen, options = get_method(method)
    mean, variance = chosen.initialize_(first.module.weight, getattr(first.module, "bias", None),
                                        ctx, generator, **options)
    records[0] = InitRecord(first.name, method, ctx.fan_in, mean, variance**0.5)
    return records


def _lif_names(model: nn.Module) -> list[tuple[str, LIF]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LIF)]


def membrane_trace(lif: LIF, currents: Tensor) -> Tensor:
    """Membrane ``u[t]`` ``(T, B, ...)`` of ``lif`` driven by ``currents`` from rest (with grad)."""
    state = initial_state(currents[0])
    membranes = []
    for t in range(currents.shape[0]):
        _, state = lif_step(currents[t], state, lif.params, lif.beta, lif.threshold)
        membranes.append(state.membrane)
    return torch.stack(membranes)


class _Probe:
    """Forward hooks: per-layer spike counts, and the output layer's input currents."""

    def __init__(self, model: nn.Module, keep_output_current: bool, device: str = "cpu") -> None:
        self.layers = _lif_names(model)
        self.spikes = torch.zeros(len(self.layers), dtype=torch.float64, device=device)
        self.elements = torch.zeros(len(self.layers), dtype=torch.float64, device=device)
        self.output_current: Tensor | None = None
        self.handles = []
        for index, (_, lif) in enumerate(self.layers):
            self.handles.append(lif.register_forward_hook(self._count(index)))
        if keep_output_current:
            self.handles.append(self.layers[-1][1].register_forward_pre_hook(self._keep))

    def _count(self, index: int) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            if self.enabled:
                self.spikes[index] += output.detach().sum(dtype=torch.float64)
                self.elements[index] += output.numel()
        return hook

    def _keep(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self.output_current = inputs[0]

    enabled = True

    def reset(self) -> None:
        self.spikes.zero_()
        self.elements.zero_()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _logits(spikes: Tensor, probe: _Probe, loss: str) -> Tensor:
    if loss == "counts":
        return spikes.sum(0)
    assert probe.output_current is not None
    return membrane_trace(probe.layers[-1][1], probe.output_current).mean(0)


# ------------------------------------------------------------------------------ training


@dataclass
class TrainResult:
    """What :func:`train` returns: the metrics of every epoch and where outputs went."""

    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    synapses: list[str] = field(default_factory=list)
    init_records: list[dict[str, Any]] = field(default_factory=list)
    world_size: int = 1
    device: str = "cpu"
    n_train: int = 0
    n_test: int = 0
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (what ``metrics.json`` holds)."""
        return asdict(self)

    @property
    def final(self) -> dict[str, Any]:
        """Metrics of the last epoch."""
        return self.history[-1]


def _batches(indices: list[int], size: int) -> Iterator[Tensor]:
    for start in range(0, len(indices), size):
        yield torch.as_tensor(indices[start : start + size], dtype=torch.int64)


def _rng_state(device: str) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any], device: str) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_as_tuples(state["python"]))
    if device.startswith("cuda") and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _as_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(parameters: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """Adam with the fused kernel (one pass over p, g, m, v) where PyTorch has it.

    The fused CPU/CUDA Adam is 3-5x faster than the default per-tensor loop on these MLPs;
    where it is unavailable (old PyTorch, unsupported device or dtype) the multi-tensor
    ``foreach`` implementation is used. The update is the same Adam.
    """
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(parameters, lr=lr, betas=betas, foreach=True)


def _load_checkpoint(path: Path, config: TrainConfig, device: str) -> dict[str, Any]:
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    saved = TrainConfig.from_dict(checkpoint["config"])
    if saved != config:
        differ = [f.name for f in fields(TrainConfig)
                  if getattr(saved, f.name) != getattr(config, f.name)]
        raise ValueError(
            f"resume: the checkpoint {path} was made with different settings "
            f"({', '.join(differ)}); use the same options, or another --out"
        )
    return checkpoint


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    device: str | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    context: DistributedContext | None = None,
    log: Callable[[str], None] | None = print,
) -> TrainResult:
    """Train the model of ``config``; returns the per-epoch metrics.

    Each epoch (on rank 0, when ``out`` is given) atomically rewrites ``metrics.json``,
    ``metrics.csv``, ``curves.png`` and ``checkpoint.pt`` (model, optimizer, scheduler,
    RNG states, epoch, history). With ``resume=True`` and a checkpoint in ``out`` made with
    the same ``config``, training continues after its last epoch and gives the same numbers as
    an uninterrupted run.

    Args:
        config: the run (see :class:`TrainConfig`).
        out: output folder, or ``None`` to write nothing.
        device: ``"cpu"`` or ``"cuda"`` (default: cuda when available).
        resume: continue from ``out/checkpoint.pt`` if it exists.
        progress: show a tqdm progress bar (rank 0 only).
        stop_after: stop after this epoch (1-based; to simulate an interruption).
        context: an existing :class:`DistributedContext` (default: set one up from the
            ``torchrun`` environment, and tear it down at the end).
        log: where to print one line per epoch (``None``: silent).

    Raises:
        ValueError: bad arguments, a batch not divisible by the number of processes, or a
            checkpoint from different settings.
    """
    if stop_after is not None:
        check_positive_int("stop_after", stop_after)
    if resume and out is None:
        raise ValueError("resume needs an output folder (out) holding the checkpoint")
    own_context = context is None
    context = setup_distributed(device) if context is None else context
    try:
        return _train(config, Path(out) if out is not None else None, context, resume,
                      progress, stop_after, log)
    finally:
        if own_context:
            cleanup_distributed(context)


def _train(
    config: TrainConfig,
    out: Path | None,
    context: DistributedContext,
    resume: bool,
    progress: bool,
    stop_after: int | None,
    log: Callable[[str], None] | None,
) -> TrainResult:
    world, rank, device = context.world_size, context.rank, context.device
    if config.batch % world:
        raise ValueError(
            f"batch must be a multiple of the number of processes ({world}), got {config.batch}"
        )
    local_batch = config.batch // world
    say = log if (log is not None and context.is_main) else (lambda _: None)
    seed_everything(config.seed)

    train_data, test_data = load_data(config)
    info = dataset_info(config.dataset)
    frame_shape = tuple(train_data.inputs.shape[2:] if train_data.event_based
                        else train_data.inputs.shape[1:])
    flatten = config.model == "mlp"
    model = build_model(config, frame_shape, info.n_classes)
    sample_ids = torch.arange(min(config.stats_samples, len(train_data)))
    sample = encode(train_data.batch(sample_ids)[0], config.steps, train_data.event_based,
                    flatten)
    generator = torch.Generator().manual_seed(config.seed)
    records = initialize_model(model, config.init, sample, config.steps, generator)
    del sample
    model.to(device)

    optimizer = make_optimizer(model.parameters(), config.lr)
    sampler = DistributedSampler(range(len(train_data)), num_replicas=world, rank=rank,  # type: ignore[arg-type]
                                 shuffle=True, seed=config.seed, drop_last=False)
    batches_per_epoch = math.ceil(sampler.num_samples / local_batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * batches_per_epoch
    )
    result = TrainResult(
        config=config.to_dict(),
        layers=[name for name, _ in _lif_names(model)],
        synapses=[layer.name for layer in find_synaptic_layers(model)],
        init_records=[asdict(r) for r in records],
        world_size=world,
        device=device,
        n_train=len(train_data),
        n_test=len(test_data),
        out=str(out) if out is not None else None,
    )
    start_epoch = 0
    checkpoint_path = out / CHECKPOINT if out is not None else None
    if resume and checkpoint_path is not None:
        if checkpoint_path.exists():
            checkpoint = _load_checkpoint(checkpoint_path, config, device)
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            start_epoch = int(checkpoint["epoch"])
            result.history = list(checkpoint["history"])
            _set_rng_state(checkpoint["rng"], device)
            say(f"resumed from {checkpoint_path} after epoch {start_epoch}")
        else:
            say(f"no checkpoint at {checkpoint_path}; starting from scratch")

    weights = [layer.module.weight for layer in find_synaptic_layers(model)]
    probe = _Probe(model, keep_output_current=config.loss == "membrane", device=device)
    trained: nn.Module = model
    if context.distributed:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[context.local_rank] if device.startswith("cuda") else None
        )
    try:
        for epoch in range(start_epoch, config.epochs):
            if stop_after is not None and epoch >= stop_after:
                break
            sampler.set_epoch(epoch)
            indices = list(sampler)
            probe.reset()
            sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, samples
            grad_sums = torch.zeros(len(weights), dtype=torch.float64, device=device)
            model.train()
            start = time.perf_counter()
            bar = tqdm(total=len(indices) * world, desc=f"epoch {epoch + 1}/{config.epochs}",
                       unit="sample", disable=not (progress and context.is_main), leave=False,
                       mininterval=1.0)
            for batch_ids in _batches(indices, local_batch):
                x, y = train_data.batch(batch_ids)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                spikes = trained(encode(x, config.steps, train_data.event_based, flatten))
                logits = _logits(spikes, probe, config.loss)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norms = torch._foreach_norm(
                    [w.grad if w.grad is not None else torch.zeros_like(w) for w in weights]
                )
                grad_sums += torch.stack(norms).double()
                optimizer.step()
                scheduler.step()
                with torch.no_grad():
                    sums += torch.stack([loss.detach().double() * len(y),
                                         (logits.argmax(1) == y).sum().double(),
                                         torch.tensor(float(len(y)), dtype=torch.float64,
                                                      device=device)])
                bar.update(len(y) * world)
            bar.close()
            seconds = time.perf_counter() - start
            sums = all_reduce_sum(sums, context)
            spike_stats = all_reduce_sum(torch.stack([probe.spikes, probe.elements]),
                                         context).cpu()
            sums = sums.cpu()
            n_steps = max(batches_per_epoch, 1)
            test_loss, test_accuracy = evaluate(model, test_data, config, context, probe)
            record = {
                "epoch": epoch + 1,
                "train_loss": float(sums[0] / sums[2]),
                "train_accuracy": float(sums[1] / sums[2]),
                "test_loss": test_loss,
                "test_accuracy": test_accuracy,
                "lr": float(scheduler.get_last_lr()[0]),
                "seconds": seconds,
                "samples_per_second": float(sums[2]) / seconds if seconds > 0 else float("nan"),
                "firing_rates": {
                    name: float(spike_stats[0, i] / spike_stats[1, i])
                    if spike_stats[1, i] > 0 else 0.0
                    for i, name in enumerate(result.layers)
                },
                "grad_norms": {
                    name: float(grad_sums[i].cpu()) / n_steps
                    for i, name in enumerate(result.synapses)
                },
            }
            result.history.append(record)
            say(f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f} "
                f"acc {record['train_accuracy']:.4f} | test loss {test_loss:.4f} "
                f"acc {test_accuracy:.4f} | {record['samples_per_second']:.0f} samples/s")
            if out is not None and context.is_main:
                write_outputs(result, out)
                save_checkpoint(checkpoint_path, model, optimizer, scheduler, epoch + 1,  # type: ignore[arg-type]
                                config, result.history, device)
    finally:
        probe.remove()
    return result


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ArrayData,
    config: TrainConfig,
    context: DistributedContext | None = None,
    probe: _Probe | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data`` (sharded over processes)."""
    context = context or DistributedContext()
    own_probe = probe is None
    probe = probe or _Probe(model, keep_output_current=config.loss == "membrane",
                            device=context.device)
    probe.enabled = False
    model.eval()
    flatten = config.model == "mlp"
    sums = torch.zeros(3, dtype=torch.float64, device=context.device)
    ids = list(range(context.rank, len(data), context.world_size))
    try:
        for batch_ids in _batches(ids, EVAL_BATCH):
            x, y = data.batch(batch_ids)
            x, y = x.to(context.device), y.to(context.device)
            spikes = model(encode(x, config.steps, data.event_based, flatten))
            logits = _logits(spikes, probe, config.loss)
            loss = F.cross_entropy(logits, y, reduction="sum")
            sums += torch.stack([loss.double(), (logits.argmax(1) == y).sum().double(),
                                 torch.tensor(float(len(y)), dtype=torch.float64,
                                              device=context.device)])
    finally:
        probe.enabled = True
        if own_probe:
            probe.remove()
    sums = all_reduce_sum(sums, context).cpu()
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    config: TrainConfig,
    history: list[dict[str, Any]],
    device: str,
) -> None:
    """Write everything :func:`train` needs to resume, atomically (``weights_only``-safe)."""
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "config": config.to_dict(),
        "history": history,
        "rng": _rng_state(device),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def metrics_rows(result: TrainResult) -> list[dict[str, Any]]:
    """One flat row per epoch: scalars, then ``rate/<layer>`` and ``grad/<layer>`` columns."""
    rows = []
    for record in result.history:
        row = {k: v for k, v in record.items() if not isinstance(v, dict)}
        row.update({f"rate/{k}": v for k, v in record["firing_rates"].items()})
        row.update({f"grad/{k}": v for k, v in record["grad_norms"].items()})
        rows.append(row)
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of a list of flat dicts (columns of the first row)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_outputs(result: TrainResult, out: Path) -> None:
    """Write ``metrics.json``, ``metrics.csv`` and ``curves.png`` into ``out`` atomically."""
    from spikeinit.experiments.training_figures import plot_training_curves

    write_json_atomic(out / "metrics.json", result.to_dict())
    write_text_atomic(out / "metrics.csv", rows_to_csv(metrics_rows(result)))
    plot_training_curves(result.to_dict(), out / "curves.png")


__all__ = [
    "DATASET_NAMES",
    "LOSSES",
    "MODELS",
    "ArrayData",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "encode",
    "evaluate",
    "initialize_model",
    "load_data",
    "membrane_trace",
    "metrics_rows",
    "save_checkpoint",
    "seed_everything",
    "train",
    "write_outputs",
]
