"""The engine never runs a known-bad kernel, runs unknown candidates in a child process first,
and gives the same numbers in every process of a machine (issue 28)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeinit.engine import conv_layout, decisions, hazards, thread_trial, tuning, vet
from spikeinit.engine.layout import is_channels_last

PROJECT = Path(__file__).resolve().parents[1]


def _child_env(cache: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SPIKEINIT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(PROJECT / "src")}
    for name in ("SPIKEINIT_CONV_LAYOUT", "SPIKEINIT_GEMM", "SPIKEINIT_EVENT_RATE",
                 "SPIKEINIT_TUNING", "SPIKEINIT_TUNING_BUDGET"):
        env.pop(name, None)
    env.update(extra)
    return env


def _private_cache(tmp_path: Path, name: str = "cache") -> Path:
    folder = tmp_path / name
    folder.mkdir(mode=0o700)
    return folder


# ----------------------------------------------------------------------------- known bad


@pytest.mark.parametrize("in_channels,kernel,stride,bad", [
    (3, 1, 2, True), (4, 1, 2, True), (15, 1, 2, True), (16, 1, 2, False),
    (4, 1, 1, False), (4, 3, 2, False), (32, 1, 2, False)])
def test_the_known_bad_table_covers_strided_1x1_convolutions_below_16_channels(
        in_channels, kernel, stride, bad):
    conv = nn.Conv2d(in_channels, 8, kernel, stride=stride)
    assert (hazards.channels_last_hazard(conv, x86=True) is not None) is bad
    assert hazards.channels_last_hazard(conv, x86=False) is None  # an x86 bug


@pytest.mark.parametrize("setting", ["auto", "channels_last", "contiguous"])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_a_known_bad_convolution_never_sees_channels_last_frames(setting, requires_grad,
                                                                 tuning_sandbox):
    if not hazards.on_x86():
        pytest.skip("the table's entries are x86 bugs")
    conv = nn.Conv2d(4, 8, 1, stride=2, bias=False)
    seen = []
    conv.register_forward_pre_hook(lambda module, args: seen.append(
        (is_channels_last(args[0]), module.weight.is_contiguous())))
    frames = torch.rand(6, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    frames.requires_grad_(requires_grad)
    with conv_layout.use_layout(setting):
        assert conv_layout.frame_layout(conv, frames) == "contiguous"
        out = conv_layout.conv_frames(conv, frames)
    out.sum().backward()
    assert seen == [(False, True)]
    assert conv_layout.layout_choices() == {}  # never timed


def test_a_safe_convolution_still_runs_channels_last_when_asked(tuning_sandbox):
    conv = nn.Conv2d(16, 16, 3, padding=1)
    with conv_layout.use_layout("channels_last"):
        assert is_channels_last(conv_layout.conv_frames(conv, torch.rand(2, 16, 8, 8)))


_RESNET_STEPS = textwrap.dedent("""
    import torch
    from spikeinit.models import SpikingResNet
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = SpikingResNet((3, 8, 8), channels=(4, 8), blocks=(1, 1), stem_channels=4,
                        norm="none")
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(5):
        x = torch.rand(3, 6, 3, 8, 8)
        loss = net(x).float().mean() + sum(p.square().sum() for p in net.parameters()) * 1e-3
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("done")
""")


@pytest.mark.parametrize("layout", ["auto", "channels_last"])
def test_the_resnet_that_aborted_on_amd_trains_in_a_fresh_process(tmp_path, layout):
    """oneDNN #6035 reproduced through spikeinit: a 4-channel stem and its strided 1x1
    downsample shortcut, one thread, an empty cache (so ``auto`` times the layouts)."""
    done = subprocess.run([sys.executable, "-c", _RESNET_STEPS], capture_output=True, text=True,
                          env=_child_env(_private_cache(tmp_path),
                                         SPIKEINIT_CONV_LAYOUT=layout,
                                         SPIKEINIT_TUNING_BUDGET="5"), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("done")


# ----------------------------------------------------------------------------- the vetting child


def test_the_vetting_child_runs_a_candidate_and_survives_a_crash():
    vetter = vet.Vetter()
    try:
        request = vet.conv_request(nn.Conv2d(16, 16, 3, padding=1), (2, 16, 8, 8), "train")
        assert vetter.run(request) == (True, "")
        safe, why = vetter.run({"kind": "abort"})  # the child aborts, as oneDNN #6035 does
        assert not safe and "SIGABRT" in why
        assert vetter.run(vet.linear_request(8, 16, 4, "r", "c"))[0]  # a new child serves
    finally:
        vetter.close()


def test_a_verdict_is_kept_for_later_processes(tuning_sandbox, monkeypatch):
    calls = []
    monkeypatch.setattr(vet._vetter, "run", lambda request: calls.append(request) or
                        (False, "the child process died of SIGABRT"))
    request = vet.linear_request(64, 64, 64, "r", "r")
    assert vet.vetted(request) is False and len(calls) == 1
    vet.forget_verdicts()  # a new process: nothing in memory
    assert vet.vetted(request) is False and len(calls) == 1  # read from the kept file
    line = decisions.format_choices(decisions.all_choices())[-1]
    assert "rejected: the child process died of SIGABRT" in line


def test_a_convolution_whose_child_died_stays_contiguous(tuning_sandbox, monkeypatch):
    monkeypatch.setattr(vet._vetter, "run", lambda request: (False, "died"))
    conv = nn.Conv2d(16, 16, 3, padding=1)
    assert conv_layout.frame_layout(conv, torch.rand(4, 16, 8, 8)) == "contiguous"
    (entry,) = conv_layout.layout_choices().values()
    assert entry["source"] == "channels-last failed in a child process"


# ----------------------------------------------------------------------------- kept choices


def test_a_measurement_leaves_the_users_random_stream_alone(tuning_sandbox):
    conv = nn.Conv2d(16, 16, 3, padding=1)
    frames = torch.rand(4, 16, 8, 8, requires_grad=True)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    conv_layout.conv_frames(conv, frames)  # measures the new class, with random probes
    assert conv_layout.layout_choices()  # it did measure
    assert torch.equal(torch.get_rng_state(), before)


def test_the_first_decision_of_a_machine_is_final(tuning_sandbox, monkeypatch):
    from spikeinit.engine import gemm

    a, b = torch.rand(512, 1024), torch.rand(1024, 1024)
    monkeypatch.setattr(gemm, "_measure", lambda a, b: {"backend": "onednn", "onednn_s": 1.0,
                                                         "torch_s": 2.0, "source": "measured"})
    assert gemm.measured_choice(a, b) == "onednn"
    gemm.forget_choices()  # another process, whose own timing would say torch.mm
    monkeypatch.setattr(gemm, "_measure", lambda a, b: pytest.fail("measured twice"))
    assert gemm.measured_choice(a, b) == "onednn"


def test_a_decision_taken_unmeasured_is_read_back_as_it_was_kept(tuning_sandbox, monkeypatch):
    """Budget spent: the defaults taken without timings are kept, and a later process must
    read them back (not measure, and maybe choose otherwise)."""
    from spikeinit.engine import event_linear, gemm

    spent = tuning.Budget(1.0)
    spent.charge(2.0)
    monkeypatch.setattr(tuning, "_budget", spent)
    conv, frames = nn.Conv2d(16, 16, 3, padding=1), torch.rand(4, 16, 8, 8)
    a, b = torch.rand(512, 1024), torch.rand(1024, 1024)
    first = (conv_layout.frame_layout(conv, frames), gemm.measured_choice(a, b),
             event_linear.measured_event_rate(512, 1024, 1024))
    assert first == ("contiguous", "torch", None)
    decisions.forget_all()  # a new process, with budget to spend
    monkeypatch.setattr(tuning, "_budget", tuning.Budget(1000.0))
    for module in (conv_layout, gemm, event_linear):
        monkeypatch.setattr(module, "_measure", lambda *args: pytest.fail("measured again"))
    again = (conv_layout.frame_layout(conv, frames), gemm.measured_choice(a, b),
             event_linear.measured_event_rate(512, 1024, 1024))
    assert again == first


def test_exact_mode_makes_no_rounding_choice(tuning_sandbox, monkeypatch):
    from spikeinit.engine import gemm
    from spikeinit.models import EventLinear

    monkeypatch.setenv("SPIKEINIT_TUNING", "exact")
    a, b = torch.rand(512, 1024), torch.rand(1024, 1024)
    assert not gemm.uses_onednn(a, b)
    assert conv_layout.frame_layout(nn.Conv2d(16, 16, 3), torch.rand(4, 16, 8, 8)) == \
        "contiguous"
    layer = EventLinear(1000, 500)
    x = (torch.rand(64, 1000) < 0.02).float()
    with torch.no_grad():
        assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
    assert layer.last_path == "dense"
    assert decisions.all_choices()["gemm"] == {} and decisions.all_choices()["conv"] == {}


def test_a_bad_tuning_mode_names_the_variable_and_the_values(monkeypatch):
    monkeypatch.setenv("SPIKEINIT_TUNING", "fast")
    with pytest.raises(ValueError, match="SPIKEINIT_TUNING must be one of kept, exact"):
        tuning.exact()


def test_the_kept_thread_trial_replays_its_schedule_and_keeps_its_choice(tuning_sandbox,
                                                                          monkeypatch):
    timings = iter([0.0, 1.0, 1.0, 1.5, 1.5, 2.0] + [0.0, 1.0] * 20)
    monkeypatch.setattr(thread_trial, "wall_clock", lambda: next(timings))
    counts = []

    def run(trial):
        for _ in range(10):
            with trial.step():
                counts.append(torch.get_num_threads())
        return trial.chosen

    previous = torch.get_num_threads()
    try:
        first = run(thread_trial.ThreadTrial(candidates=(1, 2), steps_each=1, key="w"))
        schedule = counts[:]
        counts.clear()
        timings = iter([0.0, 9.0] * 40)  # another process, where 'first' now looks slow
        monkeypatch.setattr(thread_trial, "wall_clock", lambda: next(timings))
        second = run(thread_trial.ThreadTrial(candidates=(1, 2), steps_each=1, key="w"))
    finally:
        torch.set_num_threads(previous)
    assert second == first and counts == schedule  # the same counts, step for step
    with pytest.raises(ValueError, match="recheck_every"):
        thread_trial.ThreadTrial(candidates=(1, 2), key="w", recheck_every=5)


# ----------------------------------------------------------------------------- two processes


def _train(out: Path, cache: Path, data_dir: Path, model: list[str], budget: str = "") -> dict:
    command = [sys.executable, "-m", "spikeinit.cli.main", "train", "--dataset", "mnist",
               "--data-dir", str(data_dir), "--epochs", "1", "--limit-train", "128",
               "--limit-test", "64", "--batch", "32", "--seed", "0", "--no-progress",
               "--out", str(out), *model]
    env = _child_env(cache, **({"SPIKEINIT_TUNING_BUDGET": budget} if budget else {}))
    env.pop("OMP_NUM_THREADS")  # the default thread count: the thread trial runs
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("out")
    for epoch in metrics["history"]:
        epoch.pop("seconds"), epoch.pop("samples_per_second")
    return metrics


@pytest.mark.parametrize("model,budget", [
    ([], ""), (["--model", "resnet", "--channels", "8", "16", "--blocks", "1", "1"], ""),
    (["--model", "resnet", "--channels", "8", "16", "--blocks", "1", "1"], "0.02")],
    ids=["mlp", "resnet", "resnet-budget-spent"])
def test_two_processes_of_one_training_give_identical_numbers(tmp_path, data_dir, model,
                                                               budget):
    cache = _private_cache(tmp_path)  # cold for the first process, warm for the second
    first = _train(tmp_path / "a", cache, data_dir, model, budget)
    second = _train(tmp_path / "b", cache, data_dir, model, budget)
    assert first == second
    weights = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=False)["model"]
               for run in ("a", "b")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_every_setting_is_documented_with_its_values():
    from spikeinit.engine import settings

    page = (PROJECT / "docs" / "engine.md").read_text()
    for name, allowed, _ in settings.describe():
        assert f"| `{name}` |" in page, name
        assert allowed


def test_a_bad_setting_value_names_the_parameter_of_use():
    from spikeinit.engine import settings

    with pytest.raises(ValueError, match="layout must be one of auto, channels_last"), \
            settings.CONV_LAYOUT.use("sideways"):
        pass
    with pytest.raises(ValueError, match=r"rate must be auto or a rate in \[0, 1\]"), \
            settings.EVENT_RATE.use(1.5):
        pass
