"""``load_dataset``: one entry point for every supported dataset."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from spikeinit.engine import settings
from spikeinit.errors import InvalidArgumentError

from .cifar import CIFAR10_CLASSES, CIFAR_LAYOUTS, load_cifar10
from .download import download_dataset, manual_instructions
from .errors import DatasetError, DatasetNotFoundError
from .idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_idx_dataset
from .nmnist import DEFAULT_N_FRAMES, NMNIST_BACKENDS, NMNISTDataset
from .sequences import SEQUENCE_LAYOUTS, load_sequential_mnist
from .validation import check_limit, check_positive_int, check_split

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "ENV_DATA_DIR",
    "DatasetInfo",
    "canonical_name",
    "dataset_info",
    "load_dataset",
    "resolve_data_dir",
]

ENV_DATA_DIR = settings.DATA_DIR.variable


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset (no files needed).

    ``sample_shape`` is the shape of one input per time step, ``(C, H, W)``; event datasets
    return ``(T, C, H, W)`` with ``T = n_frames``. Sequence datasets (sequential MNIST) have
    their own number of time steps ``steps`` (``None`` for the others) and ``sample_shape``
    ``(features,)``: they return ``(T, features)``.

    Example:
        >>> info = dataset_info("cifar10")
        >>> info.display_name, info.sample_shape, info.n_classes, info.n_train
        ('CIFAR-10', (3, 32, 32), 10, 50000)
    """

    name: str
    display_name: str
    sample_shape: tuple[int, ...]
    classes: tuple[str, ...]
    n_train: int
    n_test: int
    event_based: bool
    downloadable: bool
    steps: int | None = None

    @property
    def sequential(self) -> bool:
        """Whether the time axis is the data's own (a sequence dataset, ``steps`` set)."""
        return self.steps is not None

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", "MNIST", (1, 28, 28), MNIST_CLASSES, 60000, 10000, False, True),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "Fashion-MNIST",
        (1, 28, 28),
        FASHION_MNIST_CLASSES,
        60000,
        10000,
        False,
        True,
    ),
    "cifar10": DatasetInfo(
        "cifar10", "CIFAR-10", (3, 32, 32), CIFAR10_CLASSES, 50000, 10000, False, True
    ),
    "nmnist": DatasetInfo(
        "nmnist", "N-MNIST", (2, 34, 34), MNIST_CLASSES, 60000, 10000, True, False
    ),
    "smnist-rows": DatasetInfo(
        "smnist-rows", "Sequential MNIST (rows)", (SEQUENCE_LAYOUTS["smnist-rows"][1],),
        MNIST_CLASSES, 60000, 10000, False, True, steps=SEQUENCE_LAYOUTS["smnist-rows"][0],
    ),
    "smnist-pixels": DatasetInfo(
        "smnist-pixels", "Sequential MNIST (pixels)", (SEQUENCE_LAYOUTS["smnist-pixels"][1],),
        MNIST_CLASSES, 60000, 10000, False, True, steps=SEQUENCE_LAYOUTS["smnist-pixels"][0],
    ),
    "psmnist": DatasetInfo(
        "psmnist", "Permuted sequential MNIST (pixels)", (SEQUENCE_LAYOUTS["psmnist"][1],),
        MNIST_CLASSES, 60000, 10000, False, True, steps=SEQUENCE_LAYOUTS["psmnist"][0],
    ),
}
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "n-mnist": "nmnist",
    "n_mnist": "nmnist",
    "smnist_rows": "smnist-rows",
    "smnist_pixels": "smnist-pixels",
    "ps-mnist": "psmnist",
    "pmnist": "psmnist",
}


def canonical_name(name: str) -> str:
    """Canonical dataset name (case-insensitive; aliases like ``"cifar-10"`` accepted).

    Raises:
        ValueError: unknown name (the message lists the allowed names).

    Example:
        >>> canonical_name("FMNIST"), canonical_name("CIFAR-10"), canonical_name("n_mnist")
        ('fashion-mnist', 'cifar10', 'nmnist')
    """
    key = name.strip().lower() if isinstance(name, str) else None
    key = _ALIASES.get(key, key) if key is not None else None
    if key not in DATASETS:
        allowed = ", ".join(repr(n) for n in DATASET_NAMES)
        raise InvalidArgumentError(f"name must be one of {allowed} (got {name!r})")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """:class:`DatasetInfo` for ``name`` (see :func:`canonical_name`).

    Example:
        >>> dataset_info("n-mnist").event_based, dataset_info("mnist").classes[:3]
        (True, ('0', '1', '2'))
    """
    return DATASETS[canonical_name(name)]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir`` as a :class:`Path`, or ``$SPIKEINIT_DATA_DIR`` when ``data_dir`` is None.

    Raises:
        ValueError: neither is given.

    Example:
        >>> import os
        >>> resolve_data_dir("data/mnist").parts
        ('data', 'mnist')
        >>> os.environ["SPIKEINIT_DATA_DIR"] = "/srv/data"
        >>> str(resolve_data_dir(None))
        '/srv/data'
        >>> del os.environ["SPIKEINIT_DATA_DIR"]
    """
    if data_dir is None:
        data_dir = settings.DATA_DIR.value()
    if data_dir is None:
        raise InvalidArgumentError(
            f"data_dir is required (or set the {ENV_DATA_DIR} environment variable)")
    return Path(data_dir).expanduser()


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None,
    split: str = "train",
    limit: int | None = None,
    download: bool = False,
    n_frames: int | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    layout: str = "auto",
    backend: str = "auto",
    base_url: str | None = None,
    timeout: float | None = None,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Load a dataset split as a map-style :class:`torch.utils.data.Dataset`.

    Items are ``(input, label)`` with ``label`` a 0-d int64 tensor and ``input`` float32:
    ``(C, H, W)`` in [0, 1] for ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``
    (:class:`~spikeinit.data.ImageArrayDataset`), event counts ``(T, 2, 34, 34)`` for
    ``"nmnist"`` (:class:`~spikeinit.data.NMNISTDataset`), and sequences ``(T, features)`` in
    [0, 1] for the sequential MNIST datasets ``"smnist-rows"`` ``(28, 28)``,
    ``"smnist-pixels"`` and ``"psmnist"`` ``(784, 1)``
    (:class:`~spikeinit.data.SequenceDataset`, built from the MNIST files).

    Args:
        name: a name of :data:`DATASET_NAMES` (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``,
            ``"nmnist"``, ``"smnist-rows"``, ``"smnist-pixels"``, ``"psmnist"``).
        data_dir: root folder (see each loader for the layouts searched); ``None`` uses
            ``$SPIKEINIT_DATA_DIR``.
        split: ``"train"`` or ``"test"``.
        limit: keep ``limit`` samples (>= 1): the first ones in file order for IDX files and
            CIFAR pickle batches; a deterministic class-balanced (round-robin) subset for
            image folders and N-MNIST, where only the kept files are decoded.
        download: if the files are missing, fetch the official ones (MNIST, Fashion-MNIST,
            CIFAR-10 python batches; MNIST's for the sequential MNIST datasets) into
            ``data_dir``; N-MNIST cannot be downloaded.
        n_frames: N-MNIST time bins ``T`` (default 10). Static datasets ignore it (their
            inputs are single images; the model's encoder decides how to present them).
        cache_dir: cache decoded CIFAR-10 images (image layouts) as ``.npz`` here.
        layout: CIFAR-10 layout: ``"auto"``, ``"pickle"`` or ``"images"``.
        backend: N-MNIST reader: ``"auto"`` (tonic if installed), ``"numpy"``, ``"tonic"``.
        base_url: passed to :func:`~spikeinit.data.download_dataset`.
        timeout: passed to :func:`~spikeinit.data.download_dataset`.
        log: passed to :func:`~spikeinit.data.download_dataset`.

    Raises:
        ValueError: unknown ``name``/``split``/``layout``/``backend``, ``limit < 1``,
            ``n_frames < 1``.
        DatasetNotFoundError: files missing and ``download=False`` (lists expected files).
        DatasetError: corrupt/truncated files, or a failed download (with manual steps).

    Example:
        A four-image MNIST in the canonical IDX files:

        >>> import gzip, tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> def idx(array):  # IDX: 0, 0, type 8 (uint8), ndim, big-endian sizes, then the bytes
        ...     shape = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
        ...     return gzip.compress(bytes([0, 0, 8, array.ndim]) + shape + array.tobytes())
        >>> root = Path(tempfile.mkdtemp()) / "data"
        >>> (root / "mnist").mkdir(parents=True)
        >>> for split in ("train", "t10k"):
        ...     images = np.zeros((4, 28, 28), np.uint8)
        ...     _ = (root / "mnist" / f"{split}-images-idx3-ubyte.gz").write_bytes(idx(images))
        ...     labels = np.arange(4, dtype=np.uint8)
        ...     _ = (root / "mnist" / f"{split}-labels-idx1-ubyte.gz").write_bytes(idx(labels))
        >>> train = load_dataset("mnist", root, split="train", limit=3)
        >>> x, y = train[2]
        >>> len(train), tuple(x.shape), x.dtype, int(y)
        (3, (1, 28, 28), torch.float32, 2)
    """
    name = canonical_name(name)
    split = check_split(split)
    limit = check_limit(limit)
    frames = DEFAULT_N_FRAMES if n_frames is None else check_positive_int("n_frames", n_frames)
    if layout not in CIFAR_LAYOUTS:
        raise InvalidArgumentError(f"layout must be one of {CIFAR_LAYOUTS} (got {layout!r})")
    if backend not in NMNIST_BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {NMNIST_BACKENDS} (got {backend!r})")
    root = resolve_data_dir(data_dir)

    def load() -> Dataset:
        if name in ("mnist", "fashion-mnist"):
            return load_idx_dataset(name, root, split, limit)
        if name in SEQUENCE_LAYOUTS:
            return load_sequential_mnist(name, root, split, limit)
        if name == "cifar10":
            return load_cifar10(root, split, limit, layout=layout, cache_dir=cache_dir)
        return NMNISTDataset(root, split, n_frames=frames, limit=limit, backend=backend)

    try:
        return load()
    except DatasetNotFoundError as missing:
        if not download:
            raise
        if name == "nmnist":
            raise DatasetError(manual_instructions("nmnist", root)) from missing
        if name == "cifar10" and layout == "images":
            raise DatasetError(
                f"{missing} (download=True fetches the python batches; use layout='auto' or "
                "'pickle' to use them)"
            ) from missing
    files = "mnist" if name in SEQUENCE_LAYOUTS else name
    download_dataset(files, root, base_url=base_url, timeout=timeout, log=log)
    return load()
