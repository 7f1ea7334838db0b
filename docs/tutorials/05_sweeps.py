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
# # 5. Sweeps, locally and on Ray, and `aggregate`
#
# Does an init hold across thresholds, decays, widths? A sweep answers it: a grid over any
# parameter of `propagate`, `conditions` or `train`, run as independent runs, each writing one
# result file named by the hash of its full configuration. A rerun skips the finished runs, so
# a sweep can be stopped and resumed, grown, or split between machines; `aggregate` then
# turns a results folder into one CSV, heatmaps and depth plots. This tutorial runs a small
# `propagate` grid with local worker processes, reruns it, runs it again on Ray, and
# aggregates it.

# %%
import csv
import importlib.util
import json
import tempfile
from pathlib import Path

from IPython.display import Image, display
from tutorial_data import pick

from spikeinit.sweep import aggregate, expand, run_sweep
from spikeinit.tables import format_table

THRESHOLDS = pick([0.5, 1.0, 1.5, 2.0], [0.5, 1.5])
WIDTHS = pick([100, 200, 400], [50, 100])
INITS = pick(["paper", "stable", "kaiming"], ["paper", "kaiming"])
BASE = pick({"depth": 50, "steps": 1, "batch": 32}, {"depth": 10, "steps": 1, "batch": 16})
work = Path(tempfile.mkdtemp(prefix="spikeinit-sweep-"))

# %% [markdown]
# ## The grid
#
# `expand(task, grid, base)` is the cartesian product of the grid over the base settings. Each
# `Run` carries its task, its full configuration (every default filled in, so `beta=0` and
# `beta=0.0` are the same run) and its key. Here: the threshold θ and the width of a 50-layer
# network at one time step, for three inits. The command line spells the same grid as
#
# ```bash
# spikeinit sweep --task propagate --grid threshold=0.5,1,1.5,2 --grid width=100,200,400 \
#     --grid init=paper,stable,kaiming --set depth=50 --set batch=32 \
#     --results runs/sweep --workers 2
# ```
#
# or as a `.toml`/`.yaml` file with the task, `[grid]` and `[base]`.

# %%
runs = expand("propagate", {"threshold": THRESHOLDS, "width": WIDTHS, "init": INITS}, BASE)
print(f"{len(runs)} runs, e.g. {runs[0].key}:")
print(json.dumps({k: runs[0].config[k] for k in ("inits", "threshold", "width", "depth",
                                                     "beta", "steps")}))

# %% [markdown]
# ## Locally: a process pool
#
# `run_sweep(runs, results, workers=2)` runs them in two worker processes (one torch thread
# each here). Every finished run is written atomically as `results/<key>.json`; a failure as
# `<key>.failed.json`, retried with `retry_failed=True`.

# %%
results = work / "local"
summary = run_sweep(runs, results, workers=2, threads=1, progress=False)
print(summary.line())

# %% [markdown]
# Run it again: nothing is left to do. Add values to the grid and only the new runs execute.

# %%
print(run_sweep(runs, results, workers=2, threads=1, progress=False).line())
grown = expand("propagate", {"threshold": THRESHOLDS, "width": WIDTHS,
                             "init": [*INITS, "xavier"]}, BASE)
print(run_sweep(grown, results, workers=2, threads=1, progress=False).line())

# %% [markdown]
# ## On Ray
#
# `backend="ray"` sends the same runs to a Ray cluster (`address=...`), or to a Ray instance
# started for the sweep when no address is given, as here (`pip install "spikeinit[ray]"`).
# The results folder has the same layout, and the records hold the same numbers: each run is
# seeded by its configuration, not by where it ran. Ray prints its own start-up messages first.

# %%
if importlib.util.find_spec("ray") is None:
    print("Ray is not installed (pip install 'spikeinit[ray]'); skipping the Ray backend.")
else:
    on_ray = work / "ray"
    print(run_sweep(runs, on_ray, backend="ray", workers=2, progress=False).line())
    same = 0
    for run in runs:
        local = json.loads((results / f"{run.key}.json").read_text())["result"]
        remote = json.loads((on_ray / f"{run.key}.json").read_text())["result"]
        same += local == remote
    print(f"{same} of {len(runs)} records identical to the local ones")

# %% [markdown]
# ## `aggregate`
#
# `aggregate(results)` (the command `spikeinit aggregate runs/sweep`) collects every record
# into `results.csv` (one row per run and init: the settings, the rate at the first and last
# layer, their ratio `relative_rate`, and the per-layer rates) and draws a heatmap of
# `relative_rate` over two parameters (threshold × β when both vary; here we name threshold ×
# width), one panel per init, and the rate against depth. It also reports configurations of
# the sweep that have no result yet (`missing`, `failed`).

# %%
report = aggregate(results, work / "aggregate", rows_param="threshold", columns_param="width")
print(f"{report['rows']} rows, {len(report['missing'])} missing, "
      f"{len(report['failed'])} failed; wrote {Path(report['csv']).name} and "
      f"{len(report['figures'])} figures")
with open(report["csv"]) as handle:
    rows = list(csv.DictReader(handle))
relative = {(row["init"], int(row["width"]), float(row["threshold"])): float(row["relative_rate"])
            for row in rows}
table = [["init", "width", *[f"θ = {t:g}" for t in THRESHOLDS]]]
for init in sorted({key[0] for key in relative}):
    for width in WIDTHS:
        table.append([init, str(width), *[f"{relative[init, width, t]:.3g}" for t in THRESHOLDS]])
print("relative_rate (rate at the last layer / rate at the first):")
print(format_table(table))
for figure in report["figures"]:
    display(Image(filename=figure))

# %% [markdown]
# `relative_rate` is 1 where the activity is carried through the depth unchanged and 0 where
# it died. The one-step theory of [tutorial 1](01_silence.md) says what to expect:
#
# - Kaiming's gain 2 has a fixed point only for θ below about 0.58
#   (`theory.fixed_point(2, θ)`), Xavier's gain 1 only below about 0.41: above, they die.
# - `paper` has its fixed point at σ = 1 at every θ, but it attracts only for θ < 1.19; above,
#   the rate drifts away from the first layer's, up or down. Narrow layers also bias it
#   downwards (finite width: [Theory](../theory.md), section 3).
# - `stable` chooses σ so that the fixed point attracts at every θ (slope 1/3): the network
#   settles on that operating point (a rate of about 0.29 in the infinite-width theory, a
#   little lower in layers this narrow) whatever the first layer's rate, so its ratio is above
#   1 where the first layer fires less than that.
#
# The full-size version of this sweep (θ × β × init, T = 1 and T = 20, 100 layers of 1000
# neurons) and its reading are in [Robustness](../robustness.md).
