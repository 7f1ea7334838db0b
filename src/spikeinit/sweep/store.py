"""The results directory of a sweep: one atomic JSON file per finished or failed run.

* ``<key>.json``: ``{"status": "done", "key", "task", "config", "result", "timing", ...}``
* ``<key>.failed.json``: ``{"status": "failed", "key", "task", "config", "error",
  "traceback", "timing", ...}`` (removed once the run succeeds)
* ``events.jsonl``: an append-only log, one JSON line per ``start``/``done``/``failed`` event
  (key, pid, host, time); it is diagnostic, the result files are the truth.

Files are written to a temporary file in the same folder and moved with ``os.replace``, so a
result file is complete or absent even when the writing process is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spikeinit.io import folder_lock, write_json_atomic

FAILED_SUFFIX = ".failed.json"
EVENTS = "events.jsonl"
LOCK = ".sweep.lock"
#: The largest result file read (a run's record is a few KB to a few MB).
MAX_RECORD_BYTES = 256 * 2**20


def done_path(results: Path, key: str) -> Path:
    """Where the finished result of ``key`` lives."""
    return Path(results) / f"{key}.json"


def failed_path(results: Path, key: str) -> Path:
    """Where the failure record of ``key`` lives."""
    return Path(results) / f"{key}{FAILED_SUFFIX}"


def read_record(path: Path) -> dict[str, Any] | None:
    """The JSON record at ``path``, or ``None`` if it is absent, not a regular file (a FIFO
    would block the reader), larger than :data:`MAX_RECORD_BYTES`, nested too deep for the
    parser, or otherwise unreadable."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or os.stat(path).st_size > MAX_RECORD_BYTES:
            return None
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def is_done(results: Path, key: str) -> bool:
    """Whether ``key`` has a complete result with status ``done``."""
    record = read_record(done_path(results, key))
    return record is not None and record.get("status") == "done" and record.get("key") == key


def is_failed(results: Path, key: str) -> bool:
    """Whether ``key`` has a failure record."""
    return failed_path(results, key).exists()


def log_event(results: Path, event: str, key: str, **extra: Any) -> None:
    """Append one line to ``events.jsonl`` (a single ``write`` on an ``O_APPEND`` file)."""
    line = json.dumps({"event": event, "key": key, "pid": os.getpid(),
                       "host": socket.gethostname(), "time": time.time(), **extra})
    fd = os.open(Path(results) / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_events(results: Path) -> list[dict[str, Any]]:
    """The parsed lines of ``events.jsonl`` (a torn last line is skipped)."""
    path = Path(results) / EVENTS
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def write_done(results: Path, record: dict[str, Any]) -> Path:
    """Write a finished record atomically, then drop a stale failure record of the same key."""
    path = write_json_atomic(done_path(results, record["key"]), record)
    failed_path(results, record["key"]).unlink(missing_ok=True)
    return path


def write_failed(results: Path, record: dict[str, Any]) -> Path:
    """Write a failure record atomically."""
    return write_json_atomic(failed_path(results, record["key"]), record)


@contextmanager
def sweep_lock(results: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``results`` for one runner (released even on SIGKILL).

    Raises:
        ValueError: another sweep runner holds the lock.
    """
    with folder_lock(results, LOCK, f"results directory {str(results)!r} is in use by another "
                                    "sweep runner; wait for it or use another --results"):
        yield


def result_files(results: Path) -> list[Path]:
    """The finished result files of ``results`` (sorted; failure records excluded)."""
    return sorted(p for p in Path(results).glob("*.json")
                  if not p.name.endswith(FAILED_SUFFIX) and not p.name.startswith(".")
                  and p.name != "sweep.json")
