"""Optional on-disk cache of decoded arrays (``.npz``, written atomically)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["cache_file", "load_cache", "save_cache"]

_VERSION = 1


def cache_file(cache_dir: str | Path, source: str | Path, tag: str, **params: object) -> Path:
    """Cache path for arrays decoded from ``source`` with ``params``.

    The name includes a hash of the source's absolute path, size and modification time and
    of ``params``, so a changed source or different arguments never hit a stale entry.
    """
    source = Path(source).resolve()
    stat = source.stat()
    key = repr((_VERSION, str(source), stat.st_size, stat.st_mtime_ns, sorted(params.items())))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{tag}-{digest}.npz"


def load_cache(path: str | Path) -> dict[str, np.ndarray] | None:
    """Arrays stored at ``path``, or ``None`` if absent or unreadable (then rebuild it)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def save_cache(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` as ``.npz`` via a temp file + :func:`os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
