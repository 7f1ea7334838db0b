"""Speed, memory and spike agreement of spikeinit's LIF engine against peers and a GEMM floor.

Three workloads, all in one process; every engine is warmed up once, then the engines of a
workload are timed round-robin ``--repeats`` times (median and min of ``time.perf_counter``):

* A, inference: 100 x (Linear(1000, 1000) -> LIF), T = 20, batch 64, under ``inference_mode``.
* B, training: MLP 784-1000-1000-1000-10 with LIF after every Linear, T = 3, batch 128, Adam.
* conv, training: VGG-style SNN on (T=3, B=32, 3, 32, 32), same loss and optimizer as B.

Engines: ``gemm-only`` (the matmuls / convolutions alone with ``torch.mm``: the floor the
ratios use), ``gemm-only (oneDNN)`` (the same products through oneDNN, forced),
``gemm-only (spikeinit)`` (the products spikeinit runs, through the backend its ``auto``
setting measured faster on this CPU, ``spikeinit.engine.gemm``), a hand-written eager PyTorch
reference (A) or plain-autograd LIF (B), spikeinit, and snnTorch, SpikingJelly and Norse where
installed (each skipped with its reason otherwise). In B, ``spikeinit`` is the network built as
a user would, ``SpikingMLP`` (its ``Linear -> LIF`` blocks one fused autograd node), and
``spikeinit (module by module)`` the same ``EventLinear``/``LIF`` modules in an
``nn.Sequential``; in conv, ``spikeinit (contiguous)`` runs without channels-last. B and conv
feed every engine the same input, a static image broadcast over T (``image.expand(T, ...)``,
as ``spikeinit train`` does); spikeinit recognises it and runs the first layer once, the
others compute it T times.
All engines share spikeinit's ``initialize(model, "paper")`` weights. Spikes are checked layer
by layer, teacher-forced.
Peak memory is the profiler's live-tensor high-water mark of one training step; "saved" is what
autograd keeps for backward (parameters excluded).
The step split of B (spikeinit's synaptic products, LIF kernels, optimizer and the rest) is
timed inside real training steps, so its parts add up to the step it reports
(:func:`step_split`).

    python benchmarks/engine.py                      # everything (several minutes)
    python benchmarks/engine.py --quick              # smoke test, small sizes
    python benchmarks/engine.py --workloads A --repeats 5 --json runs/engine.json
    python benchmarks/engine.py --workloads A --check-layers 100 --check-batch 64  # full check

On a machine shared with other work, multi-threaded runs stall whenever a thread is not
scheduled; the run prints the load average and a warning, and ``--threads 1`` is steadier.

The run prints (and writes to ``--json``) the CPU (model, vendor, family and model numbers),
threads, torch version, load average and date, and at the end spikeinit's run-time choices:
the GEMM backend per shape class and the event-path rates, measured on this CPU and cached
(``spikeinit.engine.tuning``). ``--tuning-budget`` (default 10 s) lets those measurements
finish during the warm-up, so the timed runs see the steady state that the cache gives every
later process (the library's own budget is 0.3 s per process).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import spikeinit
from engine_peers import PEERS, THRESHOLD, Engine, PeerUnavailableError
from engine_references import (
    NUM_CLASSES,
    VGG_POOLS,
    eager_reference,
    end_to_end,
    gemm_conv,
    gemm_inference,
    gemm_training,
    plain_lif,
    plain_mlp,
    run_spikeinit,
    spikeinit_layer,
    spikeinit_mlp,
    spikeinit_stack,
    spikeinit_vgg,
    synaptic_weights,
    teacher_forced,
)
from engine_report import (
    Report,
    Row,
    print_checks,
    print_forward_backward_memory,
    print_split,
    print_table,
    write_json,
)
from spikeinit.engine import decisions, tuning
from spikeinit.engine.conv_layout import use_layout
from spikeinit.engine.event_linear import input_rate
from spikeinit.engine.gemm import linear_nt, onednn_available, use_backend
from spikeinit.engine.layout import repeated_over_time
from spikeinit.experiments.training import make_optimizer
from spikeinit.machine import describe, describe_line
from spikeinit.models import EventLinear

LR = 1e-3


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of the three workloads (full or ``--quick``)."""

    a_layers: int = 100
    a_width: int = 1000
    a_steps: int = 20
    a_batch: int = 64
    b_sizes: tuple[int, ...] = (784, 1000, 1000, 1000, NUM_CLASSES)
    b_steps: int = 3
    b_batch: int = 128
    b_train_steps: int = 5
    conv_channels: tuple[int, int] = (32, 64)
    conv_hw: int = 32
    conv_steps: int = 3
    conv_batch: int = 32
    conv_train_steps: int = 3
    check_layers: int = 5
    check_batch: int = 8


QUICK = Sizes(a_layers=6, a_width=128, a_steps=8, a_batch=8,
              b_sizes=(784, 128, 128, 128, NUM_CLASSES), b_batch=16, b_train_steps=2,
              conv_channels=(4, 8), conv_hw=16, conv_batch=4, conv_train_steps=2)


@dataclass
class Timing:
    """Seconds per run (median, min over repeats) and the raw times."""

    median: float
    min: float
    times: list[float]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="A,B,conv",
                        help="comma-separated subset of A,B,conv (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per engine")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--compile", action="store_true",
                        help="also time plain autograd + torch.compile (workload B)")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tuning-budget", type=float, default=10.0,
                        help="seconds spikeinit may spend measuring its GEMM backend and event "
                             "rates in this process (default 10; the library's is 0.3)")
    parser.add_argument("--check-layers", type=int, default=None,
                        help="layers of A in the teacher-forced spike check (default 5)")
    parser.add_argument("--check-batch", type=int, default=None,
                        help="batch of the teacher-forced spike check (default 8)")
    args = parser.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - {"A", "B", "conv"}
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from A, B, conv")
    return args


# ----------------------------------------------------------------------------- measurement


def time_interleaved(
    functions: dict[str, Callable[[], object]], repeats: int, skipped: dict[str, str],
    warmup: int = 1,
) -> dict[str, Timing]:
    """Warm every function up, then time them round-robin, ``repeats`` rounds.

    Interleaving spreads slow spells of a shared machine over all engines instead of one.
    A function that raises is recorded in ``skipped`` (with the error) and dropped.
    """
    def warm(function: Callable[[], object]) -> bool:
        for _ in range(warmup):
            function()
        return True

    alive = {name: function for name, function in functions.items()
             if guarded(name, skipped, lambda function=function: warm(function))}
    times: dict[str, list[float]] = {name: [] for name in alive}
    for _ in range(repeats):
        for name, function in alive.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: Timing(statistics.median(t), min(t), t) for name, t in times.items()}


def guarded(name: str, skipped: dict[str, str], function: Callable[[], Any]) -> Any:
    """Run ``function``; on an exception record ``name`` as skipped and return None."""
    try:
        return function()
    except Exception as error:  # a peer failing at run time is skipped, not fatal
        skipped[name] = f"failed at run time: {type(error).__name__}: {error}"
        print(f"  skip {name}: {skipped[name]}")
        return None


def peak_memory(function: Callable[[], object]) -> int:
    """Peak live CPU tensor bytes allocated by ``function`` above the level at its start.

    Runs it under ``torch.profiler`` with ``profile_memory=True``; each op's *self* allocation
    (children excluded, so nothing is counted twice) and every free (``[memory]`` events) are
    put in time order and summed cumulatively. Temporaries that an op allocates and frees
    inside itself are netted out, so this slightly underestimates the true high-water mark.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    events = sorted(
        (event.time_range.start, event.self_cpu_memory_usage)
        for event in prof.events()
        if event.self_cpu_memory_usage
    )
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak


def check_peak_memory() -> int:
    """Self-test of :func:`peak_memory`: a 4 MiB tensor plus a 4 MiB result should read 8 MiB."""

    def toy() -> None:
        x = torch.empty(1024 * 1024)
        y = x + 1
        del x, y

    return peak_memory(toy)


def saved_bytes(forward: Callable[[], Tensor], exclude: Sequence[Tensor]) -> int:
    """Bytes of the unique storages autograd saves for backward during ``forward()``.

    Storages of ``exclude`` (the parameters, which live anyway) are not counted.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = forward()
    del output
    return sum(storages.values())


# ----------------------------------------------------------------------------- models


# ----------------------------------------------------------------------------- eager references


# ----------------------------------------------------------------------------- gemm floors


# ----------------------------------------------------------------------------- engine set-up


def build_peers(
    weights: Sequence[Tensor], pools: Sequence[bool], skipped: dict[str, str]
) -> list[Engine]:
    """Every installed peer engine; the others go to ``skipped`` with their reason."""
    engines = []
    for name, build in PEERS.items():
        try:
            engines.append(build(weights, pools))
        except PeerUnavailableError as error:
            skipped[name] = str(error)
            print(f"  skip {name}: {error}")
    return engines


# ----------------------------------------------------------------------------- workload A


def workload_a(sizes: Sizes, args: argparse.Namespace, report: Report) -> None:
    """Inference: deep Linear -> LIF stack, currents held constant over T."""
    print(f"\n== A: inference, {sizes.a_layers} x Linear({sizes.a_width}, {sizes.a_width}) -> "
          f"LIF, T={sizes.a_steps}, batch {sizes.a_batch}")
    torch.manual_seed(args.seed)
    model = spikeinit_mlp([sizes.a_width] * (sizes.a_layers + 1))
    spikeinit.initialize(model, "paper")
    weights = synaptic_weights(model)
    dense = spikeinit_mlp([sizes.a_width] * (sizes.a_layers + 1), event_driven=False)
    dense.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(sizes.a_batch, sizes.a_width, generator=generator)
    x = x.expand(sizes.a_steps, -1, -1).contiguous()
    skipped: dict[str, str] = {}
    engines = [eager_reference(weights),
               Engine("spikeinit dense", run_spikeinit(dense), dense, "delayed",
                      spikeinit_layer(dense), "fused LIF, GEMM synapses (auto backend)"),
               Engine("spikeinit", run_spikeinit(model), model, "delayed",
                      spikeinit_layer(model), "fused LIF, event-driven synapses when sparse")]
    engines += build_peers(weights, (), skipped)
    outputs: dict[str, Tensor] = {}
    with torch.inference_mode():
        first_spikes = (x @ weights[0].t() > THRESHOLD).float()
        functions: dict[str, Callable[[], object]] = {
            "gemm-only": gemm_inference(weights, first_spikes)}
        if onednn_available():
            functions["gemm-only (oneDNN)"] = gemm_inference(weights, first_spikes, onednn_nt)
        functions["gemm-only (spikeinit)"] = gemm_inference(weights, first_spikes, linear_nt)
        for engine in engines:
            def run(engine: Engine = engine) -> None:
                outputs[engine.name] = engine.forward(x)

            functions[engine.name] = run
        timings = time_interleaved(functions, args.repeats, skipped)
        notes = {engine.name: engine.note for engine in engines}
        rows = [Row(name, t.median, t.min, sizes.a_batch / t.median, note=notes.get(name, ""))
                for name, t in timings.items()]
        immediate = spikeinit_mlp([sizes.a_width] * (sizes.a_layers + 1), "immediate",
                                  event_driven=False)
        immediate.load_state_dict(model.state_dict())
        with use_backend("torch"):
            outputs["spikeinit exact"] = run_spikeinit(dense)(x)
            outputs["spikeinit(immediate)"] = run_spikeinit(immediate)(x)
    report.tables["A"] = rows
    report.skipped["A"] = skipped
    rate = outputs["spikeinit exact"].mean().item()
    paths = [m.last_path for m in model.modules() if isinstance(m, EventLinear)]
    print(f"  last-layer firing rate (spikeinit): {rate:.4f} spikes/neuron/step; spikeinit "
          f"ran {paths.count('event')} of {len(paths)} layers event-driven")
    report.checks["A_last_layer_rate"] = rate
    report.checks["A_event_driven_layers"] = paths.count("event")
    report.checks["A_end_to_end"] = end_to_end(outputs, engines)
    with torch.inference_mode():
        report.checks["A_teacher_forced"] = teacher_forced(dense, weights, x, engines,
                                                            sizes.check_layers, sizes.check_batch)
    print_table("A (inference)", rows)
    print_checks(report.checks)


# ----------------------------------------------------------------------------- training


@dataclass
class Trainer:
    """A training engine: its forward, parameters and optimizer."""

    name: str
    forward: Callable[[Tensor], Tensor]
    parameters: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    note: str = ""
    gemm_backend: str | None = None
    conv_layout: str | None = None


def train_step(trainer: Trainer, x: Tensor, target: Tensor) -> None:
    """One step: cross-entropy of the spike counts summed over T, backward, optimizer step."""
    with contextlib.ExitStack() as settings:
        if trainer.gemm_backend is not None:
            settings.enter_context(use_backend(trainer.gemm_backend))
        if trainer.conv_layout is not None:
            settings.enter_context(use_layout(trainer.conv_layout))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(trainer.forward(x).sum(0), target)
        loss.backward()
        trainer.optimizer.step()


def trainers_for(
    model: nn.Module, weights: Sequence[Tensor], pools: Sequence[bool],
    skipped: dict[str, str], plain: bool, compiled: bool,
    module_by_module: nn.Module | None = None,
) -> list[Trainer]:
    """spikeinit (fused Adam), plain autograd (B only) and the installed peers (default Adam);
    ``module_by_module``, if given, is the same network as ``model`` run layer by layer."""
    trainers = [Trainer("spikeinit", run_spikeinit(model), list(model.parameters()),
                        make_optimizer(model.parameters(), LR))]
    if module_by_module is not None:
        trainers.append(Trainer("spikeinit (module by module)", run_spikeinit(module_by_module),
                                list(module_by_module.parameters()),
                                make_optimizer(module_by_module.parameters(), LR),
                                "nn.Sequential(EventLinear, LIF, ...): one autograd node "
                                "per module"))
    if plain:
        with_mm = copy.deepcopy(model)
        trainers.append(Trainer("spikeinit (torch.mm)", run_spikeinit(with_mm),
                                list(with_mm.parameters()),
                                make_optimizer(with_mm.parameters(), LR),
                                "SPIKEINIT_GEMM=torch: MKL GEMMs as the others", "torch"))
    if plain and onednn_available():
        with_onednn = copy.deepcopy(model)
        trainers.append(Trainer("spikeinit (oneDNN)", run_spikeinit(with_onednn),
                                list(with_onednn.parameters()),
                                make_optimizer(with_onednn.parameters(), LR),
                                "SPIKEINIT_GEMM=onednn (the default before issue 17)",
                                "onednn"))
    if plain:
        reference = plain_mlp(weights, plain_lif)
        trainers.insert(0, Trainer("plain autograd", reference,
                                   list(reference.parameters()),
                                   torch.optim.Adam(reference.parameters(), lr=LR),
                                   "own LIF + surrogate Function"))
    if plain and compiled:
        compiled_mlp = plain_mlp(weights, torch.compile(plain_lif))
        trainers.insert(1, Trainer("plain autograd + compile", compiled_mlp,
                                   list(compiled_mlp.parameters()),
                                   torch.optim.Adam(compiled_mlp.parameters(), lr=LR),
                                   "torch.compile(LIF loop)"))
    for engine in build_peers(weights, pools, skipped):
        params = list(engine.module.parameters())
        trainers.append(Trainer(engine.name, engine.forward, params,
                                torch.optim.Adam(params, lr=LR), engine.note))
    return trainers


def time_training(
    trainers: Sequence[Trainer], floors: dict[str, tuple[Callable[[], None], str]], x: Tensor,
    target: Tensor, steps: int, args: argparse.Namespace, skipped: dict[str, str],
) -> list[Row]:
    """Time ``steps`` training steps per run for each trainer and each GEMM floor (name ->
    (one step's products, note)), plus memory of one step."""
    batch = x.shape[1]
    functions: dict[str, Callable[[], object]] = {
        name: lambda gemm=gemm: [gemm() for _ in range(steps)]
        for name, (gemm, _) in floors.items()}
    for trainer in trainers:
        def run(trainer: Trainer = trainer) -> None:
            for _ in range(steps):
                train_step(trainer, x, target)

        functions[trainer.name] = run
    timings = time_interleaved(functions, args.repeats, skipped)
    rows = [Row(name, timings[name].median / steps, timings[name].min / steps,
                batch * steps / timings[name].median, peak_memory(gemm), note=note)
            for name, (gemm, note) in floors.items()]
    for trainer in trainers:
        if trainer.name not in timings:
            continue
        timing = timings[trainer.name]
        trainer.optimizer.zero_grad(set_to_none=True)
        peak = peak_memory(lambda trainer=trainer: train_step(trainer, x, target))
        trainer.optimizer.zero_grad(set_to_none=True)
        saved = saved_bytes(
            lambda trainer=trainer: F.cross_entropy(trainer.forward(x).sum(0), target),
            trainer.parameters)
        per_step = timing.median / steps
        rows.append(Row(trainer.name, per_step, timing.min / steps, batch / per_step, peak,
                        saved, trainer.note))
    return rows


#: The functions a training step's parts are timed in, by part: module, attribute. Each of
#: them calls none of the others, so no time is counted twice. The fused stack binds its own
#: product names; its LIF passes, like the module path's (EventLinear, LIF), reach the engine's.
SPLIT_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "synapses (GEMM/event products, fwd+bwd)": tuple(
        (module, name) for module in ("spikeinit.models.fused_mlp",
                                      "spikeinit.engine.event_linear")
        for name in ("linear_rows", "linear_rows_backward")),
    "neurons (LIF kernels, fwd+bwd)": tuple(
        ("spikeinit.neurons.fused", name) for name in (
            "_forward_compiled", "_forward_torch", "_backward_compiled", "_backward_torch")),
}
SPLIT_OPTIMIZER = "optimizer.step"
SPLIT_OTHER = "other (loss, autograd, copies, rate checks)"


@contextlib.contextmanager
def timed_parts(optimizer: torch.optim.Optimizer, seconds: dict[str, float]
                ) -> Iterator[None]:
    """Inside, every call of a :data:`SPLIT_PARTS` function and of ``optimizer.step`` adds its
    wall time to ``seconds[part]``."""
    def timed(part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - start

        return run

    originals = []
    try:
        for part, places in SPLIT_PARTS.items():
            for module_name, name in places:
                module = importlib.import_module(module_name)
                originals.append((module, name, getattr(module, name)))
                setattr(module, name, timed(part, getattr(module, name)))
        optimizer.step = timed(SPLIT_OPTIMIZER, optimizer.step)  # type: ignore[method-assign]
        yield
    finally:
        for module, name, original in reversed(originals):
            setattr(module, name, original)
        optimizer.__dict__.pop("step", None)


def step_split(trainer: Trainer, x: Tensor, target: Tensor,
               args: argparse.Namespace) -> dict[str, float]:
    """One training step split into synaptic products, neuron kernels, optimizer and the rest.

    The parts are timed inside the steps themselves (:func:`timed_parts`), not as separate
    stand-ins: ``repeats + 2`` steps after a warm-up, on the same input, threads and
    settings as the table's, each step timed whole and by part. The fastest step (the least
    disturbed by other load) is reported; its parts are disjoint stretches of it, and "other"
    is what they leave of its total (loss, autograd bookkeeping, zero_grad, the copies of the
    repeated frame, the input-rate checks, Python), so the parts add up to the total.
    """
    parts = [*SPLIT_PARTS, SPLIT_OPTIMIZER]
    runs: list[dict[str, float]] = []
    seconds = dict.fromkeys(parts, 0.0)
    with timed_parts(trainer.optimizer, seconds):
        for run in range(args.repeats + 3):
            for part in parts:
                seconds[part] = 0.0
            start = time.perf_counter()
            train_step(trainer, x, target)
            total = time.perf_counter() - start
            if run:  # the first is the warm-up
                runs.append({"total": total, **seconds})
    best = min(runs, key=lambda r: r["total"])
    return {**best, SPLIT_OTHER: best["total"] - sum(best[part] for part in parts)}


def workload_b(sizes: Sizes, args: argparse.Namespace, report: Report) -> None:
    """Training: MLP with LIF after every Linear, cross-entropy on spike counts, Adam."""
    steps, batch = sizes.b_steps, sizes.b_batch
    print(f"\n== B: training, MLP {'-'.join(map(str, sizes.b_sizes))}, T={steps}, "
          f"batch {batch}, {sizes.b_train_steps} steps per run")
    torch.manual_seed(args.seed)
    model = spikeinit_mlp(sizes.b_sizes)
    generator = torch.Generator().manual_seed(args.seed + 2)
    pixels = torch.rand(batch, sizes.b_sizes[0], generator=generator)
    x = pixels.expand(steps, -1, -1)
    target = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    spikeinit.initialize(model, "paper", sample=x)
    weights = synaptic_weights(model)
    skipped: dict[str, str] = {}
    stack = spikeinit_stack(sizes.b_sizes, weights)
    trainers = trainers_for(stack, weights, (), skipped, plain=True, compiled=args.compile,
                            module_by_module=model)
    gemm = gemm_training(weights, steps * batch, args.seed + 3)
    ours = gemm_training(weights, steps * batch, args.seed + 3, linear_nt, first_rows=batch)
    floors = {"gemm-only": (gemm, "torch.mm, all layers on T*B rows, no optimizer")}
    if onednn_available():
        floors["gemm-only (oneDNN)"] = (gemm_training(weights, steps * batch, args.seed + 3,
                                                      onednn_nt), "the same through oneDNN")
    floors["gemm-only (spikeinit)"] = (ours, "auto backend, layer 1 on B rows (one frame)")
    rows = time_training(trainers, floors, x, target, sizes.b_train_steps, args, skipped)
    report.tables["B"] = rows
    report.skipped["B"] = skipped
    report.split = step_split(next(t for t in trainers if t.name == "spikeinit"), x, target,
                              args)
    report.checks["B_synapse_paths"] = synapse_paths(model, x)
    report.checks["B_forward_backward_memory"] = forward_backward_memory(trainers, x, target)
    print_table("B (training, per step)", rows)
    print_split(report.split)
    print_forward_backward_memory(report.checks["B_forward_backward_memory"])


def synapse_paths(model: nn.Sequential, x: Tensor) -> list[dict[str, Any]]:
    """Per EventLinear of a spikeinit MLP: its input rate, path and whether its input was one
    frame repeated over time, on one forward of ``x`` (printed and kept in the report)."""
    seen: list[dict[str, Any]] = []
    layers = [m for m in model.modules() if isinstance(m, EventLinear)]
    handles = [layer.register_forward_hook(
        lambda module, args_, _out: seen.append({
            "repeated_over_time": repeated_over_time(args_[0]),
            "input_rate": round(input_rate(args_[0]), 4),
            "path": module.last_path})) for layer in layers]
    with torch.no_grad():
        run_spikeinit(model)(x)
    for handle in handles:
        handle.remove()
    print("  spikeinit synapses: " + "; ".join(
        f"layer {i + 1} rate {entry['input_rate']:.3f} {entry['path']}"
        + (" (one frame over T)" if entry["repeated_over_time"] else "")
        for i, entry in enumerate(seen)))
    return seen


def forward_backward_memory(trainers: Sequence[Trainer], x: Tensor,
                            target: Tensor) -> dict[str, dict[str, int]]:
    """Peak live bytes of forward + backward alone (no optimizer step, gradients reset to
    None first, so their allocation is included) beside the bytes saved for backward."""
    result = {}
    for trainer in trainers:
        def forward_backward(trainer: Trainer = trainer) -> None:
            F.cross_entropy(trainer.forward(x).sum(0), target).backward()

        trainer.optimizer.zero_grad(set_to_none=True)
        peak = peak_memory(forward_backward)
        trainer.optimizer.zero_grad(set_to_none=True)
        saved = saved_bytes(
            lambda trainer=trainer: F.cross_entropy(trainer.forward(x).sum(0), target),
            trainer.parameters)
        grads = sum(p.numel() * p.element_size() for p in trainer.parameters)
        result[trainer.name] = {"peak": peak, "saved": saved, "parameter_grads": grads}
    return result


def workload_conv(sizes: Sizes, args: argparse.Namespace, report: Report) -> None:
    """Training: VGG-style SNN on (T, B, 3, H, W), same loss and optimizer as B."""
    steps, batch, hw = sizes.conv_steps, sizes.conv_batch, sizes.conv_hw
    print(f"\n== conv: training, VGG-style {sizes.conv_channels}, input "
          f"({steps}, {batch}, 3, {hw}, {hw}), {sizes.conv_train_steps} steps per run")
    torch.manual_seed(args.seed)
    model = spikeinit_vgg(sizes.conv_channels, hw)
    generator = torch.Generator().manual_seed(args.seed + 4)
    pixels = torch.rand(batch, 3, hw, hw, generator=generator)
    x = pixels.expand(steps, *pixels.shape)
    target = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    spikeinit.initialize(model, "paper", sample=x)
    weights = synaptic_weights(model)
    skipped: dict[str, str] = {}
    trainers = trainers_for(model, weights, VGG_POOLS, skipped, plain=False, compiled=False)
    contiguous = copy.deepcopy(model)
    trainers.insert(1, Trainer("spikeinit (contiguous)", run_spikeinit(contiguous),
                               list(contiguous.parameters()),
                               make_optimizer(contiguous.parameters(), LR),
                               "SPIKEINIT_CONV_LAYOUT=contiguous (the layout before issue 17)",
                               conv_layout="contiguous"))
    floors = {"gemm-only": (gemm_conv(model, x.contiguous()),
                            "conv/linear fwd+bwd alone at real shapes (no neurons, no pooling)"),
              "gemm-only (channels-last)": (
                  gemm_conv(model, x.contiguous(), channels_last=True),
                  "the same, every conv input channels-last")}
    rows = time_training(trainers, floors, x, target, sizes.conv_train_steps, args, skipped)
    report.tables["conv"] = rows
    report.skipped["conv"] = skipped
    print_table("conv (training, per step)", rows)


# ----------------------------------------------------------------------------- printing


def warn_if_loaded(threads: int, own: int = 0) -> float:
    """Print the 1-minute load average; warn when other work competes for the cores.

    ``own`` is how much of the load this run itself accounts for (its threads, once running).
    """
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    print(f"load average {load:.2f} on {cores} cores")
    if load > max(cores - threads, 0) + own + 0.5:
        print("  warning: other processes compete for the cores. A parallel region needs all its "
              f"{threads} threads scheduled, so small multi-threaded ops (many per step in the "
              "time-outer peers) can stall for milliseconds: times are noisy and penalise "
              "many-op engines most; compare min columns, or rerun with --threads 1.")
    return load


def onednn_nt(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T`` through oneDNN, whatever ``auto`` chose."""
    with use_backend("onednn"):
        return linear_nt(a, b)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tuning.budget().limit = args.tuning_budget
    sizes = QUICK if args.quick else Sizes()
    checks = {"check_layers": args.check_layers, "check_batch": args.check_batch}
    sizes = replace(sizes, **{k: v for k, v in checks.items() if v is not None})
    toy_peak = check_peak_memory()
    meta = {**describe(), "quick": args.quick, "repeats": args.repeats,
            "workloads": args.workloads, "sizes": asdict(sizes),
            "peak_memory_self_test_bytes": toy_peak,
            "load_average_start": os.getloadavg()[0],
            "gemm_setting": os.environ.get("SPIKEINIT_GEMM", "auto"),
            "event_rate_setting": os.environ.get("SPIKEINIT_EVENT_RATE", "auto"),
            "tuning_budget_s": args.tuning_budget}
    print(describe_line(meta))
    print(f"repeats {args.repeats}{', quick' if args.quick else ''}; SPIKEINIT_GEMM="
          f"{meta['gemm_setting']}, SPIKEINIT_EVENT_RATE={meta['event_rate_setting']}")
    print(f"peak-memory self-test: 4 MiB tensor + 4 MiB result -> {toy_peak / 2**20:.2f} MiB")
    warn_if_loaded(args.threads)
    report = Report(meta)
    workloads = {"A": workload_a, "B": workload_b, "conv": workload_conv}
    for name in args.workloads:
        workloads[name](sizes, args, report)
    print()
    report.meta["choices"] = decisions.all_choices()
    report.meta["tuning_seconds_spent"] = tuning.budget().spent
    print(f"spikeinit's run-time choices ({torch.get_num_threads()} thread(s)); measuring took "
          f"{tuning.budget().spent:.2f} s in this process:")
    print("\n".join("  " + line for line in decisions.format_choices(report.meta["choices"])))
    report.meta["load_average_end"] = warn_if_loaded(args.threads, own=args.threads)
    if args.json is not None:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
