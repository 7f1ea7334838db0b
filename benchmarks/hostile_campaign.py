"""Hostile-input campaign: several hundred scripted cases in six families, run and counted.

Each case drives the CLI (``spikeinit.cli.main.main``) or the API with something a demanding
user or a security reviewer would try, and is classified:

- ``clean``: exit 0 with finite outputs, or a refusal (exit 2, or a ``UserError`` from the API)
  with no traceback, and the run folders it touched left as they were;
- ``traceback``: exit 1 ("internal error"), or an exception outside spikeinit's family;
- ``hang``: still running after the per-case limit (``--limit``, seconds). The workers run with
  ``SPIKEINIT_TIME_BUDGET`` at a third of the limit (``--time-budget``), so a size that the
  time check lets through and that then runs past the limit is a hang past the checks; a
  larger size must be refused up front;
- ``silent-nan``: exit 0 (or a returned value) holding a NaN or infinite number;
- ``lost``: a refused case that changed a run folder it should have left alone;
- ``crash``: the process running the case died (killed, out of memory);
- ``bad-case``: the case itself is wrong (argparse refused an option it does not know), so it
  tested nothing: the campaign is not clean until the case is fixed.

The families: ``cli-arguments``, ``corrupt-data``, ``checkpoints``, ``sweeps``, ``api``,
``kernel-cache``. Cases run in worker processes (a batch each); a worker that dies or stalls is
replaced and its case counted. Usage::

    nice python benchmarks/hostile_campaign.py --limit 120 --json campaign.json
    python benchmarks/hostile_campaign.py --family api --list
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILIES = ("cli-arguments", "corrupt-data", "checkpoints", "sweeps", "api", "kernel-cache")
OUTCOMES = ("clean", "traceback", "hang", "silent-nan", "lost", "crash", "bad-case")
HOSTILE_VALUES = ("0", "-1", "nan", "inf", "-inf", "1e30", "abc", "", str(2**64), "1e-300",
                  "100000000")


@dataclass(frozen=True)
class Case:
    """One case: its family, a name, and the function that runs and classifies it (given a
    fresh work folder, it returns an outcome and a detail)."""

    family: str
    name: str
    run: Callable[[Path], tuple[str, str]]


class Hang(BaseException):
    """Raised by the per-case alarm."""


# ---- classifying a CLI call -------------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file's bytes below ``folder`` (for the ``lost`` check)."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.startswith(".")}


def non_finite_in(folder: Path | None) -> list[str]:
    """Files below ``folder`` holding a NaN or infinite number (JSON ``NaN``/``Infinity``, a
    CSV cell ``nan``/``inf``)."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix not in (".json", ".csv"):
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".json" and any(word in text for word in ("NaN", "Infinity")):
            found.append(path.name)
        cells = (cell.strip().lower() for line in text.splitlines() for cell in line.split(","))
        if path.suffix == ".csv" and any(c in ("nan", "inf", "-inf") for c in cells):
            found.append(path.name)
    return found


def cli(argv: list[str], outputs: Path | None = None, keep: Path | None = None
        ) -> tuple[str, str]:
    """Run ``spikeinit`` with ``argv`` in this process and classify it; ``outputs`` is
    scanned for non-finite numbers after a success, ``keep`` must be unchanged by a refusal."""
    from spikeinit.cli.main import main

    before = snapshot(keep) if keep is not None else None
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code if isinstance(exit_.code, int) else 2
    except Hang:
        raise
    except BaseException as error:  # noqa: BLE001 - what escaped main is a traceback
        return "traceback", f"{type(error).__name__}: {error}"[:200]
    text = err.getvalue()
    last = (text.strip().splitlines() or [""])[-1][:200]
    if code == 1 or "Traceback" in text or "internal error" in text:
        return "traceback", last
    if "unrecognized arguments" in text:
        return "bad-case", last
    if code == 0:
        bad = non_finite_in(outputs)
        if bad or " nan" in out.getvalue().lower():
            return "silent-nan", ", ".join(bad) or out.getvalue()[-200:]
        return "clean", "ok"
    if before is not None and snapshot(keep) != before:  # type: ignore[arg-type]
        return "lost", f"refused ({last}) but {keep} changed"
    return "clean", last


def api(call: Callable[[], Any]) -> tuple[str, str]:
    """Run an API call and classify it (a non-finite result is ``silent-nan``)."""
    import numpy as np
    import torch

    from spikeinit.errors import UserError

    try:
        value = call()
    except Hang:
        raise
    except UserError as error:
        return "clean", f"{type(error).__name__}: {error}"[:200]
    except Exception as error:  # noqa: BLE001
        return "traceback", f"{type(error).__name__}: {error}"[:200]
    values = value if isinstance(value, tuple | list) else [value]
    for item in values:
        if isinstance(item, torch.Tensor) and item.is_floating_point() \
                and not bool(torch.isfinite(item.detach()).all()):
            return "silent-nan", "a non-finite tensor came back"
        if isinstance(item, np.ndarray) and item.dtype.kind == "f" \
                and not np.isfinite(item).all():
            return "silent-nan", "a non-finite array came back"
        if isinstance(item, float) and not math.isfinite(item):
            return "silent-nan", "a non-finite number came back"
    return "clean", "ok"


# ---- fixtures: fake MNIST, a stopped training run --------------------------------------------

def write_idx(path: Path, array: Any) -> None:
    """An IDX file (gzip), as MNIST ships it."""
    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def fake_mnist(root: Path, n: int = 16, blank: bool = False) -> Path:
    """A tiny MNIST look-alike in ``root/mnist``."""
    import numpy as np

    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8) if blank else rng.integers(
            0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(root / "mnist" / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / "mnist" / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def tiny_train(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "mnist", "--data-dir", str(data), "--limit-train", "8",
            "--limit-test", "8", "--epochs", "1", "--batch", "8", "--width", "8", "--depth", "1",
            "--no-progress", "--device", "cpu", "--threads", "1", "--out", str(out), *extra]


def stopped_run(work: Path) -> tuple[Path, Path]:
    """Data and a run of two epochs stopped after the first (a signed checkpoint)."""
    from spikeinit.experiments.training import TrainConfig, train

    data = fake_mnist(work / "data")
    out = work / "run"
    config = TrainConfig(dataset="mnist", data_dir=str(data), limit_train=8, limit_test=8,
                         epochs=2, batch=8, width=8, depth=1)
    train(config, out, device="cpu", progress=False, log=None, stop_after=1, threads=1)
    return data, out


def resume_argv(data: Path, out: Path) -> list[str]:
    return [*tiny_train(data, out, "--resume"), "--epochs", "2"]


# ---- the families -----------------------------------------------------------------------------

def cli_argument_cases() -> list[Case]:
    bases = {
        "propagate": (["propagate", "--depth", "2", "--width", "10", "--batch", "4"],
                      ["--depth", "--width", "--steps", "--threshold", "--beta", "--batch",
                       "--seed"]),
        "conditions": (["conditions", "--widths", "5", "--thresholds", "1", "--depth", "2",
                        "--batch", "4"],
                       ["--widths", "--thresholds", "--depth", "--steps", "--beta"]),
        "inspect": (["inspect", "--depth", "2", "--width", "10", "--batch", "4"],
                    ["--width", "--depth", "--steps", "--batch", "--threshold", "--beta",
                     "--sizes"]),
        "train": ([], ["--epochs", "--batch", "--width", "--depth", "--steps", "--lr",
                       "--threshold", "--beta"]),
    }
    cases = []
    for command, (base, options) in bases.items():
        for option in options:
            for value in HOSTILE_VALUES:
                def run(work: Path, command=command, base=base, option=option,
                        value=value) -> tuple[str, str]:
                    out = work / "out"
                    if command == "train":
                        argv = [*tiny_train(fake_mnist(work / "data"), out), option, value]
                    elif command == "inspect":  # no --out: its outputs are named files
                        argv = [*base, "--json", str(out / "health.json"), "--csv",
                                str(out / "health.csv"), option, value]
                    else:
                        argv = [*base, "--device", "cpu", "--no-progress", "--out", str(out),
                                option, value]
                    return cli(argv, outputs=out)
                cases.append(Case("cli-arguments", f"{command} {option} {value!r}", run))
    return cases


def _mutate(path: Path, how: str) -> None:
    """Damage one data file as a careless copy, a bad disk or a hostile user would."""
    data = path.read_bytes()
    raw = gzip.decompress(data)
    if how.startswith("truncate"):
        path.write_bytes(data[: int(len(data) * float(how.split()[1]))])
    elif how.startswith("flip"):
        index = min(int(how.split()[1]), len(data) - 1)
        path.write_bytes(data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:])
    elif how == "not gzip":
        path.write_bytes(raw)
    elif how == "folder":
        path.unlink()
        path.mkdir()
    elif how == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif how == "symlink loop":
        path.unlink()
        path.symlink_to(path.name)
    elif how == "wrong magic":
        path.write_bytes(gzip.compress(b"\x00\x00\x09\x03" + raw[4:]))
    elif how == "huge count":
        path.write_bytes(gzip.compress(raw[:4] + (10**9).to_bytes(4, "big") + raw[8:]))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "labels 200" and raw[3] == 1:  # a labels file: every label out of range
        path.write_bytes(gzip.compress(raw[:8] + bytes([200]) * (len(raw) - 8)))


DATA_MUTATIONS = ("truncate 0", "truncate 0.1", "truncate 0.5", "truncate 0.99", "flip 0",
                  "flip 5", "flip 20", "flip 400", "not gzip", "folder", "fifo", "symlink loop",
                  "wrong magic", "huge count", "empty", "labels 200")
DATA_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def corrupt_data_cases() -> list[Case]:
    cases = []
    for name in DATA_FILES:
        for how in DATA_MUTATIONS:
            def run(work: Path, name=name, how=how) -> tuple[str, str]:
                data = fake_mnist(work / "data")
                _mutate(data / "mnist" / name, how)
                out = work / "out"
                return cli(tiny_train(data, out), outputs=out)
            cases.append(Case("corrupt-data", f"{name}: {how}", run))

    def blank(work: Path) -> tuple[str, str]:
        data = fake_mnist(work / "data", blank=True)
        return cli(tiny_train(data, work / "out"), outputs=work / "out")

    def other_shape(work: Path) -> tuple[str, str]:
        import numpy as np

        data = fake_mnist(work / "data")
        write_idx(data / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((16, 20, 20)))
        return cli(tiny_train(data, work / "out"), outputs=work / "out")

    cases += [Case("corrupt-data", "blank images", blank),
              Case("corrupt-data", "test images of another shape", other_shape)]
    return cases


def _signed_variant(path: Path, change: str) -> None:
    import torch

    from spikeinit.experiments.training.checkpoint import signed

    payload = dict(torch.load(path, weights_only=True))
    if change.startswith("drop "):
        payload.pop(change.split()[1])
    elif change == "string history":
        payload["history"] = "x"
    elif change == "wrong shapes":
        payload["model"] = {k: torch.zeros(3, 3) for k in payload["model"]}
    elif change == "garbage rng":
        payload["rng"] = {**payload["rng"], "torch": torch.zeros(7, dtype=torch.uint8)}
    elif change == "threads 0":
        payload["threads"] = 0
    elif change == "epoch 99":
        payload["epoch"] = 99
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(signed(buffer.getvalue()))


def checkpoint_cases() -> list[Case]:
    cases = []
    damages = [f"flip {f}" for f in (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                                     0.9, 0.95, 0.99, 0.999, 1.0)]
    damages += [f"truncate {f}" for f in (0.0, 0.1, 0.5, 0.9, 0.99)]
    damages += [f"signed {c}" for c in ("drop model", "drop rng", "drop optimizer",
                                        "drop scheduler", "drop history", "drop config",
                                        "drop epoch", "string history", "wrong shapes",
                                        "garbage rng", "threads 0", "epoch 99")]
    damages += ["unsigned", "fifo", "folder", "empty", "device", "metrics only",
                "busy", "busy --overwrite", "busy --resume", "intact"]
    for damage in damages:
        def run(work: Path, damage=damage) -> tuple[str, str]:
            import torch

            from spikeinit.io import own_folder

            data, out = stopped_run(work)
            path = out / "checkpoint.pt"
            blob = path.read_bytes()
            kind, _, arg = damage.partition(" ")
            if kind == "flip":
                index = min(int(float(arg) * len(blob)), len(blob) - 1)
                path.write_bytes(blob[:index] + bytes([blob[index] ^ 1]) + blob[index + 1:])
            elif kind == "truncate":
                path.write_bytes(blob[: int(float(arg) * len(blob))])
            elif kind == "signed":
                _signed_variant(path, arg)
            elif damage == "unsigned":
                torch.save(torch.load(path, weights_only=True), path)
            elif damage in ("fifo", "folder", "device", "metrics only"):
                path.unlink()
                if damage == "fifo":
                    os.mkfifo(path)
                elif damage == "folder":
                    path.mkdir()
                elif damage == "device":
                    path.symlink_to("/dev/zero")
            elif damage == "empty":
                path.write_bytes(b"")
            if damage.startswith("busy"):
                flags = damage.split()[1:] or []
                with own_folder(out, "held"):
                    return cli([*tiny_train(data, out, *flags), "--epochs", "2"], keep=out)
            return cli(resume_argv(data, out), outputs=out,
                       keep=None if damage == "intact" else out)
        cases.append(Case("checkpoints", damage, run))
    return cases


def _nested(kind: str, depth: int) -> str:
    if kind == "json":
        return '{"grid": {"depth": [2]}, "base": {"x": ' + "[" * depth + "]" * depth + "}}"
    if kind == "yaml":
        return "grid:\n  depth: [2]\nbase:\n  x: " + "[" * depth + "]" * depth + "\n"
    return "[grid]\ndepth = [2]\n[base]\nx = " + "[" * depth + "]" * depth + "\n"


def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"grid:\n  depth: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def sweep_cases() -> list[Case]:
    cases = []
    small = ["--set", "width=10", "--set", "batch=4"]

    def spec_case(name: str, text: str | None, suffix: str, special: str = "") -> Case:
        def run(work: Path) -> tuple[str, str]:
            spec = work / f"spec{suffix}"
            if special == "fifo":
                os.mkfifo(spec)
            elif special == "folder":
                spec.mkdir()
            else:
                spec.write_text(text or "")
            return cli(["sweep", str(spec), "--dry-run", "--results", str(work / "r"),
                        *small], outputs=work / "r")
        return Case("sweeps", name, run)

    for kind, suffix in (("json", ".json"), ("yaml", ".yaml"), ("toml", ".toml")):
        for depth in (2, 10, 20, 100, 1000, 10**4, 10**5):
            cases.append(spec_case(f"{kind} nested {depth}", _nested(kind, depth), suffix))
    for levels in range(2, 11):
        cases.append(spec_case(f"billion laughs {levels} levels", _laughs(levels), ".yaml"))
    for special in ("fifo", "folder"):
        for suffix in (".json", ".yaml", ".toml"):
            cases.append(spec_case(f"spec {special}{suffix}", None, suffix, special))
    for name, text in (("binary garbage", "\x00\xff" * 100), ("huge file", "#" * 3 * 2**20),
                       ("a list", "[1, 2]"), ("unknown section", '{"x": 1}'),
                       ("grid not a table", '{"grid": 3}'), ("empty values", '{"grid": '
                                                                               '{"depth": []}}')):
        cases.append(spec_case(name, text, ".json"))
    for exponent in range(2, 10):
        def run(work: Path, exponent=exponent) -> tuple[str, str]:
            values = ",".join(str(i) for i in range(10))
            names = ["seed", "threshold", "beta", "depth", "width", "batch", "steps", "init",
                     "reset"]
            grid = [x for name in names[:exponent] for x in ("--grid", f"{name}={values}")]
            return cli(["sweep", "--dry-run", "--results", str(work / "r"), *grid],
                       outputs=work / "r")
        cases.append(Case("sweeps", f"grid of 10^{exponent} runs, dry run", run))
    for option in ("depth", "width", "threshold", "beta", "steps", "init", "nonsense"):
        for value in ("-1", "nan", "abc", "[[[[1]]]]", "null", "1e400"):
            def run(work: Path, option=option, value=value) -> tuple[str, str]:
                return cli(["sweep", "--dry-run", "--results", str(work / "r"),
                            "--grid", f"{option}={value}", *small], outputs=work / "r")
            cases.append(Case("sweeps", f"--grid {option}={value}", run))
    for name in ("nan result", "deep result", "fifo result", "folder result", "garbage result",
                 "empty folder", "inf result", "string rates"):
        def run(work: Path, name=name) -> tuple[str, str]:
            results = work / "results"
            results.mkdir()
            record = {"status": "done", "key": "propagate-0", "task": "propagate",
                      "config": {"threshold": 1.0, "beta": 0.5},
                      "result": {"paper": {"rate": [0.2, float("nan")]}}}
            target = results / "propagate-0.json"
            if name in ("nan result", "inf result"):
                value = float("nan") if name == "nan result" else float("inf")
                record["result"]["paper"]["rate"] = [0.2, value]
                target.write_text(json.dumps(record))
            elif name == "deep result":
                target.write_text("[" * 10**5 + "]" * 10**5)
            elif name == "fifo result":
                os.mkfifo(target)
            elif name == "folder result":
                target.mkdir()
            elif name == "garbage result":
                target.write_bytes(b"\x00\xff{")
            elif name == "string rates":
                record["result"]["paper"]["rate"] = "abc"
                target.write_text(json.dumps(record))
            return cli(["aggregate", str(results), "--out", str(work / "agg")],
                       outputs=work / "agg")
        cases.append(Case("sweeps", f"aggregate: {name}", run))
    return cases


def api_cases() -> list[Case]:
    cases = []
    dtypes = ("float16", "bfloat16", "float32", "float64", "int64", "bool")
    thresholds = (0.0, 1.0, 4.0, 8.0, 20.0, float("nan"), float("inf"), -1.0)
    for fill in ("spike_normal_", "spike_uniform_"):
        for dtype in dtypes:
            for threshold in thresholds:
                def run(work: Path, fill=fill, dtype=dtype, threshold=threshold):
                    import torch

                    import spikeinit

                    weight = torch.zeros(8, 50, dtype=getattr(torch, dtype))
                    return api(lambda: getattr(spikeinit, fill)(weight, threshold=threshold))
                cases.append(Case("api", f"{fill} {dtype} theta={threshold}", run))
    for shape in ((0, 2, 4), (3, 2, 4), (1, 1, 1)):
        for value in ("zero", "nan", "inf", "normal"):
            def run(work: Path, shape=shape, value=value):
                import torch

                from spikeinit.neurons.lif import LIF

                x = {"zero": torch.zeros(shape), "nan": torch.full(shape, float("nan")),
                     "inf": torch.full(shape, float("inf")), "normal": torch.randn(shape)}[value]
                x.requires_grad_(True)

                def call():
                    LIF()(x).sum().backward()
                    return x.grad
                return api(call)
            cases.append(Case("api", f"LIF {shape} {value}", run))
    for thing in ("'not a model'", "None", "3", "torch.zeros(3)", "[]"):
        for function in ("initialize", "calibrate", "report"):
            def run(work: Path, thing=thing, function=function):
                import torch  # noqa: F401 - used by eval

                import spikeinit

                target = eval(thing)  # noqa: S307 - a literal of this file
                args = (target,) if function == "initialize" else (target, torch.rand(3, 4, 4))
                return api(lambda: getattr(spikeinit, function)(*args))
            cases.append(Case("api", f"{function}({thing})", run))
    for method, option in (("temporal", "rate"), ("fluctuation", "rate")):
        for value in (0.0, 1.0, -1.0, 2.0, float("nan"), float("inf")):
            def run(work: Path, method=method, option=option, value=value):
                import torch

                import spikeinit
                from spikeinit.models import SpikingMLP

                model = SpikingMLP([4, 8, 2])
                return api(lambda: (spikeinit.initialize(
                    model, method, sample=torch.rand(3, 4, 4), steps=3, **{option: value}),
                    *[p for p in model.parameters()])[1:])
            cases.append(Case("api", f"initialize {method} {option}={value}", run))
    for spec in ("trainable=0", "trainable=1", "trainable=-1", "trainable=nan"):
        def run(work: Path, spec=spec):
            data = fake_mnist(work / "data")
            return cli(tiny_train(data, work / "out", "--init", spec), outputs=work / "out")
        cases.append(Case("api", f"train --init {spec}", run))
    for target in ("folder", "fifo", "dev-null link"):
        def run(work: Path, target=target):
            import torch

            import spikeinit
            from spikeinit.models import SpikingMLP

            path = work / "report.csv"
            if target == "folder":
                path.mkdir()
            elif target == "fifo":
                os.mkfifo(path)
            else:
                path.symlink_to("/dev/null")
            health = spikeinit.report(SpikingMLP([4, 8, 2]), torch.rand(3, 4, 4))
            outcome = api(lambda: health.to_csv(path))
            if path.is_symlink() and not path.exists():
                return "lost", "the link's target was replaced"
            return outcome
        cases.append(Case("api", f"report.to_csv({target})", run))
    for depth in (1, 10, 100, 1000):
        for gain in (0.0, 1.0, 6.3, 100.0, 1e10, float("nan"), float("inf"), -1.0):
            def run(work: Path, depth=depth, gain=gain):
                from spikeinit.neurons.parameters import LIFParameters
                from spikeinit.theory.temporal import temporal_mean_field

                params = LIFParameters(beta=0.5, threshold=1.0)
                return api(lambda: temporal_mean_field(depth, gain, params, steps=3,
                                                       samples=64).rate)
            cases.append(Case("api", f"temporal_mean_field depth={depth} gain={gain}", run))
    return cases


@functools.lru_cache(maxsize=1)
def warm_cache() -> Path:
    """A kernel cache with the kernels built (once per worker, before the timed cases)."""
    cache = Path(tempfile.mkdtemp(prefix="hostile-cache-"))
    env = {**os.environ, "SPIKEINIT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "spikeinit.cli.main", "inspect", "--depth", "2",
                    "--width", "10"], env=env, capture_output=True, timeout=600)
    return cache


def kernel_cache_cases() -> list[Case]:
    """Each case runs ``spikeinit inspect`` in a fresh process with a damaged kernel cache or
    compiler (the loaded kernel is cached per process)."""
    cases = []
    damages = ("record not text", "empty record", "record of another file", "truncated library",
               "garbage library", "library is a folder", "world-writable folder",
               "CXX=/bin/false", "CXX=/nonexistent", "CXX=/bin/true", "CXX=", "intact")
    for damage in damages:
        def run(work: Path, damage=damage) -> tuple[str, str]:
            cache = work / "cache"
            env = {**os.environ, "SPIKEINIT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
            command = [sys.executable, "-m", "spikeinit.cli.main", "inspect", "--depth", "2",
                       "--width", "10"]
            if not damage.startswith("CXX"):
                shutil.copytree(warm_cache(), cache)  # a built cache, copied: no compile here
                cache.chmod(0o700)
                libraries = sorted(cache.glob("kernels-*.so"))
                library = libraries[0] if libraries else cache / "missing.so"
                record = library.with_name(library.name + ".sha256")
                if damage == "record not text" and record.exists():
                    record.write_bytes(b"\xff\xfe\x00garbage")
                elif damage == "empty record" and record.exists():
                    record.write_text("")
                elif damage == "record of another file" and record.exists():
                    record.write_text("0" * 64)
                elif damage == "truncated library" and library.exists():
                    library.write_bytes(library.read_bytes()[:100])
                elif damage == "garbage library" and library.exists():
                    library.write_bytes(b"\x7fELF garbage")
                elif damage == "library is a folder" and library.exists():
                    library.unlink()
                    library.mkdir()
                elif damage == "world-writable folder":
                    cache.chmod(0o777)
            else:
                env["CXX"] = damage.split("=", 1)[1]
            result = subprocess.run(command, env=env, capture_output=True, text=True,
                                    timeout=300)
            if result.returncode == 0:
                return "clean", "ok"
            if result.returncode == 2 and "Traceback" not in result.stderr:
                return "clean", result.stderr.strip()[-200:]
            return "traceback", result.stderr.strip()[-200:]
        cases.append(Case("kernel-cache", damage, run))
    return cases


def all_cases() -> list[Case]:
    """Every case, in a fixed order."""
    return [*cli_argument_cases(), *corrupt_data_cases(), *checkpoint_cases(),
            *sweep_cases(), *api_cases(), *kernel_cache_cases()]


# ---- running ----------------------------------------------------------------------------------

def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def worker(indices: list[int], limit: float, budget: float) -> None:
    """Run the cases ``indices`` in this process, with the time budget ``budget`` seconds; one
    JSON line per case on stdout."""
    import torch

    os.environ["SPIKEINIT_TIME_BUDGET"] = str(budget)
    torch.set_num_threads(1)
    cases = all_cases()
    with tempfile.TemporaryDirectory(prefix="hostile-warm-") as folder:  # untimed: imports,
        data = fake_mnist(Path(folder) / "data")  # the first training's one-off costs
        cli(tiny_train(data, Path(folder) / "out"))
    if any(cases[index].family == "kernel-cache" for index in indices):
        warm_cache()
    signal.signal(signal.SIGALRM, _alarm)
    for index in indices:
        case = cases[index]
        with tempfile.TemporaryDirectory(prefix="hostile-") as folder:
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                outcome, detail = case.run(Path(folder))
            except Hang:
                outcome, detail = "hang", f"still running after {limit} s"
            except Exception as error:  # noqa: BLE001 - a case that breaks is a traceback
                outcome, detail = "traceback", f"{type(error).__name__}: {error}"[:200]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        print(json.dumps({"index": index, "outcome": outcome, "detail": detail}), flush=True)


def run_campaign(indices: list[int], limit: float, budget: float) -> list[dict[str, Any]]:
    """Run ``indices`` in worker processes; a worker that dies or stalls costs its case."""
    cases = all_cases()
    results: dict[int, dict[str, Any]] = {}
    todo = list(indices)
    while todo:
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", ",".join(map(str, todo)), "--limit",
             str(limit), "--time-budget", str(budget)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            record = json.loads(line)
            results[record["index"]] = record
            done = record["index"]
            print(f"[{len(results)}/{len(indices)}] {cases[done].family}: {cases[done].name}: "
                  f"{record['outcome']} ({record['detail'][:100]})", flush=True)
        process.wait()
        todo = [index for index in todo if index not in results]
        if todo:  # the worker died on todo[0]
            results[todo[0]] = {"index": todo[0], "outcome": "crash",
                                "detail": f"worker exited with {process.returncode}"}
            todo = todo[1:]
    return [results[index] | {"family": cases[index].family, "name": cases[index].name}
            for index in indices]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=FAMILIES, action="append", default=None)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="SPIKEINIT_TIME_BUDGET of the cases (default: a third of --limit)")
    parser.add_argument("--json", type=Path, default=None, help="write every case's outcome")
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = args.time_budget if args.time_budget is not None else args.limit / 3
    if args.worker is not None:
        worker([int(i) for i in args.worker.split(",")], args.limit, budget)
        return 0
    cases = all_cases()
    indices = [i for i, case in enumerate(cases)
               if args.family is None or case.family in args.family]
    if args.list:
        for index in indices:
            print(f"{cases[index].family}: {cases[index].name}")
        print(f"{len(indices)} cases")
        return 0
    start = time.time()
    records = run_campaign(indices, args.limit, budget)
    table = Counter((r["family"], r["outcome"]) for r in records)
    print(f"\n{len(records)} cases in {time.time() - start:.0f} s (limit {args.limit:g} s per "
          f"case, time budget {budget:g} s)")
    print("family".ljust(16) + "".join(o.rjust(11) for o in ("cases", *OUTCOMES)))
    for family in FAMILIES:
        counts = [table[(family, o)] for o in OUTCOMES]
        if sum(counts):
            print(family.ljust(16) + str(sum(counts)).rjust(11)
                  + "".join(str(c).rjust(11) for c in counts))
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=1))
    return 0 if all(r["outcome"] == "clean" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
