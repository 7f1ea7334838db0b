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
# # 1. Why deep SNNs go silent
#
# Initialize a deep spiking network the way you would initialize a ReLU network (Kaiming,
# Xavier, PyTorch's default) and its spikes die out within a few layers. This tutorial shows
# why with spikeinit's own tools: the simulation (`propagate`), the one-layer *variance map*
# of the mean-field theory, and the paper's fix,
#
# $$
# \mathrm{Var}[w] = \frac{\sigma^2}{n\,Q(\theta/\sigma)}, \qquad
# Q(x) = \tfrac12\,\mathrm{erfc}(x/\sqrt2).
# $$
#
# It runs on a CPU in well under two minutes. `SPIKEINIT_TUTORIAL_SIZE=ci` makes every size
# smaller (the CI check that the tutorial runs).

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display
from tutorial_data import pick

import spikeinit
from spikeinit import theory
from spikeinit.experiments import figures
from spikeinit.experiments.propagation import PropagationConfig, run_propagation, summary_rows
from spikeinit.models import deep_network
from spikeinit.tables import format_table

# %matplotlib inline

torch.manual_seed(0)
DEPTH, WIDTH = pick((100, 1000), (30, 200))
out = Path(tempfile.mkdtemp(prefix="spikeinit-tutorial-"))  # where the figures go
print(f"depth {DEPTH}, width {WIDTH}")

# %% [markdown]
# ## The symptom: `propagate`
#
# `run_propagation` is what `spikeinit propagate` runs: a stack of `Linear(n, n) -> LIF`
# layers (threshold θ = 1, decay β = 0.5, one time step here), fed a Gaussian input current
# `N(0, 1)`. For each init it records the firing rate and the membrane variance of every
# layer, beside the mean-field prediction (dashed).

# %%
config = PropagationConfig(inits=("paper", "kaiming", "xavier", "pytorch"), depth=DEPTH,
                           width=WIDTH, steps=1)
result = run_propagation(config)
print(format_table(summary_rows(result)))
figures.plot_propagation(result, out / "propagation.png")
display(Image(filename=str(out / "propagation.png")))

# %% [markdown]
# All four inits start from the same first layer (the input current is the same), but only the
# paper's keeps spiking: Kaiming, Xavier and PyTorch's default reach rate 0 after a few layers.
# The same table is one command away: `spikeinit propagate --out runs/propagate`.
#
# ## The cause: a spike throws the membrane's magnitude away
#
# A layer receives the spikes $x_j = H(u_j - \theta)$ of the layer below through weights of
# variance $\mathrm{Var}[w]$, so its membrane has variance
# $\mathrm{Var}[u] = n\,\mathrm{Var}[w]\,E[x^2]$. For a ReLU, $E[x^2] = \mathrm{Var}[u]/2$ and
# Kaiming's $\mathrm{Var}[w] = 2/n$ keeps the variance constant. For a spike $x^2 = x$, so
# $E[x^2]$ is the firing probability $Q(\theta/\sigma)$. With the gain $g = n\,\mathrm{Var}[w]$
# the variance of one layer maps to the next as
#
# $$\sigma^2_{l+1} = g\,Q(\theta/\sigma_l),$$
#
# which is `spikeinit.theory.variance_map`. Activity survives only where this map has a
# non-zero fixed point (`theory.fixed_point`, `None` when there is none).

# %%
threshold = 1.0
gains = {"kaiming (g = 2)": 2.0, "xavier (g = 1)": 1.0, "pytorch default (g = 1/3)": 1 / 3,
         "paper (g = 1/Q(1))": 1.0 / float(theory.tail_probability(threshold))}
for name, gain in gains.items():
    point = theory.fixed_point(gain, threshold)
    described = ("no fixed point: activity dies" if point is None else
                 f"fixed point sigma^2 = {point.variance:.3f}, rate {point.rate:.3f}, "
                 f"slope {point.slope:.2f}")
    print(f"{name:28s} {described}")

variances = np.linspace(0.0, 3.0, 301)
figure, axis = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
axis.plot(variances, variances, color="grey", linestyle=":", label="identity")
for name, gain in gains.items():
    axis.plot(variances, [theory.variance_map(v, gain, threshold) for v in variances],
              label=name)
axis.set_xlabel(r"$\sigma^2_l$ (membrane variance of layer $l$)")
axis.set_ylabel(r"$\sigma^2_{l+1} = g\,Q(\theta/\sigma_l)$")
axis.set_title("the variance map at θ = 1")
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# Kaiming's curve lies below the identity everywhere at θ = 1: every layer has less variance
# than the one before, and the map runs to 0. The paper's gain puts its fixed point exactly at
# σ² = 1, and with slope below 1 it attracts: a layer that drifts off is pulled back.
#
# Iterating the map over depth is `theory.static_mean_field`; it is the dashed line of the
# first figure.

# %%
mean_field = {
    name: theory.static_mean_field(DEPTH, gain / WIDTH, WIDTH, threshold)
    for name, gain in gains.items()
}
for name, field in mean_field.items():
    print(f"{name:28s} predicted rate at layer 1: {field.rate[0]:.3f}, "
          f"layer {DEPTH}: {field.rate[-1]:.3g}")

# %% [markdown]
# ## The fix: the paper's initialization
#
# Asking that the map keep $\sigma^2$ gives $\mathrm{Var}[w] = \sigma^2 / (n\,Q(\theta/\sigma))$.
# `spikeinit.spike_std` is its standard deviation and `spike_normal_` draws a tensor with it,
# like `nn.init.kaiming_normal_`. At θ = 0 it is Kaiming's $\sqrt{2/n}$.

# %%
print(f"spike_std(1000, theta=1) = {spikeinit.spike_std(1000, 1.0):.4f}")
print(f"spike_std(1000, theta=0) = {spikeinit.spike_std(1000, 0.0):.4f}  "
      f"(Kaiming: {np.sqrt(2 / 1000):.4f})")
layer = torch.nn.Linear(1000, 1000)
spikeinit.spike_normal_(layer.weight, threshold=1.0)
print(f"drawn std: {layer.weight.std():.4f}")

# %% [markdown]
# On a whole model, `spikeinit.initialize(model, method)` finds every synaptic layer and the
# neurons it drives, and draws each for that neuron's threshold. `spikeinit.report` runs the
# model once and flags dead layers. Here a network of `DEPTH` layers with PyTorch's default
# init, then with `initialize(..., "paper")`:

# %%
net = deep_network(WIDTH, DEPTH, beta=0.5, threshold=1.0)
currents = torch.randn(1, 64, WIDTH)  # (T, B, features): one step, 64 samples
before = spikeinit.report(net, currents)
spikeinit.initialize(net, "paper", sample=currents)
after = spikeinit.report(net, currents)
print(f"PyTorch default: {len(before.dead)} of {len(before.layers)} layers dead")
print(f"paper:           {len(after.dead)} of {len(after.layers)} layers dead")

rates = {"PyTorch default": [row.measured_rate for row in before.layers],
         "paper": [row.measured_rate for row in after.layers]}
figure, axis = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
for name, values in rates.items():
    axis.plot(range(1, len(values) + 1), values, marker=".", label=name)
axis.set_xlabel("layer")
axis.set_ylabel("measured rate (spikes / neuron / step)")
axis.set_title("spikeinit.report: rate per layer")
axis.legend()
plt.show()

# %% [markdown]
# The report also prints as a table (`report(...).print()`), one row per population with
# fan-in, θ, weight std, and the predicted and measured rate and variance. Its first rows
# after the fix:

# %%
print("\n".join(after.table().splitlines()[:6]))

# %% [markdown]
# ## What next
#
# - More than one time step: the static formula drifts, see
#   [tutorial 3](03_over_time.md).
# - Your own snnTorch, SpikingJelly or Norse model: [tutorial 2](02_your_model.md).
# - The theory in full: [Theory](../theory.md).
