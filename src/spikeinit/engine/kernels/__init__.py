"""The compiled C++ kernels: the LIF time loop (``lif_kernel.cpp``) and the event-driven
synapses (``event_kernel.cpp``), built on first use, verified and loaded by :mod:`.loader`.

:mod:`.abi` holds the contract between them and Python (ABI version, reset/order/surrogate
codes), written once. :mod:`spikeinit.neurons.fused` and :mod:`spikeinit.engine.event_linear`
call them, with a pure-PyTorch fallback where they are unavailable.
"""

from spikeinit.engine.kernels.abi import (
    ABI_VERSION,
    ORDER_CODES,
    RECOMPUTE_STEPS,
    RESET_CODES,
    SURROGATE_CODES,
)
from spikeinit.engine.kernels.loader import (
    KERNEL_PREFERENCES,
    KernelBuildError,
    build,
    cache_dir,
    compiled_kernel,
    kernel_preference,
    kernel_threads,
    load,
    verified,
)

__all__ = [
    "ABI_VERSION",
    "RECOMPUTE_STEPS",
    "KERNEL_PREFERENCES",
    "ORDER_CODES",
    "RESET_CODES",
    "SURROGATE_CODES",
    "KernelBuildError",
    "build",
    "cache_dir",
    "compiled_kernel",
    "kernel_preference",
    "kernel_threads",
    "load",
    "verified",
]
