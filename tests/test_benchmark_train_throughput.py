"""benchmarks/train_throughput.py: its engines compute the same network (no timing asserts).

spikeinit's training step and snnTorch, started from the same weights, emit the same spikes in
every layer and the same loss; the plain-autograd reference gives spikeinit's weight gradients.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import PROJECT_ROOT

BENCHMARK = PROJECT_ROOT / "benchmarks" / "train_throughput.py"
BATCH = 16


@pytest.fixture(scope="module")
def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_throughput", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checks(benchmark: ModuleType) -> dict[str, dict[str, Any]]:
    pytest.importorskip("snntorch", reason="snntorch is not installed: nothing to compare with")
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pool = benchmark.make_pool(2, BATCH, seed=1)
        skipped: dict[str, str] = {}
        config = benchmark.TrainConfig(batch=BATCH, augment=False)
        engines = benchmark.build_engines(config, pool, BATCH, skipped)
        assert not skipped, skipped
        return {c["engine"]: c for c in benchmark.check_engines(engines, *pool[0])}
    finally:
        torch.set_num_threads(previous)


def _grad_tolerance(check: dict[str, Any]) -> float:
    # Bit-level GEMM differences can flip a spike whose membrane lies within float32 rounding of
    # the threshold; without a flip the gradients agree to rounding, with one only roughly.
    return 1e-4 if sum(check["flipped_spikes_per_layer"]) == 0 else 5e-2


def test_spikeinit_and_snntorch_emit_the_same_spikes_and_loss(benchmark, checks):
    check = checks[benchmark.SNNTORCH]
    assert check["layers"] == 11
    assert check["min_layer_spike_agreement"] >= 0.999, check["spike_agreement_per_layer"]
    assert check["output_spike_agreement"] >= 0.999
    assert min(check["rates_per_layer"]) > 0.0  # a silent network would agree trivially
    if sum(check["flipped_spikes_per_layer"]) == 0:
        assert check["loss_relative_difference"] < 1e-5
    assert check["grad_relative_error_max"] < _grad_tolerance(check)


def test_plain_reference_gradients_match_spikeinit(benchmark, checks):
    check = checks[benchmark.PLAIN]
    assert check["min_layer_spike_agreement"] >= 0.999, check["spike_agreement_per_layer"]
    assert len(check["grad_relative_error_per_layer"]) == 11
    assert check["grad_relative_error_max"] < _grad_tolerance(check)


def test_quick_run_writes_its_report(benchmark, tmp_path: Path, one_thread):
    pytest.importorskip("snntorch", reason="snntorch is not installed: nothing to compare with")
    output = tmp_path / "throughput.json"
    benchmark.main(["--repeats", "1", "--steps-per-repeat", "1", "--warmup", "1",
                    "--threads", "1", "--batch", "8", "--pool", "2", "--json", str(output)])
    report = json.loads(output.read_text())
    rows = report["tables"]["1"]
    assert {row["engine"] for row in rows} == {
        benchmark.SPIKEINIT, benchmark.SPIKEINIT_COUNTS, benchmark.SPIKEINIT_METRICS,
        benchmark.SNNTORCH, benchmark.PLAIN}
    assert all(row["samples_per_second"] > 0 for row in rows)
    assert next(r for r in rows if r["engine"] == benchmark.SNNTORCH)["vs_snntorch"] == 1.0
    assert report["meta"]["cpu"] and report["meta"]["cpu_vendor"] and report["meta"]["date"]
    assert "load_average_start" in report["meta"] and "load_average_end" in report["meta"]
    assert set(report["meta"]["choices"]["1"]) == {"gemm", "event", "conv", "vetted"}
