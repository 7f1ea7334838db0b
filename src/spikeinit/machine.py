"""The machine a measurement ran on: every benchmark figure and recorded run names its CPU."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name: ``lscpu``'s "Model name", else /proc/cpuinfo's "model name", else
    the platform's processor string.

    Example:
        >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
        True
    """
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                                 check=False).stdout
        for line in listing.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
