"""Choices measured at run time (spikeinit.engine.tuning): the GEMM backend under
SPIKEINIT_GEMM=auto and the event-path rate under SPIKEINIT_EVENT_RATE=auto.

No test here times anything real: a fake clock advances by scripted durations when a backend
runs, so the decisions, the budget and the cache are checked deterministically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import TEST_MACHINE as MACHINE
from conftest import FakeClock
from spikeinit.engine import decisions, event_linear, gemm, thread_trial, threads, tuning
from spikeinit.engine.kernels import compiled_kernel
from spikeinit.models import EventLinear


def _as_list(value: float | list[float]) -> list[float]:
    return list(value) if isinstance(value, list) else [value]


class Backends:
    """Fake oneDNN and torch.mm products: the real product, and the clock advanced by the
    next scripted duration (the last one repeats)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.durations: dict[str, list[float]] = {"onednn": [1.0], "torch": [1.0]}
        self.calls: dict[str, int] = {"onednn": 0, "torch": 0}

    def script(self, onednn: float | list[float], torch_mm: float | list[float]) -> None:
        self.durations = {"onednn": _as_list(onednn), "torch": _as_list(torch_mm)}
        self.calls = {"onednn": 0, "torch": 0}

    def run(self, name: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        durations = self.durations[name]
        self.clock.now += durations[min(self.calls[name], len(durations) - 1)]
        self.calls[name] += 1
        return torch.mm(a, b.t())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
def machine(tuning_sandbox: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backends]:
    """:func:`tuning_sandbox` (a private cache, a fake clock and budget, a fixed machine),
    fake backends, and no decisions in memory (before and after)."""
    monkeypatch.delenv("SPIKEINIT_GEMM", raising=False)
    monkeypatch.delenv("SPIKEINIT_EVENT_RATE", raising=False)
    backends = Backends(tuning_sandbox)
    monkeypatch.setattr(gemm, "_onednn_product", lambda a, b: backends.run("onednn", a, b))
    monkeypatch.setattr(gemm, "_torch_product", lambda a, b: backends.run("torch", a, b))
    monkeypatch.setattr(gemm, "onednn_available", lambda: True)
    gemm.forget_choices()
    event_linear.forget_event_choices()
    yield backends
    gemm.forget_choices()
    event_linear.forget_event_choices()


def operands(rows: int = 384, fan_in: int = 1000, fan_out: int = 1000):
    return torch.randn(rows, fan_in), torch.randn(fan_out, fan_in)


def cache_file() -> Path:
    return tuning.choices_path(tuning.machine_key(torch.get_num_threads()))


def cached(section: str = "gemm") -> dict:
    return tuning.read_choices(tuning.machine_key(torch.get_num_threads())).get(section, {})


# ----------------------------------------------------------------------------- the decision


@pytest.mark.parametrize("onednn,torch_mm,expected", [
    (1.0, 2.0, "onednn"),   # twice as fast
    (1.0, 1.05, "torch"),   # faster, but by less than MIN_SPEEDUP: the tie goes to torch.mm
    (2.0, 1.0, "torch"),
])
def test_the_backend_measured_faster_is_chosen(machine, onednn, torch_mm, expected):
    machine.script(onednn, torch_mm)
    a, b = operands()
    assert gemm.measured_choice(a, b) == expected
    assert machine.calls == {"onednn": 1 + tuning.REPEATS, "torch": 1 + tuning.REPEATS}
    entry = gemm.backend_choices()[gemm.shape_class(a, b)]
    assert entry["backend"] == expected and entry["source"] == "measured"
    assert (entry["onednn_s"], entry["torch_s"]) == pytest.approx((onednn, torch_mm))
    assert gemm.uses_onednn(a, b) == (expected == "onednn")


def test_the_fastest_run_counts_so_one_disturbed_run_does_not_decide(machine):
    machine.script(onednn=[1.0, 1.0, 5.0], torch_mm=[2.0, 2.0, 2.0])  # warm-up, then 2 runs
    a, b = operands()
    assert gemm.measured_choice(a, b) == "onednn"


def test_a_choice_is_measured_once_per_shape_class_and_thread_count(machine):
    machine.script(1.0, 2.0)
    a, b = operands(384, 1000, 1000)
    gemm.measured_choice(a, b)
    first = machine.total_calls
    for _ in range(3):
        gemm.measured_choice(a, b)
    gemm.measured_choice(torch.randn(400, 1000), torch.randn(990, 1000))  # same class
    assert machine.total_calls == first
    gemm.measured_choice(a, torch.randn(1000, 1000).t())  # b a transposed view: another class
    assert machine.total_calls == 2 * first
    assert gemm.shape_class(a, b) != gemm.shape_class(a, b.t().contiguous().t())
    previous = torch.get_num_threads()
    torch.set_num_threads(1 if previous != 1 else 2)
    try:
        gemm.measured_choice(a, b)  # another thread count: measured again
        assert machine.total_calls == 3 * first
    finally:
        torch.set_num_threads(previous)


def test_small_products_and_forced_backends_measure_nothing(machine, monkeypatch):
    machine.script(1.0, 2.0)
    assert not gemm.uses_onednn(*operands(8, 16, 4))  # under MIN_ONEDNN_MACS: torch.mm
    monkeypatch.setenv("SPIKEINIT_GEMM", "torch")
    assert not gemm.uses_onednn(*operands())
    monkeypatch.setenv("SPIKEINIT_GEMM", "onednn")
    assert gemm.uses_onednn(*operands())
    assert machine.total_calls == 0


def test_both_choices_compute_the_same_product(monkeypatch):
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(300, 200, generator=generator)
    b = torch.randn(150, 200, generator=generator)
    expected = a.double() @ b.double().t()
    backends = ["torch", "onednn"] if gemm.onednn_available() else ["torch"]
    monkeypatch.delenv("SPIKEINIT_GEMM", raising=False)
    for backend in backends:
        monkeypatch.setattr(gemm, "measured_choice", lambda a, b, backend=backend: backend)
        assert gemm.uses_onednn(a, b) == (backend == "onednn")
        for left, right in ((a, b), (a.t().contiguous().t(), b.t().contiguous().t())):
            torch.testing.assert_close(gemm.linear_nt(left, right).double(), expected,
                                       rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- the budget


def test_the_budget_caps_measuring_and_then_torch_mm_serves_unmeasured(machine, monkeypatch):
    monkeypatch.setattr(tuning, "_budget", tuning.Budget(0.5))
    machine.script(0.1, 0.2)
    first = operands(384, 1000, 1000)
    assert gemm.measured_choice(*first) == "onednn"
    spent = tuning.budget().spent
    assert tuning.budget().exhausted and spent <= 0.5 + 2 * (0.1 + 0.2)  # one round over
    calls = machine.total_calls
    second = operands(64, 1000, 1000)
    assert gemm.measured_choice(*second) == "torch"  # nothing left: torch.mm, unmeasured
    assert machine.total_calls == calls and tuning.budget().spent == spent
    entry = gemm.backend_choices()[gemm.shape_class(*second)]
    assert entry == {"backend": "torch", "source": "unmeasured (budget spent)"}
    # kept too: a later process with budget left must not choose differently
    assert cached()[gemm.shape_class(*second)]["decided"] == "unmeasured (budget spent)"


def test_a_budget_of_zero_keeps_nothing_unmeasured(machine, monkeypatch):
    monkeypatch.setattr(tuning, "_budget", tuning.Budget(0.0))
    a, b = operands()
    assert gemm.measured_choice(a, b) == "torch" and machine.total_calls == 0
    assert cached() == {}


def test_a_warm_up_is_charged_at_most_as_much_as_a_timed_run(machine):
    machine.script(onednn=[50.0, 1.0], torch_mm=[1.0])  # a slow first call (one-time set-up)
    gemm.measured_choice(*operands())
    assert tuning.budget().spent == pytest.approx(6.0)  # 2 warm-ups (1 each) + 2 x 2 runs


# ----------------------------------------------------------------------------- the cache


def test_a_choice_is_cached_and_read_back_by_the_next_process(machine):
    machine.script(1.0, 2.0)
    a, b = operands()
    gemm.measured_choice(a, b)
    data = json.loads(cache_file().read_text())
    assert data["machine"] == {**dict(MACHINE), "threads": torch.get_num_threads()}
    assert data["choices"]["gemm"][gemm.shape_class(a, b)]["backend"] == "onednn"
    gemm.forget_choices()  # a new process: nothing in memory
    calls = machine.total_calls
    assert gemm.measured_choice(a, b) == "onednn"
    assert machine.total_calls == calls  # read from the cache, not measured
    assert gemm.backend_choices()[gemm.shape_class(a, b)]["source"] == "cache"


def test_one_file_holds_both_sections_and_keeps_earlier_entries(machine):
    machine.script(1.0, 2.0)
    gemm.measured_choice(*operands(384))
    gemm.measured_choice(*operands(64))
    tuning.write_choice(tuning.machine_key(torch.get_num_threads()), "event", "x",
                        {"max_rate": 0.1})
    assert len(cached("gemm")) == 2 and cached("event") == {"x": {"max_rate": 0.1}}


@pytest.mark.parametrize("content", [b"", b"{not json", b"\x00\xff" * 10, b"[1, 2]",
                                     b'{"format": 1}'])
def test_a_corrupt_cache_file_is_ignored_and_rewritten(machine, content):
    path = cache_file()
    path.write_bytes(content)
    path.chmod(0o600)
    machine.script(1.0, 2.0)
    a, b = operands()
    assert gemm.measured_choice(a, b) == "onednn"
    assert machine.total_calls > 0  # measured, not read
    assert cached()[gemm.shape_class(a, b)]["backend"] == "onednn"  # the file is valid again


def test_an_entry_that_makes_no_sense_is_measured_again(machine):
    a, b = operands()
    key = tuning.machine_key(torch.get_num_threads())
    tuning.write_choice(key, "gemm", gemm.shape_class(a, b), {"backend": "mkl"})
    machine.script(2.0, 1.0)
    assert gemm.measured_choice(a, b) == "torch" and machine.total_calls > 0


def test_another_cpus_choices_are_not_used(machine, monkeypatch):
    machine.script(1.0, 2.0)
    a, b = operands()
    gemm.measured_choice(a, b)  # recorded for "Test CPU 9000"
    ours = cache_file()
    other = (("cpu", "Other CPU"), *MACHINE[1:])
    monkeypatch.setattr(tuning, "machine_identity", lambda: other)
    gemm.forget_choices()
    machine.script(2.0, 1.0)
    assert gemm.measured_choice(a, b) == "torch" and machine.total_calls > 0
    assert cache_file() != ours and ours.is_file()  # one file per machine key


def test_a_file_of_another_machine_under_our_name_is_ignored(machine):
    a, b = operands()
    foreign = {"format": tuning.FORMAT, "machine": {**dict(MACHINE), "cpu": "Other CPU",
                                                    "threads": torch.get_num_threads()},
               "choices": {"gemm": {gemm.shape_class(a, b): {
                   "backend": "onednn", "onednn_s": 1.0, "torch_s": 9.0}}}}
    path = cache_file()
    path.write_text(json.dumps(foreign))
    path.chmod(0o600)
    machine.script(2.0, 1.0)
    assert gemm.measured_choice(a, b) == "torch" and machine.total_calls > 0


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_file_others_can_write_is_ignored(machine):
    machine.script(1.0, 2.0)
    a, b = operands()
    gemm.measured_choice(a, b)
    cache_file().chmod(0o666)
    gemm.forget_choices()
    calls = machine.total_calls
    gemm.measured_choice(a, b)
    assert machine.total_calls > calls  # not trusted: measured again


def test_a_noisy_measurement_is_kept_like_any_other(machine):
    # The two timed runs of each backend disagree by 2x and overlap: no clear winner.
    machine.script(onednn=[1.0, 1.0, 1.9], torch_mm=[1.5, 1.5, 3.0])
    a, b = operands()
    assert gemm.measured_choice(a, b) == "onednn"  # best 1.0 against best 1.5
    assert gemm.backend_choices()[gemm.shape_class(a, b)]["source"].startswith(
        "measured (noisy")
    assert cached()[gemm.shape_class(a, b)]["backend"] == "onednn"  # the same in every process


def test_on_a_busy_machine_the_one_thread_choice_serves_several_threads(machine, monkeypatch):
    previous = torch.get_num_threads()
    threads_seen = []
    real_run = machine.run

    def recording_run(name, a, b):
        threads_seen.append(torch.get_num_threads())
        return real_run(name, a, b)

    monkeypatch.setattr(machine, "run", recording_run)
    monkeypatch.setattr(tuning, "machine_quiet", lambda: torch.get_num_threads() == 1)
    machine.script(1.0, 2.0)
    a, b = operands()
    name = gemm.shape_class(a, b)
    torch.set_num_threads(2)
    try:
        assert gemm.measured_choice(a, b) == "onednn"
        assert set(threads_seen) == {1}  # measured on one thread
        assert gemm.backend_choices()[name]["source"] == "measured, on 1 thread (machine busy)"
        assert cached()[name]["backend"] == "onednn"  # kept for 2 threads too
        with threads.single_threaded():
            assert cached()[name]["backend"] == "onednn"  # cached for 1 thread
        gemm.forget_choices()
        calls = machine.total_calls
        assert gemm.measured_choice(a, b) == "onednn" and machine.total_calls == calls
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("threads,load,quiet", [(1, 9.0, True), (2, 0.3, True),
                                                (2, 0.6, False), (2, 3.0, False)])
def test_the_machine_is_quiet_when_each_thread_has_a_free_core(monkeypatch, threads, load,
                                                               quiet):
    monkeypatch.setattr(tuning.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(tuning.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(tuning.torch, "get_num_threads", lambda: threads)
    assert tuning.machine_quiet() is quiet


def test_a_decisive_measurement_is_cached_even_when_noisy(machine):
    machine.script(onednn=[1.0, 1.0, 1.9], torch_mm=[5.0, 5.0, 9.0])  # every run wins
    a, b = operands()
    assert gemm.measured_choice(a, b) == "onednn"
    assert gemm.shape_class(a, b) in cached()


# ----------------------------------------------------------------------------- event rate


def test_the_crossover_rate_is_where_the_event_line_meets_the_gemm():
    rate = event_linear.crossover_rate(dense_s=2.0, low_s=1.0, high_s=3.5, rates=(0.05, 0.3))
    assert rate == pytest.approx(0.15)
    assert event_linear.crossover_rate(1.0, 2.0, 3.0, (0.02, 0.15)) == 0.0  # events lose
    assert event_linear.crossover_rate(9.0, 1.0, 1.5, (0.02, 0.15)) == \
        event_linear.MAX_MEASURED_RATE  # clipped
    assert event_linear.crossover_rate(2.0, 1.0, 1.0) == event_linear.MAX_MEASURED_RATE
    assert event_linear.crossover_rate(0.5, 1.0, 1.0) == 0.0


def test_the_event_rate_is_measured_once_per_class_and_cached(machine, monkeypatch):
    calls = []

    def fake_timings(functions, repeats=tuning.REPEATS):
        calls.append(sorted(functions))
        for function in functions.values():  # they run (on synthetic spikes), untimed here
            function()
        return {"gemm": [2.0, 2.0], "low": [1.0, 1.0], "high": [3.0, 3.1]}

    if compiled_kernel() is None:
        pytest.skip("the compiled kernel is unavailable (no C++ compiler)")
    monkeypatch.setattr(tuning, "time_interleaved", fake_timings)
    monkeypatch.setattr(gemm, "measured_choice", lambda a, b: "torch")
    state = torch.get_rng_state()
    x, w = torch.zeros(64, 300), torch.zeros(256, 300)
    rate = event_linear.max_event_rate(x, w, training=True)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    entry = next(iter(event_linear.event_rate_choices().values()))
    low, high = entry["rates"]
    assert rate == pytest.approx(low + (high - low) / 2, abs=1e-4)  # 1 + slope * (r - low) = 2
    assert entry["source"] == "measured" and calls == [["gemm", "high", "low"]]
    assert event_linear.max_event_rate(x, w, training=True) == rate and len(calls) == 1
    event_linear.max_event_rate(x, w, training=False)  # inference is another class
    assert len(calls) == 2
    event_linear.forget_event_choices()
    assert event_linear.max_event_rate(x, w, training=True) == rate and len(calls) == 2
    assert event_linear.event_rate_choices()[entry_name(64, 300, 256, True)]["source"] == "cache"


def entry_name(rows, fan_in, fan_out, training):
    return event_linear.event_class(rows, fan_in, fan_out, training)


def test_the_layer_takes_the_path_the_measured_rate_gives(machine, monkeypatch):
    if compiled_kernel() is None:
        pytest.skip("the compiled kernel is unavailable (no C++ compiler)")
    monkeypatch.setattr(event_linear, "measured_event_rate", lambda *args: 0.1)
    layer = EventLinear(300, 256)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        layer((torch.rand(64, 300, generator=generator) < 0.05).float())
        assert layer.last_path == "event"
        layer((torch.rand(64, 300, generator=generator) < 0.2).float())
        assert layer.last_path == "dense"
    with event_linear.use_event_rate(0.3), torch.no_grad():
        layer((torch.rand(64, 300, generator=generator) < 0.2).float())
        assert layer.last_path == "event"


def test_dense_inputs_and_small_layers_measure_no_event_rate(machine, monkeypatch):
    def refuse(*args):
        raise AssertionError("measured")

    monkeypatch.setattr(event_linear, "measured_event_rate", refuse)
    with torch.no_grad():
        EventLinear(300, 256)(torch.rand(64, 300))  # rate ~1 > MAX_MEASURED_RATE
        EventLinear(100, 100)((torch.rand(64, 100) < 0.05).float())  # too few synapses


def test_without_budget_the_event_rate_falls_back_to_the_fixed_rates(machine, monkeypatch):
    if compiled_kernel() is None:
        pytest.skip("the compiled kernel is unavailable (no C++ compiler)")
    monkeypatch.setattr(tuning, "_budget", tuning.Budget(0.0))
    monkeypatch.setattr(gemm, "measured_choice", lambda a, b: "torch")
    x, w = torch.zeros(64, 300), torch.zeros(256, 300)
    assert event_linear.max_event_rate(x, w) == event_linear.MAX_EVENT_RATE_MM
    assert next(iter(event_linear.event_rate_choices().values()))["max_rate"] is None
    assert cached("event") == {}


def test_a_fixed_event_rate_is_checked_and_wins(monkeypatch):
    x, w = torch.zeros(64, 300), torch.zeros(256, 300)
    monkeypatch.setenv("SPIKEINIT_EVENT_RATE", "0.2")
    assert event_linear.max_event_rate(x, w) == 0.2
    with event_linear.use_event_rate(0.05):
        assert event_linear.max_event_rate(x, w, training=True) == 0.05
    assert event_linear.event_rate_setting() == 0.2
    for bad in ("fast", "1.5", "-0.1", "nan"):
        monkeypatch.setenv("SPIKEINIT_EVENT_RATE", bad)
        with pytest.raises(ValueError, match="SPIKEINIT_EVENT_RATE must be auto or a rate"):
            event_linear.event_rate_setting()
    with pytest.raises(ValueError, match="rate must be auto"), event_linear.use_event_rate(2):
        pass


# ----------------------------------------------------------------------------- settings


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setattr(tuning, "_budget", None)
    monkeypatch.setenv("SPIKEINIT_TUNING_BUDGET", "0")
    assert tuning.budget().limit == 0 and tuning.budget().exhausted  # nothing is measured
    assert tuning.time_interleaved({"a": lambda: None}) is None
    monkeypatch.setattr(tuning, "_budget", None)
    monkeypatch.delenv("SPIKEINIT_TUNING_BUDGET")
    assert tuning.budget().limit == tuning.BUDGET_S
    for bad in ("-1", "soon", "nan"):
        monkeypatch.setattr(tuning, "_budget", None)
        monkeypatch.setenv("SPIKEINIT_TUNING_BUDGET", bad)
        with pytest.raises(ValueError, match="SPIKEINIT_TUNING_BUDGET must be"):
            tuning.budget()


def test_the_choices_are_listed_for_the_benchmarks(machine):
    machine.script(1.0, 2.0)
    a, b = operands()
    gemm.measured_choice(a, b)
    found = decisions.all_choices()
    assert found["gemm"][gemm.shape_class(a, b)]["backend"] == "onednn"
    lines = decisions.format_choices(found)
    assert any(gemm.shape_class(a, b) in line and "-> onednn" in line for line in lines)
    assert decisions.format_choices({"gemm": {}, "event": {}}) == [
        "none yet (no product large enough to measure)"]


def test_the_machine_description_names_the_cpu():
    from spikeinit.machine import cpu_vendor, describe, describe_line

    described = describe()
    assert described["cpu_vendor"] == cpu_vendor() and described["threads"] >= 1
    line = describe_line(described)
    assert line.startswith(f"CPU: {described['cpu']} ({described['cpu_vendor']}")
    assert f"torch {torch.__version__}" in line


# ----------------------------------------------------------------------------- thread count


@pytest.mark.parametrize("durations,expected", [({1: 1.0, 2: 3.0}, 1), ({1: 2.0, 2: 1.2}, 2)])
def test_the_thread_trial_keeps_the_faster_count(monkeypatch, durations, expected):
    clock = FakeClock()
    monkeypatch.setattr(thread_trial, "wall_clock", clock)
    previous = torch.get_num_threads()
    trial = thread_trial.ThreadTrial(candidates=(1, 2), steps_each=2)
    seen = []
    try:
        for _ in range(10):
            with trial.step():
                threads = torch.get_num_threads()
                seen.append(threads)
                clock.now += durations[threads] * (50 if len(seen) <= 2 else 1)  # slow warm-up
        assert seen[:6] == [1, 2, 2, 1, 1, 2]  # warm-up, then interleaved timed steps
        assert trial.chosen == expected and seen[6:] == [expected] * 4
        for threads in (1, 2):  # the warm-up steps are not counted
            assert trial.times[threads] == pytest.approx([durations[threads]] * 2)
    finally:
        torch.set_num_threads(previous)


def test_the_thread_trial_runs_again_after_recheck_every_steps(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(thread_trial, "wall_clock", clock)
    previous = torch.get_num_threads()
    durations = {1: 1.0, 2: 3.0}
    trial = thread_trial.ThreadTrial(candidates=(1, 2), steps_each=1, recheck_every=3)
    try:
        for _ in range(4 + 3):  # a trial of 4 steps, then 3 at the chosen count
            with trial.step():
                clock.now += durations[torch.get_num_threads()]
        assert trial.chosen == 1
        durations = {1: 3.0, 2: 1.0}  # the load changed
        for _ in range(4):
            with trial.step():
                clock.now += durations[torch.get_num_threads()]
        assert trial.chosen == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_a_hopeless_thread_count_is_dropped_after_one_timed_step(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(thread_trial, "wall_clock", clock)
    previous = torch.get_num_threads()
    durations = {1: 1.0, 2: 50.0}  # a busy machine: 2 threads 50x slower
    trial = thread_trial.ThreadTrial(candidates=(1, 2), steps_each=3)
    seen = []
    try:
        for _ in range(8):
            with trial.step():
                seen.append(torch.get_num_threads())
                clock.now += durations[seen[-1]]
        assert seen.count(2) == 2  # its warm-up and one timed step, not 4
        assert trial.chosen == 1 and seen[-1] == 1
    finally:
        torch.set_num_threads(previous)


def test_finish_ends_a_running_trial_with_the_steps_timed_so_far(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(thread_trial, "wall_clock", clock)
    previous = torch.get_num_threads()
    durations = {1: 2.0, 2: 1.0}
    try:
        trial = thread_trial.ThreadTrial(candidates=(1, 2), steps_each=3)
        for _ in range(4):  # warm-up of each, then one timed step of each
            with trial.step():
                clock.now += durations[torch.get_num_threads()]
        assert trial.chosen is None
        assert trial.finish() == 2 and trial.chosen == 2 and torch.get_num_threads() == 2
        with trial.step():  # no trial steps left
            assert torch.get_num_threads() == 2
        untimed = thread_trial.ThreadTrial(candidates=(2, 1))
        assert untimed.finish() == 2  # nothing timed: the first candidate
        assert thread_trial.ThreadTrial(candidates=(1,)).finish() == 1
    finally:
        torch.set_num_threads(previous)
