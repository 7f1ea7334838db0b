"""The kernel cache loads nothing unverified: truncated, unrecorded or foreign files are rebuilt."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from spikeinit.engine.kernels import ABI_VERSION, KernelBuildError, verified
from spikeinit.engine.kernels import loader as kernel_build
from spikeinit.io import write_atomic


@pytest.fixture(scope="module")
def good_library() -> Path:
    try:
        return kernel_build.build()
    except KernelBuildError as error:
        pytest.skip(f"no compiled kernel here: {error}")


class Cache(NamedTuple):
    folder: Path
    compiled: list[Path]  # the libraries the (fake) compiler wrote


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good_library: Path) -> Cache:
    """An empty private cache folder, and a 'compiler' that writes the good library's bytes."""
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("SPIKEINIT_CACHE_DIR", str(folder))
    compiled: list[Path] = []

    def fake_compile(compiler: str, flags: list[str], target: Path) -> None:
        data = good_library.read_bytes()
        write_atomic(target, lambda tmp: tmp.write_bytes(data))
        write_atomic(kernel_build._record_path(target),
                     lambda tmp: tmp.write_text(hashlib.sha256(data).hexdigest()))
        compiled.append(target)

    monkeypatch.setattr(kernel_build, "_compile", fake_compile)
    return Cache(folder, compiled)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def plant(folder: Path, name: str, data: bytes, record: bytes | None) -> Path:
    path = folder / name
    path.write_bytes(data)
    if record is not None:
        (folder / (name + ".sha256")).write_bytes(record)
    return path


def loads(path: Path) -> bool:
    return ctypes.CDLL(str(path)).spikeinit_abi_version() == ABI_VERSION


def test_a_build_records_its_hash_and_verifies(cache: Cache, good_library: Path) -> None:
    path = kernel_build.build()
    assert path.parent == cache.folder and verified(path)
    assert path.with_name(path.name + ".sha256").read_text() == hashlib.sha256(
        path.read_bytes()).hexdigest()
    assert kernel_build.build() == path and len(cache.compiled) == 1  # reused, not rebuilt
    assert loads(path)


@pytest.mark.parametrize("record", ["good", "missing", "of-truncated"])
def test_a_truncated_cached_library_is_rebuilt_not_loaded(cache: Cache, good_library: Path,
                                                          record: str) -> None:
    data = good_library.read_bytes()
    truncated = data[: len(data) // 3]  # what a crash before the data reached the disk leaves
    records = {"good": digest(data), "missing": None,
               "of-truncated": b"0" * 64}
    planted = plant(cache.folder, good_library.name, truncated, records[record])
    assert not verified(planted)
    path = kernel_build.build()
    assert cache.compiled == [path] and path == planted
    assert path.read_bytes() == data and verified(path) and loads(path)


def test_a_library_others_can_write_is_rebuilt(cache: Cache, good_library: Path) -> None:
    data = good_library.read_bytes()
    planted = plant(cache.folder, good_library.name, data, digest(data))
    assert verified(planted)
    planted.chmod(0o666)
    assert not verified(planted)
    kernel_build.build()
    assert cache.compiled and verified(planted)


@pytest.mark.skipif(not hasattr(os, "chown") or os.geteuid() != 0,
                    reason="planting another user's file needs root")
def test_a_file_planted_by_another_user_is_not_loaded(cache: Cache, good_library: Path) -> None:
    data = good_library.read_bytes()
    planted = plant(cache.folder, good_library.name, data, digest(data))
    os.chown(planted, 65534, 65534)
    assert not verified(planted)
    path = kernel_build.build()
    assert cache.compiled == [path] and verified(path) and os.stat(path).st_uid == os.getuid()


def test_a_folder_others_can_write_is_not_used(cache: Cache, good_library: Path,
                                               tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    data = good_library.read_bytes()
    plant(shared, good_library.name, data, digest(data))
    os.environ["SPIKEINIT_CACHE_DIR"] = str(shared)
    try:
        path = kernel_build.build()
    finally:
        os.environ["SPIKEINIT_CACHE_DIR"] = str(cache.folder)
    assert path.parent != shared and kernel_build.is_private(path.parent)
    assert cache.compiled == [path] and verified(path)
    shutil.rmtree(path.parent)
    kernel_build._fallback_folder.cache_clear()


def test_the_temporary_fallback_folder_is_created_private(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.delenv("SPIKEINIT_CACHE_DIR", raising=False)
    monkeypatch.setattr(kernel_build.Path, "home", lambda: tmp_path / "no-home")
    monkeypatch.setattr(kernel_build.os, "access", lambda path, mode: False)
    monkeypatch.setattr(kernel_build.tempfile, "gettempdir", lambda: str(tmp_path))
    folder = kernel_build.cache_dir()
    assert folder.parent == tmp_path and folder.name.startswith("spikeinit-")
    monkeypatch.undo()
    assert kernel_build._private_folder(folder)
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
