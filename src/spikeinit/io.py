"""Atomic writes: a file a user asked for is either complete or absent, never partial; the
lock that keeps two processes from writing one output folder at once; and the check that a
path the caller reads or replaces is a regular file (a FIFO would block the reader forever,
and a device node must never be replaced by a file)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spikeinit.errors import InvalidArgumentError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The temporary file lives in the same directory so that ``os.replace`` is a rename on one
    file system; it is flushed to disk before the rename, and the folder after it, so that a
    crash leaves the old file or the new one, never a truncated one. The file gets the
    permissions of any new file, ``0666`` less the user's umask. On error the temporary file is
    removed and ``path`` is left untouched.
    """
    target = Path(path)
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a ``Path`` if it is a regular file (symbolic links followed).

    Raises:
        InvalidArgumentError: it is missing, a folder, a FIFO, a socket or a device (reading
            a FIFO would wait forever), naming ``what`` and ``path``.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise InvalidArgumentError(f"{what} {path}: cannot be read "
                                   f"({error.strerror or type(error).__name__})") from error
    if not stat.S_ISREG(mode):
        raise InvalidArgumentError(f"{what} {path}: is {_kind(mode)}, not a regular file; "
                                   "give a regular file")
    return path


def check_replaceable(path: str | os.PathLike[str], what: str = "output") -> None:
    """Check that ``path`` is absent or a regular file (symbolic links followed), so that
    writing it replaces no folder, FIFO, socket or device node.

    Raises:
        InvalidArgumentError: anything else exists at ``path``.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # absent (or a dangling link): a new file goes there
    if not stat.S_ISREG(mode):
        raise InvalidArgumentError(f"{what} {path}: is {_kind(mode)}, not a regular file; "
                                   "give the name of a file to write")


def _kind(mode: int) -> str:
    """What a file mode describes, in words ("a folder", "a FIFO", ...)."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _umask() -> int:
    """The process's umask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk, where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomic(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def finite_json(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by ``None`` (JSON's ``null``): strict
    JSON has no NaN, and parsers other than Python's reject a bare ``NaN``.

    Example:
        >>> finite_json({"rate": [0.5, float("nan")], "gain": float("inf")})
        {'rate': [0.5, None], 'gain': None}
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(value) for value in data]
    return data


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented, strict JSON to ``path`` atomically (non-finite floats become
    ``null``, :func:`finite_json`)."""
    text = json.dumps(finite_json(data), indent=2, allow_nan=False) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def save_figure_atomic(figure: Any, path: str | os.PathLike[str], **savefig_kwargs: Any) -> Path:
    """Save a matplotlib ``figure`` to ``path`` atomically (format taken from the suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return write_atomic(path, lambda tmp: figure.savefig(tmp, format=fmt, **savefig_kwargs))


def remove_temporaries(folder: str | os.PathLike[str]) -> int:
    """Delete the temporary files that a killed writer left in ``folder``
    (``.<name>.<random>.tmp``, from :func:`atomic_path`); call it while holding the folder's
    lock, so that no live writer's file goes. Returns how many went."""
    count = 0
    for path in Path(folder).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        count += 1
    return count


@contextmanager
def folder_lock(folder: str | os.PathLike[str], name: str, busy: str | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/name`` for the block (the kernel releases it
    even when the process is killed); another holder gives a ``ValueError`` with ``busy``, or,
    with ``busy=None``, is waited for.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder, folder_lock(folder, ".lock", "busy"):
        ...     pass
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / name, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (fcntl.LOCK_NB if busy is not None else 0))
        except BlockingIOError as error:
            raise InvalidArgumentError(busy) from error
        yield
    finally:
        handle.close()


@contextmanager
def own_folder(folder: str | os.PathLike[str], busy: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder itself for the block (created if needed): no
    lock file is left behind, and the kernel releases the lock even when the process is killed.
    Another holder gives an :class:`InvalidArgumentError` with ``busy``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder, own_folder(folder, "busy"):
        ...     pass
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise InvalidArgumentError(busy) from error
        yield
    finally:
        os.close(descriptor)
