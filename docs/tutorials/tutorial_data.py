"""Where the tutorials find MNIST, and how big they run.

- :func:`size` reads ``SPIKEINIT_TUTORIAL_SIZE``: ``default`` (the sizes the pages show) or
  ``ci`` (smaller, for the CI check that every tutorial runs).
- :func:`mnist_dir` returns ``$SPIKEINIT_DATA_DIR`` when it holds MNIST (the layout of
  ``spikeinit.data.load_dataset``; ``docs/hooks/tutorials.py`` points it at ``../shared/data``
  when that exists). Otherwise it writes a small synthetic stand-in in MNIST's IDX format to a
  temporary folder and says so: a bright 7x7 block whose position is the class, on noise.
  Nothing is ever downloaded. Neither prints a path of the machine that runs it.
- :func:`skipped` says that a tutorial left out part of what it teaches (say, a framework that
  is not installed); ``docs/hooks/tutorials.py`` shows it at the top of the page, and fails
  ``mkdocs build --strict``.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

SIZES = ("default", "ci")
#: How :func:`skipped` starts its line; docs/hooks/tutorials.py looks for it.
SKIP_MARKER = "[tutorial skipped] "


def size() -> str:
    """``default`` or ``ci``, from ``$SPIKEINIT_TUTORIAL_SIZE``."""
    value = os.environ.get("SPIKEINIT_TUTORIAL_SIZE") or "default"
    if value not in SIZES:
        raise ValueError(f"SPIKEINIT_TUTORIAL_SIZE must be one of {SIZES}, got {value!r}")
    return value


def pick(default, ci):  # noqa: ANN001, ANN201 - a value per size
    """``default`` at the default size, ``ci`` at CI size."""
    return ci if size() == "ci" else default


def _has_mnist(root: Path) -> bool:
    from spikeinit.data import DatasetError, load_dataset

    try:
        load_dataset("mnist", root, "test", limit=1)
    except (DatasetError, OSError):
        return False
    return True


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))


def synthetic_mnist(root: Path, n_train: int = 6000, n_test: int = 1000) -> Path:
    """A learnable MNIST look-alike in IDX format under ``root/mnist``."""
    rng = np.random.default_rng(0)
    (root / "mnist").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 80, size=(n, 28, 28), dtype=np.uint8)
        for index, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[index, 3 + 12 * row: 10 + 12 * row, 1 + 5 * col: 6 + 5 * col] = 255
        _write_idx(root / "mnist" / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(root / "mnist" / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def mnist_dir() -> str:
    """A data folder holding MNIST: the real one when available, else a synthetic stand-in."""
    given = os.environ.get("SPIKEINIT_DATA_DIR")
    if given and _has_mnist(Path(given)):
        print("MNIST from $SPIKEINIT_DATA_DIR")
        return given
    root = synthetic_mnist(Path(tempfile.mkdtemp(prefix="spikeinit-tutorial-")))
    print("MNIST not found (set SPIKEINIT_DATA_DIR); using a synthetic stand-in in a "
          "temporary folder")
    return str(root)


def skipped(what: str) -> None:
    """Say that the tutorial leaves out ``what`` (one line, marked with :data:`SKIP_MARKER`)."""
    print(f"{SKIP_MARKER}{what}")
