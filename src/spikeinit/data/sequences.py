r"""Sequential MNIST: MNIST images read out as sequences, the time axis being the data's.

``smnist-rows``
    Row by row: ``T = 28`` steps of the 28 pixels of one row, :math:`x_t = X_{t,:}`.
``smnist-pixels``
    Pixel by pixel in raster order: ``T = 784`` steps of one pixel, :math:`x_t = X_{t//28,\,t\%28}`.
``psmnist``
    Permuted pixel by pixel: ``T = 784`` steps of one pixel in the fixed order
    :func:`pixel_permutation` (:math:`x_t = \mathrm{vec}(X)_{\pi(t)}`), the same permutation for
    every image, drawn with NumPy's ``default_rng(PERMUTATION_SEED)``.

All three are built from the MNIST IDX files (:func:`~spikeinit.data.load_idx_dataset`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeinit.errors import InvalidArgumentError

from .idx import MNIST_CLASSES, load_idx_dataset

__all__ = [
    "PERMUTATION_SEED",
    "SEQUENCE_LAYOUTS",
    "SequenceDataset",
    "load_sequential_mnist",
    "pixel_permutation",
]

#: Seed of the permuted-pixel order of ``psmnist``: ``np.random.default_rng(0).permutation(784)``.
PERMUTATION_SEED = 0
#: ``(T, features per step)`` of each sequential MNIST dataset.
SEQUENCE_LAYOUTS: dict[str, tuple[int, int]] = {
    "smnist-rows": (28, 28),
    "smnist-pixels": (784, 1),
    "psmnist": (784, 1),
}
_PIXELS = 28 * 28


def pixel_permutation(seed: int = PERMUTATION_SEED) -> np.ndarray:
    """The pixel order of permuted sequential MNIST: a permutation of ``0 .. 783``,
    ``np.random.default_rng(seed).permutation(784)`` (step ``t`` shows pixel ``perm[t]`` of the
    row-major image).

    Example:
        >>> perm = pixel_permutation()
        >>> sorted(perm.tolist()) == list(range(784)), bool((perm == pixel_permutation()).all())
        (True, True)
    """
    return np.random.default_rng(seed).permutation(_PIXELS)


class SequenceDataset(Dataset):
    """Sequences kept as uint8 ``(N, T, F)``; items are ``(float32 (T, F) in [0, 1], int64
    label)``, so the default collation gives ``(B, T, F)``.

    Attributes:
        sequences: uint8 tensor ``(N, T, F)``.
        labels: int64 tensor ``(N,)``.
        classes: class names, index = label.
        source: where the data was read from.

    Example:
        >>> data = SequenceDataset(np.full((2, 3, 1), 51, np.uint8), [4, 2], list("01234"))
        >>> x, y = data[0]
        >>> tuple(x.shape), round(float(x[0, 0]), 3), int(y), data.steps
        ((3, 1), 0.2, 4, 3)
    """

    def __init__(self, sequences: np.ndarray, labels: np.ndarray | list[int],
                 classes: tuple[str, ...] | list[str], source: str = "") -> None:
        sequences_t = torch.as_tensor(np.ascontiguousarray(sequences))
        if sequences_t.dtype != torch.uint8 or sequences_t.ndim != 3:
            raise InvalidArgumentError(
                f"sequences must be a uint8 array of shape (N, T, F), got {sequences_t.dtype} "
                f"{tuple(sequences_t.shape)}")
        labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1)
        if labels_t.numel() != sequences_t.shape[0]:
            raise InvalidArgumentError(
                f"{sequences_t.shape[0]} sequences but {labels_t.numel()} labels")
        self.sequences = sequences_t
        self.labels = labels_t
        self.classes = list(classes)
        self.source = source

    def __len__(self) -> int:
        return int(self.sequences.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sequences[index].to(torch.float32).div_(255.0), self.labels[index]

    @property
    def steps(self) -> int:
        """The sequence length ``T``."""
        return int(self.sequences.shape[1])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, T={self.steps}, "
                f"features={int(self.sequences.shape[2])}, source={self.source!r})")


def load_sequential_mnist(name: str, data_dir: str | Path, split: str = "train",
                          limit: int | None = None) -> SequenceDataset:
    """``smnist-rows``, ``smnist-pixels`` or ``psmnist`` (see the module docstring) from the
    MNIST IDX files under ``data_dir`` (searched as :func:`~spikeinit.data.load_idx_dataset`
    does); ``limit`` keeps the first images in file order.

    Raises:
        InvalidArgumentError: unknown ``name``.
        DatasetNotFoundError: the MNIST files are missing.

    Example:
        >>> import gzip, tempfile
        >>> def idx(array):  # IDX: 0, 0, type 8 (uint8), ndim, big-endian sizes, then the bytes
        ...     shape = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
        ...     return gzip.compress(bytes([0, 0, 8, array.ndim]) + shape + array.tobytes())
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "mnist").mkdir()
        >>> images = np.arange(2 * 784, dtype=np.uint8).reshape(2, 28, 28)
        >>> _ = (root / "mnist/t10k-images-idx3-ubyte.gz").write_bytes(idx(images))
        >>> _ = (root / "mnist/t10k-labels-idx1-ubyte.gz").write_bytes(idx(np.uint8([7, 1])))
        >>> rows = load_sequential_mnist("smnist-rows", root, "test")
        >>> pixels = load_sequential_mnist("smnist-pixels", root, "test")
        >>> tuple(rows[0][0].shape), tuple(pixels[0][0].shape), int(pixels[1][1])
        ((28, 28), (784, 1), 1)
    """
    if name not in SEQUENCE_LAYOUTS:
        raise InvalidArgumentError(
            f"name must be one of {', '.join(SEQUENCE_LAYOUTS)} (got {name!r})")
    images = load_idx_dataset("mnist", data_dir, split, limit)
    pixels = images.images.numpy().reshape(len(images), _PIXELS)
    if name == "psmnist":
        pixels = pixels[:, pixel_permutation()]
    steps, features = SEQUENCE_LAYOUTS[name]
    return SequenceDataset(pixels.reshape(-1, steps, features), images.labels.numpy(),
                           MNIST_CLASSES, source=images.source)
