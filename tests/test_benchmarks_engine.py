"""benchmarks/engine.py runs end to end at smoke-test size and its spike checks hold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

# A subprocess of up to 600 s: opt-in (pytest -m slow), and in .ci/run's bounded slow subset.
pytestmark = [pytest.mark.slow, pytest.mark.ci]


def test_engine_benchmark_quick_run_agrees_with_its_references(tmp_path):
    output = tmp_path / "engine.json"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "engine.py"), "--quick",
         "--repeats", "1", "--threads", "1", "--json", str(output)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert {"A", "B", "conv"} <= set(report["tables"])
    conv = {row["engine"] for row in report["tables"]["conv"]}
    assert {"gemm-only", "gemm-only (channels-last)", "spikeinit",
            "spikeinit (contiguous)"} <= conv
    engines = {row["engine"] for row in report["tables"]["A"]}
    assert {"gemm-only", "eager reference", "spikeinit dense", "spikeinit"} <= engines
    forced = report["checks"]["A_teacher_forced"]
    # The hand-written reference shares spikeinit's semantics exactly; so does every peer
    # that is installed, each compared with its own reset order.
    for name, check in forced.items():
        assert check["teacher_forced_min"] >= 1 - 1e-4, (name, check)
    assert "split" in report and report["split"]["total"] > 0
    # The step's parts are timed inside the same steps as the total: they add up to it.
    split = report["split"]
    parts = [seconds for name, seconds in split.items() if name != "total"]
    assert all(seconds >= 0 for seconds in parts), split
    assert abs(sum(parts) - split["total"]) <= 1e-9 * max(1.0, split["total"]), split
    # Every figure names its machine, and the GEMM backends / event rates spikeinit chose.
    meta = report["meta"]
    assert meta["cpu"] and meta["cpu_vendor"] and meta["threads"] == 1 and meta["torch"]
    assert len(meta["load_average"]) == 3 and "load_average_end" in meta and meta["date"]
    assert set(meta["choices"]) == {"gemm", "event", "conv", "vetted"}
    assert "CPU: " in result.stdout and "run-time choices" in result.stdout
