"""Micro-benchmarks of the compiled kernels, as ratios to PyTorch in the same process.

* The fused LIF: forward and backward time per neuron-step for several (T, B, N) shapes,
  against the step-by-step reference loop (``lif_multistep`` with autograd).
* The dense GEMM: ``spikeinit.models.gemm.linear_nt`` (oneDNN) against ``torch.mm`` (MKL) for
  the three products of a training step (forward, input gradient, weight gradient).
* ``EventLinear`` in training (forward, input and weight gradients) with and without events.
* The event-driven synapse (``event_linear``) against the GEMM spikeinit would otherwise use
  (``linear_nt``) by input rate, which is where ``MAX_EVENT_RATE`` and ``MIN_OUT_FEATURES`` in
  ``spikeinit.models.event_linear`` come from, and against ``torch.mm``.

    python benchmarks/kernels.py [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse

import torch

from spikeinit.kernels import compiled_kernel
from spikeinit.models import EventLinear
from spikeinit.models.event_linear import event_linear
from spikeinit.models.gemm import linear_nt, uses_onednn
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


def lif_table(repeats: int) -> None:
    params = LIFParameters(beta=0.5, threshold=1.0)
    print("fused LIF, ns per neuron-step (best of runs); reference = step-by-step autograd loop")
    print(f"  {'T, B, N':18s} {'fused fwd':>10s} {'fused f+b':>10s} {'ref f+b':>10s} "
          f"{'ref/fused':>10s}")
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


def gemm_ratios(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor,
                repeats: int) -> list[float]:
    """linear_nt / torch.mm time for the forward, input-gradient and weight-gradient products."""
    pairs = [(lambda: linear_nt(x, weight), lambda: torch.mm(x, weight.t())),
             (lambda: linear_nt(grad, weight.t()), lambda: torch.mm(grad, weight)),
             (lambda: linear_nt(grad.t(), x.t()), lambda: torch.mm(grad.t(), x))]
    return [best_time(ours, repeats) / best_time(mm, repeats) for ours, mm in pairs]


def gemm_table(repeats: int) -> None:
    print("\ndense GEMM, linear_nt / torch.mm time (best of runs)")
    print(f"  {'rows, in, out':20s} {'forward':>8s} {'grad x':>8s} {'grad W':>8s}  backend")
    for rows, fan_in, fan_out in GEMM_SHAPES:
        generator = torch.Generator().manual_seed(2)
        x = torch.randn(rows, fan_in, generator=generator)
        weight = torch.randn(fan_out, fan_in, generator=generator)
        grad = torch.randn(rows, fan_out, generator=generator)
        ratios = gemm_ratios(x, weight, grad, repeats)
        backend = "oneDNN" if uses_onednn(x, weight) else "torch.mm"
        print(f"  {str((rows, fan_in, fan_out)):20s} "
              + " ".join(f"{r:8.2f}" for r in ratios) + f"  {backend}")


def event_table(repeats: int) -> None:
    print("\nevent-driven synapse / linear_nt time (/ torch.mm time), by fraction of nonzero "
          "inputs")
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
        print(f"  {str((rows, fan_in, fan_out)):20s} " + " ".join(cells))


def event_training_table(repeats: int) -> None:
    print("\nEventLinear forward + backward (input and weight gradients), event path / GEMM path")
    print(f"  {'rows, in, out':20s} " + " ".join(f"{rate:>6g}" for rate in TRAINING_RATES))
    for rows, fan_in, fan_out in TRAINING_SHAPES:
        generator = torch.Generator().manual_seed(3)
        event_layer = EventLinear(fan_in, fan_out, bias=False)
        dense_layer = EventLinear(fan_in, fan_out, bias=False, event_driven=False)
        grad = torch.randn(rows, fan_out, generator=generator)
        ratios = []
        for rate in TRAINING_RATES:
            x = (torch.rand(rows, fan_in, generator=generator) < rate).float().requires_grad_()
            times = [best_time(lambda layer=layer, x=x, g=grad: layer(x).backward(g), repeats)
                     for layer in (event_layer, dense_layer)]
            ratios.append(times[0] / times[1])
        print(f"  {str((rows, fan_in, fan_out)):20s} " + " ".join(f"{r:6.2f}" for r in ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if compiled_kernel() is None:
        raise SystemExit("the compiled kernels are unavailable here (no C++ compiler?)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    lif_table(args.repeats)
    gemm_table(args.repeats)
    event_table(args.repeats)
    event_training_table(args.repeats)


if __name__ == "__main__":
    main()
