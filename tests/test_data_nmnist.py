"""N-MNIST: 5-byte event decoding, overflow markers, frame binning, dataset ordering."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeinit.data import (
    EVENT_DTYPE,
    DatasetError,
    DatasetNotFoundError,
    NMNISTDataset,
    decode_nmnist,
    events_to_frames,
    load_dataset,
    read_nmnist_bin,
)

HAS_TONIC = importlib.util.find_spec("tonic") is not None


def write_nmnist_bin(path, x, y, t, p):
    """The writer documented in shared/data/README.md."""
    x, y, t, p = (np.asarray(a, np.uint32) for a in (x, y, t, p))
    assert t.max() < 2**23 and y.max() != 240
    b = np.empty((x.size, 5), np.uint8)
    b[:, 0], b[:, 1] = x, y
    b[:, 2] = ((p & 1) << 7) | ((t >> 16) & 0x7F)
    b[:, 3], b[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    b.tofile(path)


def random_events(rng: np.random.Generator, n: int, t_max: int = 300_000):
    t = np.sort(rng.integers(0, t_max, n))
    return rng.integers(0, 34, n), rng.integers(0, 34, n), t, rng.integers(0, 2, n)


def make_events(x, y, t, p) -> np.ndarray:
    ev = np.empty(len(x), EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return ev


def test_roundtrip_with_readme_writer(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y, t, p = random_events(rng, 500, t_max=2**23)
    path = tmp_path / "a.bin"
    write_nmnist_bin(path, x, y, t, p)
    ev = read_nmnist_bin(path, backend="numpy")
    assert ev.dtype == EVENT_DTYPE and ev.size == 500
    for field, values in zip("xytp", (x, y, t, p), strict=True):
        np.testing.assert_array_equal(ev[field], values)


def test_overflow_marker_shifts_later_timestamps() -> None:
    rows = [
        (1, 2, 0x80, 0x00, 0x10),  # x=1 y=2 p=1 t=16
        (0, 240, 0x00, 0x00, 0x00),  # overflow marker: +2**13 from here on, dropped
        (3, 4, 0x00, 0x00, 0x05),  # t=5 -> 5 + 8192
        (0, 240, 0x00, 0x00, 0x00),
        (5, 6, 0x80, 0x01, 0x00),  # t=256 -> 256 + 2 * 8192
    ]
    ev = decode_nmnist(np.array(rows, np.uint8).tobytes())
    assert ev["x"].tolist() == [1, 3, 5] and ev["y"].tolist() == [2, 4, 6]
    assert ev["t"].tolist() == [16, 5 + 8192, 256 + 2 * 8192]
    assert ev["p"].tolist() == [1, 0, 1]


def test_size_not_multiple_of_5(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(12))
    with pytest.raises(DatasetError, match=r"bad\.bin: size 12 bytes is not a multiple of 5"):
        read_nmnist_bin(path)
    with pytest.raises(DatasetNotFoundError):
        read_nmnist_bin(tmp_path / "nope.bin")


def test_addresses_outside_sensor(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    write_nmnist_bin(path, [40], [3], [10], [1])
    with pytest.raises(DatasetError, match="outside the 34x34"):
        read_nmnist_bin(path)


@pytest.mark.skipif(not HAS_TONIC, reason="tonic not installed")
def test_tonic_backend_matches_numpy(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    write_nmnist_bin(path, *random_events(np.random.default_rng(3), 300))
    np.testing.assert_array_equal(read_nmnist_bin(path, "tonic"), read_nmnist_bin(path, "numpy"))


@pytest.mark.skipif(HAS_TONIC, reason="tonic is installed")
def test_tonic_backend_without_tonic(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    write_nmnist_bin(path, [1], [1], [1], [1])
    with pytest.raises(ImportError, match="tonic"):
        read_nmnist_bin(path, backend="tonic")
    assert read_nmnist_bin(path).size == 1  # auto falls back to numpy


def test_events_to_frames_bins_and_layout() -> None:
    # span 0..99 -> 100 us, 4 bins of 25 us: [0,25) [25,50) [50,75) [75,100)
    ev = make_events(
        x=[0, 5, 5, 33, 2], y=[1, 7, 7, 0, 2], t=[0, 24, 25, 99, 74], p=[0, 1, 1, 0, 1]
    )
    frames = events_to_frames(ev, 4)
    assert frames.shape == (4, 2, 34, 34) and frames.dtype == np.float32
    assert frames.sum() == 5
    assert frames[0, 0, 1, 0] == 1  # (t=0, p=0, y=1, x=0)
    assert frames[0, 1, 7, 5] == 1 and frames[1, 1, 7, 5] == 1
    assert frames[2, 1, 2, 2] == 1
    assert frames[3, 0, 0, 33] == 1  # the last event lands in the last bin


def test_events_to_frames_edge_cases() -> None:
    assert events_to_frames(np.empty(0, EVENT_DTYPE), 3).shape == (3, 2, 34, 34)
    same_time = make_events([1, 2], [1, 2], [7, 7], [0, 1])
    assert events_to_frames(same_time, 5)[0].sum() == 2  # zero span: all in bin 0
    merged = events_to_frames(same_time, 2, sensor_size=(34, 34, 1))
    assert merged.shape == (2, 1, 34, 34) and merged.sum() == 2
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_frames"):
            events_to_frames(same_time, bad)
    with pytest.raises(ValueError, match="outside the sensor"):
        events_to_frames(make_events([40], [0], [0], [0]), 2)
    with pytest.raises(ValueError, match="fields x, y, t, p"):
        events_to_frames(np.zeros(3), 2)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 200),
    n_frames=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_events_to_frames_conserves_counts(n: int, n_frames: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y, t, p = random_events(rng, n, t_max=int(rng.integers(1, 10**6)))
    frames = events_to_frames(make_events(x, y, t, p), n_frames)
    assert frames.sum() == n
    np.testing.assert_array_equal(frames.sum(axis=0)[p, y, x] > 0, True)
    per_pixel = np.zeros((2, 34, 34))
    np.add.at(per_pixel, (p, y, x), 1)
    np.testing.assert_array_equal(frames.sum(axis=0), per_pixel)


def make_tree(root: Path, counts: dict[str, list[int]]) -> None:
    rng = np.random.default_rng(7)
    for split, per_class in counts.items():
        for digit, n in enumerate(per_class):
            folder = root / "nmnist" / split / str(digit)
            folder.mkdir(parents=True)
            for i in range(n):
                write_nmnist_bin(folder / f"{i:05d}.bin", *random_events(rng, 50 + digit))


def test_dataset_round_robin_limit_and_items(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Train": [3, 1, 2, 0, 0, 0, 0, 0, 0, 2], "Test": [1] * 10})
    ds = load_dataset("nmnist", tmp_path, "train", n_frames=6)
    assert isinstance(ds, NMNISTDataset) and len(ds) == 8
    assert ds.labels.tolist() == [0, 1, 2, 9, 0, 2, 9, 0]
    x, y = ds[3]
    assert x.shape == (6, 2, 34, 34) and x.dtype == torch.float32 and int(y) == 9
    assert float(x.sum()) == 59  # 50 + digit events
    small = load_dataset("nmnist", tmp_path, "test", limit=4)
    assert small.labels.tolist() == [0, 1, 2, 3] and small.n_frames == 10
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 6, 2, 34, 34) and yb.dtype == torch.int64


def test_dataset_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"Train/<digit>/<id>\.bin"):
        NMNISTDataset(tmp_path, "train")
    make_tree(tmp_path, {"Test": [1] * 10})
    (tmp_path / "nmnist" / "Test" / "3" / "00000.bin").write_bytes(bytes(7))
    ds = NMNISTDataset(tmp_path, "test", n_frames=2)
    with pytest.raises(DatasetError, match="not a multiple of 5"):
        ds[3]
    with pytest.raises(DatasetError, match="N-MNIST cannot be downloaded"):
        load_dataset("nmnist", tmp_path, "train", download=True)


def reference_decode(raw: np.ndarray):
    """tonic.io.read_mnist_file's loop, as quoted in shared/data/verify_datasets.py."""
    raw = raw.astype(np.uint32)
    x, y = raw[0::5], raw[1::5]
    p = (raw[2::5] & 128) >> 7
    t = ((raw[2::5] & 127) << 16) | (raw[3::5] << 8) | raw[4::5]
    for i in np.where(y == 240)[0]:
        t[i:] += 2**13
    keep = y != 240
    return x[keep], y[keep], t[keep], p[keep]


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 300), overflow_rate=st.floats(0, 0.3), seed=st.integers(0, 2**32 - 1))
def test_vectorized_decoder_matches_reference_loop(n: int, overflow_rate: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(n, 5), dtype=np.uint8)
    raw[:, 1] = np.where(rng.random(n) < overflow_rate, 240, raw[:, 1] % 34)
    ev = decode_nmnist(raw.tobytes())
    for field, ref in zip("xytp", reference_decode(raw.reshape(-1)), strict=True):
        np.testing.assert_array_equal(ev[field], ref)
