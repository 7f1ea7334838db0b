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


def available_memory(device: str = "cpu") -> int | None:
    """Bytes free for a new computation: a CUDA device's free memory, else the system's
    ``MemAvailable`` (Linux); ``None`` when unknown."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0])
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(needed: int, what: str, device: str = "cpu") -> None:
    """Raise a ``ValueError`` when ``needed`` bytes exceed the free memory of ``device``,
    with the estimate and what to change (``what`` names the options that set the size).

    Example:
        >>> check_fits(1024, "--width")   # a kilobyte fits anywhere
    """
    free = available_memory(device)
    if free is not None and needed > free:
        raise ValueError(f"{what}: this size needs about {_gib(needed)} of memory and "
                         f"{device} has {_gib(free)} free; choose a smaller size")


def _gib(count: int) -> str:
    return f"{count / 2**30:.3g} GiB"
