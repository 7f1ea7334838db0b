"""CIFAR-10: official python pickle batches, or an ImageFolder (folder or tarball).

Layouts searched under ``data_dir`` (``layout="auto"`` tries them in this order):

1. ``pickle``: ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (also in
   ``cifar10/`` or ``CIFAR10/``, or ``data_dir`` itself), else the official
   ``cifar-10-python.tar.gz`` read in place;
2. ``images``: ``{cifar10-jpeg,cifar10,CIFAR10,cifar-10,.}/{train,test}/<class>/*.jpg|png``,
   else a tarball ``cifar10-jpeg.tar.gz`` (``.tgz``/``.tar``) with the same tree inside.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from spikeinit.errors import InvalidArgumentError

from .errors import DatasetError, DatasetNotFoundError
from .image_dataset import ImageArrayDataset
from .imagefolder import load_image_folder, load_image_tar
from .validation import check_limit, check_split

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR_LAYOUTS",
    "find_cifar10",
    "load_cifar10",
    "read_cifar_batch",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR_LAYOUTS: tuple[str, ...] = ("auto", "pickle", "images")

BATCHES_DIR = "cifar-10-batches-py"
PICKLE_TARBALL = "cifar-10-python.tar.gz"
IMAGE_TARBALLS: tuple[str, ...] = ("cifar10-jpeg.tar.gz", "cifar10-jpeg.tgz", "cifar10-jpeg.tar")
IMAGE_ROOTS: tuple[str, ...] = ("cifar10-jpeg", "cifar10", "CIFAR10", "cifar-10", ".")
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _batch_names(split: str) -> tuple[str, ...]:
    if split == "train":
        return tuple(f"data_batch_{i}" for i in range(1, 6))
    return ("test_batch",)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays (CIFAR batches need nothing else)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":  # numpy >= 2 renamed it; avoid the warning
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _unpickle(data: bytes, source: str) -> dict[str, Any]:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # pickle raises many types on corrupt input
        raise DatasetError(f"{source}: not a valid CIFAR pickle batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{source}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_cifar_batch(data: bytes, source: str = "<batch>") -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickle batch to images uint8 ``(N, 3, 32, 32)`` and labels int64 ``(N,)``.

    Raises:
        DatasetError: not a pickle, missing keys, wrong shapes, or labels outside 0..9.

    Example:
        >>> import pickle
        >>> import numpy as np
        >>> batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [6, 9]}
        >>> images, labels = read_cifar_batch(pickle.dumps(batch))
        >>> images.shape, labels.tolist()
        ((2, 3, 32, 32), [6, 9])
    """
    batch = _unpickle(data, source)
    if "data" not in batch or "labels" not in batch:
        raise DatasetError(f"{source}: batch lacks 'data'/'labels' (keys: {sorted(batch)})")
    images, raw_labels = batch["data"], batch["labels"]
    # checked before any conversion: a few KB of nested lists that share references would
    # expand into billions of elements in np.asarray
    if not isinstance(images, np.ndarray):
        raise DatasetError(f"{source}: 'data' must be a uint8 array (N, 3072), got "
                           f"{type(images).__name__}")
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"{source}: 'data' must be uint8 (N, 3072), got {images.dtype} {images.shape}"
        )
    if isinstance(raw_labels, (list, tuple)):
        if len(raw_labels) != images.shape[0] or not all(
                isinstance(value, int) for value in raw_labels):
            raise DatasetError(f"{source}: 'labels' must be {images.shape[0]} integers (one per "
                               "image)")
    elif not isinstance(raw_labels, np.ndarray):
        raise DatasetError(f"{source}: 'labels' must be a list of integers, got "
                           f"{type(raw_labels).__name__}")
    labels = np.asarray(raw_labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(f"{source}: {images.shape[0]} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{source}: labels outside 0..9")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _meta_classes(data: bytes, source: str) -> list[str]:
    names = _unpickle(data, source).get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        return list(CIFAR10_CLASSES)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _concat(parts: list[tuple[np.ndarray, np.ndarray]], limit: int | None) -> tuple:
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


def _load_pickle_dir(folder: Path, split: str, limit: int | None) -> ImageArrayDataset:
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for name in _batch_names(split):
        path = folder / name
        try:
            parts.append(read_cifar_batch(path.read_bytes(), str(path)))
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read file ({exc})") from exc
        if limit is not None and sum(len(p[1]) for p in parts) >= limit:
            break
    meta = folder / "batches.meta"
    classes = (
        _meta_classes(meta.read_bytes(), str(meta)) if meta.is_file() else list(CIFAR10_CLASSES)
    )
    images, labels = _concat(parts, limit)
    return ImageArrayDataset(images, labels, classes, source=str(folder))


def _load_pickle_tar(tar_path: Path, split: str, limit: int | None) -> ImageArrayDataset:
    wanted = {f"{BATCHES_DIR}/{n}": n for n in _batch_names(split)}
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    classes = list(CIFAR10_CLASSES)
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            for member in tf:
                name = member.name.removeprefix("./")
                if not member.isfile() or name not in (*wanted, f"{BATCHES_DIR}/batches.meta"):
                    continue
                src = tf.extractfile(member)
                data = src.read() if src is not None else b""
                if name.endswith("batches.meta"):
                    classes = _meta_classes(data, f"{tar_path}:{name}")
                else:
                    found[wanted[name]] = read_cifar_batch(data, f"{tar_path}:{name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(f"{tar_path}: corrupt or truncated CIFAR-10 archive ({exc})") from exc
    missing = [n for n in _batch_names(split) if n not in found]
    if missing:
        raise DatasetError(f"{tar_path}: archive lacks {BATCHES_DIR}/{', '.join(missing)}")
    images, labels = _concat([found[n] for n in _batch_names(split)], limit)
    return ImageArrayDataset(images, labels, classes, source=str(tar_path))


def _pickle_dirs(root: Path) -> list[Path]:
    return [
        root / BATCHES_DIR,
        root / "cifar10" / BATCHES_DIR,
        root / "CIFAR10" / BATCHES_DIR,
        root,
    ]


def find_cifar10(data_dir: str | Path, split: str, layout: str = "auto") -> tuple[str, Path]:
    """Locate CIFAR-10 for ``split``: returns ``(kind, path)``.

    ``kind`` is ``"pickle-dir"``, ``"pickle-tar"``, ``"image-dir"`` (path = ImageFolder root
    holding ``split/``) or ``"image-tar"``.

    Raises:
        DatasetNotFoundError: nothing usable found (lists every layout and path tried).
        DatasetError: a batches folder exists but lacks some batch files.
    """
    check_split(split)
    if layout not in CIFAR_LAYOUTS:
        raise InvalidArgumentError(f"layout must be one of {CIFAR_LAYOUTS} (got {layout!r})")
    root = Path(data_dir)
    if root.is_file() and root.name.endswith(_TAR_SUFFIXES):
        kind = "pickle-tar" if root.name == PICKLE_TARBALL else "image-tar"
        return kind, root
    if layout in ("auto", "pickle"):
        for folder in _pickle_dirs(root):
            present = [n for n in _batch_names(split) if (folder / n).is_file()]
            if len(present) == len(_batch_names(split)):
                return "pickle-dir", folder
            if present:
                missing = [n for n in _batch_names(split) if n not in present]
                raise DatasetError(f"{folder}: incomplete CIFAR-10 batches, missing {missing}")
        if (root / PICKLE_TARBALL).is_file():
            return "pickle-tar", root / PICKLE_TARBALL
    if layout in ("auto", "images"):
        for sub in IMAGE_ROOTS:
            if (root / sub / split).is_dir():
                return "image-dir", root if sub == "." else root / sub
        for name in IMAGE_TARBALLS:
            if (root / name).is_file():
                return "image-tar", root / name
    raise DatasetNotFoundError(
        f"CIFAR-10 {split} split not found under {data_dir}. Expected one of: "
        f"{root / BATCHES_DIR}/{{{','.join(_batch_names(split))}}} (python batches); "
        f"{root / PICKLE_TARBALL}; an ImageFolder {root}/cifar10-jpeg/{split}/<class>/*.jpg|png; "
        f"or the tarball {root / IMAGE_TARBALLS[0]} (top folder cifar10-jpeg/). "
        "Pass download=True (--download) to fetch the python batches."
    )


def load_cifar10(
    data_dir: str | Path,
    split: str = "train",
    limit: int | None = None,
    *,
    layout: str = "auto",
    cache_dir: str | Path | None = None,
) -> ImageArrayDataset:
    """Load CIFAR-10 as :class:`ImageArrayDataset` of ``(3, 32, 32)`` images in [0, 1].

    Args:
        data_dir: folder holding one of the layouts above (or the path of a tarball).
        split: ``"train"`` or ``"test"``.
        limit: pickle batches: first ``limit`` in file order; image folders/tarballs: a
            class-balanced round-robin subset of ``limit`` images (only those are decoded).
        layout: ``"auto"``, ``"pickle"`` or ``"images"``.
        cache_dir: for image layouts, cache decoded arrays as ``.npz`` here.

    Example:
        The python layout with a one-image test batch:

        >>> import pickle, tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "cifar-10-batches-py").mkdir()
        >>> batch = {"data": np.full((1, 3072), 255, np.uint8), "labels": [3]}
        >>> _ = (root / "cifar-10-batches-py/test_batch").write_bytes(pickle.dumps(batch))
        >>> test = load_cifar10(root, "test")
        >>> len(test), test.classes[int(test[0][1])], float(test[0][0].min())
        (1, 'cat', 1.0)
    """
    limit = check_limit(limit)
    kind, path = find_cifar10(data_dir, split, layout)
    if kind == "pickle-dir":
        return _load_pickle_dir(path, split, limit)
    if kind == "pickle-tar":
        return _load_pickle_tar(path, split, limit)
    loader = load_image_folder if kind == "image-dir" else load_image_tar
    images, labels, classes = loader(
        path, split, limit, n_classes=10, size=(32, 32), cache_dir=cache_dir
    )
    return ImageArrayDataset(images, labels, classes, source=f"{path} ({split})")
