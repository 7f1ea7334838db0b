"""docs/depth.md's figure: the pair mean-field against networks of width 1000.

Left: the correlation map C(c) at the stationary state, for i.i.d. weights at the paper's
variance and for the ``deep`` structure (T = 3, beta = 0.5, theta = 1). Right: the per-layer
pattern correlation of a pair of inputs (current correlation 0.5 and 0.9) through 30 layers,
theory (lines) against simulation at width 1000 (dots, mean of 4 networks).

    OMP_NUM_THREADS=1 python docs/scripts/depth_correlation.py
"""

from __future__ import annotations

import csv
import platform
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikeinit.init.context import LayerContext  # noqa: E402
from spikeinit.init.deep import deep_structure  # noqa: E402
from spikeinit.neurons.dynamics import lif_multistep  # noqa: E402
from spikeinit.neurons.parameters import LIFParameters  # noqa: E402
from spikeinit.theory.correlation import (  # noqa: E402
    WeightStructure,
    correlation_fixed_point,
    correlation_map,
    correlation_mean_field,
    pattern_correlation,
)

ROOT = Path(__file__).resolve().parents[2]
LIF = LIFParameters(beta=0.5, threshold=1.0)
STEPS, DEPTH, WIDTH, DRAWS = 3, 30, 1000, 4


def simulate(structure: WeightStructure, correlation: float) -> np.ndarray:
    values = []
    for draw in range(DRAWS):
        generator = torch.Generator().manual_seed(draw)
        z = torch.randn(2, WIDTH, generator=generator)
        pair = torch.stack([z[0], correlation * z[0] + (1 - correlation**2) ** 0.5 * z[1]])
        spikes, _ = lif_multistep(pair[None].repeat(STEPS, 1, 1), LIF)
        row = [pattern_correlation(spikes[:, 0], spikes[:, 1])]
        for _ in range(DEPTH - 1):
            weights = (torch.randn(WIDTH, WIDTH, generator=generator)
                       * (structure.gain / WIDTH) ** 0.5 + structure.diagonal * torch.eye(WIDTH))
            spikes, _ = lif_multistep(spikes @ weights.T, LIF)
            row.append(pattern_correlation(spikes[:, 0], spikes[:, 1]))
        values.append(row)
    return np.mean(values, 0)


def main() -> None:
    torch.set_num_threads(1)
    structures = {"i.i.d., paper's variance (g = 6.3)": WeightStructure(gain=6.3),
                  "deep (identity + noise)": deep_structure(LayerContext(100, 100, LIF,
                                                                         steps=STEPS))}
    grid = np.linspace(0.0, 1.0, 21)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.plot(grid, grid, color="0.6", lw=0.8, ls="--", label="C(c) = c")
    rows = []
    for (label, structure), color in zip(structures.items(), ("C0", "C1")):
        mapped = correlation_map(grid, structure, LIF, STEPS)
        point = correlation_fixed_point(structure, LIF, STEPS)
        left.plot(grid, mapped, color=color,
                  label=f"{label}: c* = {point.correlation:.2f}, C'(c*) = "
                        f"{point.slope_at_fixed_point:.2f}")
        for c, value in zip(grid, mapped):
            rows.append(["map", label, f"{c:.2f}", f"{value:.4f}", ""])
        for start, style in ((0.5, "-"), (0.9, ":")):
            theory = correlation_mean_field(DEPTH, structure, LIF, STEPS, start).correlation
            measured = simulate(structure, start)
            layers = np.arange(1, DEPTH + 1)
            right.plot(layers, theory, color=color, ls=style,
                       label=f"{label.split(':')[0]}, input c = {start}")
            right.plot(layers, measured, color=color, marker="o", ls="none", ms=3)
            for layer, t, m in zip(layers, theory, measured):
                rows.append([f"layers (input {start})", label, str(layer), f"{t:.4f}",
                             f"{m:.4f}"])
            print(f"{label}, input {start}: max |theory - width 1000| = "
                  f"{np.abs(theory - measured).max():.3f}")
    left.set_xlabel("pattern correlation c of layer l")
    left.set_ylabel("C(c): layer l + 1")
    left.set_title("correlation map (T = 3, beta = 0.5, theta = 1)", fontsize=10)
    left.legend(fontsize=7)
    right.set_xlabel("layer")
    right.set_ylabel("pattern correlation of the pair")
    right.set_title("theory (lines) vs width 1000 (dots)", fontsize=10)
    right.legend(fontsize=7)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    figure.text(0.01, 0.01, f"CPU: {model}", fontsize=6, color="0.4")
    figure.savefig(ROOT / "docs" / "figures" / "depth_correlation.png", dpi=110)
    with open(ROOT / "docs" / "data" / "depth_correlation.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["curve", "structure", "x", "theory", "width_1000"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
