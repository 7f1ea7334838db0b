"""IDX reader (MNIST / Fashion-MNIST): layouts, validation, corrupt and missing files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeinit.data import (
    DatasetError,
    DatasetNotFoundError,
    load_dataset,
    parse_idx,
    read_idx,
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (type 0x08)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_split(folder: Path, split: str, n: int, compress: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if compress else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("sub", ["", "mnist", "MNIST/raw"])
def test_mnist_layouts(tmp_path: Path, compress: bool, sub: str) -> None:
    images, labels = write_split(tmp_path / sub, "test", 25, compress)
    ds = load_dataset("mnist", tmp_path, split="test")
    assert len(ds) == 25
    x, y = ds[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y) == labels[3]
    np.testing.assert_allclose(x[0].numpy(), images[3] / 255.0, rtol=0, atol=1e-7)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize("sub", ["fashion-mnist", "FashionMNIST/raw"])
def test_fashion_layouts_prefer_specific_folder(tmp_path: Path, sub: str) -> None:
    write_split(tmp_path, "train", 10, seed=1)  # loose MNIST-named files in the root
    images, _ = write_split(tmp_path / sub, "train", 12, seed=2)
    ds = load_dataset("fashion-mnist", tmp_path, split="train")
    assert len(ds) == 12 and ds.classes[0] == "T-shirt/top"
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))


def test_limit_takes_first_in_file_order(tmp_path: Path) -> None:
    images, labels = write_split(tmp_path, "train", 30)
    ds = load_dataset("mnist", tmp_path, limit=7)
    assert len(ds) == 7
    assert ds.labels.tolist() == labels[:7].tolist()
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images[:7]))
    assert len(load_dataset("mnist", tmp_path, limit=1000)) == 30


def test_gz_name_with_uncompressed_content_is_accepted(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "x-idx2-ubyte.gz"
    path.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(path), arr)


def test_parse_idx_other_dtypes() -> None:
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    data = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 3) + arr.tobytes()
    out = parse_idx(data)
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def _corruptions(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    gz = gzip.compress(good)
    cases = {
        "bad gzip": (b"\x1f\x8b" + b"garbage" * 10, "gzip"),
        "truncated gzip": (gz[: len(gz) // 2], "truncated gzip"),
        "not gzip": (b"PK\x03\x04 not a gzip at all", "not a gzip file"),
        "short payload": (gzip.compress(good[:-100]), "truncated"),
        "trailing bytes": (gzip.compress(good + b"\0\0"), "trailing"),
        "wrong magic": (gzip.compress(b"\x12\x34" + good[2:]), "magic"),
        "labels magic": (gzip.compress(idx_bytes(np.zeros(4, np.uint8))), "wrong IDX magic 2049"),
        "empty": (gzip.compress(b""), "too short"),
        "short header": (gzip.compress(good[:9]), "truncated IDX header"),
    }
    out = {}
    for name, (data, message) in cases.items():
        path = tmp_path / name.replace(" ", "_") / "t10k-images-idx3-ubyte.gz"
        path.parent.mkdir()
        path.write_bytes(data)
        write_idx(path.parent / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), True)
        out[name] = (path, message)
    return out


def test_corrupt_files_raise_dataset_error_naming_file(tmp_path: Path) -> None:
    for name, (path, message) in _corruptions(tmp_path).items():
        with pytest.raises(DatasetError) as info:
            load_dataset("mnist", path.parent, split="test")
        text = str(info.value)
        assert str(path) in text, name
        assert message.lower() in text.lower(), (name, text)
        assert not isinstance(info.value, DatasetNotFoundError), name


def test_count_mismatch_and_bad_labels(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8), True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), True)
    with pytest.raises(DatasetError, match="5 images but .* 4 labels"):
        load_dataset("mnist", tmp_path, split="test")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(5, 11, np.uint8), True)
    with pytest.raises(DatasetError, match="out of range"):
        load_dataset("mnist", tmp_path, split="test")


def test_missing_files_list_expected_names_and_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", tmp_path, split="train")
    text = str(info.value)
    for part in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 str(tmp_path / "mnist"), str(tmp_path / "MNIST" / "raw")):  # fmt: skip
        assert part in text
    assert isinstance(info.value, FileNotFoundError)  # also catchable as an OSError


def test_images_without_labels_is_missing(tmp_path: Path) -> None:
    write_idx(
        tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8), True
    )
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", tmp_path, split="test")
