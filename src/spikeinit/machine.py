"""The machine a measurement ran on: every benchmark figure and recorded run names its CPU.

Which GEMM is fastest depends on the CPU, and the same code may run on different CPUs, so
the benchmarks record :func:`describe` (CPU model, vendor, ``lscpu``'s family and model
numbers, threads, torch version, load average, date) and ``docs/benchmarks.md`` keeps one
section per CPU vendor.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from spikeinit.errors import InvalidArgumentError

VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}


def _lscpu() -> dict[str, str]:
    """``lscpu``'s "Key: value" lines (empty where it is missing)."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                                 check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in listing.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _cpuinfo(field: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name: ``lscpu``'s "Model name", else /proc/cpuinfo's "model name", else
    the platform's processor string.

    Example:
        >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
        True
    """
    return (_lscpu().get("Model name") or _cpuinfo("model name") or platform.processor()
            or platform.machine() or "unknown CPU")


def cpu_vendor() -> str:
    """``Intel``, ``AMD``, or the vendor string as ``lscpu`` gives it ("Vendor ID"), else
    ``unknown``: benchmark figures are reported per vendor (docs/benchmarks.md).

    Example:
        >>> cpu_vendor() in ("Intel", "AMD") or isinstance(cpu_vendor(), str)
        True
    """
    vendor = _lscpu().get("Vendor ID") or _cpuinfo("vendor_id") or ""
    return VENDORS.get(vendor, vendor or "unknown")


def cpu_description() -> dict[str, str | int | None]:
    """What a benchmark records about its CPU: model name, vendor, ``lscpu``'s family and model
    numbers, logical CPUs, the hypervisor if any, and whether it has AVX-512 and AMX."""
    fields = _lscpu()
    flags = set((fields.get("Flags") or _cpuinfo("flags") or "").split())
    return {"model": cpu_model(), "vendor": cpu_vendor(),
            "family": fields.get("CPU family"), "model_number": fields.get("Model"),
            "cpus": os.cpu_count(), "hypervisor": fields.get("Hypervisor vendor"),
            "avx512": "avx512f" in flags, "amx": "amx_tile" in flags}


def describe() -> dict[str, Any]:
    """Where a benchmark runs: :func:`cpu_description` (``cpu``, ``cpu_vendor`` and the rest
    under ``cpu_details``), torch's thread count, ``$OMP_NUM_THREADS``, torch and Python
    versions, the date and the load average (1, 5 and 15 minutes)."""
    import torch

    cpu = cpu_description()
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    return {"cpu": cpu["model"], "cpu_vendor": cpu["vendor"], "cpu_details": cpu,
            "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.__version__, "python": platform.python_version(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "load_average": load}


def describe_line(described: dict[str, Any]) -> str:
    """One line naming the machine of :func:`describe`."""
    cpu = described["cpu_details"]
    features = ", ".join(name for name, flag in (("AVX-512", cpu["avx512"]),
                                                 ("AMX", cpu["amx"])) if flag)
    where = f"family {cpu['family']} model {cpu['model_number']}"
    if cpu["hypervisor"]:
        where += f", {cpu['hypervisor']} guest"
    load = " ".join(f"{value:.2f}" for value in described["load_average"]) or "unknown"
    return (f"CPU: {described['cpu']} ({described['cpu_vendor']}, {where}"
            f"{'; ' + features if features else ''}), {cpu['cpus']} logical CPUs; torch "
            f"{described['torch']}, {described['threads']} thread(s), python "
            f"{described['python']}; load average {load}; {described['date']}")


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
        raise InvalidArgumentError(f"{what}: this size needs about {_gib(needed)} of memory and "
                         f"{device} has {_gib(free)} free; choose a smaller size")


def _gib(count: int) -> str:
    return f"{count / 2**30:.3g} GiB"
