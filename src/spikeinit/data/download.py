"""Downloading the official MNIST, Fashion-MNIST and CIFAR-10 files (checksummed, atomic).

Every failure (offline machine, HTTP error, checksum mismatch) ends in a
:class:`~spikeinit.data.DatasetError` that says which URLs were tried, why they failed, and
exactly which files to place in which folder to install the data by hand. N-MNIST has no
stable direct download; asking for it raises the manual instructions straight away.

Environment overrides: ``SPIKEINIT_DOWNLOAD_URL`` replaces the mirror list by one base URL
(e.g. a local mirror), ``SPIKEINIT_DOWNLOAD_TIMEOUT`` sets the socket timeout in seconds.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spikeinit.engine import settings
from spikeinit.errors import InvalidArgumentError

from .errors import DatasetError

__all__ = [
    "DEFAULT_TIMEOUT",
    "DOWNLOADS",
    "ENV_BASE_URL",
    "ENV_TIMEOUT",
    "NMNIST_MANUAL",
    "DownloadSpec",
    "RemoteFile",
    "download_dataset",
    "download_url",
    "extract_cifar_batches",
    "file_md5",
    "manual_instructions",
]

ENV_BASE_URL = settings.DOWNLOAD_URL.variable
ENV_TIMEOUT = settings.DOWNLOAD_TIMEOUT.variable
DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One official file and the md5 of its bytes as published (the ``.gz``/``.tar.gz``)."""

    filename: str
    md5: str


@dataclass(frozen=True)
class DownloadSpec:
    """Where a dataset is downloaded from and where its files go under ``data_dir``."""

    name: str
    display: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    subdir: str  # folder under data_dir ("" = data_dir itself)


DOWNLOADS: dict[str, DownloadSpec] = {
    "mnist": DownloadSpec(
        "mnist",
        "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        (
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaceee0a58a8cd2e6a5c63"),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        "mnist",
    ),
    "fashion-mnist": DownloadSpec(
        "fashion-mnist",
        "Fashion-MNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        "fashion-mnist",
    ),
    "cifar10": DownloadSpec(
        "cifar10",
        "CIFAR-10",
        ("https://www.cs.toronto.edu/~kriz/",),
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        "",
    ),
}

CIFAR_BATCH_FILES: tuple[str, ...] = (
    "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
    "test_batch", "batches.meta",
)  # fmt: skip

NMNIST_MANUAL = (
    "N-MNIST cannot be downloaded automatically (it is distributed by hand via Mendeley Data, "
    "https://data.mendeley.com/datasets/468j46mzdv, and figshare). Download Train.zip and "
    "Test.zip yourself and unzip them so that {root}/Train/<digit>/<id>.bin and "
    "{root}/Test/<digit>/<id>.bin exist (digit folders 0..9, 5-byte-per-event .bin files)."
)


def manual_instructions(name: str, data_dir: str | Path) -> str:
    """Human-readable instructions: which files to put in which folder for ``name``.

    Example:
        >>> text = manual_instructions("mnist", "data")
        >>> text.startswith("To install MNIST by hand, download train-images-idx3-ubyte.gz")
        True
        >>> "place them in data/mnist/" in text
        True
    """
    data_dir = Path(data_dir)
    if name == "nmnist":
        return NMNIST_MANUAL.format(root=data_dir / "nmnist")
    spec = DOWNLOADS[name]
    folder = data_dir / spec.subdir if spec.subdir else data_dir
    files = ", ".join(f.filename for f in spec.files)
    urls = " or ".join(spec.mirrors)
    them = "them" if len(spec.files) > 1 else "it"
    text = f"To install {spec.display} by hand, download {files} from {urls} and place {them} in "
    text += f"{folder}/"
    if name == "cifar10":
        text += (
            " (or extract it there, giving "
            f"{data_dir / 'cifar-10-batches-py'}/data_batch_1..5 and test_batch)"
        )
    else:
        text += " (gzip-compressed as published, or uncompressed)"
    return text + "."


def file_md5(path: str | Path) -> str:
    """md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(dest: Path, chunks: Iterable[bytes], md5: str | None, origin: str) -> None:
    """Write ``chunks`` to a temp file next to ``dest``; check md5; rename into place."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise DatasetError(
                f"{origin}: checksum mismatch (md5 {digest.hexdigest()}, expected {md5})"
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stream(response: BinaryIO) -> Iterable[bytes]:
    yield from iter(lambda: response.read(_CHUNK), b"")


def download_url(
    url: str, dest: str | Path, md5: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + ``os.replace``), checking ``md5``.

    Raises:
        DatasetError: unsupported URL scheme, network/HTTP error, timeout, or checksum
            mismatch; the message names the URL and the reason. ``dest`` is left untouched.

    Example:
        Only http(s) is fetched; anything else fails before touching the network:

        >>> try:
        ...     download_url("ftp://example.org/train.gz", "train.gz")
        ... except DatasetError as error:
        ...     print(error)
        ftp://example.org/train.gz: only http(s) URLs can be downloaded (got scheme 'ftp')
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DatasetError(f"{url}: only http(s) URLs can be downloaded (got scheme {scheme!r})")
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create folder {dest.parent} ({exc})") from exc
    request = urllib.request.Request(url, headers={"User-Agent": "spikeinit"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            _write_atomic(dest, _stream(response), md5, url)
    except DatasetError:
        raise
    except urllib.error.HTTPError as exc:
        raise DatasetError(f"{url}: HTTP error {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DatasetError(f"{url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, disk full, malformed URL
        raise DatasetError(f"{url}: {type(exc).__name__}: {exc}") from exc
    return dest


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        value = float(timeout)
    else:
        env = settings.DOWNLOAD_TIMEOUT.value()
        value = DEFAULT_TIMEOUT if env is None else env
    if not value > 0:
        raise InvalidArgumentError(f"timeout must be > 0 seconds (got {value!r})")
    return value


def extract_cifar_batches(tar_path: str | Path, data_dir: str | Path) -> Path:
    """Extract ``cifar-10-batches-py/*`` from the official tarball into ``data_dir``.

    Only the known batch files are written (atomically); nothing else in the archive is
    touched, so a malicious archive cannot write outside the folder.
    """
    out_dir = Path(data_dir) / "cifar-10-batches-py"
    out_dir.mkdir(parents=True, exist_ok=True)
    found: set[str] = set()
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            for member in tf:
                parts = member.name.split("/")
                if (
                    member.isfile()
                    and len(parts) == 2
                    and parts[0] == out_dir.name
                    and parts[1] in CIFAR_BATCH_FILES
                ):
                    src = tf.extractfile(member)
                    assert src is not None
                    _write_atomic(out_dir / parts[1], _stream(src), None, str(tar_path))
                    found.add(parts[1])
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(f"{tar_path}: corrupt or truncated CIFAR-10 archive ({exc})") from exc
    missing = [f for f in CIFAR_BATCH_FILES if f not in found]
    if missing:
        raise DatasetError(f"{tar_path}: archive lacks cifar-10-batches-py/{', '.join(missing)}")
    return out_dir


def download_dataset(
    name: str,
    data_dir: str | Path,
    *,
    base_url: str | None = None,
    timeout: float | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Download the official files of ``name`` into ``data_dir`` and return their folder.

    MNIST/Fashion-MNIST go to ``data_dir/mnist/`` resp. ``data_dir/fashion-mnist/``;
    CIFAR-10's ``cifar-10-python.tar.gz`` goes to ``data_dir/`` and is extracted to
    ``data_dir/cifar-10-batches-py/``. Files already present with the right md5 are kept.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"`` (``"nmnist"`` always raises).
        data_dir: root data folder (created if needed).
        base_url: use this base URL instead of the official mirrors (also via the
            ``SPIKEINIT_DOWNLOAD_URL`` environment variable).
        timeout: socket timeout in seconds (default 30, or ``SPIKEINIT_DOWNLOAD_TIMEOUT``).
        force: download again even if a file with the right checksum exists.
        log: called with a one-line message before each download.

    Raises:
        DatasetError: the download failed (message lists URLs, reasons, and manual steps).
        ValueError: unknown ``name`` or bad ``timeout``.

    Example:
        N-MNIST has no official download; the error says where to put the files:

        >>> try:
        ...     download_dataset("nmnist", "data")
        ... except DatasetError as error:
        ...     print("data/nmnist" in str(error))
        True
    """
    if name == "nmnist":
        raise DatasetError(manual_instructions("nmnist", data_dir))
    if name not in DOWNLOADS:
        allowed = ", ".join(repr(n) for n in (*DOWNLOADS, "nmnist"))
        raise InvalidArgumentError(f"name must be one of {allowed} (got {name!r})")
    spec = DOWNLOADS[name]
    seconds = _timeout(timeout)
    base = base_url or settings.DOWNLOAD_URL.value()
    mirrors = (base,) if base else spec.mirrors
    folder = Path(data_dir) / spec.subdir if spec.subdir else Path(data_dir)
    for remote in spec.files:
        dest = folder / remote.filename
        if not force and dest.is_file() and file_md5(dest) == remote.md5:
            continue
        errors: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + remote.filename
            if log is not None:
                log(f"downloading {url} -> {dest}")
            try:
                download_url(url, dest, remote.md5, seconds)
                break
            except DatasetError as exc:
                errors.append(str(exc))
        else:
            raise DatasetError(
                f"Download of {spec.display} failed ({remote.filename}): "
                + "; ".join(errors)
                + ". The machine may be offline or the mirror unavailable. "
                + manual_instructions(name, data_dir)
            )
    if name == "cifar10":
        extract_cifar_batches(folder / spec.files[0].filename, data_dir)
    return folder
