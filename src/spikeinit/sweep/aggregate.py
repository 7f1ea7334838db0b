"""Collect a sweep's results directory into one CSV table, heatmaps and line plots."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spikeinit.errors import InvalidArgumentError
from spikeinit.io import save_figure_atomic, write_text_atomic
from spikeinit.sweep import store

# Config fields that are not swept parameters of a row.
_SKIP = {"inits", "init_options", "widths", "thresholds", "channels", "data_dir"}


def _scalars(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items()
            if k not in _SKIP and (v is None or isinstance(v, str | int | float | bool))}


def _ratio(last: float, first: float) -> float:
    return float(last) / float(first) if first else math.nan


def _rows_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    task, config, result = record["task"], record["config"], record["result"]
    common = {"key": record["key"], "task": task, "seconds": record["timing"]["seconds"]}
    if task == "propagate":
        rows = []
        for init, data in result.items():
            rate, variance = data["rate"], data["variance"]
            predicted = data.get("prediction", {}).get("rate", [math.nan])
            rows.append({**common, **_scalars(config), "init": init,
                         "rate_first": rate[0], "rate_last": rate[-1],
                         "relative_rate": _ratio(rate[-1], rate[0]),
                         "variance_first": variance[0], "variance_last": variance[-1],
                         "predicted_rate_last": predicted[-1],
                         "predicted_relative_rate": _ratio(predicted[-1], predicted[0]),
                         "_rate": rate})
        return rows
    if task == "conditions":
        rows = []
        for i, threshold in enumerate(config["thresholds"]):
            for j, width in enumerate(config["widths"]):
                value = result["relative_rate"][i][j]
                rows.append({**common, **_scalars(config), "threshold": threshold,
                             "width": width,
                             "relative_rate": math.nan if value is None else value,
                             "spikes_per_layer": result["spikes_per_layer"][i][j],
                             "stability_slope": result["stability_slope"][i]})
        return rows
    final = result["history"][-1] if result.get("history") else {}
    # the last epoch's scheduled rate is "lr_now": "lr" stays the configured one (a sweep axis)
    measured = {("lr_now" if k == "lr" else k): v for k, v in final.items()
                if isinstance(v, int | float)}
    return [{**common, **_scalars(config), **measured}]


def collect_rows(results: str | Path, unreadable: list[str] | None = None
                 ) -> list[dict[str, Any]]:
    """One row per (run, init) of every finished result in ``results`` (sorted by key).

    Columns starting with ``_`` (e.g. ``_rate``, the per-layer rates) are kept for plotting
    and left out of the CSV. JSON files that are not a sweep's records (foreign or damaged)
    are skipped, and their names appended to ``unreadable`` when given.

    Raises:
        ValueError: ``results`` is not a directory.
    """
    results = Path(results)
    if not results.is_dir():
        raise InvalidArgumentError(f"results directory {str(results)!r} does not exist")
    rows = []
    for path in store.result_files(results):
        record = store.read_record(path)
        if record is not None and record.get("status") == "failed":
            continue
        try:
            if record is None or record.get("status") != "done":
                raise KeyError("status")
            rows.extend(_rows_of(record))
        except (KeyError, TypeError, IndexError, AttributeError):
            if unreadable is not None:
                unreadable.append(path.name)
    return rows


def coverage(results: str | Path, rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The configurations the sweep planned (its ``sweep.json``) that ``rows`` lack:
    ``{"planned": [...], "missing": [...], "failed": [...]}`` (failed: with a failure record;
    missing: neither done nor failed)."""
    plan = store.read_record(Path(results) / "sweep.json") or {}
    planned = [str(key) for key in plan.get("keys", []) if isinstance(key, str)]
    done = {row["key"] for row in rows}
    failed = [key for key in planned if key not in done and store.is_failed(Path(results), key)]
    missing = [key for key in planned if key not in done and key not in failed]
    return {"planned": planned, "missing": missing, "failed": failed}


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text of ``rows`` (union of columns, in first-seen order; ``_`` columns dropped).

    A NaN or infinite number is written as an empty cell, never as ``nan``
    (:func:`non_finite_cells` lists them, for a warning)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if not c.startswith("_") and c not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: ("" if _non_finite(v) else v) for c, v in row.items()} for row in rows)
    return buffer.getvalue()


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def non_finite_cells(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``"<key>:<column>"`` of every NaN or infinite number in the CSV columns of ``rows``."""
    return [f"{row.get('key', '?')}:{column}" for row in rows for column, value in row.items()
            if not column.startswith("_") and _non_finite(value)]


def varying(rows: Sequence[dict[str, Any]], ignore: Sequence[str] = ()) -> list[str]:
    """Parameters (config columns) that take more than one value across ``rows``."""
    skip = {"key", "seconds", "task", *ignore}
    names = []
    for name in rows[0] if rows else ():
        if name in skip or name.startswith("_"):
            continue
        values = {repr(row.get(name)) for row in rows}
        if len(values) > 1 and not _is_measurement(name):
            names.append(name)
    return names


_MEASUREMENTS = {"rate_first", "rate_last", "relative_rate", "variance_first", "variance_last",
                 "predicted_rate_last", "predicted_relative_rate", "spikes_per_layer",
                 "stability_slope"}


def _is_measurement(name: str) -> bool:
    return name in _MEASUREMENTS or "accuracy" in name or "loss" in name or name in (
        "epoch", "seconds", "lr_now")


def _sorted_values(rows: Sequence[dict[str, Any]], name: str) -> list[Any]:
    return sorted({row[name] for row in rows}, key=lambda v: (isinstance(v, str), v))


def _groups(rows: Sequence[dict[str, Any]], by: Sequence[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(name) for name in by)].append(row)
    return dict(sorted(groups.items(), key=lambda item: repr(item[0])))


def _label(by: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in zip(by, values))


def _slug(by: Sequence[str], values: Sequence[Any]) -> str:
    return "_".join(f"{name}{value}" for name, value in zip(by, values)) or "all"


def heatmap_figure(rows: Sequence[dict[str, Any]], row_param: str, column_param: str,
                   value: str, panel_param: str | None, title: str, path: Path) -> Path:
    """Heatmaps of mean ``value`` over ``row_param`` x ``column_param``, a panel per
    ``panel_param`` value (e.g. per init); cells average over the remaining rows (seeds)."""
    import matplotlib.pyplot as plt

    row_values = _sorted_values(rows, row_param)
    column_values = _sorted_values(rows, column_param)
    panels = _sorted_values(rows, panel_param) if panel_param else [None]
    # a column is as wide as its longest tick label (init names are longer than numbers)
    column_width = max(0.6, 0.085 * max(len(f"{c:g}" if isinstance(c, float) else str(c))
                                        for c in column_values))
    figure, axes = plt.subplots(
        1, len(panels), squeeze=False, constrained_layout=True,
        figsize=(0.6 + (0.8 + column_width * len(column_values)) * len(panels),
                 1.4 + 0.45 * len(row_values)))
    finite = [row[value] for row in rows if _finite(row.get(value))]
    vmax = max(2.0, float(np.percentile(finite, 95))) if value.endswith("relative_rate") \
        and finite else (max(finite) if finite else 1.0)
    vmin = 0.0 if not finite or min(finite) >= 0 else min(finite)
    image = None
    for axis, panel in zip(axes[0], panels):
        cells: dict[tuple, list[float]] = defaultdict(list)
        for row in rows:
            if panel_param and row[panel_param] != panel:
                continue
            if _finite(row.get(value)):
                cells[(row[row_param], row[column_param])].append(float(row[value]))
        grid = np.full((len(row_values), len(column_values)), np.nan)
        for (i, r), (j, c) in itertools.product(enumerate(row_values), enumerate(column_values)):
            if cells.get((r, c)):
                grid[i, j] = float(np.mean(cells[(r, c)]))
        image = axis.imshow(grid, aspect="auto", origin="lower", cmap="viridis", vmin=vmin,
                            vmax=vmax)
        axis.set_xticks(range(len(column_values)), [f"{c:g}" if isinstance(c, float) else str(c)
                                                    for c in column_values])
        axis.set_yticks(range(len(row_values)), [f"{r:g}" if isinstance(r, float) else str(r)
                                                 for r in row_values])
        axis.set_xlabel(column_param)
        axis.set_ylabel(row_param)
        axis.set_title(str(panel) if panel is not None else value, fontsize=10)
        for (i, j), cell in np.ndenumerate(grid):
            text = "–" if np.isnan(cell) else f"{cell:.2f}"
            axis.text(j, i, text, ha="center", va="center", fontsize=7, color="w")
    figure.colorbar(image, ax=axes[0, -1], label=value)
    figure.suptitle(title, fontsize=10)
    save_figure_atomic(figure, path, dpi=110)
    plt.close(figure)
    return path


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def depth_figure(rows: Sequence[dict[str, Any]], row_param: str | None,
                 column_param: str | None, title: str, path: Path) -> Path:
    """Small multiples (``row_param`` x ``column_param``) of layer -> rate, a line per init
    (mean over the remaining rows, e.g. seeds)."""
    import matplotlib.pyplot as plt

    row_values = _sorted_values(rows, row_param) if row_param else [None]
    column_values = _sorted_values(rows, column_param) if column_param else [None]
    inits = _sorted_values(rows, "init")
    figure, axes = plt.subplots(len(row_values), len(column_values), squeeze=False,
                                sharex=True, sharey=True, constrained_layout=True,
                                figsize=(1.0 + 2.2 * len(column_values),
                                         0.8 + 1.7 * len(row_values)))
    for (i, r), (j, c) in itertools.product(enumerate(row_values), enumerate(column_values)):
        axis = axes[len(row_values) - 1 - i, j]
        for index, init in enumerate(inits):
            curves = [row["_rate"] for row in rows if row["init"] == init
                      and (row_param is None or row[row_param] == r)
                      and (column_param is None or row[column_param] == c)]
            if curves:
                mean = np.mean(np.array(curves, dtype=float), axis=0)
                axis.plot(np.arange(1, len(mean) + 1), mean, color=f"C{index}", lw=1.2,
                          label=init)
        parts = [f"{p}={v}" for p, v in ((row_param, r), (column_param, c)) if p]
        axis.set_title(", ".join(parts), fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in axes[-1]:
        axis.set_xlabel("layer", fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel("rate", fontsize=8)
    axes[0, -1].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    save_figure_atomic(figure, path, dpi=100)
    plt.close(figure)
    return path


def aggregate(
    results: str | Path,
    out: str | Path | None = None,
    rows_param: str | None = None,
    columns_param: str | None = None,
    value: str | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Write ``results.csv``, heatmaps and (propagate) layer -> rate plots into ``out``.

    The configurations of the sweep (its ``sweep.json``) with no finished result are
    reported (``missing``, ``failed``), and so are JSON files that are not records
    (``unreadable``); with ``strict`` any of them is an error, and nothing is written.

    Heatmaps show ``value`` (default ``relative_rate``: last-layer rate / layer-1 rate; for
    training grids ``test_accuracy``) over ``rows_param`` x ``columns_param`` (default:
    ``threshold`` x ``beta`` when both vary, else the first two varying parameters), one panel
    per init and one figure per value of every other varying parameter except ``seed`` (cells
    average over seeds).

    Returns:
        ``{"rows": n, "csv": path, "figures": [paths], "done": configurations with a
        result, "non_finite": ["<key>:<column>" of the NaN or infinite numbers, written as
        empty cells], "planned": [keys], "missing": [keys], "failed": [keys], "unreadable":
        [file names]}``.

    Raises:
        ValueError: no finished results, an unknown parameter / value column, or (``strict``)
            a configuration without a result or an unreadable file.
    """
    results = Path(results)
    out = Path(out) if out is not None else results.parent / f"{results.name}-aggregate"
    unreadable: list[str] = []
    rows = collect_rows(results, unreadable)
    if not rows:
        raise InvalidArgumentError(f"no finished results in {str(results)!r}")
    gaps = {**coverage(results, rows), "unreadable": unreadable}
    done = len({row["key"] for row in rows})
    if strict and (gaps["missing"] or gaps["failed"] or unreadable):
        raise InvalidArgumentError(f"--strict: {completeness_line(done, gaps)}")
    csv_path = write_text_atomic(out / "results.csv", rows_to_csv(rows))
    params = varying(rows, ignore=("init",))
    columns = {c for row in rows for c in row}
    for name, given in (("rows", rows_param), ("columns", columns_param)):
        if given is not None and given not in columns:
            raise InvalidArgumentError(f"{name} must be a column of the results "
                             f"({', '.join(sorted(c for c in columns if c[0] != '_'))}), "
                             f"got {given!r}")
    candidates = [p for p in params if p != "seed"]
    if rows_param is None and columns_param is None and {"threshold", "beta"} <= set(params):
        rows_param, columns_param = "threshold", "beta"
    free = [p for p in candidates if p not in (rows_param, columns_param)]
    if rows_param is None and free:
        rows_param = free.pop(0)
    if columns_param is None and free:
        columns_param = free.pop(0)
    task = rows[0]["task"]
    value = value or ("test_accuracy" if task == "train" else "relative_rate")
    if value not in columns:
        raise InvalidArgumentError(f"value must be a column of the results, got {value!r}")
    panel = "init" if "init" in columns else None
    figures: list[str] = []
    by = [p for p in candidates if p not in (rows_param, columns_param)]
    for values, group in _groups(rows, by).items():
        label = _label(by, values)
        if rows_param and columns_param:
            path = out / f"heatmap_{_slug(by, values)}.png"
            figures.append(str(heatmap_figure(
                group, rows_param, columns_param, value, panel,
                f"{value} ({label})" if label else value, path)))
        if task == "propagate":
            path = out / f"depth_{_slug(by, values)}.png"
            figures.append(str(depth_figure(group, rows_param, columns_param,
                                            f"rate by layer ({label})" if label
                                            else "rate by layer", path)))
    return {"rows": len(rows), "csv": str(csv_path), "figures": figures, "done": done,
            "non_finite": non_finite_cells(rows), **gaps}


def completeness_line(done: int, gaps: dict[str, list[str]]) -> str:
    """``"13 of 15 configurations have results; missing: ...; failed: ..."`` (keys shortened
    to the first three)."""
    planned = len(gaps.get("planned", [])) or done
    parts = [f"{done} of {planned} configurations have results"]
    for name in ("missing", "failed", "unreadable"):
        keys = gaps.get(name, [])
        if keys:
            shown = ", ".join(keys[:3]) + (f", ... ({len(keys)})" if len(keys) > 3 else "")
            parts.append(f"{name}: {shown}")
    return "; ".join(parts)
