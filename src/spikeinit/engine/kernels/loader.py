"""Build, verify and load the compiled kernels (``lif_kernel.cpp``, ``event_kernel.cpp``).

The kernels have no torch headers, so ``g++`` builds them on first use without PyTorch's build
tooling. The
shared library is cached under ``$SPIKEINIT_CACHE_DIR`` (default ``~/.cache/spikeinit``, else a
per-user folder in the system's temporary directory), keyed by a hash of the sources, the
compiler, the flags (with the ABI of :mod:`spikeinit.engine.kernels.abi`) and the CPU.

Nothing is loaded unverified:

- the cache folder must belong to the user and be writable by nobody else (a folder that was
  created by someone else, e.g. planted at the predictable temporary path, is not used: the
  library is built in a fresh private folder instead);
- a library is written to a temporary file, flushed to disk (``fsync``) and renamed, and the
  SHA-256 of its bytes is written beside it (``<library>.sha256``) the same way;
- before loading, the file must belong to the user, be writable only by them, and match its
  recorded hash; a truncated, foreign or unrecorded file is deleted and rebuilt.

``SPIKEINIT_KERNEL=python`` skips the compiled kernels; ``compiled`` makes a build failure an
error; ``auto`` (default) warns once and uses the pure-PyTorch loops, which give the same
results more slowly. (``SPIKEINIT_ENGINE`` is read as another name of ``SPIKEINIT_KERNEL``, with
a deprecation warning. ``LIF(engine=...)`` is a different setting: the fused or the reference
time loop of one layer.)

``python -c "from spikeinit.engine.kernels import build; print(build())"`` builds the kernels
ahead of time and prints the library's path.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

from spikeinit.engine import settings
from spikeinit.engine.kernels.abi import ABI_VERSION, defines
from spikeinit.errors import UserError
from spikeinit.io import write_atomic

SOURCES = (Path(__file__).with_name("lif_kernel.cpp"), Path(__file__).with_name("event_kernel.cpp"))
KERNEL_PREFERENCES = settings.KERNEL_PREFERENCES
KERNEL_VARIABLE = settings.KERNEL.variable
_BASE_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-ffp-contract=off"]


class KernelBuildError(UserError, RuntimeError):
    """The compiled kernel could not be built or loaded."""


def kernel_preference() -> str:
    """``$SPIKEINIT_KERNEL``: ``auto`` (default), ``compiled`` or ``python``."""
    return str(settings.KERNEL.value())


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def is_private(path: Path) -> bool:
    """Whether ``path`` (a folder or a file, not a symlink) belongs to the user and nobody
    else can write it (no group or other write bit)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISLNK(info.st_mode):
        return False
    uid = _uid()
    return (uid is None or info.st_uid == uid) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _private_folder(path: Path) -> bool:
    """Create ``path`` with mode 0700 if missing; whether it is now a private folder."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return False
    return path.is_dir() and is_private(path) and os.access(path, os.W_OK)


def cache_dir() -> Path:
    """``$SPIKEINIT_CACHE_DIR``, else ``~/.cache/spikeinit`` if it can be created and written,
    else ``spikeinit-<uid>`` in the system's temporary directory (created with mode 0700)."""
    root = settings.CACHE_DIR.value()
    if root:
        return Path(root)
    home = Path.home() / ".cache" / "spikeinit"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"spikeinit-{_uid() or 0}"


def _compiler() -> str:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise KernelBuildError("no C++ compiler found (set CXX or install g++)")
    return compiler


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return platform.machine() + flags


def _library_name(compiler: str, flags: list[str]) -> str:
    key = hashlib.sha256()
    for part in (*(source.read_bytes() for source in SOURCES), compiler.encode(),
                 " ".join(flags).encode(), _cpu_signature().encode()):
        key.update(part)
    return f"kernels-{key.hexdigest()[:16]}.so"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def verified(library: Path) -> bool:
    """Whether ``library`` may be loaded: private (:func:`is_private`) and equal to the hash
    recorded beside it."""
    record = _record_path(library)
    if not (library.is_file() and is_private(library) and record.is_file()
            and is_private(record)):
        return False
    try:
        return record.read_text().strip() == _digest(library)
    except (OSError, ValueError):  # unreadable, or not text (UnicodeDecodeError): rebuilt
        return False


def _compile(compiler: str, flags: list[str], target: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(handle)
    command = [compiler, *flags, *(str(source) for source in SOURCES), "-o", temporary]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise KernelBuildError(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
        data = Path(temporary).read_bytes()
        write_atomic(target, lambda tmp: tmp.write_bytes(data))
        write_atomic(_record_path(target),
                     lambda tmp: tmp.write_text(hashlib.sha256(data).hexdigest()))
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _discard(library: Path) -> None:
    for path in (library, _record_path(library)):
        with contextlib.suppress(OSError):
            path.unlink()


@functools.lru_cache(maxsize=1)
def _fallback_folder() -> Path:
    """A fresh private folder for this process, when the cache folder cannot be trusted."""
    return Path(tempfile.mkdtemp(prefix="spikeinit-kernels-"))


def build() -> Path:
    """Compile the kernels unless a verified cached build exists; returns the library's path.

    ``-march=native`` is tried first and dropped if the compiler rejects it. A cached file that
    fails :func:`verified` is deleted and rebuilt.
    """
    compiler = _compiler()
    folder = cache_dir()
    if not _private_folder(folder):
        folder = _fallback_folder()
    errors = []
    for flags in ([*_BASE_FLAGS, "-march=native", *defines()], [*_BASE_FLAGS, *defines()]):
        target = folder / _library_name(compiler, flags)
        if verified(target):
            return target
        if target.exists() or _record_path(target).exists():
            _discard(target)
        try:
            _compile(compiler, flags, target)
            return target
        except (KernelBuildError, OSError, subprocess.SubprocessError, ValueError) as error:
            errors.append(str(error))  # ValueError: the target is not a regular file
    raise KernelBuildError("could not build the kernels:\n" + "\n".join(errors))


_POINTER = ctypes.c_void_p
_INT64 = ctypes.c_int64
_INT = ctypes.c_int


def _declare(library: ctypes.CDLL) -> None:
    for suffix in ("f32", "f64"):
        forward = getattr(library, f"lif_forward_{suffix}")
        forward.argtypes = [_POINTER] * 8 + [_INT64] * 3 + [_INT] * 3
        forward.restype = _INT
        backward = getattr(library, f"lif_backward_{suffix}")
        backward.argtypes = ([_POINTER] * 13 + [_INT64] * 3 + [_INT] * 4
                             + [ctypes.c_double, _INT, _INT])
        backward.restype = _INT
    library.event_linear_f32.argtypes = [_POINTER] * 4 + [_INT64] * 3 + [_INT]
    library.event_linear_f32.restype = _INT
    library.transpose_f32.argtypes = [_POINTER] * 2 + [_INT64] * 2 + [_INT]
    library.transpose_f32.restype = _INT


def load() -> ctypes.CDLL:
    """Build (if needed), verify and load the kernels; raises :class:`KernelBuildError`."""
    # torch (imported above) has loaded its libgomp, so the kernel shares PyTorch's OpenMP pool.
    path = build()
    try:
        library = ctypes.CDLL(str(path))
    except OSError as error:
        raise KernelBuildError(f"could not load {path}: {error}") from error
    if library.spikeinit_abi_version() != ABI_VERSION:
        raise KernelBuildError(f"{path} has an unexpected ABI version")
    _declare(library)
    return library


@functools.lru_cache(maxsize=1)
def compiled_kernel() -> ctypes.CDLL | None:
    """The loaded kernels, or ``None`` when the engine must use the pure-PyTorch loops.

    ``SPIKEINIT_KERNEL=compiled`` turns a build failure into an error instead of a warning.
    """
    preference = kernel_preference()
    if preference == "python":
        return None
    try:
        return load()
    except KernelBuildError as error:
        if preference == "compiled":
            raise
        warnings.warn(f"spikeinit: using the pure-PyTorch LIF loops ({error})", RuntimeWarning,
                      stacklevel=2)
        return None


def kernel_threads() -> int:
    """Threads the kernels use: the same as PyTorch's intra-op pool."""
    return max(1, torch.get_num_threads())
