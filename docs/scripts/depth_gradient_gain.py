"""Backward gain per hidden layer at init, measured with the training loss (docs/depth.md).

For each setting, a depth-50 MLP is built and initialized as ``spikeinit train`` does, one
batch of MNIST goes forward and back through the training loss, and the gain is the geometric
mean ratio of the weight-gradient norms of consecutive hidden layers (layers 2 to depth - 1),
beside the copy-path prediction ``alpha h'(alpha - theta)`` of ``deep``'s diagonal.

    OMP_NUM_THREADS=1 python docs/scripts/depth_gradient_gain.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
import torch.nn.functional as F

from spikeinit.experiments.training import TrainConfig
from spikeinit.experiments.training.data import load_data
from spikeinit.experiments.training.encoding import encode
from spikeinit.experiments.training.factory import build_model, initialize_model
from spikeinit.experiments.training.readout import TrainingProbe, logits
from spikeinit.init.context import LayerContext
from spikeinit.init.deep import deep_structure
from spikeinit.init.registry import get_method
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import surrogate_derivative
from spikeinit.tables import format_table

SETTINGS = (
    {"init": "deep"},
    {"init": "deep", "surrogate_slope": 2.0},
    {"init": "deep=0.1", "reset_order": "immediate", "surrogate_slope": 1.0},
    {"init": "deep=0.1", "reset_order": "immediate", "surrogate_slope": 2.0},
    {"init": "deep=0.25", "reset_order": "immediate", "surrogate_slope": 2.5},
    {"init": "paper"},
)


def measured_gain(config: TrainConfig, batch: int = 256) -> float:
    """Geometric-mean ratio of consecutive hidden layers' weight-gradient norms."""
    train_data, _ = load_data(replace(config, limit_train=batch, limit_test=10))
    x, y = train_data.batch(torch.arange(batch))
    model = build_model(config, train_data.inputs.shape[1:], 10)
    currents = encode(x, config.steps, config.encoding, flatten=True)
    initialize_model(model, config.init, currents, config.steps,
                     torch.Generator().manual_seed(config.seed))
    probe = TrainingProbe(model, keep_output_current=config.loss == "membrane")
    loss = F.cross_entropy(logits(model(currents), probe, config.loss), y)
    loss.backward()
    probe.remove()
    norms = [float(layer.weight.grad.norm()) for layer in model.synapses][1:-1]
    if min(norms) == 0.0:
        return 0.0
    return (norms[0] / norms[-1]) ** (1.0 / (len(norms) - 1))


def predicted_gain(config: TrainConfig) -> float | None:
    """``alpha h'(alpha - theta)`` for ``deep``'s diagonal (None for other inits)."""
    method, options = get_method(config.init)
    if method.name != "deep":
        return None
    params = LIFParameters(beta=config.beta, threshold=config.threshold,
                           reset_order=config.reset_order)
    ctx = LayerContext(config.width, config.width, params, steps=config.steps)
    alpha = deep_structure(ctx, options).diagonal
    return alpha * surrogate_derivative(config.surrogate, alpha - config.threshold,
                                        config.surrogate_slope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--depth", type=int, default=50)
    args = parser.parse_args()
    rows = [["init", "reset", "atan slope", "predicted (copy path)", "measured per layer"]]
    for setting in SETTINGS:
        config = TrainConfig(data_dir=args.data_dir, depth=args.depth, **setting)
        predicted = predicted_gain(config)
        rows.append([config.init, config.reset_order, f"{config.surrogate_slope:g}",
                     "-" if predicted is None else f"{predicted:.3f}",
                     f"{measured_gain(config):.3f}"])
    print(format_table(rows))


if __name__ == "__main__":
    main()
