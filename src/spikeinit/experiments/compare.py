"""``spikeinit compare``: the same model trained with several inits and seeds.

The summary reports statistics over seeds rather than single runs: per-epoch mean and standard
deviation of the test accuracy, the epochs needed to reach fixed fractions of a shared target,
and for every init a comparison against a reference init *paired by seed* (runs with the same
seed share the data order, so their difference removes that source of variance).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from spikeinit.data import dataset_info
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.distributed import (
    DistributedContext,
    cleanup_distributed,
    setup_distributed,
)
from spikeinit.experiments.training import TrainConfig, rows_to_csv, train
from spikeinit.experiments.training.threads import check_threads
from spikeinit.init.registry import get_method
from spikeinit.io import write_json_atomic, write_text_atomic

REACH_FRACTIONS: tuple[float, ...] = (0.9, 0.97)
"""Fractions of the best seed-mean accuracy whose first crossing is reported."""
DEFAULT_REFERENCE = "paper"
N_RESAMPLES = 10_000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0

Curves = Mapping[str, Sequence[Sequence[float]] | Mapping[int, Sequence[float]]]
"""``{init: [curve per seed]}`` (aligned with ``seeds``) or ``{init: {seed: curve}}``."""


def epochs_to_reach(curve: Sequence[float], target: float) -> int | None:
    """First epoch (1-based) at which ``curve`` reaches ``target``; ``None`` if never."""
    for index, value in enumerate(curve):
        if value >= target:
            return index + 1
    return None


def fraction_key(fraction: float) -> str:
    """Key of ``fraction`` in ``targets`` and ``epochs_to`` (JSON-safe): ``0.97 -> "0.97"``."""
    return f"{fraction:g}"


def _by_seed(curves: Curves, seeds: Sequence[int] | None) -> dict[str, dict[int, np.ndarray]]:
    """Normalise ``curves`` to ``{init: {seed: curve}}`` and check the epoch counts agree."""
    if not curves:
        raise InvalidArgumentError("curves must hold at least one init")
    out: dict[str, dict[int, np.ndarray]] = {}
    for init, per_seed in curves.items():
        if isinstance(per_seed, Mapping):
            items = [(int(seed), curve) for seed, curve in per_seed.items()]
        else:
            per_seed = list(per_seed)
            labels = list(range(len(per_seed))) if seeds is None else [int(s) for s in seeds]
            if len(labels) != len(per_seed):
                raise InvalidArgumentError(f"init {init!r} has {len(per_seed)} curves for "
                                 f"{len(labels)} seeds")
            items = list(zip(labels, per_seed))
        if not items:
            raise InvalidArgumentError(f"init {init!r} has no runs")
        if len({seed for seed, _ in items}) != len(items):
            raise InvalidArgumentError(f"init {init!r} repeats a seed")
        out[init] = {seed: np.asarray(curve, dtype=float) for seed, curve in items}
    lengths = {(init, seed): curve.size for init, runs in out.items()
               for seed, curve in runs.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        detail = ", ".join(f"{init} seed {seed}: {n}" for (init, seed), n in lengths.items())
        raise InvalidArgumentError(
            f"all runs must have the same (non-zero) number of epochs; got {detail}")
    return out


def paired_comparison(
    reference: Mapping[int, float],
    other: Mapping[int, float],
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    bootstrap_seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Compare final accuracies ``{seed: acc}`` of a reference init and another, paired by seed.

    Over the seeds ``s`` common to both (n of them), in the reference's order:

    - paired difference ``d_s = acc_ref,s - acc_other,s`` (positive: the reference is better);
    - ``mean_difference = d̄ = (1/n) Σ_s d_s`` and ``std_difference = sd =
      sqrt(Σ_s (d_s - d̄)² / (n - 1))`` (0 for one seed);
    - paired t-test (``scipy.stats.ttest_rel``): ``t = d̄ / (sd / √n)`` with n - 1 degrees of
      freedom, two-sided ``p_value``. It is ``None`` (with the reason in ``p_value_note``) when
      n < 2 or when all d_s are equal (sd = 0, t undefined or infinite);
    - percentile bootstrap confidence interval of d̄ (``ci_low``, ``ci_high``): draw n seeds
      with replacement ``n_resamples`` times from ``numpy.random.default_rng(bootstrap_seed)``
      (so the result is deterministic), take the mean d of each draw, and report the
      ``(1 - confidence)/2`` and ``(1 + confidence)/2`` quantiles. ``None`` (reason in
      ``ci_note``) when n < 2. With few seeds the interval is coarse: for n = 3 a resample can
      take only 10 distinct means, so the bounds are essentially the extreme d_s and the
      nominal coverage is not reached; read it as a description of the spread, not as a
      calibrated 95% interval.
    """
    seeds = [seed for seed in reference if seed in other]
    d = np.asarray([reference[s] - other[s] for s in seeds], dtype=float)
    n = int(d.size)
    result: dict[str, Any] = {
        "seeds": seeds,
        "n": n,
        "differences": [float(x) for x in d],
        "mean_difference": float(d.mean()) if n else None,
        "std_difference": (float(d.std(ddof=1)) if n > 1 else 0.0) if n else None,
        "t_statistic": None,
        "p_value": None,
        "p_value_note": None,
        "confidence": confidence,
        "n_resamples": n_resamples,
        "bootstrap_seed": bootstrap_seed,
        "ci_low": None,
        "ci_high": None,
        "ci_note": None,
    }
    if n < 2:
        reason = f"{n} common seed{'s' if n != 1 else ''} (need at least 2)"
        result["p_value_note"] = result["ci_note"] = reason
        return result
    if float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        result["p_value_note"] = "all paired differences are equal (zero variance)"
    else:
        test = stats.ttest_rel([reference[s] for s in seeds], [other[s] for s in seeds])
        statistic, p_value = float(test.statistic), float(test.pvalue)
        if np.isfinite(p_value) and np.isfinite(statistic):
            result["t_statistic"], result["p_value"] = statistic, p_value
        else:
            result["p_value_note"] = "t-test undefined (non-finite statistic)"
    rng = np.random.default_rng(bootstrap_seed)
    means = d[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    result["ci_low"], result["ci_high"] = float(low), float(high)
    return result


def summarize(
    curves: Curves,
    throughput: Mapping[str, Sequence[float]] | None = None,
    fractions: Sequence[float] = REACH_FRACTIONS,
    reference: str | None = None,
    seeds: Sequence[int] | None = None,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    bootstrap_seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Statistics over seeds of test-accuracy curves, per init and paired against a reference.

    Args:
        curves: ``{init: {seed: curve}}``, or ``{init: [curve, ...]}`` with the lists aligned
            with ``seeds`` (default: positions 0, 1, ... so the i-th runs are paired); a curve
            is the test accuracy per epoch. All runs must have the same number of epochs.
        throughput: ``{init: [samples/s per run]}`` (averaged), or ``None``.
        fractions: fractions of the shared target ``best`` (see below) to report epochs for.
        reference: the init the others are compared with (default: ``"paper"`` when present,
            else the first init).
        seeds: seed numbers of list-form ``curves``.
        n_resamples, confidence, bootstrap_seed: the bootstrap of :func:`paired_comparison`.

    Per init, with ``acc_s(e)`` the accuracy of seed s at epoch e over n seeds:

    - ``mean_curve[e] = (1/n) Σ_s acc_s(e)``, ``std_curve[e] = sqrt(Σ_s (acc_s(e) -
      mean_curve[e])² / (n - 1))`` (0 for one seed);
    - ``final_mean``, ``final_std`` (same formulas at the last epoch), ``final_min``,
      ``final_max``, and ``best_mean = max_e mean_curve[e]``;
    - ``epochs_to[fraction_key(f)]``: first epoch (1-based) at which ``mean_curve`` reaches
      ``f · best``, ``None`` if never, where ``best`` is the largest ``best_mean`` of *any* init
      (a shared target, so a dead network does not "converge" to its own chance level).

    Returns:
        ``{"best", "fractions", "targets": {key: f · best}, "reference", "inits": {init:
        {"seeds", "n_seeds", "test_accuracy" (per-seed curves, aligned with "seeds"),
        "mean_curve", "std_curve", "final_mean", "final_std", "final_min", "final_max",
        "best_mean", "epochs_to", "samples_per_second"}}, "comparisons": {other init:
        paired_comparison(reference finals, other finals) plus "reference"}}``.

    Raises:
        ValueError: no init, an init without runs, runs of different lengths, an unknown
            ``reference``, or list-form curves that do not match ``seeds``.
    """
    runs = _by_seed(curves, seeds)
    if reference is None:
        reference = DEFAULT_REFERENCE if DEFAULT_REFERENCE in runs else next(iter(runs))
    elif reference not in runs:
        raise InvalidArgumentError(f"reference init {reference!r} is not among {list(runs)}")
    fractions = [float(f) for f in fractions]
    stacked = {init: np.stack(list(r.values())) for init, r in runs.items()}  # (seeds, epochs)
    means = {init: a.mean(axis=0) for init, a in stacked.items()}
    best = max(float(m.max()) for m in means.values())
    targets = {fraction_key(f): f * best for f in fractions}
    inits: dict[str, Any] = {}
    for init, array in stacked.items():
        n_seeds = array.shape[0]
        std = array.std(axis=0, ddof=1) if n_seeds > 1 else np.zeros(array.shape[1])
        finals = array[:, -1]
        speed = throughput.get(init) if throughput else None
        inits[init] = {
            "seeds": list(runs[init]),
            "n_seeds": n_seeds,
            "test_accuracy": array.tolist(),
            "mean_curve": means[init].tolist(),
            "std_curve": std.tolist(),
            "final_mean": float(finals.mean()),
            "final_std": float(std[-1]),
            "final_min": float(finals.min()),
            "final_max": float(finals.max()),
            "best_mean": float(means[init].max()),
            "epochs_to": {key: epochs_to_reach(means[init].tolist(), target)
                          for key, target in targets.items()},
            "samples_per_second": float(np.mean(list(speed))) if speed else None,
        }
    final = {init: {seed: float(curve[-1]) for seed, curve in r.items()}
             for init, r in runs.items()}
    comparisons = {
        other: {"reference": reference,
                **paired_comparison(final[reference], final[other], n_resamples, confidence,
                                    bootstrap_seed)}
        for other in runs if other != reference
    }
    return {"best": best, "fractions": fractions, "targets": targets, "reference": reference,
            "inits": inits, "comparisons": comparisons}


def summary_table(summary: dict[str, Any]) -> list[list[str]]:
    """Rows (header first) of the per-init table: final accuracy, epochs to targets, speed."""
    header = ["init", "final test acc: mean ± std (n seeds)", "min-max"]
    for key, target in summary["targets"].items():
        header.append(f"epochs to {float(key) * 100:g}% of best ({target:.3f})")
    header.append("samples/s")
    rows = [header]
    for init, data in summary["inits"].items():
        n = data["n_seeds"]
        speed = data.get("samples_per_second")
        row = [
            init,
            f"{data['final_mean']:.4f} ± {data['final_std']:.4f} ({n} seed{'s' if n != 1 else ''})",
            f"{data['final_min']:.4f}-{data['final_max']:.4f}",
        ]
        for key in summary["targets"]:
            reach = data["epochs_to"][key]
            row.append("never" if reach is None else str(reach))
        row.append("-" if speed is None else f"{speed:.0f}")
        rows.append(row)
    return rows


def comparison_table(summary: dict[str, Any]) -> list[list[str]]:
    """Rows (header first) of the paired comparisons; only the header if there is none."""
    confidence = next(iter(summary["comparisons"].values()), {}).get("confidence", CONFIDENCE)
    rows = [["comparison (paired by seed)", "seeds paired", "mean diff of final acc",
             f"{confidence * 100:g}% bootstrap CI", "paired t-test p"]]
    for other, data in summary["comparisons"].items():
        mean = data["mean_difference"]
        if data["ci_low"] is None:
            ci = f"n/a ({data['ci_note']})"
        else:
            ci = f"[{data['ci_low']:+.4f}, {data['ci_high']:+.4f}]"
        p_value = data["p_value"]
        rows.append([
            f"{data['reference']} − {other}",
            str(data["n"]),
            "-" if mean is None else f"{mean:+.4f}",
            ci,
            f"n/a ({data['p_value_note']})" if p_value is None else f"{p_value:.3g}",
        ])
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    """GitHub-flavoured Markdown table of ``rows`` (header first)."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def compare_markdown(summary: dict[str, Any]) -> str:
    """Markdown of ``compare.md``: the per-init table, then the paired comparisons (if any)."""
    text = markdown_table(summary_table(summary))
    comparisons = comparison_table(summary)
    if len(comparisons) > 1:
        text += (f"\nFinal test accuracy of `{summary['reference']}` minus each other init, "
                 "paired by seed (positive: the reference is better).\n\n")
        text += markdown_table(comparisons)
    return text


def run_compare(
    base: TrainConfig,
    inits: Sequence[str],
    seeds: Sequence[int] = (0,),
    out: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    threads: int | str | None = None,
) -> dict[str, Any]:
    """Train ``base`` once per init and seed; returns (and writes) the summary.

    Each run goes to ``out/<init>/seed-<seed>/`` (its own metrics and checkpoint, so
    ``resume=True`` skips finished runs and continues an interrupted one; ``overwrite=True``
    replaces earlier runs, which are refused otherwise). ``out`` receives
    ``compare.json`` (the :func:`summarize` dict plus ``chance``, ``config``, ``seeds`` and
    ``title``), ``compare.csv`` (the per-init table), ``compare.md`` (the per-init table and the
    comparisons with the reference init, paired by seed) and ``compare.png``.

    ``threads`` is every training's thread count (an integer, ``"auto"`` or ``None``: see
    :func:`~spikeinit.experiments.training.train`; with ``"auto"`` each training measures its
    own).

    Raises:
        ValueError: no init or seed given, an unknown init, a repeated init or seed, or a bad
            ``threads``.
    """
    check_threads(threads)
    inits, seeds = list(inits), [int(s) for s in seeds]
    if not inits:
        raise InvalidArgumentError("inits must name at least one init method")
    if not seeds:
        raise InvalidArgumentError("seeds must list at least one seed")
    if len(set(inits)) != len(inits) or len(set(seeds)) != len(seeds):
        raise InvalidArgumentError("inits and seeds must not repeat")
    for init in inits:
        get_method(init)
    configs = {(i, s): replace(base, init=i, seed=s) for i in inits for s in seeds}
    context = setup_distributed(device)
    try:
        return _run(base, configs, inits, seeds, out, context, progress, resume, log,
                    overwrite, threads)
    finally:
        cleanup_distributed(context)


def _run(
    base: TrainConfig,
    configs: dict[tuple[str, int], TrainConfig],
    inits: list[str],
    seeds: list[int],
    out: str | Path | None,
    context: DistributedContext,
    progress: bool,
    resume: bool,
    log: Callable[[str], None] | None,
    overwrite: bool = False,
    threads: int | str | None = None,
) -> dict[str, Any]:
    out_path = Path(out) if out is not None else None
    curves: dict[str, dict[int, list[float]]] = {i: {} for i in inits}
    speed: dict[str, list[float]] = {i: [] for i in inits}
    say = log if (log is not None and context.is_main) else (lambda _: None)
    for (init, seed), config in configs.items():
        say(f"== {init}, seed {seed}")
        run_out = out_path / init / f"seed-{seed}" if out_path is not None else None
        result = train(config, run_out, resume=resume, progress=progress, context=context,
                       log=log, overwrite=overwrite, threads=threads)
        curves[init][seed] = [r["test_accuracy"] for r in result.history]
        n_train = result.n_train
        speed[init].append(float(np.mean([r["samples_per_second"] for r in result.history])))
    summary = summarize(curves, speed)
    info = dataset_info(base.dataset)
    summary["chance"] = 1.0 / info.n_classes
    summary["config"] = {k: v for k, v in base.to_dict().items() if k not in ("init", "seed")}
    summary["seeds"] = seeds
    summary["title"] = (
        f"{info.display_name} {base.model} T={base.steps} θ={base.threshold} β={base.beta} "
        f"{base.encoding} input, {base.loss} loss, n_train={n_train}"
    )
    if out_path is not None and context.is_main:
        from spikeinit.experiments.training_figures import plot_compare

        rows = summary_table(summary)
        write_json_atomic(out_path / "compare.json", summary)
        write_text_atomic(out_path / "compare.csv",
                          rows_to_csv([dict(zip(rows[0], row)) for row in rows[1:]]))
        write_text_atomic(out_path / "compare.md", compare_markdown(summary))
        plot_compare(summary, out_path / "compare.png")
    return summary
