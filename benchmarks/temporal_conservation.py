"""Issue 3's acceptance table: layer-100 / layer-1 time-averaged rate, per init and setting.

100 layers, width 1000, T = 20, input N(0, 1) held constant over the steps, for
theta in {0.5, 1.0}, beta in {0, 0.5, 0.9}, reset in {subtract, zero}, and the inits
``temporal``, ``paper`` and ``paper-soft-reset`` (the authors' soft-reset formula).
Also reports the largest per-layer error of the mean-field rate prediction.

    python benchmarks/temporal_conservation.py [--depth 100 --width 1000 --steps 20]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from spikeinit.experiments.propagation import PropagationConfig, run_propagation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--inits", nargs="+", default=["temporal", "paper", "paper-soft-reset"])
    args = parser.parse_args()
    header = ["theta", "beta", "reset", *[f"{i} L{args.depth}/L1" for i in args.inits],
              *[f"{i} max MF err" for i in args.inits]]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    start = time.perf_counter()
    for theta, beta, reset in itertools.product((0.5, 1.0), (0.0, 0.5, 0.9),
                                                ("subtract", "zero")):
        config = PropagationConfig(
            inits=tuple(args.inits), depth=args.depth, width=args.width, steps=args.steps,
            threshold=theta, beta=beta, reset=reset, batch=args.batch,
        )
        results = run_propagation(config)["results"]
        ratios, errors = [], []
        for init in args.inits:
            rate = np.array(results[init]["rate"])
            predicted = np.array(results[init]["prediction"]["rate"])
            ratios.append(f"{rate[-1] / rate[0]:.3f}")
            alive = rate > 1e-3
            errors.append(f"{np.max(np.abs(predicted[alive] / rate[alive] - 1)):.3f}"
                          if alive.any() else "dead")
        print(" | ".join([f"{theta:g}", f"{beta:g}", reset, *ratios, *errors]), flush=True)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
