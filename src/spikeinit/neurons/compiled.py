"""Build and load the compiled kernels (``lif_kernel.cpp``, ``event_kernel.cpp``) on first use.

The kernels have no torch headers, so ``g++`` builds it in about a second; the shared library is
cached under ``$SPIKEINIT_CACHE_DIR`` (default ``~/.cache/spikeinit``), keyed by a hash of the
source, the compiler flags and the CPU, and written atomically so that concurrent processes
never load a half-written file. ``SPIKEINIT_ENGINE=python`` skips the compiled kernel; when no
compiler is available the engine warns once and uses the pure-PyTorch loops, which give the
same results more slowly.

``python -c "from spikeinit.neurons.compiled import build; print(build())"`` builds the
kernels ahead of time and prints the library's path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCES = (Path(__file__).with_name("lif_kernel.cpp"), Path(__file__).with_name("event_kernel.cpp"))
ABI_VERSION = 2
ENGINES = ("auto", "compiled", "python")
_BASE_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-ffp-contract=off"]


class KernelBuildError(RuntimeError):
    """The compiled kernel could not be built or loaded."""


def engine_preference() -> str:
    """The engine set by ``$SPIKEINIT_ENGINE``: ``auto`` (default), ``compiled`` or ``python``."""
    value = os.environ.get("SPIKEINIT_ENGINE", "auto").strip().lower() or "auto"
    if value not in ENGINES:
        raise ValueError(f"SPIKEINIT_ENGINE must be one of {', '.join(ENGINES)}, got {value!r}")
    return value


def cache_dir() -> Path:
    """``$SPIKEINIT_CACHE_DIR``, else ``~/.cache/spikeinit`` if it can be created and written,
    else a per-user folder in the system's temporary directory."""
    root = os.environ.get("SPIKEINIT_CACHE_DIR")
    if root:
        return Path(root)
    home = Path.home() / ".cache" / "spikeinit"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"spikeinit-{os.getuid() if hasattr(os, 'getuid') else 0}"


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


def _library_path(compiler: str, flags: list[str]) -> Path:
    key = hashlib.sha256()
    for part in (*(source.read_bytes() for source in SOURCES), compiler.encode(),
                 " ".join(flags).encode(), _cpu_signature().encode()):
        key.update(part)
    return cache_dir() / f"kernels-{key.hexdigest()[:16]}.so"


def _compile(compiler: str, flags: list[str], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(handle)
    command = [compiler, *flags, *(str(source) for source in SOURCES), "-o", temporary]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise KernelBuildError(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def build() -> Path:
    """Compile the kernel unless a cached build exists; returns the shared library's path.

    ``-march=native`` is tried first and dropped if the compiler rejects it.
    """
    compiler = _compiler()
    errors = []
    for flags in ([*_BASE_FLAGS, "-march=native"], _BASE_FLAGS):
        target = _library_path(compiler, flags)
        if target.exists():
            return target
        try:
            _compile(compiler, flags, target)
            return target
        except (KernelBuildError, OSError, subprocess.SubprocessError) as error:
            errors.append(str(error))
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
        backward.argtypes = ([_POINTER] * 12 + [_INT64] * 3 + [_INT] * 4
                             + [ctypes.c_double, _INT])
        backward.restype = _INT
    library.event_linear_f32.argtypes = [_POINTER] * 4 + [_INT64] * 3 + [_INT]
    library.event_linear_f32.restype = _INT
    library.transpose_f32.argtypes = [_POINTER] * 2 + [_INT64] * 2 + [_INT]
    library.transpose_f32.restype = _INT


@functools.lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Build (if needed) and load the kernel; raises :class:`KernelBuildError` on failure."""
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
    """The loaded kernel, or ``None`` when the engine must use the pure-PyTorch loops.

    ``SPIKEINIT_ENGINE=compiled`` turns a build failure into an error instead of a warning.
    """
    preference = engine_preference()
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
    """Threads the kernel uses: the same as PyTorch's intra-op pool."""
    return max(1, torch.get_num_threads())
