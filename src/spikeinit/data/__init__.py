"""Real dataset loaders for spiking-network training.

Supported: MNIST and Fashion-MNIST (IDX, gzip or raw), CIFAR-10 (python pickle batches,
ImageFolder, or an ImageFolder tarball read in place), N-MNIST (``.bin`` event files
binned into frames), and sequential MNIST (rows, pixels, permuted pixels) from the MNIST
files. Entry point::

    from spikeinit.data import load_dataset, dataset_moments
    train = load_dataset("mnist", "path/to/data", split="train", limit=1000)
    x, y = train[0]            # float32 (1, 28, 28) in [0, 1], int64 label
    stats = dataset_moments(train)   # .mean, .second_moment

Problems with the files on disk raise :class:`DatasetError` (missing ones
:class:`DatasetNotFoundError`); invalid arguments raise :class:`ValueError`.
"""

from __future__ import annotations

from . import stats as _stats
from .cifar import CIFAR10_CLASSES, load_cifar10, read_cifar_batch
from .download import download_dataset, download_url, manual_instructions
from .errors import DatasetError, DatasetNotFoundError, MissingDependencyError
from .frames import events_to_frames
from .idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_idx_dataset, parse_idx, read_idx
from .image_dataset import ImageArrayDataset
from .nmnist import (
    DEFAULT_N_FRAMES,
    EVENT_DTYPE,
    NMNIST_SENSOR_SIZE,
    NMNISTDataset,
    decode_nmnist,
    read_nmnist_bin,
)
from .registry import (
    DATASET_NAMES,
    DATASETS,
    DatasetInfo,
    canonical_name,
    dataset_info,
    load_dataset,
    resolve_data_dir,
)
from .selection import round_robin_order
from .sequences import (
    PERMUTATION_SEED,
    SEQUENCE_LAYOUTS,
    SequenceDataset,
    load_sequential_mnist,
    pixel_permutation,
)
from .stats import DatasetMoments, dataset_moments
from .validation import SPLITS

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "DATASET_NAMES",
    "DEFAULT_N_FRAMES",
    "EVENT_DTYPE",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "NMNIST_SENSOR_SIZE",
    "PERMUTATION_SEED",
    "SEQUENCE_LAYOUTS",
    "SPLITS",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageArrayDataset",
    "DatasetMoments",
    "MissingDependencyError",
    "NMNISTDataset",
    "SequenceDataset",
    "canonical_name",
    "dataset_info",
    "decode_nmnist",
    "download_dataset",
    "download_url",
    "events_to_frames",
    "dataset_moments",
    "load_cifar10",
    "load_dataset",
    "load_idx_dataset",
    "load_sequential_mnist",
    "manual_instructions",
    "parse_idx",
    "pixel_permutation",
    "read_cifar_batch",
    "read_idx",
    "read_nmnist_bin",
    "resolve_data_dir",
    "round_robin_order",
]


def __getattr__(name: str) -> object:
    """The deprecated names of :mod:`spikeinit.data.stats` (``input_statistics``,
    ``InputStatistics``), with a ``DeprecationWarning``."""
    if name in _stats.DEPRECATED:
        return getattr(_stats, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
