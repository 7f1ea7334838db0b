"""Checkpoints that resume a run exactly: model, optimizer, schedule, RNG states, history."""

from __future__ import annotations

import pickle
import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training.config import TrainConfig
from spikeinit.io import atomic_path

CHECKPOINT = "checkpoint.pt"


def rng_state(device: str) -> dict[str, Any]:
    """The Python, NumPy and torch (and CUDA) RNG states, as ``weights_only``-safe values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any], device: str) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_as_tuples(state["python"]))
    if device.startswith("cuda") and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _as_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_checkpoint(path: Path, config: TrainConfig, device: str) -> dict[str, Any]:
    """Read a checkpoint (``weights_only``) and check that ``config`` made it."""
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        saved = TrainConfig.from_dict(checkpoint["config"])
    except (RuntimeError, EOFError, KeyError, TypeError, pickle.UnpicklingError) as error:
        raise InvalidArgumentError(f"resume: the checkpoint {path} is corrupt or not spikeinit's "
                         f"({type(error).__name__}); "
                         "delete it to start over, or use another --out") from error
    if saved != config:
        differ = [f.name for f in fields(TrainConfig)
                  if getattr(saved, f.name) != getattr(config, f.name)]
        raise InvalidArgumentError(
            f"resume: the checkpoint {path} was made with different settings "
            f"({', '.join(differ)}); use the same options, or another --out"
        )
    return checkpoint


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    config: TrainConfig,
    history: list[dict[str, Any]],
    device: str,
    threads: int | None = None,
) -> None:
    """Write everything :func:`~spikeinit.experiments.training.train` needs to resume,
    atomically (``weights_only``-safe).

    ``threads`` is torch's intra-op thread count of the run's steps (fixed or measured): the
    results depend on it through float rounding, so a resumed run sets it again. ``None``
    stores none (a checkpoint from before the count was saved has none either).
    """
    payload: dict[str, Any] = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "config": config.to_dict(),
        "history": history,
        "rng": rng_state(device),
    }
    if threads is not None:
        payload["threads"] = int(threads)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
