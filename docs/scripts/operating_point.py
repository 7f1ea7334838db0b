"""Rate ratio last/first layer of deep MLPs of each framework's default neuron after initialize.

Each network is ``depth`` blocks of Linear(width, bias=False) + the framework's default neuron
(SpikingJelly ``LIFNode(tau=2.0)``, Norse ``LIFCell()``, snnTorch ``Leaky(beta=0.5)``,
spikeinit ``LIF()``), written as each framework's users write it, run for ``steps`` steps on
``x = torch.rand(steps, batch, width)`` (input in [0, 1]). For each init it prints the rate of
layer 1, of the last layer, their ratio and the largest weight magnitude over theta/g.

Usage (one CPU thread; 12 seeds of one framework take about 25 s at the full size)::

    OMP_NUM_THREADS=1 python docs/scripts/operating_point.py [--depth 20] [--width 500] \
        [--steps 8] [--seeds 0 1 2] [--frameworks norse] [--inits default temporal] [--summary]

``--summary`` prints one line per framework and init (mean, std, min and max of the ratio over
the seeds, how many seeds lie within 10% and 15%); docs/operating-point.md has the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from collections.abc import Callable

import torch
from torch import nn

import spikeinit
from spikeinit.adapters.norse import run_over_steps

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor] | None


def spikingjelly_mlp(depth: int, width: int) -> tuple[nn.Module, Forward]:
    """SpikingJelly's default LIFNode (hard reset to 0, decay_input=True), multi-step."""
    from spikingjelly.activation_based import functional, layer, neuron

    modules: list[nn.Module] = []
    for _ in range(depth):
        modules += [layer.Linear(width, width, bias=False), neuron.LIFNode(tau=2.0)]
    net = nn.Sequential(*modules)
    functional.set_step_mode(net, "m")
    return net, None


def norse_mlp(depth: int, width: int) -> tuple[nn.Module, Forward]:
    """Norse's default LIFCell, a SequentialState looped over the steps."""
    import norse.torch as norse

    modules: list[nn.Module] = []
    for _ in range(depth):
        modules += [nn.Linear(width, width, bias=False), norse.LIFCell()]
    model = norse.SequentialState(*modules)

    return model, run_over_steps


def snntorch_mlp(depth: int, width: int) -> tuple[nn.Module, Forward]:
    """snnTorch's Leaky(beta=0.5) (threshold 1, subtract, delayed), a Python loop over steps."""
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fcs = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
            self.lifs = nn.ModuleList(snn.Leaky(beta=0.5) for _ in range(depth))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mems = [lif.reset_mem() for lif in self.lifs]
            out = []
            for step in x:
                h = step
                for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                    h, mems[i] = lif(fc(h), mems[i])
                out.append(h)
            return torch.stack(out)

    return Net(), None


def spikeinit_mlp(depth: int, width: int) -> tuple[nn.Module, Forward]:
    """spikeinit's own LIF() (beta 0.5, threshold 1, subtract, delayed), multi-step."""
    from spikeinit.neurons import LIF

    modules: list[nn.Module] = []
    for _ in range(depth):
        modules += [nn.Linear(width, width, bias=False), LIF()]
    return nn.Sequential(*modules), None


BUILDERS = {
    "spikingjelly": spikingjelly_mlp,
    "norse": norse_mlp,
    "snntorch": snntorch_mlp,
    "spikeinit": spikeinit_mlp,
}
INITS: dict[str, dict] = {
    "default": {},
    "stable": {"method": "stable"},
    "trainable=0.16": {"method": "trainable=0.16"},
    "paper sigma=1": {"method": "paper", "sigma": 1.0},
    "temporal": {"method": "temporal"},
}


def measure(framework: str, init: str, depth: int, width: int, steps: int, batch: int,
            seed: int, quiet: bool = False, held_out: bool = False) -> tuple[list[float], float]:
    """Per-layer rates after the init (on the sample, or with ``held_out`` on another draw of
    the same distribution), and max |w| / (theta/g) over the network."""
    torch.manual_seed(seed)
    model, forward = BUILDERS[framework](depth, width)
    x = torch.rand(steps, batch, width)
    options = dict(INITS[init])
    if str(options.get("method", "")).startswith("temporal"):
        options["steps"] = steps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = spikeinit.initialize(model, sample=x, forward=forward, **options)
    for warning in caught if not quiet else ():
        print(f"    warning: {str(warning.message)[:300]}")
    largest = max(float(layer.weight.detach().abs().max()) / record.threshold
                  for record, layer in zip(records, _linears(model)))
    if held_out:
        x = torch.rand(steps, batch, width, generator=torch.Generator().manual_seed(10_000 + seed))
    health = spikeinit.report(model, x, forward=forward)
    return [row.measured_rate for row in health.layers], largest


def _linears(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--frameworks", nargs="+", default=list(BUILDERS))
    parser.add_argument("--inits", nargs="+", default=["default", "temporal"])
    parser.add_argument("--summary", action="store_true",
                        help="one line per framework and init: the ratio over the seeds")
    parser.add_argument("--held-out", action="store_true",
                        help="measure the rates on another draw than the sample")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.summary:
        print(f"{'framework':<13}{'init':<15}{'seeds':>6}{'layer 1':>9}{'last/1 mean':>12}"
              f"{'std':>7}{'min':>7}{'max':>7}{'<=10%':>7}{'<=15%':>7}{'max|w|/(th/g)':>15}")
    else:
        print(f"{'framework':<13}{'init':<15}{'seed':>5}{'layer 1':>9}{'last':>9}"
              f"{'last/1':>8}{'max|w|/(th/g)':>15}  rates")
    for framework in args.frameworks:
        for init in args.inits:
            ratios, firsts, largest = [], [], 0.0
            for seed in args.seeds:
                try:
                    rates, big = measure(framework, init, args.depth, args.width,
                                         args.steps, args.batch, seed, quiet=args.summary,
                                         held_out=args.held_out)
                except ValueError as error:
                    print(f"{framework:<13}{init:<15}{seed:>5}  raised: {error}", flush=True)
                    continue
                ratio = rates[-1] / rates[0] if rates[0] > 0 else float("nan")
                ratios.append(ratio)
                firsts.append(rates[0])
                largest = max(largest, big)
                if not args.summary:
                    profile = " ".join(f"{r:.3f}" for r in rates)
                    print(f"{framework:<13}{init:<15}{seed:>5}{rates[0]:>9.4f}"
                          f"{rates[-1]:>9.4f}{ratio:>8.3f}{big:>15.3g}  {profile}", flush=True)
            if args.summary and ratios:
                spread = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
                within = [sum(abs(r - 1) <= tol for r in ratios) for tol in (0.10, 0.15)]
                print(f"{framework:<13}{init:<15}{len(ratios):>6}"
                      f"{statistics.mean(firsts):>9.4f}{statistics.mean(ratios):>12.3f}"
                      f"{spread:>7.3f}{min(ratios):>7.3f}{max(ratios):>7.3f}"
                      f"{within[0]:>7}{within[1]:>7}{largest:>15.3g}", flush=True)


if __name__ == "__main__":
    main()
