"""Training throughput of ``spikeinit train``'s step on the authors' MNIST MLP, beside snnTorch.

What is measured: samples per second of one training step (forward, cross-entropy, backward,
Adam step, cosine-schedule step) on the network of ``TrainConfig()``'s defaults: 784 -> 10
hidden layers of 100 LIF -> 10 output LIF, no bias, T = 3, beta 0.5, threshold 1, subtract reset
(delayed, as snnTorch's ``Leaky``), atan surrogate of ``TrainConfig().surrogate_slope``,
``direct`` input (the image is a constant current into the first Linear at every step), batch
64, AdamW lr 3e-3 (fused where PyTorch has it, as ``make_optimizer`` builds it) with a cosine
schedule over 10 MNIST epochs.
Augmentation is off (``augment=False``): the peers have none, and on MNIST ``train``'s
1-pixel shifts cost about 0.5 ms per batch of 64 on one thread.
The input is synthetic: a fixed pool of batches of uniform [0, 1] images ``(64, 1, 28, 28)``
(``(64, 784)`` flattened) with random labels, cycled.

Engines, all starting from the same weights (``initialize_model(..., "paper")`` of the spikeinit
model, copied into the others), each with its own optimizer and schedule:

* ``spikeinit train step``: built and run the way ``spikeinit.experiments.training.loop`` does
  (``build_model(TrainConfig(), (1, 28, 28), 10)``, ``initialize_model``, ``TrainingProbe``,
  ``encoder(augment_batch(x))`` -> model -> ``logits`` -> cross-entropy -> ``zero_grad`` ->
  ``backward`` -> ``optimizer.step`` -> ``scheduler.step``), membrane readout;
* ``spikeinit train step (counts)``: the same with ``loss="counts"`` (spike-count readout);
* ``spikeinit step + loop metrics``: the membrane step plus the per-step bookkeeping that
  ``train`` also does (gradient norms, loss/accuracy sums);
* ``snnTorch``: ``nn.Linear`` + ``snn.Leaky(beta=0.5, threshold=1.0, spike_grad=atan(),
  reset_mechanism="subtract")``, time loop outside, layers inside (as the snnTorch tutorials
  write it: the first Linear runs at every step), loss on the output membrane averaged over T;
* ``plain autograd (layer-major)``: ``nn.Linear`` over all ``T*B`` rows per layer, then a Python
  loop over ``t`` for the LIF with an ``autograd.Function`` atan surrogate; same loss.

Before timing, one forward + backward of every engine on the same batch from the same weights
checks that spikeinit and snnTorch emit the same spikes in every layer (a float32 rounding
difference between GEMMs can flip a spike whose membrane lies within rounding of the threshold;
the agreement is printed), that the losses agree (~1e-5 relative) and how close the weight
gradients are. Then, for each thread count, the engines are timed round-robin (the order rotates
each repeat, so a slow spell of a shared machine hits all of them): ``--repeats`` rounds of
``--steps-per-repeat`` steps each, after a warm-up. The table gives the median samples/s over
repeats and the ratio to snnTorch.

    OMP_NUM_THREADS=2 python benchmarks/train_throughput.py
    OMP_NUM_THREADS=2 python benchmarks/train_throughput.py --repeats 3 --threads 1 \\
        --json runs/train_throughput.json

On a machine shared with other work the multi-threaded numbers are the noisiest; the run prints
the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeinit.engine import decisions
from spikeinit.experiments.training import (
    TrainConfig,
    TrainingProbe,
    augment_batch,
    build_model,
    initialize_model,
    logits,
    make_optimizer,
    make_scheduler,
)
from spikeinit.experiments.training.encoding import RunEncoder
from spikeinit.experiments.training.readout import lif_layers
from spikeinit.init.model import find_synaptic_layers
from spikeinit.io import write_json_atomic
from spikeinit.machine import describe, describe_line
from spikeinit.neurons.surrogate import atan_derivative

FRAME = (1, 28, 28)
CLASSES = 10
MNIST_TRAIN = 60_000
ATAN_ALPHA = float(TrainConfig().surrogate_slope)  # the slope spikeinit train uses
SNNTORCH = "snnTorch"
SPIKEINIT = "spikeinit train step"
SPIKEINIT_COUNTS = "spikeinit train step (counts)"
SPIKEINIT_METRICS = "spikeinit step + loop metrics"
PLAIN = "plain autograd (layer-major)"

Batch = tuple[Tensor, Tensor]


@dataclass
class Engine:
    """One trainer: ``step(x, y)`` is a full training step on images ``(B, 1, 28, 28)``.

    ``probe(x, y)`` returns the loss (with its graph) and the spikes ``(T, B, n)`` of every LIF
    layer, for the correctness check; ``weights`` are the synaptic weights in layer order.
    """

    name: str
    step: Callable[[Tensor, Tensor], None]
    probe: Callable[[Tensor, Tensor], tuple[Tensor, list[Tensor]]]
    weights: list[Tensor]
    optimizer: torch.optim.Optimizer
    note: str = ""


@dataclass
class Row:
    """One engine's line in a table."""

    engine: str
    samples_per_second: float
    min_samples_per_second: float
    max_samples_per_second: float
    ms_per_step: float
    vs_snntorch: float | None
    samples_per_second_each: list[float] = field(default_factory=list)
    note: str = ""


# ----------------------------------------------------------------------------- set-up


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per engine")
    parser.add_argument("--steps-per-repeat", type=int, default=20,
                        help="training steps in one timed run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per engine first")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--batch", type=int, default=TrainConfig().batch)
    parser.add_argument("--pool", type=int, default=20, help="distinct batches, cycled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    args = parser.parse_args(argv)
    try:
        args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    except ValueError:
        parser.error(f"--threads must be integers separated by commas, got {args.threads!r}")
    for name in ("repeats", "steps_per_repeat", "batch", "pool"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.threads or min(args.threads) < 1:
        parser.error("--threads needs at least one count >= 1")
    return args


def make_pool(count: int, batch: int, seed: int) -> list[Batch]:
    """``count`` batches of uniform [0, 1] images ``(batch, 1, 28, 28)`` and random labels."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, *FRAME, generator=generator),
             torch.randint(0, CLASSES, (batch,), generator=generator)) for _ in range(count)]


def optimizer_and_schedule(
    parameters: Sequence[Tensor], config: TrainConfig, batch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """What ``train`` builds: ``make_optimizer`` and a schedule over ``epochs`` MNIST epochs."""
    optimizer = make_optimizer(parameters, config.lr, kind=config.optimizer,
                               weight_decay=config.weight_decay)
    batches_per_epoch = math.ceil(MNIST_TRAIN / batch)
    total = config.epochs * batches_per_epoch
    scheduler = make_scheduler(optimizer, total, min(round(config.warmup * batches_per_epoch),
                                                     total), config.schedule)
    return optimizer, scheduler


@contextmanager
def recording(model: nn.Module) -> Iterator[list[Tensor]]:
    """Collect the output of every LIF layer of a spikeinit model during the block."""
    seen: list[Tensor] = []
    handles = [lif.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
               for _, lif in lif_layers(model)]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------- spikeinit


def build_spikeinit_model(config: TrainConfig, sample: Tensor) -> nn.Module:
    """``build_model`` + ``initialize_model`` as ``train`` does, from images ``sample``."""
    torch.manual_seed(config.seed)
    model = build_model(config, FRAME, CLASSES)
    encoder = RunEncoder(config, event_based=False)
    generator = torch.Generator().manual_seed(config.seed)
    initialize_model(model, config.init, encoder(sample), config.steps, generator)
    return model


def spikeinit_engine(config: TrainConfig, source: nn.Module, batch: int, name: str = SPIKEINIT,
                     metrics: bool = False) -> Engine:
    """The step of ``loop._train`` (single process) on a model with ``source``'s weights.

    ``metrics=True`` adds what the loop also does every step: the per-layer gradient norms
    (``torch._foreach_norm``) and the loss / accuracy / sample sums.
    """
    model = build_model(config, FRAME, CLASSES)
    model.load_state_dict(source.state_dict())
    model.train()
    encoder = RunEncoder(config, event_based=False)
    optimizer, scheduler = optimizer_and_schedule(list(model.parameters()), config, batch)
    probe = TrainingProbe(model, keep_output_current=config.loss == "membrane")
    weights = [layer.module.weight for layer in find_synaptic_layers(model)]
    sums = torch.zeros(3, dtype=torch.float64)
    grad_sums = torch.zeros(len(weights), dtype=torch.float64)

    def forward(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        spikes = model(encoder(augment_batch(x, config)))
        scores = logits(spikes, probe, config.loss)
        return F.cross_entropy(scores, y), scores

    def step(x: Tensor, y: Tensor) -> None:
        nonlocal sums, grad_sums
        loss, scores = forward(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if metrics:
            norms = torch._foreach_norm(
                [w.grad if w.grad is not None else torch.zeros_like(w) for w in weights])
            grad_sums += torch.stack(norms).double()
        optimizer.step()
        scheduler.step()
        if metrics:
            with torch.no_grad():
                sums += torch.stack([loss.detach().double() * len(y),
                                     (scores.argmax(1) == y).sum().double(),
                                     torch.tensor(float(len(y)), dtype=torch.float64)])

    def check(x: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        with recording(model) as seen:
            loss, _ = forward(x, y)
        return loss, list(seen)

    note = f"loss={config.loss}" + (", + grad norms and metric sums" if metrics else "")
    return Engine(name, step, check, weights, optimizer, note)


# ----------------------------------------------------------------------------- snnTorch


class SnnTorchMLP(nn.Module):
    """The snnTorch tutorial network: Linear + Leaky per layer, time outer, layers inside."""

    def __init__(self, weights: Sequence[Tensor], steps: int, beta: float,
                 threshold: float) -> None:
        import snntorch as snn
        from snntorch import surrogate

        super().__init__()
        self.steps = steps
        self.record = False
        self.fcs = nn.ModuleList(nn.Linear(w.shape[1], w.shape[0], bias=False) for w in weights)
        self.lifs = nn.ModuleList(
            snn.Leaky(beta=beta, threshold=threshold, reset_mechanism="subtract",
                      spike_grad=surrogate.atan(alpha=ATAN_ALPHA))
            for _ in weights)
        with torch.no_grad():
            for fc, weight in zip(self.fcs, weights):
                fc.weight.copy_(weight)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Output spikes and membranes ``(T, B, 10)``; every layer's spikes if ``record``."""
        mems = [lif.reset_mem() for lif in self.lifs]
        spk_rec, mem_rec = [], []
        layers: list[list[Tensor]] = [[] for _ in self.lifs]
        for _ in range(self.steps):
            h = x
            for index, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                h, mems[index] = lif(fc(h), mems[index])
                if self.record:
                    layers[index].append(h.detach())
            spk_rec.append(h)
            mem_rec.append(mems[-1])
        return (torch.stack(spk_rec), torch.stack(mem_rec),
                [torch.stack(spikes) for spikes in layers] if self.record else [])


# ----------------------------------------------------------------------------- plain autograd


class ATanSpike(torch.autograd.Function):
    """Heaviside forward (``x > 0``); backward ``(a/2) / (1 + (pi a x / 2)^2)`` with
    ``a = ATAN_ALPHA`` (:func:`spikeinit.neurons.surrogate.atan_derivative`)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * atan_derivative(x, ATAN_ALPHA)


def plain_lif(currents: Tensor, beta: float, threshold: float) -> tuple[Tensor, Tensor]:
    """Spikes and membranes ``(T, B, n)``: ``u[t] = beta u[t-1] + I[t] - theta s[t-1]`` with
    the reset term detached, ``s[t] = H(u[t] - theta)``."""
    membrane = torch.zeros_like(currents[0])
    spikes = torch.zeros_like(currents[0])
    spike_rec, membrane_rec = [], []
    for t in range(currents.shape[0]):
        membrane = beta * membrane + currents[t] - threshold * spikes.detach()
        spikes = ATanSpike.apply(membrane - threshold)
        spike_rec.append(spikes)
        membrane_rec.append(membrane)
    return torch.stack(spike_rec), torch.stack(membrane_rec)


class PlainMLP(nn.Module):
    """Layer-major plain PyTorch: each Linear once over all ``T*B`` rows, then the LIF loop."""

    def __init__(self, weights: Sequence[Tensor], steps: int, beta: float,
                 threshold: float) -> None:
        super().__init__()
        self.steps, self.beta, self.threshold = steps, beta, threshold
        self.fcs = nn.ModuleList(nn.Linear(w.shape[1], w.shape[0], bias=False) for w in weights)
        with torch.no_grad():
            for fc, weight in zip(self.fcs, weights):
                fc.weight.copy_(weight)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Output spikes and membranes ``(T, B, 10)`` and every layer's spikes."""
        h = x.unsqueeze(0).expand(self.steps, *x.shape)
        layers = []
        membranes = h
        for fc in self.fcs:
            h, membranes = plain_lif(fc(h), self.beta, self.threshold)
            layers.append(h)
        return h, membranes, layers


def peer_engine(name: str, model: nn.Module, config: TrainConfig, batch: int,
                note: str) -> Engine:
    """A training step on ``model`` (a :class:`SnnTorchMLP` or :class:`PlainMLP`): cross-entropy
    on the output membrane averaged over T, with the optimizer and schedule ``train`` uses."""
    model.train()
    optimizer, scheduler = optimizer_and_schedule(list(model.parameters()), config, batch)

    def forward(x: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        _, membranes, layers = model(x.flatten(1))
        return F.cross_entropy(membranes.mean(0), y), layers

    def step(x: Tensor, y: Tensor) -> None:
        loss, _ = forward(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    def check(x: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        if isinstance(model, SnnTorchMLP):
            model.record = True
        try:
            loss, layers = forward(x, y)
        finally:
            if isinstance(model, SnnTorchMLP):
                model.record = False
        return loss, [spikes.detach() for spikes in layers]

    weights = [fc.weight for fc in model.fcs]  # type: ignore[union-attr]
    return Engine(name, step, check, weights, optimizer, note)


def build_engines(config: TrainConfig, pool: Sequence[Batch], batch: int,
                  skipped: dict[str, str]) -> list[Engine]:
    """Every engine, from the same ``paper``-initialized weights (snnTorch skipped if absent)."""
    sample = torch.cat([x for x, _ in pool])[: config.stats_samples]
    model = build_spikeinit_model(config, sample)
    weights = [layer.module.weight.detach().clone() for layer in find_synaptic_layers(model)]
    engines = [
        spikeinit_engine(config, model, batch),
        spikeinit_engine(replace(config, loss="counts"), model, batch, SPIKEINIT_COUNTS),
        spikeinit_engine(config, model, batch, SPIKEINIT_METRICS, metrics=True),
    ]
    try:
        snn_model = SnnTorchMLP(weights, config.steps, config.beta, config.threshold)
    except ImportError as error:
        skipped[SNNTORCH] = f"import snntorch failed: {error!r}"
    else:
        engines.append(peer_engine(SNNTORCH, snn_model, config, batch,
                                   f"snn.Leaky(subtract, atan {ATAN_ALPHA:g}), time outer, "
                                   "loss on membrane"))
    engines.append(peer_engine(PLAIN, PlainMLP(weights, config.steps, config.beta,
                                               config.threshold), config, batch,
                               f"nn.Linear on T*B rows, autograd LIF loop, atan {ATAN_ALPHA:g}"))
    return engines


# ----------------------------------------------------------------------------- checks


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def compare(reference: Engine, other: Engine, x: Tensor, y: Tensor) -> dict[str, Any]:
    """Spikes, loss and weight gradients of ``other`` against ``reference`` on one batch.

    Both must hold the same weights. Gradients are computed and then cleared (set to None):
    no optimizer step is taken.
    """
    results = []
    for engine in (reference, other):
        engine.optimizer.zero_grad(set_to_none=True)
        loss, layers = engine.probe(x, y)
        loss.backward()
        results.append((float(loss.detach()), layers,
                        [w.grad.detach().clone() for w in engine.weights]))  # type: ignore[union-attr]
        engine.optimizer.zero_grad(set_to_none=True)
    (loss_a, layers_a, grads_a), (loss_b, layers_b, grads_b) = results
    agreement = [float((a == b).double().mean()) for a, b in zip(layers_a, layers_b)]
    flips = [int((a != b).sum()) for a, b in zip(layers_a, layers_b)]
    grads = [_relative(b, a) for a, b in zip(grads_a, grads_b)]
    return {
        "engine": other.name,
        "reference": reference.name,
        "layers": len(layers_a),
        "output_spike_agreement": agreement[-1],
        "min_layer_spike_agreement": min(agreement),
        "spike_agreement_per_layer": agreement,
        "flipped_spikes_per_layer": flips,
        "rates_per_layer": [float(a.mean()) for a in layers_a],
        "loss": loss_b,
        "reference_loss": loss_a,
        "loss_relative_difference": abs(loss_b - loss_a) / max(abs(loss_a), 1e-30),
        "grad_relative_error_per_layer": grads,
        "grad_relative_error_max": max(grads),
    }


def check_engines(engines: Sequence[Engine], x: Tensor, y: Tensor) -> list[dict[str, Any]]:
    """:func:`compare` snnTorch and the plain reference against the spikeinit step."""
    by_name = {engine.name: engine for engine in engines}
    reference = by_name[SPIKEINIT]
    return [compare(reference, by_name[name], x, y) for name in (SNNTORCH, PLAIN)
            if name in by_name]


def print_checks(checks: Sequence[dict[str, Any]]) -> None:
    print("\ncorrectness (one forward + backward on the same batch and weights, vs "
          f"'{SPIKEINIT}'):")
    for c in checks:
        print(f"  {c['engine']:30s} output spikes {c['output_spike_agreement']:.6f} equal, "
              f"min over {c['layers']} layers {c['min_layer_spike_agreement']:.6f} "
              f"({sum(c['flipped_spikes_per_layer'])} flipped); loss {c['loss']:.7f} vs "
              f"{c['reference_loss']:.7f} (rel {c['loss_relative_difference']:.1e}); "
              f"weight grads rel err max {c['grad_relative_error_max']:.1e}")
    if checks:
        rates = ", ".join(f"{r:.3f}" for r in checks[0]["rates_per_layer"])
        print(f"  firing rates per layer (spikeinit): {rates}")


# ----------------------------------------------------------------------------- timing


def time_engines(engines: Sequence[Engine], pool: Sequence[Batch], repeats: int, steps: int,
                 warmup: int) -> dict[str, list[float]]:
    """Seconds per run of ``steps`` training steps, ``repeats`` runs per engine, round-robin.

    Every engine is warmed up first; the engine order rotates by one each round.
    """
    for engine in engines:
        for index in range(warmup):
            engine.step(*pool[index % len(pool)])
    times: dict[str, list[float]] = {engine.name: [] for engine in engines}
    cursor = 0
    for round_index in range(repeats):
        shift = round_index % len(engines)
        for engine in [*engines[shift:], *engines[:shift]]:
            batches = [pool[(cursor + i) % len(pool)] for i in range(steps)]
            start = time.perf_counter()
            for x, y in batches:
                engine.step(x, y)
            times[engine.name].append(time.perf_counter() - start)
        cursor += steps
    return times


def make_rows(engines: Sequence[Engine], times: dict[str, list[float]], steps: int,
              batch: int) -> list[Row]:
    """Median / min / max samples/s per engine and the ratio of medians to snnTorch."""
    rates = {name: [steps * batch / t for t in ts] for name, ts in times.items()}
    medians = {name: statistics.median(r) for name, r in rates.items()}
    peer = medians.get(SNNTORCH)
    return [Row(engine.name, medians[engine.name], min(rates[engine.name]),
                max(rates[engine.name]), 1e3 * batch / medians[engine.name],
                medians[engine.name] / peer if peer else None, rates[engine.name], engine.note)
            for engine in engines]


def print_table(threads: int, rows: Sequence[Row], steps: int, repeats: int) -> None:
    print(f"\n  {threads} thread{'s' if threads > 1 else ''} (median of {repeats} runs of "
          f"{steps} steps)")
    print(f"  {'engine':32s} {'samples/s':>10s} {'min':>9s} {'max':>9s} {'ms/step':>8s} "
          f"{'x snnTorch':>10s}  note")
    for row in rows:
        ratio = f"{row.vs_snntorch:10.2f}" if row.vs_snntorch is not None else f"{'-':>10s}"
        print(f"  {row.engine:32s} {row.samples_per_second:10.0f} "
              f"{row.min_samples_per_second:9.0f} {row.max_samples_per_second:9.0f} "
              f"{row.ms_per_step:8.2f} {ratio}  {row.note}")


def load_line(threads: int | None = None) -> float:
    """Print the 1-minute load average; with ``threads``, warn when other work competes.

    A parallel region waits for all its threads, so when the cores are already busy a
    multi-threaded step can stall for tens of milliseconds at every small op: on a 2-core
    machine with other jobs running, 2-thread numbers can be many times slower than 1-thread
    ones and say more about the load than about the engines.
    """
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    print(f"load average {load:.2f} on {cores} cores")
    if threads is not None and threads > 1 and load > max(cores - threads, 0) + 0.5:
        print(f"  warning: other processes compete for the cores; {threads}-thread times will "
              "be dominated by threads waiting to be scheduled (compare the 1-thread table)")
    return load


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = TrainConfig(batch=args.batch, seed=args.seed, augment=False)
    try:
        import snntorch
        snntorch_version = getattr(snntorch, "__version__", "?")
    except ImportError:
        snntorch_version = None
    meta: dict[str, Any] = {
        **describe(), "snntorch": snntorch_version, "threads": args.threads, "batch": args.batch,
        "steps": config.steps, "repeats": args.repeats, "steps_per_repeat": args.steps_per_repeat,
        "warmup": args.warmup, "pool": args.pool, "seed": args.seed,
        "network": f"784-{'-'.join([str(config.width)] * config.depth)}-{CLASSES}",
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(describe_line({**meta, "threads": torch.get_num_threads()}))
    print(f"snnTorch {snntorch_version}; SPIKEINIT_GEMM={os.environ.get('SPIKEINIT_GEMM', 'auto')}")
    print(f"network {meta['network']}, T={config.steps}, batch {args.batch}, "
          f"{config.encoding} input, {config.loss} readout, {config.optimizer} lr {config.lr} "
          f"{config.schedule}; threads {args.threads}")
    meta["load_average_start"] = load_line()
    torch.set_num_threads(args.threads[0])
    pool = make_pool(args.pool, args.batch, args.seed + 1)
    skipped: dict[str, str] = {}
    engines = build_engines(config, pool, args.batch, skipped)
    for name, reason in skipped.items():
        print(f"  skip {name}: {reason}")
    checks = check_engines(engines, *pool[0])
    print_checks(checks)
    tables: dict[str, list[Row]] = {}
    seen_choices: dict[int, dict[str, Any]] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        if threads > 1:
            meta[f"load_average_before_{threads}_threads"] = load_line(threads)
        times = time_engines(engines, pool, args.repeats, args.steps_per_repeat, args.warmup)
        tables[str(threads)] = make_rows(engines, times, args.steps_per_repeat, args.batch)
        seen_choices[threads] = decisions.all_choices()
        print_table(threads, tables[str(threads)], args.steps_per_repeat, args.repeats)
    print()
    meta["choices"] = {str(threads): choices for threads, choices in seen_choices.items()}
    for threads, choices in seen_choices.items():
        print(f"spikeinit's run-time choices at {threads} thread(s) (spikeinit.engine.tuning):")
        print("\n".join("  " + line for line in decisions.format_choices(choices)))
    meta["load_average_end"] = load_line()
    report = {"meta": meta, "checks": checks, "skipped": skipped,
              "tables": {k: [asdict(r) for r in rows] for k, rows in tables.items()}}
    if args.json is not None:
        write_json_atomic(args.json, report)
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
