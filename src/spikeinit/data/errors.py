"""Exceptions raised by :mod:`spikeinit.data`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from spikeinit.errors import UserError

__all__ = ["DatasetError", "DatasetNotFoundError", "MissingDependencyError", "read_data_file"]


class DatasetError(UserError, RuntimeError):
    """A dataset is missing, corrupt, truncated, or could not be downloaded.

    The message always names the file or folder concerned and what to do about it.
    Invalid *arguments* (unknown dataset name, ``limit < 1``, ...) raise :class:`ValueError`
    instead, so callers can tell "you called it wrong" from "the data on disk is bad".

    Example:
        >>> from spikeinit.data import load_dataset
        >>> try:
        ...     load_dataset("mnist", "/no/such/folder")
        ... except DatasetError as error:
        ...     print(type(error).__name__)
        DatasetNotFoundError
    """


class MissingDependencyError(DatasetError, ImportError):
    """An optional dependency (Pillow for image folders) is needed but not installed.

    It is both a :class:`DatasetError` and an :class:`ImportError`.

    Example:
        >>> issubclass(MissingDependencyError, DatasetError), issubclass(
        ...     MissingDependencyError, ImportError)
        (True, True)
    """


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset's files are not where they were looked for (the message lists where).

    It is both a :class:`DatasetError` and a :class:`FileNotFoundError`.

    Example:
        >>> from spikeinit.data import load_dataset
        >>> try:
        ...     load_dataset("fashion-mnist", "/no/such/folder", split="test")
        ... except FileNotFoundError as error:  # also a DatasetError
        ...     print(type(error).__name__, str(error)[:56])
        DatasetNotFoundError Fashion-MNIST test split not found under /no/such/folder
    """


def read_data_file(path: Path) -> bytes:
    """The bytes of a dataset file: :class:`DatasetNotFoundError` when it is missing, and
    :class:`DatasetError` naming the file when it cannot be read or is not a regular file
    (a FIFO would block the read forever; a device could be endless)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DatasetError(f"{path}: not a regular file; give the dataset's file")
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
