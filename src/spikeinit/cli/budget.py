"""The time budget: a command whose work cannot finish within a day is refused before it starts.

The work of a run is counted in floating-point operations of its layers, about: a dense
``W x W`` layer costs :math:`2 W^2` per sample and time step, and the neurons behind it
:data:`NEURON_OPERATIONS` per neuron and step. At :data:`OPERATIONS_PER_SECOND` (a cautious
rate for one CPU socket) a run of more than :data:`BUDGET_SECONDS` is refused with the estimate
and the options that set it, as memory is (:func:`spikeinit.machine.check_fits`).
"""

from __future__ import annotations

from spikeinit.errors import InvalidArgumentError

#: Operations per neuron and time step: membrane update, threshold, reset, recording.
NEURON_OPERATIONS = 20
#: The rate the estimate assumes, in operations per second.
OPERATIONS_PER_SECOND = 1e9
#: The longest run a command starts, in seconds (a day).
BUDGET_SECONDS = 24 * 3600


def layer_operations(width_in: int, width_out: int) -> int:
    """Operations of one dense layer per sample and time step:
    :math:`2\\,n_{in} n_{out} + 20\\,n_{out}`."""
    return 2 * width_in * width_out + NEURON_OPERATIONS * width_out


def check_time(operations: int, what: str) -> None:
    """Refuse ``operations`` beyond the budget (:data:`BUDGET_SECONDS` at
    :data:`OPERATIONS_PER_SECOND`); ``what`` names the options that set the size.

    Raises:
        InvalidArgumentError: with the estimate in hours.

    Example:
        >>> check_time(10**9, "--depth")  # a second of work
    """
    seconds = operations / OPERATIONS_PER_SECOND
    if seconds > BUDGET_SECONDS:
        raise InvalidArgumentError(
            f"{what}: this run needs about {operations:.3g} operations, {seconds / 3600:.3g} "
            f"hours at {OPERATIONS_PER_SECOND:.0e} per second, more than the "
            f"{BUDGET_SECONDS // 3600} hours a command may take; choose a smaller size")
