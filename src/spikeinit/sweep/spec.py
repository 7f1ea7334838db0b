"""Sweep specifications: tasks, grids, their expansion into runs, and each run's key.

A *run* is ``(task, config)`` where ``config`` is the task's **full** configuration (every
field, defaults included) in canonical JSON form. Its key is ``<task>-<16 hex digits>`` of the
SHA-256 of ``json.dumps({"task": ..., "config": ...}, sort_keys=True)``, so the same
configuration always maps to the same result file, whichever way it was spelled (``beta=0`` or
``beta=0.0``, a default given explicitly or left out).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.conditions import ConditionsConfig
from spikeinit.experiments.propagation import PropagationConfig
from spikeinit.experiments.training import TrainConfig
from spikeinit.io import check_regular_file

TASKS = ("propagate", "conditions", "train")
KEY_DIGITS = 16
#: Limits that keep a hostile sweep file from hanging the parser or the expansion.
MAX_SPEC_BYTES = 2**20
MAX_SPEC_DEPTH = 16
MAX_YAML_ALIASES = 100
MAX_SPEC_VALUES = 1_000_000
#: The most runs one sweep may expand to (checked before any run is built).
MAX_RUNS = 100_000

# Parameters that are not fields of the task's config dataclass but change what a run does.
_EXTRA: dict[str, dict[str, Any]] = {
    "propagate": {"gradients": False, "surrogate": "atan"},
    "conditions": {},
    "train": {"device": "cpu"},
}
# Singular spellings for the tuple fields, so that a grid can sweep one value per run.
_ALIASES: dict[str, dict[str, str]] = {
    "propagate": {"init": "inits"},
    "conditions": {"width": "widths", "threshold": "thresholds"},
    "train": {},
}
_CONFIG_CLASSES = {"propagate": PropagationConfig, "conditions": ConditionsConfig,
                   "train": TrainConfig}


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its task, full canonical configuration and key."""

    task: str
    config: dict[str, Any]
    key: str


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise ``ValueError``."""
    if task not in TASKS:
        raise InvalidArgumentError(
            f"task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    return task


def parameters(task: str) -> tuple[str, ...]:
    """Every parameter a grid may set for ``task`` (config fields, extras and aliases)."""
    check_task(task)
    names = [f.name for f in fields(_CONFIG_CLASSES[task])]
    return tuple(sorted({*names, *_EXTRA[task], *_ALIASES[task]}))


def _coerce(annotation: str, value: Any) -> Any:
    """Make ints given for float fields floats (and integral floats for int fields ints)."""
    if isinstance(value, bool) or value is None:
        return value
    if "float" in annotation and isinstance(value, int):
        return float(value)
    if "int" in annotation and "float" not in annotation and isinstance(value, float) \
            and value.is_integer():
        return int(value)
    return value


def canonical_config(task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The full, validated, JSON-ready configuration of one run of ``task``.

    Raises:
        ValueError: an unknown task or parameter (naming the allowed ones), or a value the
            task's config rejects.
    """
    check_task(task)
    allowed = parameters(task)
    params = dict(params)
    for name in params:
        if name not in allowed:
            raise InvalidArgumentError(
                f"unknown {task} parameter {name!r}; allowed: {', '.join(allowed)}")
    for alias, target in _ALIASES[task].items():
        if alias in params:
            if target in params:
                raise InvalidArgumentError(f"give either {alias!r} or {target!r}, not both")
            params[target] = [params.pop(alias)]
    extras = {name: params.pop(name, default) for name, default in _EXTRA[task].items()}
    cls = _CONFIG_CLASSES[task]
    annotations = {f.name: str(f.type) for f in fields(cls)}
    values: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple):
            value = tuple(_coerce(annotations[name], v) for v in value)
        else:
            value = _coerce(annotations[name], value)
        values[name] = value
    try:
        config = cls(**values)
    except InvalidArgumentError:
        raise
    except (TypeError, ValueError) as error:  # e.g. a list or a word where a number belongs
        raise InvalidArgumentError(f"bad {task} configuration {values!r}: {error}") from error
    data = config.to_dict() if hasattr(config, "to_dict") else asdict(config)
    data.update(extras)
    return json.loads(json.dumps(data, sort_keys=True))


def run_key(task: str, config: Mapping[str, Any]) -> str:
    """``<task>-<hash>``: the first 16 hex digits of SHA-256 of the canonical JSON."""
    check_task(task)
    text = json.dumps({"task": task, "config": config}, sort_keys=True, separators=(",", ":"))
    return f"{task}-{hashlib.sha256(text.encode()).hexdigest()[:KEY_DIGITS]}"


def make_run(task: str, params: Mapping[str, Any]) -> Run:
    """Validate ``params`` for ``task`` and return the :class:`Run` with its key."""
    config = canonical_config(task, params)
    return Run(task=task, config=config, key=run_key(task, config))


def expand(task: str, grid: Mapping[str, Sequence[Any]],
           base: Mapping[str, Any] | None = None) -> list[Run]:
    """Every combination of ``grid`` (cartesian product, in the grid's order) over ``base``.

    Duplicate configurations (the same full config reached twice) are kept once.

    Raises:
        ValueError: an empty value list, an unknown parameter, or an invalid value.
    """
    check_task(task)
    base = dict(base or {})
    names = list(grid)
    for name in names:
        values = grid[name]
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise InvalidArgumentError(f"grid parameter {name!r} must list at least one value")
    count = math.prod(len(grid[name]) for name in names)
    if count > MAX_RUNS:
        raise InvalidArgumentError(
            f"grid: {' x '.join(str(len(grid[n])) for n in names)} = {count} runs, more than "
            f"the {MAX_RUNS} one sweep may hold; split it into several sweeps")
    runs: dict[str, Run] = {}
    for combination in itertools.product(*(grid[name] for name in names)):
        run = make_run(task, {**base, **dict(zip(names, combination))})
        runs.setdefault(run.key, run)
    return list(runs.values())


def parse_value(text: str) -> Any:
    """A CLI value: JSON (numbers, ``true``, ``null``, ``[..]``) when it parses, else a string."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    except RecursionError as error:
        raise InvalidArgumentError(f"value {text[:40]!r}...: nested deeper than the parser "
                                   "allows") from error
    check_depth(value, f"value {text[:40]!r}")
    return value


def parse_assignment(text: str, option: str = "--grid") -> tuple[str, str]:
    """Split ``key=value`` (raises ``ValueError`` naming ``option`` when there is no ``=``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise InvalidArgumentError(f"{option} expects key=value, got {text!r}")
    return name.strip().replace("-", "_"), value


def parse_grid_options(options: Iterable[str]) -> dict[str, list[Any]]:
    """``["threshold=0.5,1", "init=paper,kaiming"]`` -> ``{"threshold": [0.5, 1], ...}``."""
    grid: dict[str, list[Any]] = {}
    for option in options:
        name, text = parse_assignment(option, "--grid")
        grid[name] = [parse_value(v.strip()) for v in text.split(",") if v.strip()]
        if not grid[name]:
            raise InvalidArgumentError(f"--grid {name} lists no values")
    return grid


def parse_set_options(options: Iterable[str]) -> dict[str, Any]:
    """``["depth=3", "channels=[8,16]"]`` -> ``{"depth": 3, "channels": [8, 16]}``."""
    return {name: parse_value(text) for name, text in
            (parse_assignment(option, "--set") for option in options)}


@dataclass(frozen=True)
class SweepSpec:
    """A task, a grid of values to sweep and fixed base values."""

    task: str
    grid: dict[str, list[Any]]
    base: dict[str, Any]

    def runs(self) -> list[Run]:
        """The expanded runs (see :func:`expand`)."""
        return expand(self.task, self.grid, self.base)


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a sweep file (``.toml``, ``.yaml``/``.yml`` or ``.json``).

    Layout: top-level ``task`` (optional), a ``grid`` table of value lists and an optional
    ``base`` table of fixed values, e.g. in TOML::

        task = "propagate"
        [base]
        depth = 100
        [grid]
        threshold = [0.5, 1.0]
        init = ["paper", "kaiming"]

    Raises:
        ValueError: unreadable file, unknown suffix, missing PyYAML for YAML, bad layout.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidArgumentError(f"sweep file {str(path)!r} does not exist")
    check_regular_file(path, "sweep file")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise InvalidArgumentError(f"sweep file {str(path)!r} is larger than "
                                   f"{MAX_SPEC_BYTES // 2**20} MiB; a grid fits in far less")
    suffix = path.suffix.lower()
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            tomllib = None
    toml_error = tomllib.TOMLDecodeError if tomllib is not None else ValueError
    try:
        if suffix == ".toml":
            if tomllib is None:
                raise InvalidArgumentError("reading a TOML sweep file on Python 3.10 needs tomli "
                                 "(pip install tomli)")
            data = tomllib.loads(path.read_text())
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as error:
                raise InvalidArgumentError("reading a YAML sweep file needs PyYAML (pip install "
                                 "'spikeinit[yaml]'); or write the grid as TOML") from error
            try:
                data = load_yaml_limited(path.read_text()) or {}
            except yaml.YAMLError as error:
                raise InvalidArgumentError(f"cannot parse sweep file {str(path)!r}: "
                                 f"{' '.join(str(error).split())}") from error
        elif suffix == ".json":
            data = json.loads(path.read_text())
        else:
            raise InvalidArgumentError(
                f"sweep file must end in .toml, .yaml, .yml or .json, got {suffix!r}")
    except (toml_error, json.JSONDecodeError) as error:
        raise InvalidArgumentError(f"cannot parse sweep file {str(path)!r}: {error}") from error
    except RecursionError as error:
        raise InvalidArgumentError(f"cannot parse sweep file {str(path)!r}: nested deeper than "
                                   "the parser allows") from error
    check_depth(data, f"sweep file {str(path)!r}")
    if not isinstance(data, dict):
        raise InvalidArgumentError(
            f"sweep file {str(path)!r} must hold a table with 'grid' (and 'base')")
    unknown = set(data) - {"task", "grid", "base"}
    if unknown:
        raise InvalidArgumentError(
            f"unknown sections in {str(path)!r}: {', '.join(sorted(unknown))}; "
                         "allowed: task, grid, base")
    for section in ("grid", "base"):
        if not isinstance(data.get(section, {}), dict):
            raise InvalidArgumentError(f"'{section}' in {str(path)!r} must be a table")
    return data


def check_depth(data: Any, what: str, limit: int | None = None) -> None:
    """Check that ``data`` nests lists and tables at most ``limit`` (default
    :data:`MAX_SPEC_DEPTH`) levels deep (a grid needs three: table, list, value list), and
    that it holds at most :data:`MAX_SPEC_VALUES` values once shared parts (YAML aliases) are
    counted as often as they occur.

    Raises:
        InvalidArgumentError: deeper nesting or more values, naming ``what``.
    """
    limit = MAX_SPEC_DEPTH if limit is None else limit
    sizes: dict[int, int] = {}
    level = {id(data): data}
    for _ in range(limit + 1):  # level by level over distinct objects: aliases cost nothing
        level = {id(child): child for item in level.values()
                 if isinstance(item, dict | list | tuple)
                 for child in (item.values() if isinstance(item, dict) else item)}
        if not level:
            break
    else:
        raise InvalidArgumentError(f"{what} nests lists or tables more than {limit} levels deep")
    if _expanded_size(data, sizes) > MAX_SPEC_VALUES:
        raise InvalidArgumentError(
            f"{what} expands to more than {MAX_SPEC_VALUES} values (aliases repeat what they "
            "name); write the grid out")


def _expanded_size(item: Any, sizes: dict[int, int]) -> int:
    """How many values ``item`` holds, a shared list or table counted at each occurrence
    (memoised by identity, so it costs one visit per distinct object)."""
    if not isinstance(item, dict | list | tuple):
        return 1
    if id(item) not in sizes:
        children = item.values() if isinstance(item, dict) else item
        sizes[id(item)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(item)]


def load_yaml_limited(text: str) -> Any:
    """``yaml.safe_load(text)`` that refuses more than :data:`MAX_YAML_ALIASES` aliases (a
    "billion laughs" file expands a few lines into billions of values) and nesting deeper than
    :data:`MAX_SPEC_DEPTH`, before any value is built.

    Raises:
        yaml.YAMLError: a parse error, or too many aliases or levels (a ``ComposerError``).
    """
    import yaml

    class LimitedLoader(yaml.SafeLoader):
        aliases = 0
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise yaml.composer.ComposerError(
                        None, None, f"more than {MAX_YAML_ALIASES} aliases (*name)", None)
            self.depth += 1
            try:
                if self.depth > MAX_SPEC_DEPTH:
                    raise yaml.composer.ComposerError(
                        None, None, f"nested more than {MAX_SPEC_DEPTH} levels deep", None)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return yaml.load(text, Loader=LimitedLoader)  # noqa: S506 - a SafeLoader subclass


def build_spec(task: str | None, file: str | Path | None = None,
               grid_options: Iterable[str] = (), set_options: Iterable[str] = ()) -> SweepSpec:
    """Combine a sweep file and CLI options (the options win) into a :class:`SweepSpec`."""
    data = load_spec_file(file) if file is not None else {}
    file_task = data.get("task")
    if task is not None and file_task is not None and task != file_task:
        raise InvalidArgumentError(
            f"task {task!r} differs from the sweep file's task {file_task!r}")
    task = check_task(task or file_task or "propagate")
    grid = {name.replace("-", "_"): (list(v) if isinstance(v, list | tuple) else [v])
            for name, v in data.get("grid", {}).items()}
    grid.update(parse_grid_options(grid_options))
    base = {name.replace("-", "_"): v for name, v in data.get("base", {}).items()}
    base.update(parse_set_options(set_options))
    for name in grid:
        base.pop(name, None)
    return SweepSpec(task=task, grid=grid, base=base)
