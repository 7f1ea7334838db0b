"""One thread for small work: :func:`single_threaded`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread: for small tensors (and for timing one-thread choices) threads
    only add overhead. The previous thread count is restored on exit, also after an exception.

    Example:
        >>> before = torch.get_num_threads()
        >>> with single_threaded():
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
