"""MNIST and Fashion-MNIST from IDX files (gzip-compressed or raw).

IDX layout: a 4-byte magic ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then the payload in C order. MNIST images have magic 2051 (uint8, 3 dims),
labels 2049 (uint8, 1 dim).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from spikeinit.errors import InvalidArgumentError

from .errors import DatasetError, DatasetNotFoundError, read_data_file
from .image_dataset import ImageArrayDataset
from .validation import check_limit, check_split

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDX_SUBDIRS",
    "MNIST_CLASSES",
    "find_idx_files",
    "idx_file_names",
    "load_idx_dataset",
    "parse_idx",
    "read_idx",
    "search_dirs",
]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
GZIP_MAGIC = b"\x1f\x8b"

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

#: Sub-folders of ``data_dir`` searched (in this order, then ``data_dir`` itself).
IDX_SUBDIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw", "FashionMNIST", "fashion_mnist"),
}
_DISPLAY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def _looks_like_idx(data: bytes) -> bool:
    return len(data) >= 4 and data[0] == 0 and data[1] == 0 and data[2] in IDX_DTYPES


def _read_maybe_gzip(path: Path) -> bytes:
    raw = read_data_file(path)
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except EOFError as exc:
            raise DatasetError(f"{path}: truncated gzip data ({exc})") from exc
        except (OSError, zlib.error) as exc:
            raise DatasetError(f"{path}: corrupt gzip data ({exc})") from exc
    if path.suffix == ".gz" and not _looks_like_idx(raw):
        raise DatasetError(
            f"{path}: not a gzip file (starts with {raw[:4]!r}); the file is corrupt or was "
            "saved incompletely"
        )
    return raw  # uncompressed (also accepted under a .gz name, as some browsers do that)


def parse_idx(
    data: bytes, source: str = "<bytes>", expected_magic: int | None = None
) -> np.ndarray:
    """Decode uncompressed IDX bytes into an array (native byte order).

    Args:
        data: the whole file content.
        source: name used in error messages.
        expected_magic: if given, the 4-byte magic must equal it (2051 images, 2049 labels).

    Raises:
        DatasetError: bad magic, unknown type, truncated header or payload, trailing bytes.

    Example:
        Magic ``0, 0, 0x08`` (uint8), 1 dimension, size 3, then the values:

        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]), expected_magic=2049)
        array([7, 8, 9], dtype=uint8)
    """
    if len(data) < 4:
        raise DatasetError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES or data[3] == 0:
        raise DatasetError(
            f"{source}: bad IDX magic 0x{magic:08x} ({magic}); not an IDX file "
            "(MNIST images have magic 2051, labels 2049)"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(f"{source}: wrong IDX magic {magic}, expected {expected_magic}")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{source}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header})"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims) * dtype.itemsize
    payload = len(data) - header
    if payload != expected:
        problem = "truncated" if payload < expected else "has trailing bytes"
        raise DatasetError(
            f"{source}: IDX file {problem}: header says dims {dims} = {expected} bytes of data, "
            f"file has {payload}"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header)
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected by content) or raw.

    Raises:
        DatasetError: file missing/unreadable, bad gzip, or invalid IDX content (see
            :func:`parse_idx`). The message names the file.

    Example:
        >>> import gzip, tempfile
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
        >>> _ = path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 4, 2])))
        >>> read_idx(path, expected_magic=2049).tolist()
        [4, 2]
    """
    path = Path(path)
    return parse_idx(_read_maybe_gzip(path), str(path), expected_magic)


def idx_file_names(split: str) -> tuple[str, str]:
    """Canonical (images, labels) file names without ``.gz`` for ``"train"`` or ``"test"``."""
    prefix = "train" if check_split(split) == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _candidates(stem: str) -> tuple[str, ...]:
    dotted = stem.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte (Kaggle copies)
    return (stem, f"{stem}.gz", dotted, f"{dotted}.gz")


def _find_in(folder: Path, stem: str) -> Path | None:
    for name in _candidates(stem):
        if (folder / name).is_file():
            return folder / name
    return None


def search_dirs(name: str, data_dir: str | Path) -> list[Path]:
    """Folders searched for ``name``'s IDX files, most specific first."""
    root = Path(data_dir)
    return [root / sub for sub in IDX_SUBDIRS[name]] + [root]


def find_idx_files(name: str, data_dir: str | Path, split: str) -> tuple[Path, Path]:
    """Locate the (images, labels) IDX files of ``name`` (``"mnist"``/``"fashion-mnist"``).

    Raises:
        DatasetError: when no searched folder holds both files; lists names and folders.
    """
    images_stem, labels_stem = idx_file_names(split)
    folders = search_dirs(name, data_dir)
    for folder in folders:
        images, labels = _find_in(folder, images_stem), _find_in(folder, labels_stem)
        if images is not None and labels is not None:
            return images, labels
    where = ", ".join(str(f) for f in folders)
    raise DatasetNotFoundError(
        f"{_DISPLAY[name]} {split} split not found under {data_dir}: expected the IDX files "
        f"{images_stem}.gz and {labels_stem}.gz (gzip-compressed or uncompressed) together "
        f"in one of: {where}. Put them in {folders[0]}/ or pass download=True "
        "(--download) to fetch them."
    )


def load_idx_dataset(
    name: str, data_dir: str | Path, split: str = "train", limit: int | None = None
) -> ImageArrayDataset:
    """Load MNIST or Fashion-MNIST as an :class:`ImageArrayDataset` of ``(1, 28, 28)`` images.

    ``limit`` keeps the first ``limit`` samples in file order. The files are searched in
    ``data_dir/<name>/`` and the other folders of :data:`IDX_SUBDIRS`, gzip-compressed or raw.

    Example:
        >>> import gzip, tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> def idx(array):  # IDX: 0, 0, type 8 (uint8), ndim, big-endian sizes, then the bytes
        ...     shape = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
        ...     return gzip.compress(bytes([0, 0, 8, array.ndim]) + shape + array.tobytes())
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "fashion-mnist").mkdir()
        >>> images = np.full((5, 28, 28), 255, np.uint8)
        >>> _ = (root / "fashion-mnist/t10k-images-idx3-ubyte.gz").write_bytes(idx(images))
        >>> labels = np.array([9, 0, 0, 3, 0], np.uint8)
        >>> _ = (root / "fashion-mnist/t10k-labels-idx1-ubyte.gz").write_bytes(idx(labels))
        >>> test = load_idx_dataset("fashion-mnist", root, "test")
        >>> len(test), test.classes[9], float(test[0][0].max())
        (5, 'Ankle boot', 1.0)
    """
    if name not in IDX_SUBDIRS:
        raise InvalidArgumentError(f"name must be one of {sorted(IDX_SUBDIRS)} (got {name!r})")
    limit = check_limit(limit)
    images_path, labels_path = find_idx_files(name, data_dir, split)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3:
        raise DatasetError(f"{images_path}: expected 3 dimensions (N, H, W), got {images.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= 10:
        raise DatasetError(f"{labels_path}: label {int(labels.max())} out of range 0..9")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    classes = MNIST_CLASSES if name == "mnist" else FASHION_MNIST_CLASSES
    return ImageArrayDataset(images[:, None], labels, classes, source=str(images_path.parent))
