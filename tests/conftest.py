"""Shared fixtures: seeding, and the location of ../shared/data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$SPIKEINIT_DATA_DIR`` or ``../shared/data`` beside the project."""
    return Path(os.environ.get("SPIKEINIT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _running_on(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small models and matmuls run faster on one thread, and are immune to a busy machine."""
    yield from _running_on(1)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Torch on two intra-op threads (tests of the thread-count choice)."""
    yield from _running_on(2)


@pytest.fixture
def data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set SPIKEINIT_DATA_DIR)")
    return path


@pytest.fixture(params=["compiled", "python"])
def backend(request, monkeypatch) -> str:
    """Run a test on the compiled LIF kernel and on the pure-PyTorch loops (every module that
    chooses between them is told there is no kernel)."""
    import spikeinit.models.fused_mlp as fused_mlp
    import spikeinit.neurons.fused as fused
    from spikeinit.engine.kernels import compiled_kernel

    if request.param == "compiled":
        if compiled_kernel() is None:
            pytest.skip("the compiled LIF kernel is unavailable (no C++ compiler)")
    else:
        for module in (fused, fused_mlp):
            monkeypatch.setattr(module, "uses_compiled_kernel", lambda tensor: False)
    return request.param


class FakeClock:
    """A clock for the measurements of ``spikeinit.engine.tuning`` that advances only when a
    test says so (``now += seconds``): decisions, budget and cache are checked without timing
    anything real."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


TEST_MACHINE = (("cpu", "Test CPU 9000"), ("cpu_features", "0123456789abcdef"),
                ("torch", "9.9"))


@pytest.fixture
def tuning_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """For tests of measured choices: a private empty cache folder, a fresh 1000 s budget, a
    fake clock (returned), a fixed machine identity, a quiet machine, and a vetting child that
    passes every candidate without being started. The compiled kernels are loaded from the
    usual cache first (they would be built again in the new folder)."""
    from spikeinit.engine import decisions, tuning, vet
    from spikeinit.engine.kernels import compiled_kernel

    compiled_kernel()
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("SPIKEINIT_CACHE_DIR", str(folder))
    monkeypatch.setattr(tuning, "_budget", tuning.Budget(1000.0))
    clock = FakeClock()
    monkeypatch.setattr(tuning, "clock", clock)
    monkeypatch.setattr(tuning, "machine_identity", lambda: TEST_MACHINE)
    monkeypatch.setattr(tuning, "machine_quiet", lambda: True)
    monkeypatch.setattr(vet._vetter, "run", lambda request: (True, ""))  # tests of vet: real
    decisions.forget_all()
    yield clock
    decisions.forget_all()
