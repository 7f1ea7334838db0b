"""The time budget: a command whose work cannot finish within a day is refused before it starts.

The work of a run is counted in floating-point operations of its layers, about: a dense
``W x W`` layer costs :math:`2 W^2` per sample and time step, and the neurons behind it
:data:`NEURON_OPERATIONS` per neuron and step. At :data:`OPERATIONS_PER_SECOND` (a cautious
rate for one CPU socket) a run of more than :func:`budget_seconds` (a day, or the environment
variable ``SPIKEINIT_TIME_BUDGET`` in seconds) is refused with the estimate and the options that
set it, as memory is (:func:`spikeinit.machine.check_fits`). A shared machine, a CI job or a
campaign that stops any case after a minute sets a tighter budget, so that a run it would stop
is refused before it starts.
"""

from __future__ import annotations

from spikeinit.engine.settings import TIME_BUDGET
from spikeinit.errors import InvalidArgumentError

#: Operations per neuron and time step: membrane update, threshold, reset, recording.
NEURON_OPERATIONS = 20
#: The rate the estimate assumes, in operations per second.
OPERATIONS_PER_SECOND = 1e9
#: The longest run a command starts, in seconds, unless ``SPIKEINIT_TIME_BUDGET`` says (a day).
BUDGET_SECONDS = 24 * 3600


def budget_seconds() -> float:
    """The budget in seconds: ``$SPIKEINIT_TIME_BUDGET``
    (:data:`spikeinit.engine.settings.TIME_BUDGET`) when set, else :data:`BUDGET_SECONDS`.

    Raises:
        InvalidArgumentError: when the variable is not a positive finite number.

    Example:
        >>> budget_seconds() > 0
        True
    """
    value = TIME_BUDGET.value()
    return float(BUDGET_SECONDS) if value is None else value


def layer_operations(width_in: int, width_out: int) -> int:
    r"""Operations of one dense layer per sample and time step:
    :math:`2\,n_{in} n_{out} + 20\,n_{out}`."""
    return 2 * width_in * width_out + NEURON_OPERATIONS * width_out


def check_time(operations: int, what: str) -> None:
    r"""Refuse ``operations`` beyond the budget: :math:`\mathrm{operations} /
    10^9\,\mathrm{s}^{-1} >` :func:`budget_seconds`; ``what`` names the options that set
    the size.

    Raises:
        InvalidArgumentError: with the estimate in hours.

    Example:
        >>> check_time(10**9, "--depth")  # a second of work
    """
    seconds = operations / OPERATIONS_PER_SECOND
    budget = budget_seconds()
    if seconds > budget:
        raise InvalidArgumentError(
            f"{what}: this run needs about {operations:.3g} operations, "
            f"{_duration(seconds)} at {OPERATIONS_PER_SECOND:.0e} per second, more than the "
            f"{_duration(budget)} a command may take ({TIME_BUDGET.variable}); choose a smaller "
            "size")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.3g} hours" if seconds >= 3600 else f"{seconds:.3g} s"
