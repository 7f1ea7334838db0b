# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Deep plain networks: keeping the input, not only the activity
#
# The paper's init keeps every layer of a 20-layer MLP spiking, yet such a network hardly
# trains: the *difference* between two inputs fades by ~0.6× per layer. This tutorial shows
# why with the two-input mean-field (`spikeinit.theory.correlation`), then the init it points
# to, `deep`, and a short training run of both ([deep plain networks](../depth.md)).
# `SPIKEINIT_TUTORIAL_SIZE=ci` makes every size smaller.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from tutorial_data import mnist_dir, pick

from spikeinit.experiments.depth import contraction_per_layer, information_at_init
from spikeinit.experiments.training import TrainConfig, train
from spikeinit.init.context import LayerContext
from spikeinit.init.deep import deep_structure
from spikeinit.neurons import LIFParameters
from spikeinit.theory.copy_chain import copy_path_gain, copy_window, isometric_copy_slope
from spikeinit.theory.correlation import (
    WeightStructure,
    correlation_fixed_point,
    correlation_map,
)

# %matplotlib inline

torch.manual_seed(0)
torch.set_num_threads(1)
LIF = LIFParameters(beta=0.5, threshold=1.0)
STEPS = 3
SAMPLES = pick(32768, 4096)  # Monte Carlo neurons of the mean-field
DEPTH = pick(20, 8)
data_dir = mnist_dir()

# %% [markdown]
# ## The correlation map
#
# Feed two inputs whose spike patterns have correlation $c$ into one more layer: $C(c)$ is the
# correlation of the patterns that come out. With i.i.d. zero-mean weights (every
# variance-only init; here the paper's variance, $n\,\mathrm{Var}[w] = 1/Q(1) = 6.3$), every
# pair is pulled to one fixed point $c^*$, and a difference near it shrinks by $C'(c^*)$ per
# layer.

# %%
iid = WeightStructure(gain=6.3)
deep = deep_structure(LayerContext(100, 100, LIF, steps=STEPS))
grid = np.linspace(0.0, 1.0, pick(11, 6))
figure, axis = plt.subplots(figsize=(5, 4))
axis.plot(grid, grid, "--", color="0.6", label="C(c) = c")
for name, structure in (("i.i.d. (paper's variance)", iid), ("deep", deep)):
    point = correlation_fixed_point(structure, LIF, STEPS, samples=SAMPLES, grid=len(grid))
    axis.plot(grid, correlation_map(grid, structure, LIF, STEPS, samples=SAMPLES),
              marker=".", label=f"{name}: C'(c*) = {point.slope_at_fixed_point:.2f}")
    print(f"{name:26s} c* = {point.correlation:.2f}, slope there {point.slope_at_fixed_point:.2f}")
axis.set_xlabel("correlation c of layer l")
axis.set_ylabel("C(c) at layer l + 1")
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The copy window, and `deep`
#
# A layer $W = \alpha I$ passes every spike pattern on unchanged when $\alpha$ lies in the
# neuron's *copy window*. `deep` draws each square hidden layer as $\alpha I + Z$ with
# $\alpha$ inside it and a small i.i.d. part $Z$, so the map above stays near the identity;
# where the width changes it draws as `paper`.

# %%
window = copy_window(LIF, STEPS)
print(f"copy window ({window.low:.3f}, {window.high:.3f}); deep uses alpha = "
      f"{deep.diagonal:.3f}, g = {deep.gain:.3f}, margin {window.margin:.3f}")
immediate = copy_window(LIFParameters(beta=0.5, threshold=1.0, reset_order="immediate"), STEPS)
print(f"with an immediate reset (SpikingJelly, Norse): ({immediate.low:.3f}, "
      f"{immediate.high:.3f})")

# %% [markdown]
# ## On MNIST, at init
#
# The *class gap* of a layer is the mean cosine of its centred spike patterns over same-class
# pairs minus different-class pairs; the *probe* is a ridge regression's held-out accuracy.

# %%
measures = {}
for init in ("paper", "deep"):
    config = TrainConfig(data_dir=data_dir, depth=DEPTH, init=init)
    measures[init] = information_at_init(config, pick(1000, 300))
    gaps = measures[init]["class_gap"]
    print(f"{init:6s} class gap {gaps[0]:.3f} -> {gaps[-2]:.3f} "
          f"(x {contraction_per_layer(gaps):.3f} per layer), probe "
          f"{measures[init]['probe'][0]:.2f} -> {measures[init]['probe'][-2]:.2f}")
figure, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
for init, info in measures.items():
    layers = range(1, len(info["class_gap"]))
    axes[0].plot(layers, info["class_gap"][:-1], marker=".", label=init)
    axes[1].plot(layers, info["probe"][:-1], marker=".", label=init)
axes[0].set_ylabel("class gap")
axes[1].set_ylabel("linear probe accuracy")
for axis in axes:
    axis.set_xlabel("hidden layer")
    axis.legend()
plt.show()

# %% [markdown]
# ## A short training run
#
# One pass over a few thousand images at depth `DEPTH` (`spikeinit depth` runs the full grid,
# with seeds and resume). The paper's init stays near chance this early; `deep` learns.

# %%
for init in ("paper", "deep"):
    config = TrainConfig(data_dir=data_dir, depth=DEPTH, init=init, epochs=1,
                         limit_train=pick(4000, 1000), limit_test=1000)
    result = train(config, None, progress=False, log=None)
    print(f"{init:6s} test accuracy {result.final['test_accuracy']:.3f}")

# %% [markdown]
# ## Deeper: the copy chain's backward gain
#
# Past ~20 layers the gradient matters as much as the forward signal. Along a chain of
# near-identity layers it is multiplied per layer by `alpha h'(alpha - theta)`. With the
# delayed reset of snnTorch's `Leaky` the copy window starts at 1.43 theta, where no atan slope
# reaches 1; with the immediate reset of SpikingJelly and Norse, `alpha = 1.1` and slope 2 do.
# The `deep-chain` preset (`spikeinit train --preset deep-chain --init deep=0.1`) adds a 100x
# smaller learning rate for the hidden chain and reaches 93.2 ± 0.3 % at depth 50 (3 seeds,
# docs/depth.md).

# %%
for reset_order, alpha in (("delayed", 1.786), ("immediate", 1.1)):
    neuron = LIFParameters(threshold=1.0, reset_order=reset_order, surrogate="atan",
                           surrogate_slope=1.0)
    slope = isometric_copy_slope(alpha, neuron)
    print(f"{reset_order:9s} alpha {alpha}: gain per layer at atan slope 1 "
          f"{copy_path_gain(alpha, neuron):.3f}; slope for gain 1: "
          + ("none" if slope is None else f"{slope:.2f}"))
