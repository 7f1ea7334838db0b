"""N-MNIST: ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin`` event recordings.

Each ``.bin`` file is a headerless sequence of 5-byte events (see :func:`decode_nmnist`).
Events are read with ``tonic.io.read_mnist_file`` when tonic is installed (``backend="auto"``)
and with the vectorized numpy decoder otherwise; both give identical arrays.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeinit.errors import InvalidArgumentError

from .download import NMNIST_MANUAL
from .errors import DatasetError, DatasetNotFoundError, read_data_file
from .frames import events_to_frames
from .selection import round_robin_order, take_first
from .validation import check_limit, check_positive_int, check_split

__all__ = [
    "DEFAULT_N_FRAMES",
    "EVENT_DTYPE",
    "NMNISTDataset",
    "NMNIST_BACKENDS",
    "NMNIST_SENSOR_SIZE",
    "decode_nmnist",
    "find_nmnist",
    "read_nmnist_bin",
]

#: tonic convention: (width, height, polarities)
NMNIST_SENSOR_SIZE: tuple[int, int, int] = (34, 34, 2)
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
NMNIST_BACKENDS: tuple[str, ...] = ("auto", "numpy", "tonic")
DEFAULT_N_FRAMES = 10
OVERFLOW_Y = 240
OVERFLOW_INCREMENT = 1 << 13
NMNIST_ROOTS: tuple[str, ...] = ("nmnist", "NMNIST", "N-MNIST", ".")
_SPLIT_DIRS = {"train": ("Train", "train"), "test": ("Test", "test")}


def decode_nmnist(raw: bytes | np.ndarray, source: str = "<bytes>") -> np.ndarray:
    """Decode N-MNIST bytes into a structured array with fields ``x, y, t, p``.

    Byte layout per event: ``x``, ``y``, ``p<<7 | t[22:16]``, ``t[15:8]``, ``t[7:0]``
    (t in microseconds). An event with ``y == 240`` is a timestamp-overflow marker: it adds
    ``2**13`` to the timestamps of itself and all later events and is dropped (as tonic does).

    Raises:
        DatasetError: the length is not a multiple of 5.

    Example:
        One event at x = 3, y = 4, polarity 1, t = 0x010203 us:

        >>> event = decode_nmnist(bytes([3, 4, 0x80 | 0x01, 0x02, 0x03]))[0]
        >>> int(event["x"]), int(event["y"]), int(event["p"]), int(event["t"])
        (3, 4, 1, 66051)
    """
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes) else np.asarray(raw)
    if data.size % 5:
        raise DatasetError(
            f"{source}: size {data.size} bytes is not a multiple of 5 (N-MNIST events are 5 "
            "bytes each); the file is truncated or not an N-MNIST .bin file"
        )
    ev = data.reshape(-1, 5).astype(np.uint32)
    t = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    overflow = ev[:, 1] == OVERFLOW_Y
    t = t.astype(np.int64) + OVERFLOW_INCREMENT * np.cumsum(overflow, dtype=np.int64)
    keep = ~overflow
    out = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
    out["x"], out["y"], out["t"] = ev[keep, 0], ev[keep, 1], t[keep]
    out["p"] = ev[keep, 2] >> 7
    return out


def _tonic_io() -> Any | None:
    try:
        return importlib.import_module("tonic.io")
    except Exception:  # not installed, or broken install: fall back to numpy
        return None


def _check_sensor(events: np.ndarray, source: str) -> np.ndarray:
    if events.size and (events["x"].max() >= 34 or events["y"].max() >= 34):
        raise DatasetError(
            f"{source}: event address x<={events['x'].max()}, y<={events['y'].max()} outside the "
            "34x34 N-MNIST sensor; not an N-MNIST .bin file?"
        )
    return events


def read_nmnist_bin(path: str | Path, backend: str = "auto") -> np.ndarray:
    """Read one N-MNIST ``.bin`` file into a structured array (``x, y, t, p``; t in us).

    Args:
        path: the ``.bin`` file.
        backend: ``"auto"`` (tonic if importable, else numpy), ``"numpy"`` or ``"tonic"``.

    Raises:
        DatasetError: missing/unreadable file, size not a multiple of 5, addresses >= 34.
        ValueError: unknown backend. ImportError: ``backend="tonic"`` without tonic.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "00001.bin"
        >>> _ = path.write_bytes(bytes([3, 4, 0x80, 0, 10, 5, 6, 0, 0, 20]))  # two events
        >>> read_nmnist_bin(path, backend="numpy")[["x", "t"]].tolist()
        [(3, 10), (5, 20)]
    """
    if backend not in NMNIST_BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {NMNIST_BACKENDS} (got {backend!r})")
    path = Path(path)
    raw = read_data_file(path)
    if len(raw) % 5:
        decode_nmnist(raw, str(path))  # raises the size error
    tonic_io = _tonic_io() if backend != "numpy" else None
    if backend == "tonic" and tonic_io is None:
        raise ImportError("backend='tonic' needs tonic: pip install 'spikeinit[tonic]'")
    if tonic_io is None:
        return _check_sensor(decode_nmnist(raw, str(path)), str(path))
    raw_events = tonic_io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
    events = np.empty(raw_events.shape[0], dtype=EVENT_DTYPE)
    for field in EVENT_DTYPE.names:
        events[field] = raw_events[field]
    return _check_sensor(events, str(path))


def find_nmnist(data_dir: str | Path, split: str) -> Path:
    """Folder ``.../Train`` or ``.../Test`` for ``split`` (searched in nmnist/, NMNIST/, ...).

    Raises:
        DatasetNotFoundError: no such folder with digit sub-folders; says where to put files.
    """
    check_split(split)
    root = Path(data_dir)
    tried = []
    for sub in NMNIST_ROOTS:
        for name in _SPLIT_DIRS[split]:
            folder = root / sub / name if sub != "." else root / name
            tried.append(folder)
            if folder.is_dir() and any(d.is_dir() and d.name.isdigit() for d in folder.iterdir()):
                return folder
    raise DatasetNotFoundError(
        f"N-MNIST {split} split not found under {data_dir} (looked for "
        f"{', '.join(map(str, tried))}). " + NMNIST_MANUAL.format(root=root / "nmnist")
    )


def _scan(split_dir: Path) -> tuple[list[Path], np.ndarray]:
    files: list[Path] = []
    labels: list[int] = []
    for digit_dir in sorted(split_dir.iterdir()):
        if not (digit_dir.is_dir() and digit_dir.name.isdigit() and int(digit_dir.name) < 10):
            continue
        for f in sorted(digit_dir.glob("*.bin")):
            files.append(f)
            labels.append(int(digit_dir.name))
    if not files:
        raise DatasetError(f"{split_dir}: no <digit>/*.bin files (digit folders 0..9)")
    return files, np.array(labels, dtype=np.int64)


class NMNISTDataset(Dataset):
    """N-MNIST recordings binned into frames; items are ``(float32 (T, 2, 34, 34), int64)``.

    Files are listed once (sorted by digit folder, then name) and ordered round-robin over the
    digits, so the first ``limit`` samples are class-balanced. Events are read and binned
    lazily in ``__getitem__`` (cheap: a few thousand events per file).

    Attributes:
        files: the ``.bin`` paths in dataset order. labels: int64 tensor ``(N,)``.
        n_frames: time bins ``T``. classes: ``["0", ..., "9"]``.

    Example:
        One recording of a "7" in the layout ``Train/<digit>/<id>.bin``:

        >>> import tempfile
        >>> from pathlib import Path
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "nmnist" / "Train" / "7").mkdir(parents=True)
        >>> events = bytes([3, 4, 0x80, 0, 10, 5, 6, 0, 0, 20])
        >>> _ = (root / "nmnist" / "Train" / "7" / "00001.bin").write_bytes(events)
        >>> data = NMNISTDataset(root, "train", n_frames=5, backend="numpy")
        >>> frames, label = data[0]
        >>> len(data), tuple(frames.shape), float(frames.sum()), int(label)
        (1, (5, 2, 34, 34), 2.0, 7)
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str = "train",
        n_frames: int = DEFAULT_N_FRAMES,
        limit: int | None = None,
        backend: str = "auto",
    ) -> None:
        self.n_frames = check_positive_int("n_frames", n_frames)
        limit = check_limit(limit)
        if backend not in NMNIST_BACKENDS:
            raise InvalidArgumentError(
                f"backend must be one of {NMNIST_BACKENDS} (got {backend!r})")
        self.backend = backend
        self.split_dir = find_nmnist(data_dir, split)
        files, labels = _scan(self.split_dir)
        keep = take_first(round_robin_order(labels), limit)
        self.files: list[Path] = [files[i] for i in keep]
        self.labels = torch.from_numpy(labels[keep])
        self.source = str(self.split_dir)
        self.classes: list[str] = [str(d) for d in range(10)]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape ``(T, 2, 34, 34)`` of one input."""
        w, h, p = NMNIST_SENSOR_SIZE
        return (self.n_frames, p, h, w)

    def events(self, index: int) -> np.ndarray:
        """Raw events of sample ``index``."""
        return read_nmnist_bin(self.files[index], self.backend)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        frames = events_to_frames(self.events(index), self.n_frames, NMNIST_SENSOR_SIZE)
        return torch.from_numpy(frames), self.labels[index]

    def __repr__(self) -> str:
        return f"NMNISTDataset(n={len(self)}, n_frames={self.n_frames}, source={self.source!r})"
