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
# # 4. Training and comparing inits over seeds
#
# One training run per init says little: two seeds of the same init can differ by more than
# two inits do. `spikeinit compare` (in Python, `run_compare`) trains the same model once per
# init and seed and reports statistics over the seeds:
#
# - per init, the mean ± std of the test accuracy at every epoch, and the first epoch at which
#   the mean reaches 90 % and 97 % of the best init's best mean accuracy (a shared target, so a
#   dead network does not "converge" to its own chance level);
# - for every other init, the difference of the final accuracy against a reference init
#   (`paper`), **paired by seed** (runs with the same seed share the data order, so their
#   difference removes that variance), with a paired t-test and a bootstrap interval.
#
# Here: the authors' MLP (10 hidden layers of 100 LIF neurons, T = 3) on a subset of MNIST,
# for `paper`, `kaiming` and PyTorch's default, over three seeds.

# %%
import json
import tempfile
from pathlib import Path

from IPython.display import Image, Markdown, display
from tutorial_data import mnist_dir, pick

from spikeinit.experiments.compare import paired_comparison, run_compare
from spikeinit.experiments.training import TrainConfig

INITS = pick(("paper", "kaiming", "pytorch"), ("paper", "pytorch"))
SEEDS = pick((0, 1, 2), (0, 1))
EPOCHS, N_TRAIN, N_TEST = pick((4, 3000, 1000), (2, 600, 200))
out = Path(tempfile.mkdtemp(prefix="spikeinit-compare-"))

# %% [markdown]
# ## The runs
#
# `TrainConfig` holds everything a run depends on, with the measured defaults (direct pixel
# input, cross-entropy on the output membrane, AdamW with a cosine schedule); `run_compare`
# replaces its `init` and `seed` for each run and writes every run to `out/<init>/seed-<s>/`.
# The command line does the same:
#
# ```bash
# spikeinit compare --dataset mnist --data-dir ../shared/data --init paper kaiming pytorch \
#     --seeds 0 1 2 --epochs 4 --limit-train 3000 --limit-test 1000 --out runs/compare
# ```

# %%
base = TrainConfig(dataset="mnist", data_dir=mnist_dir(), epochs=EPOCHS,
                   limit_train=N_TRAIN, limit_test=N_TEST)
summary = run_compare(base, INITS, seeds=SEEDS, out=out, progress=False, log=None)
print("wrote:", ", ".join(sorted(path.name for path in out.glob("compare.*"))))

# %% [markdown]
# ## The summary
#
# `compare.md` holds the per-init table and the paired comparisons; `compare.png` the mean
# test accuracy per epoch with a band of ± one standard deviation over the seeds.

# %%
display(Markdown((out / "compare.md").read_text()))
display(Image(filename=str(out / "compare.png")))

# %% [markdown]
# ## Reading the statistics
#
# Everything in the tables is in the summary dict (and `compare.json`). Per init:

# %%
for init, data in summary["inits"].items():
    curve = ", ".join(f"{mean:.3f} ± {std:.3f}"
                      for mean, std in zip(data["mean_curve"], data["std_curve"]))
    print(f"{init:8s} seeds {data['seeds']}: test accuracy per epoch {curve}")
    print(f"{'':8s} epochs to 90% / 97% of the best: {data['epochs_to']}")

# %% [markdown]
# The comparison against `paper`, paired by seed: with final accuracies $a_s$ (reference) and
# $b_s$ (other), the differences are $d_s = a_s - b_s$; the mean $\bar d$, the paired t-test
# $t = \bar d / (s_d/\sqrt n)$ with $n - 1$ degrees of freedom, and a percentile bootstrap of
# $\bar d$ over the seeds (deterministic, seeded). With three seeds the bootstrap can draw
# only ten distinct means: read its interval as the spread of the seeds, not as a calibrated
# 95 % interval. `paired_comparison` computes the same from any `{seed: accuracy}` pair:

# %%
def signed(value):
    return "n/a" if value is None else f"{value:+.4f}"


for other, comparison in summary["comparisons"].items():
    p_value = comparison["p_value"]
    print(f"{comparison['reference']} - {other}: differences "
          f"{[round(d, 4) for d in comparison['differences']]}, mean "
          f"{signed(comparison['mean_difference'])}, "
          f"p = {'n/a' if p_value is None else f'{p_value:.3g}'}, "
          f"{comparison['confidence']:.0%} interval [{signed(comparison['ci_low'])}, "
          f"{signed(comparison['ci_high'])}]")

finals = {init: dict(zip(data["seeds"], (curve[-1] for curve in data["test_accuracy"])))
          for init, data in summary["inits"].items()}
again = paired_comparison(finals["paper"], finals[INITS[-1]])
print(json.dumps({key: again[key] for key in ("n", "mean_difference", "ci_low", "ci_high",
                                             "p_value", "p_value_note")}, indent=1))

# %% [markdown]
# ## Beyond this tutorial
#
# - More seeds narrow the interval: `--seeds 0 1 2 3 4`. `--resume` continues an
#   interrupted comparison, skipping the finished runs.
# - The full-size measurements (10 epochs, all of MNIST and Fashion-MNIST, CIFAR-10) are in
#   [Results](../results.md); how the training options were chosen, in
#   [Train](../training.md).
# - Grids over many settings at once: [tutorial 5](05_sweeps.md).
