"""Checks that every command makes before it computes anything: outputs and the device.

A problem found here (an ``--out`` that is a file, a folder that cannot be created or written,
``--device cuda`` on a machine without CUDA) ends the command in one line before any work, not
after a whole epoch. :func:`describe_os_error` turns what the system refuses later (a full disk,
a file removed underneath) into one line as well.
"""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

import torch

from spikeinit.errors import InvalidArgumentError
from spikeinit.io import check_replaceable

#: ``(attribute, option)`` of the output folders the commands take.
OUTPUT_FOLDERS = (("out", "--out"), ("results", "--results"))
#: ``(attribute, option)`` of the output files the commands take.
OUTPUT_FILES = (("csv", "--csv"), ("json", "--json"))


def preflight(args: argparse.Namespace) -> None:
    """Check the device and every output of ``args``; a ``ValueError`` names the option."""
    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("--device cuda: no CUDA device is available on this machine "
                         "(torch.cuda.is_available() is False); use --device cpu")
    for attribute, option in OUTPUT_FOLDERS:
        if args.command == "aggregate" and attribute == "results":
            continue  # aggregate reads its results folder
        path = getattr(args, attribute, None)
        if isinstance(path, Path):
            check_output_folder(path, option)
    for attribute, option in OUTPUT_FILES:
        path = getattr(args, attribute, None)
        if isinstance(path, Path):
            check_output_file(path, option)


def check_output_folder(path: Path, option: str) -> None:
    """``path`` is (or can be made) a folder this process can write into."""
    if path.exists() and not path.is_dir():
        raise InvalidArgumentError(f"{option} {path}: exists and is not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidArgumentError(
            f"{option} {path}: cannot create it ({_reason(error)})") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"{option} {path}: not writable by this user")


def check_output_file(path: Path, option: str) -> None:
    """``path`` is a file (not a folder) whose folder exists or can be made, and is writable."""
    if path.is_dir():
        raise InvalidArgumentError(f"{option} {path}: is a folder; give a file name")
    check_replaceable(path, option)  # a FIFO or a device node is never replaced by a file
    check_output_folder(path.parent if str(path.parent) else Path("."), f"{option} folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidArgumentError(f"{option} {path}: not writable by this user")


def describe_os_error(error: OSError) -> str:
    """One line for an ``OSError``: what failed, on which file, and what to do."""
    where = f" {error.filename}" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device while writing{where}; free some space and rerun"
    if error.errno == errno.EDQUOT:
        return f"disk quota exceeded while writing{where}"
    return f"{_reason(error)}{':' if where else ''}{where}"


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
