"""The attention neuron's current and rate from the spike rates (docs/architectures.md).

For a grid of token counts N, head sizes d and rates (Q, K and V at the same rate, independent
spikes), prints a Markdown table of spikeinit.theory.attention's predictions: the moments
of the product count X = (Q K^T V)_ic, the one-step rate of Spikformer's attention neuron
(threshold 0.5, scale 0.125: X >= 4), exact and Gaussian, the scale that puts the neuron
nearest to rate 0.1 (exact), and the exact rate at the scale the Gaussian chooses instead.
Theory only (a few seconds); tests/test_theory_attention.py checks it against Monte Carlo.

    python docs/scripts/attention_theory.py [--csv docs/data/attention_theory.csv]
"""

from __future__ import annotations

import argparse
import csv

from spikeinit.theory import (
    AttentionProduct,
    SpikeMatrix,
    attention_moments,
    attention_rate,
    attention_scale_for_rate,
)

TOKENS = (4, 64, 196)
HEAD_DIMS = (8, 32)
RATES = (0.02, 0.1, 0.3)
THRESHOLD, SCALE, TARGET = 0.5, 0.125, 0.1
COLUMNS = ("N", "d", "rate", "E[X]", "Var[X]", "Var / independent terms",
           "P(X>=4) exact", "P(X>=4) Gaussian", "scale for 0.1", "count", "rate reached",
           "exact rate at the Gaussian's scale")


def row(tokens: int, head_dim: int, rate: float) -> tuple[object, ...]:
    spikes = SpikeMatrix(rate)
    head = AttentionProduct(tokens, head_dim, spikes, spikes, spikes)
    moments = attention_moments(head)
    p = rate**3
    exact = attention_scale_for_rate(head, TARGET, THRESHOLD)
    gaussian = attention_scale_for_rate(head, TARGET, THRESHOLD, method="gaussian")
    return (tokens, head_dim, rate, f"{moments.mean:.3g}", f"{moments.variance:.3g}",
            f"{moments.variance / (tokens * head_dim * p * (1 - p)):.2f}",
            f"{attention_rate(head, THRESHOLD, SCALE):.4f}",
            f"{attention_rate(head, THRESHOLD, SCALE, method='gaussian'):.4f}",
            f"{exact.scale:.4g}", exact.count, f"{exact.rate:.3f}",
            f"{attention_rate(head, THRESHOLD, gaussian.scale):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args()
    rows = [row(n, d, r) for r in RATES for n in TOKENS for d in HEAD_DIMS]
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for values in rows:
        print("| " + " | ".join(str(v) for v in values) + " |")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(rows)


if __name__ == "__main__":
    main()
