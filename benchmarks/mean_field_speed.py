"""Cost of the temporal mean-field and of the temporal-gain solver, against a simulation.

Times (best of ``--repeats``) for: the infinite-width temporal mean-field of a 100-layer network
at T = 20; the same at finite width 1000; the temporal-gain solver (uncached); and, as the
reference in the same process, one forward pass of the real 100 x 1000 network, batch 64.

    python benchmarks/mean_field_speed.py
"""

from __future__ import annotations

import argparse

from spikeinit.experiments.propagation import PropagationConfig, simulate
from spikeinit.machine import describe, describe_line
from spikeinit.neurons import LIFParameters
from spikeinit.theory import spike_weight_variance
from spikeinit.theory.temporal import temporal_mean_field
from spikeinit.theory.temporal_gain import solve_temporal_gain
from timing import best_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = LIFParameters(beta=0.5, threshold=1.0)
    gain = 1000 * spike_weight_variance(1000, 1.0)
    config = PropagationConfig(inits=("paper",), depth=args.depth, steps=args.steps)
    rows = {
        "network forward (reference)": lambda: simulate(config, "paper"),
        "temporal mean-field, infinite width": lambda: temporal_mean_field(
            args.depth, gain, params, args.steps),
        "temporal mean-field, width 1000": lambda: temporal_mean_field(
            args.depth, gain, params, args.steps, samples=64, width=1000),
        "solver, infinite width": lambda: solve_temporal_gain.__wrapped__(
            params, args.steps, settle_layers=args.depth - 1),
    }
    print(describe_line(describe()))
    print(f"depth {args.depth}, T {args.steps}")
    reference = None
    for name, function in rows.items():
        seconds = best_time(function, args.repeats)
        reference = reference or seconds
        print(f"{name:40s} {seconds:8.3f} s   {seconds / reference:6.2f} x reference")


if __name__ == "__main__":
    main()
