"""The contract between the Python engine and the compiled kernels, written once.

The C++ sources hold no numbers of their own for it: :func:`defines` passes the ABI version,
the number of steps the backward recomputes and the codes of the resets, reset orders and
surrogates to the compiler as macros (:mod:`spikeinit.engine.kernels.loader` builds with them).
This module owns those three lists of names (a code is the position in its list). The neuron
package imports them from here (:mod:`spikeinit.neurons.parameters` the reset names,
:mod:`spikeinit.neurons.surrogate` the surrogate names, :mod:`spikeinit.neurons.fused` the
codes), and nothing here imports :mod:`spikeinit.neurons`: the import arrow points from
``neurons`` down to the engine only.
"""

from __future__ import annotations

#: The resets, reset orders and surrogates the kernels implement, in the order of their codes.
RESETS = ("subtract", "zero", "none")
RESET_ORDERS = ("delayed", "immediate")
SURROGATES = ("fast-sigmoid", "atan")

#: Bumped whenever a kernel function's signature or meaning changes.
ABI_VERSION = 5

#: The most steps the backward recomputes the membranes for, from the saved currents.
RECOMPUTE_STEPS = 16

RESET_CODES = {name: code for code, name in enumerate(RESETS)}
ORDER_CODES = {name: code for code, name in enumerate(RESET_ORDERS)}
SURROGATE_CODES = {name: code for code, name in enumerate(SURROGATES)}


def _macro(prefix: str, name: str) -> str:
    return f"SPIKEINIT_{prefix}_{name.upper().replace('-', '_')}"


def defines() -> list[str]:
    """The ``-D`` compiler flags of the contract, e.g. ``-DSPIKEINIT_SURROGATE_ATAN=1``.

    Example:
        >>> "-DSPIKEINIT_RESET_SUBTRACT=0" in defines()
        True
    """
    flags = [f"-DSPIKEINIT_ABI_VERSION={ABI_VERSION}",
             f"-DSPIKEINIT_RECOMPUTE_STEPS={RECOMPUTE_STEPS}"]
    for prefix, codes in (("RESET", RESET_CODES), ("ORDER", ORDER_CODES),
                          ("SURROGATE", SURROGATE_CODES)):
        flags += [f"-D{_macro(prefix, name)}={code}" for name, code in codes.items()]
    return flags
