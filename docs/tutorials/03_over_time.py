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
# # 3. Over time: why the static formula drifts at T > 1, and `temporal`
#
# The paper's formula is derived for one time step: every layer's membrane is a fresh Gaussian
# `N(0, σ²)`. Over `T > 1` steps a LIF neuron *integrates* its input (leak β), resets after a
# spike, and passes on spike trains that are correlated in time. This tutorial measures how far
# that moves the static formula off, shows the temporal mean-field theory that predicts it
# (`spikeinit.theory.temporal`), and the init built on it, `temporal`.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display
from tutorial_data import pick

import spikeinit
from spikeinit import LIFParameters
from spikeinit.experiments import figures
from spikeinit.experiments.propagation import PropagationConfig, run_propagation, summary_rows
from spikeinit.models import deep_network
from spikeinit.tables import format_table
from spikeinit.theory import tail_probability
from spikeinit.theory.temporal import temporal_mean_field
from spikeinit.theory.temporal_gain import solve_temporal_gain

# %matplotlib inline

torch.manual_seed(0)
DEPTH, WIDTH, STEPS = pick((50, 500, 20), (20, 200, 8))
out = Path(tempfile.mkdtemp(prefix="spikeinit-tutorial-"))  # where the figures go
print(f"depth {DEPTH}, width {WIDTH}, T = {STEPS}")

# %% [markdown]
# ## The drift
#
# The same experiment as in [tutorial 1](01_silence.md), now over `T` steps, with the input
# current `N(0, 1)` held constant over the steps (the paper's setting). `paper` is the static
# formula; `temporal` solves the temporal mean-field for the gain that carries the first
# layer's rate through depth and time.

# %%
config = PropagationConfig(inits=("paper", "temporal"), depth=DEPTH, width=WIDTH,
                           steps=STEPS)
result = run_propagation(config)
print(format_table(summary_rows(result)))
figures.plot_propagation(result, out / "propagation.png")
display(Image(filename=str(out / "propagation.png")))

# %% [markdown]
# With β = 0.5 and a subtractive reset, `paper` loses most of its rate with depth, while
# `temporal` holds the first layer's. The dashed lines are the temporal mean-field prediction,
# evaluated at the network's width.
#
# ## Why: integration and correlation over time
#
# Two things the one-step derivation ignores:
#
# 1. **Integration.** With a constant input $I$ the membrane of the first layer grows towards
#    $I/(1-\beta)$ between spikes: its variance is not the input's 1 but larger (the `var@1`
#    column above).
# 2. **Correlation.** A neuron that spikes at step $t$ is likely to spike again: its spike
#    train is correlated over time, so the next layer's input current is not a fresh draw at
#    every step, and the per-step rates shift.
#
# The rate of every layer at every step shows it. At step 0 every membrane starts from rest
# and sees one fresh input: that is the one-step problem the formula was derived for, and
# `paper` carries it through the depth. The later steps, where integration and correlation
# act, are the ones that fade.

# %%
figures.plot_rate_by_step(result, out / "rate_by_step.png")
display(Image(filename=str(out / "rate_by_step.png")))
for init, data in result["results"].items():
    print(f"{init:9s} membrane variance at layer 1: {data['variance'][0]:.2f}, "
          f"rate at layer 1: {data['rate'][0]:.3f}, layer {DEPTH}: {data['rate'][-1]:.3f}")

# %% [markdown]
# ## The temporal mean-field
#
# `temporal_mean_field(depth, gain, params, steps)` carries the spike autocorrelation
# $R_l(t, t') = E[s_t s_{t'}]$ of one layer to the next: the next layer's input current is a
# Gaussian process with covariance $g\,R_l$ (with $g = n\,\mathrm{Var}[w]$), and a seeded
# Monte Carlo population of LIF neurons driven by it gives $R_{l+1}$. At the paper's gain
# $g = 1/Q(\theta)$ (σ = 1) it predicts the drift; `solve_temporal_gain` finds the gain $g^*$
# whose settled rate is the first layer's.

# %%
neuron = LIFParameters(beta=0.5, threshold=1.0)
paper_gain = 1.0 / float(tail_probability(1.0))
solution = solve_temporal_gain(neuron, STEPS)
print(f"paper gain 1/Q(1) = {paper_gain:.3f}; temporal gain g* = {solution.gain:.3f} "
      f"(target rate {solution.target_rate:.3f})")

depth = 100
fields = {"paper": temporal_mean_field(depth, paper_gain, neuron, STEPS),
          "temporal": temporal_mean_field(depth, solution.gain, neuron, STEPS)}
figure, axis = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
for name, field in fields.items():
    axis.plot(np.arange(1, depth + 1), field.time_averaged_rate, label=f"{name} (mean-field)")
axis.set_xlabel("layer")
axis.set_ylabel("time-averaged rate")
axis.set_title(f"infinite-width temporal mean-field, T = {STEPS}, β = 0.5, θ = 1")
axis.legend()
plt.show()

# %% [markdown]
# The map settles: beyond some tens of layers the rate stops changing, at a fixed point set by
# the gain. `paper`'s gain settles far below the first layer's rate; $g^*$ settles close to it
# (the solver and this evaluation draw different Monte Carlo populations, so they agree to a
# few percent).
#
# ## On your model: `initialize(model, "temporal")`
#
# `initialize` reads β, θ, the reset and `T` from the model and the sample (`(T, B, ...)`) and
# solves for $g^*$ per layer; `temporal-rate=<r>` targets a rate of your choice instead of
# the first layer's. `spikeinit.report` then shows the rate per layer, pooled over the steps.

# %%
currents = torch.randn(1, 64, WIDTH).expand(STEPS, 64, WIDTH)  # constant over the steps
rates = {}
for method in ("paper", "temporal", "temporal-rate=0.1"):
    net = deep_network(WIDTH, DEPTH, beta=0.5, threshold=1.0)
    spikeinit.initialize(net, method, sample=currents)
    health = spikeinit.report(net, currents)
    rates[method] = [row.measured_rate for row in health.layers]
    print(f"{method:18s} rate at layer 1: {rates[method][0]:.3f}, "
          f"layer {DEPTH}: {rates[method][-1]:.3f}")

figure, axis = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
for method, values in rates.items():
    axis.plot(range(1, len(values) + 1), values, label=method)
axis.set_xlabel("layer")
axis.set_ylabel("measured rate")
axis.set_title(f"initialize(net, method), T = {STEPS}")
axis.legend()
plt.show()

# %% [markdown]
# ## Where to read more
#
# - [Theory](../theory.md), sections 4 to 6: the derivation, the finite-width correction and
#   the acceptance table over θ, β and the reset.
# - [The operating point](../operating-point.md): why the default init, `trainable`, targets
#   the rate 0.1.
# - API: [`spikeinit.theory`](../api/theory.md) (`temporal_mean_field`,
#   `solve_temporal_gain`) and [`spikeinit.init`](../api/init.md).
