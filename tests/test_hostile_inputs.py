"""Hostile and unlucky inputs end in one line and exit 2 (issue: reliability hardening).

Each case drives the CLI in-process through ``main`` (the entry point of the console script)
and asserts the exit code, a single ``spikeinit: error:`` line naming the cause, and no
traceback; one representative case runs in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeinit
from spikeinit.cli.main import main
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training import TrainConfig, train
from spikeinit.io import own_folder


def _fails_cleanly(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("spikeinit: error:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_out_that_is_a_file_is_refused_before_computing(a_file: Path, capsys) -> None:
    _fails_cleanly(["propagate", "--depth", "2", "--width", "10", "--out", str(a_file),
                    "--device", "cpu"], capsys, "--out", "not a folder")


def test_out_that_cannot_be_created(a_file: Path, capsys) -> None:
    _fails_cleanly(["conditions", "--widths", "5", "--depth", "2", "--device", "cpu",
                    "--out", str(a_file / "below")], capsys, "--out", "cannot create it")


def test_sweep_results_that_is_a_file(a_file: Path, capsys) -> None:
    _fails_cleanly(["sweep", "--set", "depth=2", "--dry-run", "--results", str(a_file)],
                   capsys, "--results", "not a folder")


def test_inspect_json_that_is_a_folder(tmp_path: Path, capsys) -> None:
    _fails_cleanly(["inspect", "--json", str(tmp_path)], capsys, "--json", "is a folder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["propagate", "--depth", "2", "--width", "10"],
                                     ["conditions", "--widths", "5", "--depth", "2"]])
def test_cuda_on_a_cpu_machine_is_refused_up_front(command: list[str], tmp_path: Path,
                                                   capsys) -> None:
    _fails_cleanly([*command, "--device", "cuda", "--out", str(tmp_path)], capsys,
                   "--device cuda", "no CUDA device")


def test_malformed_yaml_sweep_file(tmp_path: Path, capsys) -> None:
    pytest.importorskip("yaml")
    spec = tmp_path / "grid.yaml"
    spec.write_text("grid:\n  depth: [1, 2\n")
    _fails_cleanly(["sweep", str(spec), "--dry-run", "--results", str(tmp_path / "r")], capsys,
                   "cannot parse sweep file")


def test_disk_errors_become_one_line(monkeypatch, tmp_path: Path, capsys) -> None:
    import errno

    from spikeinit.cli import main as cli_main

    def full_disk(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))

    monkeypatch.setattr(cli_main, "write_json_atomic", full_disk)
    _fails_cleanly(["propagate", "--depth", "2", "--width", "10", "--device", "cpu",
                    "--out", str(tmp_path)], capsys, "no space left", "x.json")


def test_out_of_memory_becomes_one_line(monkeypatch, tmp_path: Path, capsys) -> None:
    from spikeinit.cli import main as cli_main

    def too_big(*_, **__):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")

    monkeypatch.setattr(cli_main, "run_propagation", too_big)
    _fails_cleanly(["propagate", "--depth", "2", "--width", "10", "--device", "cpu",
                    "--out", str(tmp_path)], capsys, "out of memory", "--batch")


# ---- training runs: corrupt checkpoints, protected output folders ------------------------------

def _tiny(data_dir: Path) -> list[str]:
    return ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit-train", "8",
            "--limit-test", "8", "--epochs", "1", "--batch", "8", "--width", "8", "--depth",
            "1", "--no-progress", "--device", "cpu"]


def test_corrupt_checkpoint_on_resume(data_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"\x00garbage")
    _fails_cleanly([*_tiny(data_dir), "--resume", "--out", str(tmp_path)], capsys,
                   "checkpoint", "corrupt")


def test_train_refuses_to_replace_a_run_without_overwrite(data_dir: Path, tmp_path: Path,
                                                          capsys) -> None:
    assert main([*_tiny(data_dir), "--out", str(tmp_path)]) == 0
    first = (tmp_path / "metrics.json").read_text()
    capsys.readouterr()
    _fails_cleanly([*_tiny(data_dir), "--seed", "1", "--out", str(tmp_path)], capsys,
                   "already holds a training run", "--overwrite")
    assert (tmp_path / "metrics.json").read_text() == first
    assert main([*_tiny(data_dir), "--seed", "1", "--overwrite", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "metrics.json").read_text() != first


def test_a_second_training_into_a_busy_folder_is_refused(data_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(dataset="mnist", data_dir=str(data_dir), limit_train=8, limit_test=8,
                         epochs=1, batch=8, width=8, depth=1)
    # held as a running training holds it
    with own_folder(tmp_path, "held"), pytest.raises(
            ValueError, match="in use by another training"):
        train(config, tmp_path, device="cpu", progress=False, log=None)
    assert not (tmp_path / "metrics.json").exists()


def test_a_hostile_case_through_the_console_script(a_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spikeinit.cli.main", "propagate", "--depth", "2", "--width",
         "10", "--device", "cpu", "--out", str(a_file)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"spikeinit: error: --out {a_file}: exists and is not a folder; give a folder"]


@pytest.mark.parametrize("command", [["propagate", "--depth", "2", "--width", "10"],
                                     ["train", "--epochs", "1"]])
def test_a_huge_seed_names_seed(command: list[str], tmp_path: Path, capsys) -> None:
    _fails_cleanly([*command, "--seed", str(2**64), "--device", "cpu", "--out", str(tmp_path)],
                   capsys, "seed must be an integer in [0, 9223372036854775807]")


def test_a_killed_runs_temporary_files_are_cleared(data_dir: Path, tmp_path: Path) -> None:
    stale = tmp_path / ".curves.png.k1ll3d.tmp"
    stale.write_bytes(b"half a png")
    assert main([*_tiny(data_dir), "--out", str(tmp_path)]) == 0
    assert not stale.exists() and (tmp_path / "curves.png").exists()


@pytest.mark.parametrize("threshold", ["20", "40"])
def test_a_huge_threshold_names_theta(threshold: str, data_dir: Path, tmp_path: Path,
                                      capsys) -> None:
    _fails_cleanly([*_tiny(data_dir), "--init", "paper", "--threshold", threshold,
                    "--out", str(tmp_path)], capsys, "theta")
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_sweep_that_asks_for_cuda_on_a_cpu_machine_is_refused_up_front(tmp_path: Path,
                                                                          capsys) -> None:
    _fails_cleanly(["sweep", "--task", "train", "--set", "device=cuda", "--grid", "seed=0,1",
                    "--results", str(tmp_path)], capsys, "2 of the 2 runs ask for cuda")
    assert not list(tmp_path.glob("*.json"))


def test_a_diverging_training_stops_with_one_line_and_keeps_no_nan(
        data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from spikeinit.experiments.training import loop

    real = loop.F.cross_entropy
    monkeypatch.setattr(loop.F, "cross_entropy",
                        lambda *a, **k: real(*a, **k) * float("nan"))  # a loss gone NaN
    _fails_cleanly([*_tiny(data_dir), "--out", str(tmp_path)], capsys, "the loss became nan",
                   "--lr")
    assert not (tmp_path / "checkpoint.pt").exists()


# ---- generated hostile values through the API ---------------------------------------------------

_ANY_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                        st.integers(min_value=-2**70, max_value=2**70))


@settings(max_examples=60, deadline=None)
@given(threshold=_ANY_NUMBER)
def test_spike_normal_gives_finite_weights_or_names_threshold(threshold: float) -> None:
    weight = torch.empty(8, 50)
    try:
        spikeinit.spike_normal_(weight, threshold=threshold)
    except ValueError as error:
        assert "threshold" in str(error) or "theta" in str(error)
    else:
        assert torch.isfinite(weight).all()


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["seed", "epochs", "batch", "lr", "beta", "threshold", "steps",
                             "weight_decay", "warmup"]), value=_ANY_NUMBER)
def test_train_config_takes_a_value_or_names_the_option(name: str, value: float) -> None:
    try:
        TrainConfig(**{name: value})
    except ValueError as error:
        assert name in str(error)


@pytest.mark.parametrize("command", [["propagate", "--width", "2000000", "--depth", "100"],
                                     ["conditions", "--widths", "10", "2000000", "--depth",
                                      "100"]])
def test_sizes_that_cannot_fit_are_refused_up_front_with_the_estimate(command: list[str],
                                                                     tmp_path: Path,
                                                                     capsys) -> None:
    line = _fails_cleanly([*command, "--device", "cpu", "--out", str(tmp_path)], capsys,
                          "this size needs about", "GiB of memory")
    assert "1.49e+06 GiB" in line  # 100 layers x (2e6)^2 float32 weights: 1.6e15 bytes


@pytest.mark.parametrize("command", [["propagate", "--width", "100", "--depth", "1000",
                                      "--steps", "10000", "--batch", "1000"],
                                     ["conditions", "--widths", "100", "--depth", "1000",
                                      "--steps", "1000", "--batch", "1000"]])
def test_runs_longer_than_a_day_are_refused_up_front_with_the_estimate(command: list[str],
                                                                      tmp_path: Path,
                                                                      capsys) -> None:
    _fails_cleanly([*command, "--device", "cpu", "--out", str(tmp_path)], capsys,
                   "operations", "more than the 24 hours", "SPIKEINIT_TIME_BUDGET")
    assert not list(tmp_path.iterdir())


def test_a_tighter_time_budget_refuses_what_a_day_allows(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    # 1 init x 10 layers x 100 steps x 100 samples x (2 x 100^2 + 20 x 100) operations: 2.2 s
    command = ["propagate", "--width", "100", "--depth", "10", "--steps", "100", "--batch", "100",
               "--init", "deep", "--device", "cpu", "--out", str(tmp_path)]
    monkeypatch.setenv("SPIKEINIT_TIME_BUDGET", "1")
    line = _fails_cleanly(command, capsys, "2.2 s", "more than the 1 s")
    assert "--width/--depth/--batch/--steps" in line


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_a_time_budget_that_is_not_a_positive_number_is_named(value: str, tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    monkeypatch.setenv("SPIKEINIT_TIME_BUDGET", value)
    _fails_cleanly(["propagate", "--width", "10", "--depth", "2", "--device", "cpu", "--out",
                    str(tmp_path)], capsys, "SPIKEINIT_TIME_BUDGET", repr(value))


# ---- checkpoints: one flipped byte, altered entries, files that are not regular -----------------

def _tiny_config(data_dir: Path, epochs: int = 2) -> TrainConfig:
    return TrainConfig(dataset="mnist", data_dir=str(data_dir), limit_train=8, limit_test=8,
                       epochs=epochs, batch=8, width=8, depth=1)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of two epochs stopped after the first: its folder holds a signed checkpoint."""
    from tests.conftest import shared_data_dir

    if not shared_data_dir().is_dir():
        pytest.skip("real data not found (set SPIKEINIT_DATA_DIR)")
    folder = tmp_path_factory.mktemp("stopped")
    train(_tiny_config(shared_data_dir()), folder, device="cpu", progress=False, log=None,
          stop_after=1, threads=1)
    return folder


def _copy_of(run: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp_path / "run"))


def _resume_argv(data_dir: Path, out: Path) -> list[str]:
    return [*_tiny(data_dir), "--epochs", "2", "--threads", "1", "--resume", "--out", str(out)]


@pytest.mark.parametrize("where", [0, 100, 0.25, 0.5, 0.75, -83, -82, -40, -1])
def test_a_checkpoint_with_one_flipped_byte_is_refused(where: float, stopped_run: Path,
                                                       data_dir: Path, tmp_path: Path,
                                                       capsys) -> None:
    """Acceptance: one flipped byte anywhere (zip records, stored weights, the checksum and its
    length) is refused with one line naming the file; the folder is left as it was."""
    out = _copy_of(stopped_run, tmp_path)
    path = out / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    index = int(where * len(data)) if isinstance(where, float) else where
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    metrics = (out / "metrics.json").read_text()
    _fails_cleanly(_resume_argv(data_dir, out), capsys, str(path), "checksum")
    assert path.read_bytes() == bytes(data) and (out / "metrics.json").read_text() == metrics


def _altered(payload: dict, change: str) -> dict:
    """``payload`` with one entry broken as a hostile or careless user would."""
    payload = dict(payload)
    if change.startswith("drop "):
        payload.pop(change.split()[1])
    elif change == "string history":
        payload["history"] = "not a history"
    elif change == "wrong shapes":
        payload["model"] = {k: torch.zeros(3, 3) for k in payload["model"]}
    elif change == "another architecture":
        payload["model"] = {"other.weight": torch.zeros(2, 2)}
    elif change == "garbage rng":
        payload["rng"] = {**payload["rng"], "torch": torch.zeros(7, dtype=torch.uint8)}
    elif change == "threads 0":
        payload["threads"] = 0
    elif change == "negative epoch":
        payload["epoch"] = -1
    elif change == "a list":
        return [1, 2, 3]  # type: ignore[return-value]
    return payload


@pytest.mark.parametrize("change", ["drop model", "drop rng", "drop optimizer", "drop history",
                                    "drop config", "string history", "wrong shapes",
                                    "another architecture", "garbage rng", "threads 0",
                                    "negative epoch", "a list"])
def test_a_signed_but_altered_checkpoint_is_refused(change: str, stopped_run: Path,
                                                    data_dir: Path, tmp_path: Path,
                                                    capsys) -> None:
    import io

    from spikeinit.experiments.training.checkpoint import signed

    out = _copy_of(stopped_run, tmp_path)
    path = out / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    buffer = io.BytesIO()
    torch.save(_altered(payload, change), buffer)
    path.write_bytes(signed(buffer.getvalue()))
    _fails_cleanly(_resume_argv(data_dir, out), capsys, str(path))


def test_an_unsigned_checkpoint_is_refused(stopped_run: Path, data_dir: Path, tmp_path: Path,
                                           capsys) -> None:
    out = _copy_of(stopped_run, tmp_path)
    path = out / "checkpoint.pt"
    torch.save(torch.load(path, weights_only=True), path)  # plain torch.save: no checksum
    _fails_cleanly(_resume_argv(data_dir, out), capsys, str(path), "checksum")


def test_a_resume_from_an_intact_checkpoint_still_works(stopped_run: Path, data_dir: Path,
                                                        tmp_path: Path) -> None:
    out = _copy_of(stopped_run, tmp_path)
    assert main(_resume_argv(data_dir, out)) == 0
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 2
    assert not (out / ".train.lock").exists()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_checkpoint_that_is_not_a_regular_file_is_refused(kind: str, data_dir: Path,
                                                            tmp_path: Path, capsys) -> None:
    import os

    path = tmp_path / "checkpoint.pt"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    _fails_cleanly(_resume_argv(data_dir, tmp_path), capsys, str(path), "not a regular file")


def test_resume_with_metrics_but_no_checkpoint_is_refused(stopped_run: Path, data_dir: Path,
                                                          tmp_path: Path, capsys) -> None:
    out = _copy_of(stopped_run, tmp_path)
    (out / "checkpoint.pt").unlink()
    metrics = (out / "metrics.json").read_text()
    _fails_cleanly(_resume_argv(data_dir, out), capsys, "no checkpoint.pt", "--overwrite")
    assert (out / "metrics.json").read_text() == metrics


@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--resume"]])
def test_a_busy_run_folder_is_refused_whatever_the_flags(flags: list[str], stopped_run: Path,
                                                         data_dir: Path, tmp_path: Path,
                                                         capsys) -> None:
    """The folder is owned by one process: ``--overwrite`` does not take it from a running
    training either, and nothing of the first run changes."""
    out = _copy_of(stopped_run, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with own_folder(out, "held"):  # as a running training holds it
        _fails_cleanly([*_tiny(data_dir), "--epochs", "2", *flags, "--out", str(out)], capsys,
                       "in use by another training")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_full_disk_during_a_checkpoint_leaves_a_consistent_folder(
        data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Disk full while epoch 2's checkpoint is written: one line, and the folder's files still
    agree (epoch 1's checkpoint and metrics); a later resume finishes the run."""
    import errno

    from spikeinit.experiments.training import checkpoint

    real = checkpoint.write_atomic
    calls = []

    def full_on_second(path, writer):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, writer)

    monkeypatch.setattr(checkpoint, "write_atomic", full_on_second)
    argv = [*_tiny(data_dir), "--epochs", "2", "--threads", "1", "--out", str(tmp_path)]
    _fails_cleanly(argv, capsys, "no space left", "checkpoint.pt")
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert saved["epoch"] == 1 and len(history) == 1
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(checkpoint, "write_atomic", real)
    assert main(_resume_argv(data_dir, tmp_path)) == 0


def test_metrics_left_behind_by_a_crash_are_repaired_on_resume(
        data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A crash between the checkpoint and the metrics files: the resume rewrites the metrics
    from the checkpoint, which is the truth."""
    from spikeinit.experiments.training import loop

    real = loop.write_outputs

    def crash_on_second(result, out):
        if len(result.history) == 2:
            raise KeyboardInterrupt  # killed right after the checkpoint
        real(result, out)

    monkeypatch.setattr(loop, "write_outputs", crash_on_second)
    config = _tiny_config(data_dir)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, device="cpu", progress=False, log=None, threads=1)
    assert len(json.loads((tmp_path / "metrics.json").read_text())["history"]) == 1
    monkeypatch.setattr(loop, "write_outputs", real)
    train(config, tmp_path, device="cpu", progress=False, log=None, threads=1, resume=True)
    assert len(json.loads((tmp_path / "metrics.json").read_text())["history"]) == 2


# ---- sweep files and results: depth, aliases, sizes, FIFOs, NaN ---------------------------------

def _nested_spec(kind: str, depth: int) -> str:
    brackets = "[" * depth + "]" * depth
    if kind == "json":
        return '{"grid": {"depth": [2]}, "base": {"width": ' + brackets + "}}"
    if kind == "yaml":
        return "grid:\n  depth: [2]\nbase:\n  width: " + brackets + "\n"
    return "[grid]\ndepth = [2]\n[base]\nwidth = " + brackets + "\n"


@pytest.mark.parametrize("kind", ["json", "yaml", "toml"])
@pytest.mark.parametrize("depth", [20, 1000, 100_000])
def test_a_deeply_nested_sweep_file_is_refused(kind: str, depth: int, tmp_path: Path,
                                               capsys) -> None:
    if kind == "yaml":
        pytest.importorskip("yaml")
    spec = tmp_path / f"grid.{kind}"
    spec.write_text(_nested_spec(kind, depth))
    _fails_cleanly(["sweep", str(spec), "--dry-run", "--results", str(tmp_path / "r")],
                   capsys, str(spec))


def _laughs(levels: int, per_level: int = 9) -> str:
    """A "billion laughs" grid: ``per_level ** levels`` values from a few lines of aliases."""
    names = ["seed", "threshold", "beta", "depth", "width", "batch", "steps", "init", "reset",
             "input", "reset_order", "surrogate"]
    lines = [f"  {names[0]}: &a0 [{', '.join(['1'] * per_level)}]"]
    lines += [f"  {names[i]}: &a{i} [{', '.join([f'*a{i - 1}'] * per_level)}]"
              for i in range(1, levels)]
    return "grid:\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(("levels", "per_level", "needle"),
                         [(7, 9, "expands to more than"), (9, 9, "expands to more than"),
                          (3, 60, "more than 100 aliases")])
def test_a_billion_laughs_sweep_file_is_refused_before_expanding(
        levels: int, per_level: int, needle: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("yaml")
    spec = tmp_path / "laughs.yaml"
    spec.write_text(_laughs(levels, per_level))
    _fails_cleanly(["sweep", str(spec), "--dry-run", "--results", str(tmp_path / "r")],
                   capsys, str(spec), needle)


@pytest.mark.parametrize("exponent", [6, 9])
def test_a_huge_grid_is_refused_before_any_run_is_built(exponent: int, tmp_path: Path,
                                                        capsys) -> None:
    names = ["seed", "threshold", "beta", "depth", "width", "batch", "steps", "init", "reset"]
    grid = [x for name in names[:exponent]
            for x in ("--grid", f"{name}={','.join(map(str, range(1, 11)))}")]
    _fails_cleanly(["sweep", "--dry-run", "--results", str(tmp_path / "r"), *grid], capsys,
                   f"= {10**exponent} runs", "split it")


@pytest.mark.parametrize("special", ["fifo", "folder"])
@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_a_sweep_file_that_is_not_a_regular_file_is_refused(special: str, suffix: str,
                                                            tmp_path: Path, capsys) -> None:
    import os

    spec = tmp_path / f"grid{suffix}"
    os.mkfifo(spec) if special == "fifo" else spec.mkdir()
    _fails_cleanly(["sweep", str(spec), "--dry-run", "--results", str(tmp_path / "r")],
                   capsys, "not a regular file")


def _record(key: str, rate: list[float], threshold: float = 1.0) -> str:
    """A propagate result file's text (``json.dumps`` writes a non-finite rate as NaN)."""
    return json.dumps({
        "status": "done", "key": key, "task": "propagate", "timing": {"seconds": 1.0},
        "config": {"threshold": threshold, "beta": 0.5},
        "result": {"paper": {"rate": rate, "variance": [1.0, 1.0],
                             "prediction": {"rate": [0.2, 0.1]}}}})


def _aggregate_folder(tmp_path: Path, damage: str) -> Path:
    import os

    results = tmp_path / "results"
    results.mkdir()
    (results / "propagate-0.json").write_text(_record("propagate-0", [0.2, 0.1]))
    target = results / "propagate-1.json"
    if damage == "deep":
        target.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "fifo":
        os.mkfifo(target)
    elif damage == "folder":
        target.mkdir()
    elif damage == "garbage":
        target.write_bytes(b"\x00\xff{")
    return results


@pytest.mark.parametrize("damage", ["deep", "fifo", "folder", "garbage"])
def test_aggregate_skips_results_it_cannot_read_and_names_them(damage: str, tmp_path: Path,
                                                               capsys) -> None:
    results = _aggregate_folder(tmp_path, damage)
    assert main(["aggregate", str(results), "--out", str(tmp_path / "agg")]) == 0
    err = capsys.readouterr().err
    assert "unreadable: propagate-1.json" in err and "Traceback" not in err


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_aggregate_writes_no_non_finite_number_unflagged(value: float, tmp_path: Path,
                                                         capsys) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "propagate-0.json").write_text(_record("propagate-0", [0.2, value], 1.0))
    (results / "propagate-1.json").write_text(_record("propagate-1", [0.2, 0.1], 2.0))
    assert main(["aggregate", str(results), "--out", str(tmp_path / "agg")]) == 0
    csv_text = (tmp_path / "agg" / "results.csv").read_text().lower()
    assert not {"nan", "inf", "-inf"} & {cell for line in csv_text.splitlines()
                                          for cell in line.split(",")}
    assert "NaN or infinite" in capsys.readouterr().err


# ---- outputs that are not regular files are never replaced --------------------------------------

@pytest.mark.parametrize("option", ["--csv", "--json"])
@pytest.mark.parametrize("special", ["fifo", "link to /dev/null"])
def test_inspect_never_replaces_a_fifo_or_a_device(option: str, special: str, tmp_path: Path,
                                                   capsys) -> None:
    import os

    path = tmp_path / "report"
    os.mkfifo(path) if special == "fifo" else path.symlink_to("/dev/null")
    _fails_cleanly(["inspect", "--depth", "2", "--width", "10", option, str(path)], capsys,
                   option, "not a regular file")
    assert path.is_fifo() if special == "fifo" else path.is_symlink()


@pytest.mark.parametrize("target", ["folder", "fifo"])
def test_report_to_csv_refuses_a_folder_or_a_fifo(target: str, tmp_path: Path) -> None:
    import os

    from spikeinit.errors import InvalidArgumentError
    from spikeinit.models import SpikingMLP

    path = tmp_path / "report.csv"
    path.mkdir() if target == "folder" else os.mkfifo(path)
    health = spikeinit.report(SpikingMLP([4, 8, 2]), torch.rand(3, 4, 4))
    with pytest.raises(InvalidArgumentError, match="not a regular file"):
        health.to_csv(path)


# ---- the API: dtypes, generators, currents, deep theory -----------------------------------------

@pytest.mark.parametrize("fill", ["spike_normal_", "spike_uniform_"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.0, 1.0, 4.0, 8.0, 12.0])
def test_a_fill_gives_finite_weights_or_names_the_threshold(fill: str, dtype: torch.dtype,
                                                            threshold: float) -> None:
    weight = torch.zeros(8, 50, dtype=dtype)
    try:
        getattr(spikeinit, fill)(weight, threshold=threshold)
    except ValueError as error:
        assert "threshold" in str(error) and str(dtype) in str(error)
    else:
        assert torch.isfinite(weight).all()


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool])
def test_a_fill_refuses_an_integer_tensor(dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match="floating-point"):
        spikeinit.spike_normal_(torch.zeros(4, 5, dtype=dtype), threshold=1.0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_lif_refuses_a_non_finite_current_that_a_gradient_would_cross(value: float) -> None:
    from spikeinit.neurons.lif import LIF

    current = torch.randn(3, 2, 4)
    current[1, 0, 2] = value
    with pytest.raises(ValueError, match="1 of its 24 values are NaN or infinite"):
        LIF()(current.requires_grad_(True))


@pytest.mark.parametrize("shape", [(0, 2, 4), (0,)])
def test_lif_refuses_zero_time_steps(shape: tuple[int, ...]) -> None:
    from spikeinit.neurons.lif import LIF

    with pytest.raises(ValueError, match="at least one time step"):
        LIF()(torch.zeros(shape))


@pytest.mark.parametrize("gain", [1e10, 1e300, float("inf")])
def test_a_deep_mean_field_names_the_layer_instead_of_returning_nan(gain: float) -> None:
    from spikeinit.neurons.parameters import LIFParameters
    from spikeinit.theory.temporal import temporal_mean_field

    try:
        field = temporal_mean_field(50, gain, LIFParameters(beta=0.5, threshold=1.0), steps=3,
                                    samples=64)
    except ValueError as error:
        assert "gain" in str(error)
    else:
        assert np.isfinite(field.rate).all() and np.isfinite(field.membrane_variance).all()


def test_a_mean_field_population_that_cannot_fit_is_refused() -> None:
    from spikeinit.neurons.parameters import LIFParameters
    from spikeinit.theory.temporal import temporal_mean_field

    with pytest.raises(ValueError, match="this size needs about"):
        temporal_mean_field(2, 1.0, LIFParameters(), steps=10**4, width=10**6)


@pytest.mark.parametrize("levels", [8, 10])
def test_billion_laughs_anchored_outside_the_grid_is_refused_quickly(levels: int,
                                                                     tmp_path: Path,
                                                                     capsys) -> None:
    """Anchors in top-level sections: the checks walk distinct objects, never the expansion."""
    pytest.importorskip("yaml")
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    spec = tmp_path / "laughs.yaml"
    spec.write_text("\n".join([*lines, f"grid:\n  depth: *a{levels - 1}"]) + "\n")
    _fails_cleanly(["sweep", str(spec), "--dry-run", "--results", str(tmp_path / "r")],
                   capsys, "expands to more than")


@pytest.mark.parametrize("call", ["initialize", "calibrate", "report"])
@pytest.mark.parametrize("model", ["not a model", None, 3, torch.zeros(2)])
def test_a_model_that_is_not_a_module_is_a_user_error_naming_it(call: str, model: object) -> None:
    function = getattr(spikeinit, call)
    with pytest.raises(InvalidArgumentError, match="model must be a torch.nn.Module, got "):
        function(model, sample=torch.rand(2, 3, 4))


@pytest.mark.parametrize("where", ["neurons", "argument"])
def test_initialize_refuses_a_zero_threshold_and_names_it(where: str) -> None:
    from spikeinit.models import SpikingMLP

    net = SpikingMLP([10, 10, 2], threshold=0.0 if where == "neurons" else 1.0)
    options = {"threshold": 0.0} if where == "argument" else {}
    with pytest.raises(InvalidArgumentError, match="threshold.*must be positive"):
        spikeinit.initialize(net, sample=torch.rand(3, 4, 10), **options)
    # a baseline draws from the fan alone: a zero threshold does not matter to it
    assert len(spikeinit.initialize(net, method="pytorch", sample=torch.rand(3, 4, 10))) == 2


def test_train_with_a_zero_threshold_is_one_line(tmp_path: Path, capsys) -> None:
    from tests.conftest import shared_data_dir

    data = shared_data_dir()
    if not data.is_dir():
        pytest.skip("real data not found (set SPIKEINIT_DATA_DIR)")
    _fails_cleanly(["train", "--data-dir", str(data), "--limit-train", "8", "--limit-test", "8",
                    "--epochs", "1", "--batch", "8", "--width", "8", "--depth", "1",
                    "--threshold", "0", "--device", "cpu", "--out", str(tmp_path / "run")],
                   capsys, "threshold", "must be positive")
