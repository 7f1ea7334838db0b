"""``load_dataset`` API, argument validation, statistics, and real-data checks.

Real-data tests (marker ``data``) read ``../shared/data`` relative to the project root, or
``$SPIKEINIT_DATA_DIR``, and are skipped with a reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikeinit.data import (
    DATASET_NAMES,
    DatasetError,
    DatasetMoments,
    ImageArrayDataset,
    NMNISTDataset,
    canonical_name,
    dataset_info,
    dataset_moments,
    load_dataset,
    read_nmnist_bin,
    resolve_data_dir,
    round_robin_order,
)

# ------------------------------------------------------------------------ argument validation


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"name": "imagenet"}, "name must be one of 'mnist', 'fashion-mnist', 'cifar10', 'nmnist'"),
        ({"split": "val"}, "split must be one of 'train', 'test'"),
        ({"split": "Train"}, "split must be one of"),
        ({"limit": 0}, "limit must be an integer >= 1, got 0"),
        ({"limit": -5}, "limit must be an integer >= 1"),
        ({"limit": 2.5}, "limit must be an integer >= 1"),
        ({"limit": True}, "limit must be an integer >= 1"),
        ({"n_frames": 0}, "n_frames must be an integer >= 1, got 0"),
        ({"n_frames": "10"}, "n_frames must be an integer >= 1"),
        ({"layout": "lmdb"}, "layout must be one of"),
        ({"backend": "c"}, "backend must be one of"),
    ],
)
def test_invalid_arguments_raise_value_error(tmp_path: Path, kwargs: dict, pattern: str) -> None:
    args = {"name": "mnist", "data_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        load_dataset(**args)


def test_value_errors_are_not_dataset_errors() -> None:
    assert not issubclass(DatasetError, ValueError)  # "bad call" vs "bad data" stay distinct


def test_names_aliases_and_info() -> None:
    assert DATASET_NAMES == ("mnist", "fashion-mnist", "cifar10", "nmnist", "smnist-rows",
                             "smnist-pixels", "psmnist")
    assert canonical_name("CIFAR-10") == "cifar10"
    assert canonical_name("Fashion_MNIST") == "fashion-mnist"
    assert canonical_name("n-mnist") == "nmnist"
    with pytest.raises(ValueError, match="name must be one of"):
        canonical_name(None)  # type: ignore[arg-type]
    info = dataset_info("cifar10")
    assert info.sample_shape == (3, 32, 32) and info.n_classes == 10 and not info.event_based
    assert dataset_info("nmnist").event_based and not dataset_info("nmnist").downloadable
    assert canonical_name("pmnist") == "psmnist" and dataset_info("psmnist").steps == 784
    assert not dataset_info("mnist").sequential and dataset_info("smnist-rows").sequential


def test_resolve_data_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPIKEINIT_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="data_dir is required"):
        resolve_data_dir(None)
    monkeypatch.setenv("SPIKEINIT_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("x/y") == Path("x/y")


# ------------------------------------------------------------------------ helpers


@given(st.lists(st.integers(0, 5), max_size=60))
def test_round_robin_order_is_balanced_permutation(labels: list[int]) -> None:
    order = round_robin_order(labels)
    assert sorted(order.tolist()) == list(range(len(labels)))
    arr = np.asarray(labels, dtype=np.int64)
    for k in range(len(labels) + 1):
        counts = np.bincount(arr[order[:k]], minlength=6)
        available = np.bincount(arr, minlength=6)
        # every prefix: a class is behind another by at most one unless it ran out
        for a in range(6):
            for b in range(6):
                if counts[a] < available[a]:
                    assert counts[b] <= counts[a] + 1
    for cls in set(labels):  # original order kept within a class
        idx = order[arr[order] == cls]
        assert np.all(np.diff(idx) > 0)


def test_dataset_moments_on_tensor_and_image_datasets() -> None:
    images = np.zeros((4, 1, 2, 2), np.uint8)
    images[0] = 255
    images[1, 0, 0, 0] = 255
    ds = ImageArrayDataset(images, [0, 1, 2, 3], ["a", "b", "c", "d"])
    stats = dataset_moments(ds)
    assert isinstance(stats, DatasetMoments)
    assert stats.mean == pytest.approx(5 / 16) and stats.second_moment == pytest.approx(5 / 16)
    assert stats.variance == pytest.approx(5 / 16 - (5 / 16) ** 2)
    x = torch.tensor([[1.0, 3.0], [2.0, 2.0], [100.0, 100.0]])
    generic = torch.utils.data.TensorDataset(x, torch.zeros(3))
    mean, second = dataset_moments(generic, n=2)
    assert mean == pytest.approx(2.0) and second == pytest.approx((1 + 9 + 4 + 4) / 4)
    as_float = torch.utils.data.TensorDataset(*ds.as_tensors())
    assert dataset_moments(as_float) == pytest.approx(stats)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        dataset_moments(ds, n=0)
    with pytest.raises(ValueError, match="non-empty"):
        dataset_moments(torch.utils.data.TensorDataset(torch.zeros(0, 2)))


# ------------------------------------------------------------------------ real data


def _real_data_dir() -> Path:
    env = os.environ.get("SPIKEINIT_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def real_data() -> Path:
    root = _real_data_dir()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set SPIKEINIT_DATA_DIR)")
    return root


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.data
def test_real_mnist_test_split(real_data: Path) -> None:
    _need(real_data / "mnist")
    ds = load_dataset("mnist", real_data, "test")
    assert isinstance(ds, ImageArrayDataset)
    assert len(ds) == 10000 and ds.images.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.labels.numpy(), minlength=10).tolist() == MNIST_TEST_COUNTS
    assert ds.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the famous first test digits
    stats = dataset_moments(ds, n=None)
    assert stats.mean == pytest.approx(0.1325, abs=2e-3)  # MNIST test mean / std 0.1325 / 0.3105
    assert stats.variance == pytest.approx(0.3105**2, abs=2e-3)
    same = load_dataset("mnist", real_data / "mnist", "test", limit=3)  # folder given directly
    assert torch.equal(same.images, ds.images[:3])


@pytest.mark.data
def test_real_fashion_mnist(real_data: Path) -> None:
    _need(real_data / "fashion-mnist")
    ds = load_dataset("fashion-mnist", real_data, "test")
    assert len(ds) == 10000 and ds.sample_shape == (1, 28, 28)
    assert np.bincount(ds.labels.numpy()).tolist() == [1000] * 10
    train = load_dataset("fashion-mnist", real_data, "train", limit=100)
    assert len(train) == 100 and train.classes[9] == "Ankle boot"


@pytest.mark.data
def test_real_cifar10_from_jpeg_tarball(real_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("PIL", reason="Pillow (extra 'images') is needed for CIFAR-10 JPEGs")
    _need(real_data / "cifar10-jpeg.tar.gz")
    ds = load_dataset("cifar10", real_data, "test", limit=200, cache_dir=tmp_path)
    assert ds.images.shape == (200, 3, 32, 32)
    assert np.bincount(ds.labels.numpy()).tolist() == [20] * 10
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    mean_rgb = ds.images.double().mean(dim=(0, 2, 3)).numpy()
    assert np.all(np.abs(mean_rgb - [125, 122, 114]) < 15)  # CIFAR-10 channel means
    cached = load_dataset("cifar10", real_data, "test", limit=200, cache_dir=tmp_path)
    assert torch.equal(cached.images, ds.images)


NMNIST_TEST_COUNTS = [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]


@pytest.mark.data
def test_real_nmnist_test_split(real_data: Path) -> None:
    _need(real_data / "nmnist" / "Test")
    ds = load_dataset("nmnist", real_data, "test", n_frames=5)
    assert isinstance(ds, NMNISTDataset) and len(ds) == 100
    assert np.bincount(ds.labels.numpy(), minlength=10).tolist() == NMNIST_TEST_COUNTS
    loader = torch.utils.data.DataLoader(ds, batch_size=50)
    total = 0
    for x, y in loader:
        assert x.shape[1:] == (5, 2, 34, 34) and x.dtype == torch.float32
        assert y.dtype == torch.int64
        total += x.shape[0]
    assert total == 100
    for i in (0, 57):
        events = read_nmnist_bin(ds.files[i], backend="numpy")
        assert 1069 <= events.size <= 7152
        assert float(ds[i][0].sum()) == events.size  # binning keeps every event
        assert np.all(np.diff(events["t"]) >= 0) and 250_000 < events["t"].max() < 400_000
    balanced = load_dataset("nmnist", real_data, "test", limit=10)
    assert sorted(balanced.labels.tolist()) == list(range(10))
    assert dataset_moments(ds, n=20).mean > 0


@pytest.mark.data
def test_real_nmnist_tonic_sample(real_data: Path) -> None:
    sample = _need(real_data / "nmnist" / "extra" / "tonic_sample_nmnist.bin")
    events = read_nmnist_bin(sample)
    assert events.size == 4325
    assert events["x"].max() <= 33 and events["y"].max() <= 33


# ------------------------------------------------------------------------ full-size (opt-in)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
NMNIST_TRAIN_COUNTS = [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]


@pytest.mark.slow
@pytest.mark.data
def test_real_full_train_splits(real_data: Path) -> None:
    mnist = load_dataset("mnist", _need(real_data / "mnist").parent, "train")
    assert np.bincount(mnist.labels.numpy()).tolist() == MNIST_TRAIN_COUNTS
    fashion = load_dataset("fashion-mnist", _need(real_data / "fashion-mnist").parent, "train")
    assert np.bincount(fashion.labels.numpy()).tolist() == [6000] * 10
    nmnist = load_dataset("nmnist", _need(real_data / "nmnist").parent, "train", n_frames=3)
    assert np.bincount(nmnist.labels.numpy()).tolist() == NMNIST_TRAIN_COUNTS
    assert nmnist[len(nmnist) - 1][0].shape == (3, 2, 34, 34)


@pytest.mark.slow
@pytest.mark.data
def test_real_cifar10_full_test_split(real_data: Path) -> None:
    pytest.importorskip("PIL", reason="Pillow (extra 'images') is needed for CIFAR-10 JPEGs")
    _need(real_data / "cifar10-jpeg.tar.gz")
    ds = load_dataset("cifar10", real_data, "test")
    assert ds.images.shape == (10000, 3, 32, 32)
    assert np.bincount(ds.labels.numpy()).tolist() == [1000] * 10
    stats = dataset_moments(ds, n=None)
    assert 0.4 < stats.mean < 0.55 and stats.variance > 0.04


def test_old_dataset_moment_names_are_deprecated_aliases() -> None:
    import spikeinit.data

    with pytest.warns(DeprecationWarning, match="dataset_moments"):
        assert spikeinit.data.input_statistics is dataset_moments
    with pytest.warns(DeprecationWarning, match="DatasetMoments"):
        from spikeinit.data import InputStatistics
    assert InputStatistics is DatasetMoments
