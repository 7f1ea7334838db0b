"""ImageFolder layouts ``<root>/<split>/<class>/*.jpg|png``, on disk or inside a tarball.

Class index = position of the class folder name in sorted order (torchvision's rule).
Samples are ordered round-robin over classes (see :func:`round_robin_order`), so ``limit``
takes a deterministic, class-balanced subset and only those images are decoded. Tarballs
are read with :mod:`tarfile` without extracting anything to disk.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_file, load_cache, save_cache
from .errors import DatasetError, MissingDependencyError
from .selection import round_robin_order, take_first

__all__ = [
    "IMAGE_EXTENSIONS",
    "decode_image",
    "load_image_folder",
    "load_image_tar",
    "scan_image_folder",
    "scan_image_tar",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")

#: (images uint8 (N, C, H, W), labels int64 (N,), class names)
ImageArrays = tuple[np.ndarray, np.ndarray, list[str]]


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError(
            "reading image folders/tarballs needs Pillow: pip install 'spikeinit[images]' "
            "(or pip install pillow)"
        ) from exc
    return Image


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def decode_image(data: bytes, source: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode JPEG/PNG bytes to an RGB uint8 array ``(H, W, 3)``.

    Args:
        data: encoded image.
        source: file or member name for error messages.
        size: required ``(width, height)``; ``None`` accepts any size.

    Raises:
        DatasetError: undecodable/truncated image or wrong size.
        MissingDependencyError: Pillow is not installed.
    """
    image_mod = _pillow()
    try:
        with image_mod.open(io.BytesIO(data)) as img:
            img.load()
            if size is not None and img.size != tuple(size):
                raise DatasetError(
                    f"{source}: image is {img.size[0]}x{img.size[1]}, expected {size[0]}x{size[1]}"
                )
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError, image_mod.DecompressionBombError) as exc:
        raise DatasetError(f"{source}: cannot decode image ({exc})") from exc


def _class_index(class_names: list[str], source: str, n_classes: int | None) -> dict[str, int]:
    classes = sorted(set(class_names))
    if not classes:
        raise DatasetError(f"{source}: no <class>/<image> files ({'/'.join(IMAGE_EXTENSIONS)})")
    if n_classes is not None and len(classes) != n_classes:
        raise DatasetError(
            f"{source}: expected {n_classes} class folders, found {len(classes)}: {classes}"
        )
    return {c: i for i, c in enumerate(classes)}


def scan_image_folder(
    split_dir: str | Path, n_classes: int | None = None
) -> tuple[list[Path], np.ndarray, list[str]]:
    """List ``split_dir/<class>/<image>`` files: (paths, labels, class names), sorted."""
    split_dir = Path(split_dir)
    found = [
        (cls.name, f)
        for cls in sorted(p for p in split_dir.iterdir() if p.is_dir())
        for f in sorted(cls.iterdir())
        if f.is_file() and _is_image_name(f.name)
    ]
    index = _class_index([c for c, _ in found], str(split_dir), n_classes)
    labels = np.array([index[c] for c, _ in found], dtype=np.int64)
    return [f for _, f in found], labels, sorted(index, key=index.__getitem__)


def _check_read_to_end(tf: tarfile.TarFile, source: str) -> None:
    """Read the archive to its end, so that damage anywhere is found (a gzip stream checks
    its CRC only at its end, which the member listing never reaches), and raise
    :class:`DatasetError` when the listing stopped before the end: after a real end-of-archive
    marker nothing but zero padding follows."""
    fileobj = tf.fileobj
    if fileobj is None:
        return
    while chunk := fileobj.read(1 << 20):
        if chunk.strip(b"\0"):
            raise DatasetError(f"{source}: corrupt archive (an unreadable header before "
                               f"the end, near byte {tf.offset} of the archive)")


def scan_image_tar(
    tf: tarfile.TarFile, split: str, n_classes: int | None = None, source: str = "<tar>"
) -> tuple[list[tarfile.TarInfo], np.ndarray, list[str]]:
    """List members ``[top/]<split>/<class>/<image>`` of an open tarball, sorted by name."""
    found = []
    for member in tf:
        parts = member.name.removeprefix("./").split("/")
        if (
            member.isfile()
            and len(parts) in (3, 4)
            and parts[-3] == split
            and _is_image_name(parts[-1])
            and not any(p.startswith(".") for p in parts)
        ):
            found.append((parts[-2], member.name, member))
    _check_read_to_end(tf, source)
    found.sort(key=lambda item: (item[0], item[1]))
    index = _class_index([c for c, _, _ in found], f"{source} ({split}/)", n_classes)
    labels = np.array([index[c] for c, _, _ in found], dtype=np.int64)
    return [m for _, _, m in found], labels, sorted(index, key=index.__getitem__)


def _cached(
    cache_dir: str | Path | None,
    source: Path,
    tag: str,
    build: Callable[[], ImageArrays],
    **params: object,
) -> ImageArrays:
    if cache_dir is None:
        return build()
    path = cache_file(cache_dir, source, tag, **params)
    hit = load_cache(path)
    if hit is not None and {"images", "labels", "classes"} <= set(hit):
        return hit["images"], hit["labels"].astype(np.int64), [str(c) for c in hit["classes"]]
    images, labels, classes = build()
    save_cache(path, {"images": images, "labels": labels, "classes": np.array(classes)})
    return images, labels, classes


def _stack(decoded: list[np.ndarray]) -> np.ndarray:
    if not decoded:
        return np.zeros((0, 3, 0, 0), np.uint8)
    return np.ascontiguousarray(np.stack(decoded).transpose(0, 3, 1, 2))


def load_image_folder(
    root: str | Path,
    split: str,
    limit: int | None = None,
    *,
    n_classes: int | None = None,
    size: tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
) -> ImageArrays:
    """Decode ``root/<split>/<class>/*`` (round-robin over classes, first ``limit``)."""
    split_dir = Path(root) / split

    def build() -> ImageArrays:
        paths, labels, classes = scan_image_folder(split_dir, n_classes)
        keep = take_first(round_robin_order(labels), limit)
        decoded = []
        for i in keep:
            try:
                data = paths[i].read_bytes()
            except OSError as exc:
                raise DatasetError(f"{paths[i]}: cannot read file ({exc})") from exc
            decoded.append(decode_image(data, str(paths[i]), size))
        return _stack(decoded), labels[keep], classes

    return _cached(cache_dir, split_dir, "imagefolder", build, split=split, limit=limit, size=size)


def load_image_tar(
    tar_path: str | Path,
    split: str,
    limit: int | None = None,
    *,
    n_classes: int | None = None,
    size: tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
) -> ImageArrays:
    """Like :func:`load_image_folder` but reading members of a (gzip) tarball in place."""
    tar_path = Path(tar_path)

    def build() -> ImageArrays:
        try:
            with tarfile.open(tar_path, "r:*") as tf:
                members, labels, classes = scan_image_tar(tf, split, n_classes, str(tar_path))
                keep = take_first(round_robin_order(labels), limit)
                decoded: dict[int, np.ndarray] = {}
                # read in archive order: a compressed stream only seeks forward cheaply
                for i in sorted(keep, key=lambda j: members[j].offset_data):
                    src = tf.extractfile(members[i])
                    if src is None:
                        raise DatasetError(f"{tar_path}:{members[i].name}: not a regular file")
                    name = f"{tar_path}:{members[i].name}"
                    decoded[int(i)] = decode_image(src.read(), name, size)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DatasetError(f"{tar_path}: corrupt or truncated tarball ({exc})") from exc
        except OSError as exc:
            raise DatasetError(f"{tar_path}: cannot read tarball ({exc})") from exc
        return _stack([decoded[int(i)] for i in keep]), labels[keep], classes

    return _cached(cache_dir, tar_path, "imagetar", build, split=split, limit=limit, size=size)
