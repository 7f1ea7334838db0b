"""Checkpoints that resume a run exactly: model, optimizer, schedule, RNG states, history.

A checkpoint is the zip file of ``torch.save`` whose zip comment carries a SHA-256 of every
byte before it (:data:`SIGNATURE` followed by 64 hex digits). :func:`load_checkpoint` checks it
before ``torch.load`` reads anything, so a file with one flipped byte anywhere is refused
instead of resumed from; a file without it (not written by :func:`save_checkpoint`) is
refused as well.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikeinit.errors import InternalError, InvalidArgumentError
from spikeinit.experiments.training.config import TrainConfig
from spikeinit.io import check_regular_file, write_atomic

CHECKPOINT = "checkpoint.pt"
#: The start of a checkpoint's zip comment; 64 hex digits of SHA-256 follow.
SIGNATURE = b"spikeinit-sha256:"
_END_OF_DIRECTORY = b"PK\x05\x06"  # the zip's end-of-central-directory record (22 bytes)
_COMMENT_LENGTH = len(SIGNATURE) + 64
#: The entries every checkpoint holds (``threads`` is optional).
ENTRIES = ("model", "optimizer", "scheduler", "epoch", "config", "history", "rng")


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


def signed(data: bytes) -> bytes:
    """``data`` (a zip file with an empty comment, as ``torch.save`` writes it) with the zip
    comment ``SIGNATURE + sha256(data without its comment length).hexdigest()``."""
    if data[-22:-18] != _END_OF_DIRECTORY or data[-2:] != b"\x00\x00":
        raise InternalError("torch.save wrote a zip file whose end record spikeinit cannot sign")
    body = data[:-2]
    comment = SIGNATURE + hashlib.sha256(body).hexdigest().encode()
    return body + len(comment).to_bytes(2, "little") + comment


def verify_signature(data: bytes) -> bool:
    """Whether ``data`` ends in the comment :func:`signed` gives it, and the digest matches."""
    comment = data[-_COMMENT_LENGTH:]
    length = data[-_COMMENT_LENGTH - 2:-_COMMENT_LENGTH]
    if len(data) < _COMMENT_LENGTH + 22 or not comment.startswith(SIGNATURE) \
            or length != _COMMENT_LENGTH.to_bytes(2, "little"):
        return False
    digest = hashlib.sha256(data[:-_COMMENT_LENGTH - 2]).hexdigest().encode()
    return comment[len(SIGNATURE):] == digest


def _corrupt(path: Path, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"resume: the checkpoint {path} {why}; delete it to start over, "
                                "or use another --out")


def load_checkpoint(path: Path, config: TrainConfig, device: str) -> dict[str, Any]:
    """Read a checkpoint, verify its checksum (:func:`verify_signature`), load it
    (``weights_only``), check its entries (:func:`check_entries`) and that ``config`` made it.

    Raises:
        InvalidArgumentError: a file that is not regular, fails the checksum, cannot be read
            by ``torch.load``, lacks an entry or was made with other settings.
    """
    check_regular_file(path, "resume: the checkpoint")
    data = path.read_bytes()
    if not verify_signature(data):
        raise _corrupt(path, "fails its SHA-256 checksum (corrupt, altered, or not written by "
                             "spikeinit)")
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        check_entries(checkpoint)
        saved = TrainConfig.from_dict(checkpoint["config"])
    except (RuntimeError, EOFError, KeyError, TypeError, ValueError,
            pickle.UnpicklingError) as error:
        raise _corrupt(path, f"is corrupt or not spikeinit's ({type(error).__name__}: "
                             f"{' '.join(str(error).split())[:120]})") from error
    if saved != config:
        differ = [f.name for f in fields(TrainConfig)
                  if getattr(saved, f.name) != getattr(config, f.name)]
        raise InvalidArgumentError(
            f"resume: the checkpoint {path} was made with different settings "
            f"({', '.join(differ)}); use the same options, or another --out"
        )
    return checkpoint


def check_entries(checkpoint: Any) -> None:
    """Check the kinds of a loaded checkpoint's entries (:data:`ENTRIES`): a dict holding
    every entry, ``epoch`` an integer >= 0, ``history`` a list of dicts with ``epoch`` entries
    of the same length, ``rng`` a dict, ``threads`` (if present) an integer >= 1.

    Raises:
        ValueError: the first entry that is missing or of the wrong kind.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f"it holds a {type(checkpoint).__name__}, not a dict")
    missing = [name for name in ENTRIES if name not in checkpoint]
    if missing:
        raise ValueError(f"entries missing: {', '.join(missing)}")
    epoch, history = checkpoint["epoch"], checkpoint["history"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch is {epoch!r}, not an integer >= 0")
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history) \
            or len(history) != epoch:
        raise ValueError(f"history is not a list of {epoch} epoch records")
    for name in ("model", "optimizer", "scheduler", "rng", "config"):
        if not isinstance(checkpoint[name], dict):
            raise ValueError(f"{name} is a {type(checkpoint[name]).__name__}, not a dict")
    threads = checkpoint.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads is {threads!r}, not an integer >= 1")


def restore(checkpoint: dict[str, Any], path: Path, model: nn.Module,
            optimizer: torch.optim.Optimizer, scheduler: Any, device: str) -> None:
    """Load a checkpoint's model, optimizer, schedule and RNG states into the run.

    Raises:
        InvalidArgumentError: a state that does not fit the run (another architecture, wrong
            shapes, a garbage RNG state), naming ``path``.
    """
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        set_rng_state(checkpoint["rng"], device)
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise _corrupt(path, f"does not fit this run ({type(error).__name__}: "
                             f"{' '.join(str(error).split())[:120]})") from error


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
    atomically (``weights_only``-safe), signed with its SHA-256 (:func:`signed`).

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
    buffer = io.BytesIO()
    torch.save(payload, buffer)  # in memory: a full disk fails in the write below, cleanly
    data = signed(buffer.getvalue())
    write_atomic(path, lambda tmp: tmp.write_bytes(data))
