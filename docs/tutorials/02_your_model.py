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
# # 2. Fix the model you already have
#
# You have a spiking network written with snnTorch, SpikingJelly or Norse, and its deep layers
# do not fire. This tutorial takes one network of each framework, as that framework's users
# write it, and
#
# 1. runs `spikeinit.report` on a batch of MNIST: the per-layer health at the framework's
#    default (PyTorch) initialization;
# 2. calls `spikeinit.initialize` (reads each layer's neurons: threshold, decay, reset, input
#    gain) and `spikeinit.calibrate` (rescales each layer on the batch until it fires at the
#    target rate, 0.1 by default);
# 3. runs `report` again and plots the rate of every layer, before and after;
# 4. trains both versions for a few hundred steps and compares their test accuracy.
#
# The frameworks are optional dependencies of spikeinit (`pip install "spikeinit[snntorch]"`,
# or `--no-deps` on a CPU-only machine as the install page shows); a framework that is not
# installed is left out, and the page says so at the top (the site's CI build refuses such a
# page). MNIST comes from `$SPIKEINIT_DATA_DIR` (a synthetic stand-in when it is absent).

# %%
import copy
import importlib.util
import logging

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator
from torch import nn
from tutorial_data import mnist_dir, pick, skipped

import spikeinit
from spikeinit.data import load_dataset

# %matplotlib inline

logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # Norse's import: no GPU
torch.manual_seed(0)
STEPS, BATCH = 4, 64                      # time steps T, training batch
HIDDEN = pick((256,) * 5, (128,) * 4)     # hidden layers: deep enough to go silent
TRAIN_STEPS, EVAL_EVERY = pick((240, 40), (30, 10))
N_TRAIN, N_TEST = pick((6000, 1000), (1000, 200))
FRAMEWORKS = [name for name in ("snntorch", "spikingjelly", "norse")
              if importlib.util.find_spec(name) is not None]
print("frameworks found:", ", ".join(FRAMEWORKS) or "none")
for name in ("snntorch", "spikingjelly", "norse"):
    if name not in FRAMEWORKS:
        skipped(f"the {name} network: {name} is not installed (pip install 'spikeinit[{name}]')")

# %% [markdown]
# ## Data
#
# `spikeinit.data.load_dataset` reads MNIST's IDX files. Each image goes straight into the
# first layer at every one of the `T` steps (direct encoding), as a tensor `(T, B, 784)`.

# %%
data_dir = mnist_dir()


def as_tensors(dataset):
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images).flatten(1), torch.stack(labels)


x_train, y_train = as_tensors(load_dataset("mnist", data_dir, "train", limit=N_TRAIN))
x_test, y_test = as_tensors(load_dataset("mnist", data_dir, "test", limit=N_TEST))


def over_time(images):
    return images.unsqueeze(0).expand(STEPS, *images.shape)  # (T, B, 784)


sample = over_time(x_train[:256])  # what initialize, calibrate and report run on
sizes = (784, *HIDDEN, 10)
print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, sample {tuple(sample.shape)}")

# %% [markdown]
# ## Three models, as each framework writes them
#
# - **snnTorch**: a loop over time steps inside `forward`, `snn.Leaky(beta=0.5)` neurons.
# - **SpikingJelly**: an `nn.Sequential` in multi-step mode, `LIFNode(tau=2)` (β = 0.5 with
#   input gain 1/τ, so the effective threshold is θ/g = 2), reset by `functional.reset_net`.
# - **Norse**: `SequentialState` of `LIFBoxCell`s (`dt * tau_mem_inv = 0.5`), which return
#   `(spikes, state)`; a `forward=` function tells spikeinit how to run it over time.
#
# `forward` is `None` where `model(x)` already runs all the steps.

# %%
def snntorch_model():
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.lifs = nn.ModuleList(snn.Leaky(beta=0.5, threshold=1.0) for _ in sizes[1:])

        def forward(self, x):                       # x: (T, B, 784)
            mems = [lif.reset_mem() for lif in self.lifs]
            out = []
            for h in x:
                for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                    h, mems[i] = lif(fc(h), mems[i])
                out.append(h)
            return torch.stack(out)

    return Net(), None


def spikingjelly_model():
    from spikingjelly.activation_based import functional, layer, neuron

    modules = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        modules += [layer.Linear(a, b), neuron.LIFNode(tau=2.0, v_reset=None)]
    net = nn.Sequential(*modules)
    functional.set_step_mode(net, "m")

    def forward(model, x):
        out = model(x)
        functional.reset_net(model)
        return out

    return net, forward


def norse_model():
    import norse.torch as norse
    from norse.torch.functional.reset import reset_subtract

    p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), reset_method=reset_subtract)
    modules = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        modules += [nn.Linear(a, b), norse.LIFBoxCell(p)]

    def forward(model, x):                          # carry the state through the steps
        state, out = None, []
        for step in x:
            z, state = model(step, state)
            out.append(z)
        return torch.stack(out)

    return norse.SequentialState(*modules), forward


builders = {"snntorch": snntorch_model, "spikingjelly": spikingjelly_model,
            "norse": norse_model}
models = {}
for name in FRAMEWORKS:
    torch.manual_seed(0)
    model, forward = builders[name]()
    models[name] = (model, copy.deepcopy(model), forward)  # (as built, to be fixed, forward)

# %% [markdown]
# ## Before: `report`
#
# `report` runs the model once on the sample with forward hooks and prints one row per spiking
# population: fan-in, θ, θ/g, β, the std of the weights that drive it, the predicted and the
# measured rate and input variance, and flags (`dead` below rate 0.001).

# %%
reports_before = {}
for name, (model, _, forward) in models.items():
    reports_before[name] = spikeinit.report(model, sample, forward=forward)
    print(f"== {name}: {len(reports_before[name].dead)} of "
          f"{len(reports_before[name].layers)} populations dead")
    reports_before[name].print()
    print()

# %% [markdown]
# ## The fix: `initialize`, then `calibrate`
#
# `initialize(model, sample=x)` pairs every `Linear` with the neurons it drives and draws its
# weights for those neurons (the default method, `trainable`, targets the rate 0.1 that
# trained best, through depth and time). `calibrate(model, x)` then measures each layer on the
# batch, in forward order, and rescales it until its rate hits the target. Both return a result
# with `.table()`, `.print()`, `.to_csv(path)` and `.as_dicts()`.

# %%
reports_initialized, reports_after = {}, {}
for name, (_, fixed, forward) in models.items():
    spikeinit.initialize(fixed, sample=sample, forward=forward)
    reports_initialized[name] = spikeinit.report(fixed, sample, forward=forward)
    result = spikeinit.calibrate(fixed, sample, forward=forward)
    print(f"== {name}: calibrate converged: {result.converged}, "
          f"{result.forward_passes} forward passes")
    reports_after[name] = spikeinit.report(fixed, sample, forward=forward)
    reports_after[name].print()
    print()

# %% [markdown]
# ## Rate per layer, before and after
#
# Three states of each model: as built, after `initialize` alone (the theory's prediction of
# each layer from what it receives) and after `calibrate` (measured on the batch, so exact on
# it). `initialize` gets the deep layers firing; `calibrate` removes what is left of the
# mismatch between the Gaussian theory and the real inputs.

# %%
figure, axes = plt.subplots(1, max(1, len(models)), figsize=(4.4 * max(1, len(models)), 3.6),
                            constrained_layout=True, squeeze=False)
for axis, name in zip(axes[0], models):
    for label, reports in (("PyTorch default", reports_before),
                           ("initialize", reports_initialized),
                           ("initialize + calibrate", reports_after)):
        rates = [row.measured_rate for row in reports[name].layers]
        axis.plot(range(1, len(rates) + 1), rates, marker="o", label=label)
    axis.axhline(0.1, color="grey", linestyle=":", linewidth=1)
    axis.set_title(name)
    axis.set_xlabel("spiking layer")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylim(-0.01, 0.3)
axes[0][0].set_ylabel("measured rate")
axes[0][0].legend(fontsize=8)
plt.show()

# %% [markdown]
# ## A short training run, before and after
#
# Both versions of each model train with the same data order: Adam (lr 2e-3), cross-entropy on
# the output spike counts, `TRAIN_STEPS` steps of 64 images, test accuracy every
# `EVAL_EVERY` steps. This is a plain PyTorch loop: spikeinit only changed the weights.

# %%
def run(model, forward, x):
    return model(x) if forward is None else forward(model, x)


def test_accuracy(model, forward):
    with torch.no_grad():
        counts = run(model, forward, over_time(x_test)).sum(0)
    return float((counts.argmax(1) == y_test).float().mean())


def fit(model, forward):
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(0)
    curve = [(0, test_accuracy(model, forward))]
    for step in range(1, TRAIN_STEPS + 1):
        index = torch.randint(0, len(x_train), (BATCH,), generator=order)
        counts = run(model, forward, over_time(x_train[index])).sum(0)
        loss = nn.functional.cross_entropy(counts, y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % EVAL_EVERY == 0:
            curve.append((step, test_accuracy(model, forward)))
    return curve


curves = {}
for name, (model, fixed, forward) in models.items():
    curves[name] = {"PyTorch default": fit(model, forward),
                    "initialize + calibrate": fit(fixed, forward)}
    print(f"{name:13s} " + ", ".join(f"{label}: {curve[-1][1]:.3f}"
                                     for label, curve in curves[name].items()))

# %%
figure, axes = plt.subplots(1, max(1, len(models)), figsize=(4.4 * max(1, len(models)), 3.6),
                            constrained_layout=True, squeeze=False)
for axis, name in zip(axes[0], models):
    for label, curve in curves[name].items():
        steps, accuracy = zip(*curve)
        axis.plot(steps, accuracy, marker=".", label=label)
    axis.set_title(name)
    axis.set_xlabel("training step")
    axis.set_ylim(0, 1)
axes[0][0].set_ylabel("test accuracy")
axes[0][0].legend(fontsize=8)
plt.show()

# %% [markdown]
# What to read in these curves: a network whose layers are silent learns only through the
# surrogate gradient that leaks past its silent neurons, so how far the "PyTorch default"
# version gets depends on the framework's surrogate and on how far below threshold its
# membranes sit; the initialized version has every layer firing from the first step. The
# numbers above are this one run; comparisons over seeds, with their statistics, are in
# [Results](../results.md) and [Adapters](../adapters.md), and [tutorial 4](04_compare.md)
# shows how to make them.
#
# More: what each framework's neuron computes and how spikeinit reads it,
# [Use it on your model](../your-model.md) and [Adapters](../adapters.md).
