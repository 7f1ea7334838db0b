"""``spikeinit train`` under torchrun (2 CPU processes, gloo) equals a single-process run.

Why they agree: with global batch B and W processes, each process takes B/W samples of every
global batch (DistributedSampler shares one permutation, seeded by seed + epoch, and deals it
out round-robin), computes the *mean* loss over its B/W samples, and DDP averages the W
gradients: (1/W) * sum_r (W/B) * sum_{i in r} g_i = (1/B) * sum_i g_i, the single-process
gradient of the same B samples. Weights start equal (same seed; DDP also broadcasts rank 0's),
so only floating-point summation order differs. N is a multiple of B, so no batch is padded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikeinit.experiments.distributed import DistributedContext, setup_distributed
from spikeinit.experiments.training import TrainConfig, train
from test_training import write_fake_mnist

# No random shifts: each process draws its own, so only the deterministic path can match.
ARGS = ["--depth", "2", "--width", "32", "--epochs", "2", "--batch", "32", "--seed", "3",
        "--limit-train", "128", "--limit-test", "64", "--no-augment"]


def test_torchrun_two_processes_equal_single_process(tmp_path: Path) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=128, n_test=64)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "spikeinit.cli.main", "train",
               "--data-dir", str(data), "--device", "cpu", "--no-progress", "--out", str(out),
               *ARGS]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ddp = json.loads((out / "metrics.json").read_text())
    assert ddp["world_size"] == 2
    assert not list(out.glob(".*.tmp"))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = TrainConfig(data_dir=str(data), depth=2, width=32, epochs=2, batch=32, seed=3,
                             augment=False,
                             limit_train=128, limit_test=64)
        single = train(config, tmp_path / "single", device="cpu", progress=False, log=None)
    finally:
        torch.set_num_threads(threads)
    assert single.world_size == 1 and ddp["config"] == single.config
    for a, b in zip(single.history, ddp["history"]):
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
        for key in ("firing_rates", "grad_norms"):
            for name, value in a[key].items():
                assert b[key][name] == pytest.approx(value, rel=1e-4, abs=1e-7), (key, name)
    ours = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["model"]
    theirs = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(theirs[name], ours[name], rtol=1e-4, atol=1e-5)


def test_single_process_context_and_bad_device(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = setup_distributed("cpu")
    assert context == DistributedContext(device="cpu")
    assert context.is_main and not context.distributed
    with pytest.raises(ValueError, match="device"):
        setup_distributed("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device must be 'cpu'"):
            setup_distributed("cuda")


def test_batch_must_split_evenly_over_processes(tmp_path: Path) -> None:
    data = write_fake_mnist(tmp_path / "data", n_train=20, n_test=10)
    config = TrainConfig(data_dir=str(data), depth=1, width=8, epochs=1, batch=33)
    context = DistributedContext(rank=0, world_size=2)
    with pytest.raises(ValueError, match="batch must be a multiple"):
        train(config, None, context=context, progress=False, log=None)
