"""Downloads: offline failure (fast, loopback only), checksums, atomic writes, end-to-end."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from spikeinit.data import DatasetError, download_dataset, download_url, load_dataset
from spikeinit.data import download as dl

DEAD_URL = "http://127.0.0.1:9/"  # discard port on loopback: connection refused at once


def test_offline_download_fails_fast_with_instructions(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", tmp_path, "test", download=True, base_url=DEAD_URL, timeout=2)
    assert time.monotonic() - start < 10
    text = str(info.value)
    assert "Download of MNIST failed" in text
    assert "127.0.0.1:9/train-images-idx3-ubyte.gz" in text
    assert "Connection refused" in text or "refused" in text.lower()
    assert str(tmp_path / "mnist") in text
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in text
    assert not any(tmp_path.rglob("*.part")) and not any(tmp_path.rglob("*.gz"))


@pytest.mark.parametrize(
    ("name", "where", "files"),
    [
        ("fashion-mnist", "fashion-mnist", ["train-images-idx3-ubyte.gz"]),
        ("cifar10", "", ["cifar-10-python.tar.gz", "cifar-10-batches-py"]),
    ],
)
def test_offline_via_environment(tmp_path, monkeypatch, name, where, files) -> None:
    monkeypatch.setenv(dl.ENV_BASE_URL, DEAD_URL)
    monkeypatch.setenv(dl.ENV_TIMEOUT, "2")
    with pytest.raises(DatasetError, match="failed") as info:
        load_dataset(name, tmp_path, "train", download=True)
    assert str(tmp_path / where) in str(info.value)
    for f in files:
        assert f in str(info.value)


def test_missing_without_download_does_not_touch_network(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="download=True"):
        load_dataset("fashion-mnist", tmp_path, "test")


def test_download_url_rejects_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="only http"):
        download_url("file:///etc/passwd", tmp_path / "x")


def test_bad_timeout(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="timeout"):
        download_dataset("mnist", tmp_path, base_url=DEAD_URL, timeout=0)
    monkeypatch.setenv(dl.ENV_TIMEOUT, "soon")
    with pytest.raises(ValueError, match=dl.ENV_TIMEOUT):
        download_dataset("mnist", tmp_path, base_url=DEAD_URL)
    with pytest.raises(ValueError, match="name must be one of"):
        download_dataset("imagenet", tmp_path)


# --------------------------------------------------------------- a real HTTP server on loopback


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve ``tmp_path/www`` on 127.0.0.1 (random port)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    finally:
        httpd.shutdown()
        httpd.server_close()


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_download_url_checksum_and_atomicity(server, tmp_path: Path) -> None:
    base, www = server
    (www / "f.bin").write_bytes(b"hello world")
    good = hashlib.md5(b"hello world").hexdigest()
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_url(base + "f.bin", dest, md5="0" * 32, timeout=5)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))
    assert download_url(base + "f.bin", dest, md5=good, timeout=5).read_bytes() == b"hello world"
    with pytest.raises(DatasetError, match="HTTP error 404"):
        download_url(base + "missing.bin", tmp_path / "m", timeout=5)


def test_download_then_load_end_to_end(server, tmp_path: Path, monkeypatch) -> None:
    base, www = server
    rng = np.random.default_rng(0)
    contents = {
        "train-images-idx3-ubyte.gz": idx_gz(rng.integers(0, 256, (20, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_gz(np.arange(20) % 10),
        "t10k-images-idx3-ubyte.gz": idx_gz(rng.integers(0, 256, (5, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_gz(np.arange(5)),
    }
    for name, data in contents.items():
        (www / name).write_bytes(data)
    files = tuple(dl.RemoteFile(n, hashlib.md5(d).hexdigest()) for n, d in contents.items())
    spec = dl.DownloadSpec("mnist", "MNIST", (DEAD_URL, base), files, "mnist")
    monkeypatch.setitem(dl.DOWNLOADS, "mnist", spec)  # synthetic files, so their md5s
    data_dir = tmp_path / "data"
    logs: list[str] = []
    ds = load_dataset("mnist", data_dir, "test", download=True, timeout=5, log=logs.append)
    assert len(ds) == 5 and ds.labels.tolist() == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == sorted(contents)
    assert any(DEAD_URL in m for m in logs) and any(base in m for m in logs)  # mirror fallback
    logs.clear()
    download_dataset("mnist", data_dir, log=logs.append)  # already there: nothing fetched
    assert logs == []


def test_cifar_download_extracts_batches(server, tmp_path: Path, monkeypatch) -> None:
    import io
    import pickle
    import tarfile

    base, www = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in dl.CIFAR_BATCH_FILES + ("readme.html", "../evil"):
            n = 3 if name != "test_batch" else 4
            batch = {"data": np.full((n, 3072), 7, np.uint8), "labels": [1] * n}
            data = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (www / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    md5 = hashlib.md5(buf.getvalue()).hexdigest()
    spec = dl.DownloadSpec(
        "cifar10", "CIFAR-10", (base,), (dl.RemoteFile("cifar-10-python.tar.gz", md5),), ""
    )
    monkeypatch.setitem(dl.DOWNLOADS, "cifar10", spec)
    ds = load_dataset("cifar10", tmp_path / "d", "test", download=True, timeout=5)
    assert len(ds) == 4 and float(ds[0][0].max()) == pytest.approx(7 / 255)
    extracted = sorted(p.name for p in (tmp_path / "d" / "cifar-10-batches-py").iterdir())
    assert extracted == sorted(dl.CIFAR_BATCH_FILES)
    assert not (tmp_path / "evil").exists()
