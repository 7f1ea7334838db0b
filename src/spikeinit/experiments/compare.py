"""``spikeinit compare``: the same model trained with several inits and seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from spikeinit.data import dataset_info
from spikeinit.experiments.distributed import (
    DistributedContext,
    cleanup_distributed,
    setup_distributed,
)
from spikeinit.experiments.training import TrainConfig, rows_to_csv, train
from spikeinit.init.registry import get_method
from spikeinit.io import write_json_atomic, write_text_atomic

REACH_FRACTION = 0.9


def epochs_to_reach(curve: Sequence[float], target: float) -> int | None:
    """First epoch (1-based) at which ``curve`` reaches ``target``; ``None`` if never."""
    for index, value in enumerate(curve):
        if value >= target:
            return index + 1
    return None


def summarize(
    curves: dict[str, list[list[float]]],
    throughput: dict[str, list[float]] | None = None,
    fraction: float = REACH_FRACTION,
) -> dict[str, Any]:
    """Summary of test-accuracy curves ``{init: [per-seed curve, ...]}``.

    For each init: final accuracy (mean, std, min, max over seeds) and the first epoch at which
    the seed-mean curve reaches ``fraction`` of the *best* seed-mean accuracy of any init at
    any epoch (a shared target, so a dead network does not "converge" to its own chance level).
    """
    if not curves:
        raise ValueError("curves must hold at least one init")
    means = {init: np.mean(np.asarray(c, dtype=float), axis=0) for init, c in curves.items()}
    best = max(float(m.max()) for m in means.values())
    target = fraction * best
    inits: dict[str, Any] = {}
    for init, per_seed in curves.items():
        finals = np.asarray([c[-1] for c in per_seed], dtype=float)
        inits[init] = {
            "test_accuracy": [list(map(float, c)) for c in per_seed],
            "final_mean": float(finals.mean()),
            "final_std": float(finals.std(ddof=1)) if finals.size > 1 else 0.0,
            "final_min": float(finals.min()),
            "final_max": float(finals.max()),
            "best_mean": float(means[init].max()),
            "epochs_to_target": epochs_to_reach(list(means[init]), target),
            "samples_per_second": float(np.mean(throughput[init])) if throughput else None,
        }
    return {"best": best, "fraction": fraction, "target": target, "inits": inits}


def summary_table(summary: dict[str, Any]) -> list[list[str]]:
    """Rows (header first) for a plain-text or Markdown table."""
    pct = int(round(summary["fraction"] * 100))
    rows = [["init", "seeds", "final test acc (mean ± std)", "min-max", "best mean",
             f"epochs to {pct}% of best ({summary['target']:.3f})", "samples/s"]]
    for init, data in summary["inits"].items():
        reach = data["epochs_to_target"]
        speed = data.get("samples_per_second")
        rows.append([
            init,
            str(len(data["test_accuracy"])),
            f"{data['final_mean']:.4f} ± {data['final_std']:.4f}",
            f"{data['final_min']:.4f}-{data['final_max']:.4f}",
            f"{data['best_mean']:.4f}",
            "never" if reach is None else str(reach),
            "-" if speed is None else f"{speed:.0f}",
        ])
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    """GitHub-flavoured Markdown table of ``rows`` (header first)."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def run_compare(
    base: TrainConfig,
    inits: Sequence[str],
    seeds: Sequence[int] = (0,),
    out: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    resume: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train ``base`` once per init and seed; returns (and writes) the summary.

    Each run goes to ``out/<init>/seed-<seed>/`` (its own metrics and checkpoint, so
    ``resume=True`` skips finished runs and continues an interrupted one). ``out`` receives
    ``compare.json``, ``compare.csv``, ``compare.md`` and ``compare.png``.

    Raises:
        ValueError: no init or seed given, an unknown init, or a repeated init or seed.
    """
    inits, seeds = list(inits), [int(s) for s in seeds]
    if not inits:
        raise ValueError("inits must name at least one init method")
    if not seeds:
        raise ValueError("seeds must list at least one seed")
    if len(set(inits)) != len(inits) or len(set(seeds)) != len(seeds):
        raise ValueError("inits and seeds must not repeat")
    for init in inits:
        get_method(init)
    configs = {(i, s): replace(base, init=i, seed=s) for i in inits for s in seeds}
    context = setup_distributed(device)
    try:
        return _run(base, configs, inits, seeds, out, context, progress, resume, log)
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
) -> dict[str, Any]:
    out_path = Path(out) if out is not None else None
    curves: dict[str, list[list[float]]] = {i: [] for i in inits}
    speed: dict[str, list[float]] = {i: [] for i in inits}
    say = log if (log is not None and context.is_main) else (lambda _: None)
    for (init, seed), config in configs.items():
        say(f"== {init}, seed {seed}")
        run_out = out_path / init / f"seed-{seed}" if out_path is not None else None
        result = train(config, run_out, resume=resume, progress=progress, context=context,
                       log=log)
        curves[init].append([r["test_accuracy"] for r in result.history])
        speed[init].append(float(np.mean([r["samples_per_second"] for r in result.history])))
    summary = summarize(curves, speed)
    info = dataset_info(base.dataset)
    summary["chance"] = 1.0 / info.n_classes
    summary["config"] = {k: v for k, v in base.to_dict().items() if k not in ("init", "seed")}
    summary["seeds"] = seeds
    summary["title"] = (
        f"{info.display_name} {base.model} T={base.steps} θ={base.threshold} β={base.beta} "
        f"n_train={base.limit_train or info.n_train}"
    )
    if out_path is not None and context.is_main:
        from spikeinit.experiments.training_figures import plot_compare

        rows = summary_table(summary)
        write_json_atomic(out_path / "compare.json", summary)
        write_text_atomic(out_path / "compare.csv",
                          rows_to_csv([dict(zip(rows[0], row)) for row in rows[1:]]))
        write_text_atomic(out_path / "compare.md", markdown_table(rows))
        plot_compare(summary, out_path / "compare.png")
    return summary
