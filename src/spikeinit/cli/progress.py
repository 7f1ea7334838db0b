"""The progress flag every long-running command shares (``propagate``, ``conditions``,
``train``, ``compare``, ``sweep``): one spelling, one meaning."""

from __future__ import annotations

import argparse


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: hide the progress bar (it is shown on a terminal by default)."""
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (shown on a terminal by default)")


def progress_disabled(args: argparse.Namespace) -> bool | None:
    """tqdm's ``disable``: ``True`` with ``--no-progress``, else ``None`` (off when the output
    is not a terminal)."""
    return True if getattr(args, "no_progress", False) else None
