"""CIFAR-10: pickle batches, ImageFolder folders and tarballs, caching, corrupt inputs."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeinit.data import (
    CIFAR10_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    MissingDependencyError,
    load_cifar10,
    load_dataset,
    read_cifar_batch,
)


def write_batch(path: Path, images: np.ndarray, labels: list[int], bytes_keys: bool) -> None:
    """A CIFAR python batch; ``bytes_keys`` mimics the original Python 2 pickles."""
    batch = {"batch_label": "synthetic", "labels": labels, "data": images.reshape(len(labels), -1)}
    if bytes_keys:
        batch = {k.encode(): v for k, v in batch.items()}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def make_pickle_dir(root: Path, per_batch: int = 6, bytes_keys: bool = False) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [(k + i) % 10 for i in range(per_batch)]
        write_batch(folder / name, images, labels, bytes_keys)
        out[name] = (images, labels)
    meta = {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return out


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_pickle_layout(tmp_path: Path, bytes_keys: bool) -> None:
    batches = make_pickle_dir(tmp_path, bytes_keys=bytes_keys)
    train = load_dataset("cifar10", tmp_path, "train")
    assert len(train) == 30 and train.sample_shape == (3, 32, 32)
    assert train.classes == list(CIFAR10_CLASSES)
    expected = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert torch.equal(train.images, torch.from_numpy(expected))
    test = load_dataset("cifar10", tmp_path, "test", limit=4)
    assert test.labels.tolist() == batches["test_batch"][1][:4]
    x, y = test[1]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and y.dtype == torch.int64
    np.testing.assert_allclose(x.numpy(), batches["test_batch"][0][1] / 255.0, atol=1e-7)


def test_pickle_limit_reads_first_in_file_order(tmp_path: Path) -> None:
    batches = make_pickle_dir(tmp_path)
    ds = load_dataset("cifar10", tmp_path, "train", limit=8)
    first = np.concatenate([batches["data_batch_1"][0], batches["data_batch_2"][0][:2]])
    assert torch.equal(ds.images, torch.from_numpy(first))


def test_pickle_tarball_read_in_place(tmp_path: Path) -> None:
    batches = make_pickle_dir(tmp_path / "src")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path, "test")
    assert torch.equal(ds.images, torch.from_numpy(batches["test_batch"][0]))


def test_incomplete_or_corrupt_batches(tmp_path: Path) -> None:
    make_pickle_dir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing.*data_batch_3"):
        load_dataset("cifar10", tmp_path, "train")
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(X")  # truncated pickle
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset("cifar10", tmp_path, "test")


def test_unsafe_pickle_is_refused() -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(DatasetError, match="refusing to load builtins.print"):
        read_cifar_batch(pickle.dumps({"data": Evil()}), "evil")


def test_bad_batch_shapes() -> None:
    data = pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    with pytest.raises(DatasetError, match=r"uint8 \(N, 3072\)"):
        read_cifar_batch(data, "b")
    data = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]})
    with pytest.raises(DatasetError, match="labels outside"):
        read_cifar_batch(data, "b")


# ----------------------------------------------------------------------------- image folders

needs_pillow = pytest.mark.skipif(
    importlib.util.find_spec("PIL") is None, reason="Pillow (extra 'images') is needed"
)

CLASSES = sorted(CIFAR10_CLASSES)
PER_CLASS = {"train": 3, "test": 2}


def make_image_tree(root: Path, fmt: str = "PNG") -> dict[tuple[str, str, int], np.ndarray]:
    """root/cifar10-jpeg/{train,test}/<class>/<i>.png with lossless random images."""
    from PIL import Image

    rng = np.random.default_rng(1)
    pixels = {}
    for split, n in PER_CLASS.items():
        for cls in CLASSES:
            folder = root / "cifar10-jpeg" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{i:04d}.{fmt.lower()}", fmt)
                pixels[(split, cls, i)] = arr
    return pixels


def make_tarball(root: Path) -> Path:
    path = root / "cifar10-jpeg.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(root / "src" / "cifar10-jpeg", arcname="cifar10-jpeg")
    return path


@pytest.fixture()
def image_tree(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, make_image_tree(tmp_path)


@needs_pillow
def test_image_folder_stratified_round_robin(image_tree) -> None:
    root, pixels = image_tree
    ds = load_dataset("cifar10", root, "train")
    assert len(ds) == 30 and ds.classes == CLASSES
    assert ds.labels.tolist() == list(range(10)) * 3  # round-robin over sorted classes
    np.testing.assert_array_equal(
        ds.images[11].permute(1, 2, 0).numpy(), pixels[("train", CLASSES[1], 1)]
    )
    small = load_dataset("cifar10", root, "test", limit=12)
    assert small.labels.tolist() == list(range(10)) + [0, 1]


@needs_pillow
def test_image_tarball_equals_folder(tmp_path: Path) -> None:
    make_image_tree(tmp_path / "src")
    make_tarball(tmp_path)
    from_tar = load_dataset("cifar10", tmp_path, "test", limit=13)
    from_dir = load_dataset("cifar10", tmp_path / "src", "test", limit=13)
    assert torch.equal(from_tar.images, from_dir.images)
    assert torch.equal(from_tar.labels, from_dir.labels)
    # the tarball's path may also be given directly
    direct = load_cifar10(tmp_path / "cifar10-jpeg.tar.gz", "test", limit=13)
    assert torch.equal(direct.images, from_dir.images)


@needs_pillow
def test_layout_choice(tmp_path: Path) -> None:
    make_pickle_dir(tmp_path)
    make_image_tree(tmp_path)
    assert len(load_dataset("cifar10", tmp_path, "test")) == 6  # pickle preferred
    assert len(load_dataset("cifar10", tmp_path, "test", layout="images")) == 20
    with pytest.raises(ValueError, match="layout must be one of"):
        load_dataset("cifar10", tmp_path, "test", layout="zip")


@needs_pillow
def test_cache_roundtrip_and_invalidation(tmp_path: Path) -> None:
    make_image_tree(tmp_path / "src")
    tar = make_tarball(tmp_path)
    cache = tmp_path / "cache"
    first = load_dataset("cifar10", tmp_path, "train", limit=15, cache_dir=cache)
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.part"))
    second = load_dataset("cifar10", tmp_path, "train", limit=15, cache_dir=cache)
    assert torch.equal(first.images, second.images) and second.classes == CLASSES
    load_dataset("cifar10", tmp_path, "train", limit=16, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2  # different limit, different entry
    files[0].write_bytes(b"corrupt cache")  # unreadable cache entries are rebuilt
    again = load_dataset("cifar10", tmp_path, "train", limit=15, cache_dir=cache)
    assert torch.equal(first.images, again.images)
    tar.write_bytes(tar.read_bytes()[:200])  # a changed source is not served from cache
    with pytest.raises(DatasetError, match="cifar10-jpeg.tar.gz"):
        load_dataset("cifar10", tmp_path, "train", limit=15, cache_dir=cache)


@needs_pillow
def test_corrupt_image_and_tarball(tmp_path: Path) -> None:
    make_image_tree(tmp_path / "src")
    bad = tmp_path / "src" / "cifar10-jpeg" / "test" / "cat" / "0000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError, match="cat/0000.png: cannot decode image"):
        load_dataset("cifar10", tmp_path / "src", "test")
    tar = make_tarball(tmp_path)
    with pytest.raises(DatasetError, match="cat/0000.png: cannot decode image"):
        load_dataset("cifar10", tmp_path, "test")
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        load_dataset("cifar10", tmp_path, "train")


@needs_pillow
@pytest.mark.parametrize("where", [0.3, 0.7, 0.9])
def test_flipped_bytes_anywhere_are_a_corrupt_archive(tmp_path: Path, where: float) -> None:
    """Damage in a part of the tarball that the split's images do not use went unnoticed (the
    gzip CRC is checked only at the stream's end); it is reported, whatever the split."""
    make_image_tree(tmp_path / "src")
    tar = make_tarball(tmp_path)
    raw = bytearray(tar.read_bytes())
    at = int(len(raw) * where)
    raw[at] ^= 0xFF
    tar.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset("cifar10", tmp_path, "test")


def test_a_small_pickle_that_expands_is_refused_quickly() -> None:
    """Nested lists that share references: a few KB that np.asarray would blow up."""
    row = [0] * 3072
    rows = [row] * 1000
    data = pickle.dumps({"data": [rows] * 1000, "labels": [0] * 1000})
    assert len(data) < 40_000
    with pytest.raises(DatasetError, match="'data' must be a uint8 array"):
        read_cifar_batch(data, "b")
    data = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [[rows] * 1000] * 2})
    with pytest.raises(DatasetError, match="'labels' must be 2 integers"):
        read_cifar_batch(data, "b")


@needs_pillow
def test_wrong_size_and_class_count(tmp_path: Path) -> None:
    from PIL import Image

    make_image_tree(tmp_path)
    odd = tmp_path / "cifar10-jpeg" / "train" / "dog" / "0001.png"
    Image.new("RGB", (28, 28)).save(odd, "PNG")
    with pytest.raises(DatasetError, match="28x28, expected 32x32"):
        load_dataset("cifar10", tmp_path, "train")
    (tmp_path / "cifar10-jpeg" / "test" / "unicorn").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "cifar10-jpeg" / "test" / "unicorn" / "a.png")
    with pytest.raises(DatasetError, match="expected 10 class folders, found 11"):
        load_dataset("cifar10", tmp_path, "test")


def test_missing_cifar_lists_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", tmp_path, "test")
    text = str(info.value)
    for part in ("cifar-10-batches-py", "test_batch", "cifar-10-python.tar.gz",
                 "cifar10-jpeg.tar.gz", "cifar10-jpeg/test/<class>"):  # fmt: skip
        assert part in text


def test_missing_pillow_gives_clear_error(tmp_path: Path, monkeypatch) -> None:
    for cls in CLASSES:
        folder = tmp_path / "cifar10-jpeg" / "test" / cls
        folder.mkdir(parents=True)
        (folder / "0.jpg").write_bytes(b"not decoded")
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `import PIL` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'spikeinit\[images\]'") as info:
        load_dataset("cifar10", tmp_path, "test")
    assert isinstance(info.value, ImportError) and isinstance(info.value, DatasetError)
