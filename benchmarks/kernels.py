"""Micro-benchmarks of the compiled kernels, as ratios to PyTorch in the same process.

* The fused LIF: forward and backward time per neuron-step for several (T, B, N) shapes,
  against the step-by-step reference loop (``lif_multistep`` with autograd).
* The dense GEMM: oneDNN (``spikeinit.engine.gemm.linear_nt`` with the backend forced) against
  ``torch.mm`` (MKL) for the three products of a training step (forward, input gradient, weight
  gradient), and the backend ``auto`` measured faster on this CPU for each.
* ``EventLinear`` in training (forward, input and weight gradients) with and without events.
* The event-driven synapse (``event_linear``) against the GEMM spikeinit would otherwise use
  (``linear_nt``, auto backend) by input rate, and against ``torch.mm``: where the event path
  pays (``MIN_OUT_FEATURES``; the rates ``EventLinear`` measures at run time, and the fallback
  ``MAX_EVENT_RATE*`` in ``spikeinit.engine.event_linear``).

    python benchmarks/kernels.py [--threads 2] [--repeats 10] [--json runs/kernels.json]

The run prints (and writes to ``--json``) the CPU, threads, torch version, load average and
date, and the GEMM backends and event rates spikeinit chose (``spikeinit.engine.tuning``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from spikeinit.engine import decisions, tuning
from spikeinit.engine.event_linear import event_linear, use_event_rate
from spikeinit.engine.gemm import linear_nt, onednn_available, use_backend, uses_onednn
from spikeinit.engine.kernels import compiled_kernel
from spikeinit.io import write_json_atomic
from spikeinit.machine import describe, describe_line
from spikeinit.models import EventLinear
from spikeinit.neurons import LIFParameters, lif_multistep
from spikeinit.neurons.fused import fused_lif
from timing import best_time

LIF_SHAPES = [(20, 64, 1000), (3, 128, 1000), (3, 32, 32768)]
EVENT_SHAPES = [(1280, 1000, 1000), (384, 1000, 1000), (192, 100, 100), (384, 1000, 10)]
GEMM_SHAPES = [(384, 784, 1000), (384, 1000, 1000), (128, 784, 1000), (384, 1000, 10),
               (1280, 1000, 1000)]
TRAINING_SHAPES = [(384, 1000, 1000), (1280, 1000, 1000)]
TRAINING_RATES = [0.01, 0.03, 0.05, 0.1, 0.15, 0.2]
RATES = [0.01, 0.03, 0.05, 0.1, 0.16, 0.2, 0.3, 0.4]


Table = list[dict[str, Any]]


def lif_table(repeats: int) -> Table:
    params = LIFParameters(beta=0.5, threshold=1.0)
    print("fused LIF, ns per neuron-step (best of runs); reference = step-by-step autograd loop")
    print(f"  {'T, B, N':18s} {'fused fwd':>10s} {'fused f+b':>10s} {'ref f+b':>10s} "
          f"{'ref/fused':>10s}")
    rows: Table = []
    for shape in LIF_SHAPES:
        generator = torch.Generator().manual_seed(0)
        x = (torch.randn(shape, generator=generator) + 0.5).requires_grad_()
        grad = torch.randn(shape, generator=generator)
        count = x.numel() / 1e9

        def forward(x: torch.Tensor = x) -> None:
            with torch.no_grad():
                fused_lif(x, params)

        def fused_train(x: torch.Tensor = x, grad: torch.Tensor = grad) -> None:
            fused_lif(x, params)[0].backward(grad)

        def reference_train(x: torch.Tensor = x, grad: torch.Tensor = grad) -> None:
            lif_multistep(x, params)[0].backward(grad)

        fwd = best_time(forward, repeats) / count
        fused = best_time(fused_train, repeats) / count
        reference = best_time(reference_train, max(2, repeats // 3)) / count
        print(f"  {str(shape):18s} {fwd:10.2f} {fused:10.2f} {reference:10.2f} "
              f"{reference / fused:10.1f}")
        rows.append({"shape": list(shape), "fused_forward_ns": fwd, "fused_train_ns": fused,
                     "reference_train_ns": reference})
    return rows


def onednn_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    with use_backend("onednn"):
        return linear_nt(a, b)


def gemm_ratios(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor,
                repeats: int) -> list[float]:
    """oneDNN / torch.mm time for the forward, input-gradient and weight-gradient products."""
    pairs = [(lambda: onednn_nt(x, weight), lambda: torch.mm(x, weight.t())),
             (lambda: onednn_nt(grad, weight.t()), lambda: torch.mm(grad, weight)),
             (lambda: onednn_nt(grad.t(), x.t()), lambda: torch.mm(grad.t(), x))]
    return [best_time(ours, repeats) / best_time(mm, repeats) for ours, mm in pairs]


def gemm_table(repeats: int) -> Table:
    if not onednn_available():
        print("\ndense GEMM: oneDNN is not available here; every product runs torch.mm")
        return []
    print("\ndense GEMM, oneDNN / torch.mm time (best of runs), and the backend auto chose")
    print(f"  {'rows, in, out':20s} {'forward':>8s} {'grad x':>8s} {'grad W':>8s}  "
          "auto: forward, grad x, grad W")
    table: Table = []
    for rows, fan_in, fan_out in GEMM_SHAPES:
        generator = torch.Generator().manual_seed(2)
        x = torch.randn(rows, fan_in, generator=generator)
        weight = torch.randn(fan_out, fan_in, generator=generator)
        grad = torch.randn(rows, fan_out, generator=generator)
        ratios = gemm_ratios(x, weight, grad, repeats)
        chosen = ["oneDNN" if uses_onednn(a, b) else "torch.mm"
                  for a, b in ((x, weight), (grad, weight.t()), (grad.t(), x.t()))]
        print(f"  {str((rows, fan_in, fan_out)):20s} "
              + " ".join(f"{r:8.2f}" for r in ratios) + "  " + ", ".join(chosen))
        table.append({"shape": [rows, fan_in, fan_out], "onednn_over_mm": ratios,
                      "auto": chosen})
    return table


def event_table(repeats: int) -> Table:
    print("\nevent-driven synapse / linear_nt (auto backend) time (/ torch.mm time), by fraction "
          "of nonzero inputs")
    table: Table = []
    print(f"  {'rows, in, out':20s} " + " ".join(f"{rate:>11g}" for rate in RATES))
    for rows, fan_in, fan_out in EVENT_SHAPES:
        generator = torch.Generator().manual_seed(1)
        weight = torch.randn(fan_out, fan_in, generator=generator)
        weight_t = weight.t().contiguous()
        cells = []
        for rate in RATES:
            x = (torch.rand(rows, fan_in, generator=generator) < rate).float()
            event = best_time(lambda x=x, w=weight_t: event_linear(x, w), repeats)
            dense = best_time(lambda x=x, w=weight: linear_nt(x, w), repeats)
            mm = best_time(lambda x=x, w=weight: torch.mm(x, w.t()), repeats)
            cells.append(f"{event / dense:5.2f}({event / mm:4.2f})")
            table.append({"shape": [rows, fan_in, fan_out], "rate": rate,
                          "event_over_linear_nt": event / dense, "event_over_mm": event / mm})
        print(f"  {str((rows, fan_in, fan_out)):20s} " + " ".join(cells))
    return table


def event_training_table(repeats: int) -> Table:
    print("\nEventLinear forward + backward (input and weight gradients), event path / GEMM path")
    table: Table = []
    print(f"  {'rows, in, out':20s} " + " ".join(f"{rate:>6g}" for rate in TRAINING_RATES))
    for rows, fan_in, fan_out in TRAINING_SHAPES:
        generator = torch.Generator().manual_seed(3)
        event_layer = EventLinear(fan_in, fan_out, bias=False)
        dense_layer = EventLinear(fan_in, fan_out, bias=False, event_driven=False)
        grad = torch.randn(rows, fan_out, generator=generator)
        ratios = []
        for rate in TRAINING_RATES:
            x = (torch.rand(rows, fan_in, generator=generator) < rate).float().requires_grad_()
            with use_event_rate(1.0):  # the event path at every rate, to compare both
                times = [best_time(lambda layer=layer, x=x, g=grad: layer(x).backward(g),
                                   repeats) for layer in (event_layer, dense_layer)]
            ratios.append(times[0] / times[1])
        print(f"  {str((rows, fan_in, fan_out)):20s} " + " ".join(f"{r:6.2f}" for r in ratios))
        table.append({"shape": [rows, fan_in, fan_out], "rates": TRAINING_RATES,
                      "event_over_gemm": ratios})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tuning.budget().limit = 10.0  # measure every shape before timing (steady state)
    if compiled_kernel() is None:
        raise SystemExit("the compiled kernels are unavailable here (no C++ compiler?)")
    meta = describe()
    print(describe_line(meta) + "\n")
    tables = {"lif": lif_table(args.repeats), "gemm": gemm_table(args.repeats),
              "event": event_table(args.repeats),
              "event_training": event_training_table(args.repeats)}
    meta["choices"] = decisions.all_choices()
    print(f"\nspikeinit's run-time choices ({torch.get_num_threads()} thread(s)):")
    print("\n".join("  " + line for line in decisions.format_choices(meta["choices"])))
    meta["load_average_end"] = list(os.getloadavg())
    print(f"load average at the end {meta['load_average_end'][0]:.2f}")
    if args.json is not None:
        write_json_atomic(args.json, {"meta": meta, "tables": tables})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
