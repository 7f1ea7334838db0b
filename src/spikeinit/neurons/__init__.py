"""spikeinit's LIF engine: parameters, pure dynamics, and the ``LIF`` module."""

from spikeinit.neurons.dynamics import (
    LIFState,
    initial_state,
    lif_multistep,
    lif_step,
    lif_steps,
    lif_trace,
)
from spikeinit.neurons.lif import LIF, STEP_MODES, reset_states
from spikeinit.neurons.parameters import RESET_ORDERS, RESETS, LIFParameters
from spikeinit.neurons.statistics import ActivityStatistics
from spikeinit.neurons.surrogate import SpikeFunction, spike

__all__ = [
    "LIF",
    "RESETS",
    "RESET_ORDERS",
    "STEP_MODES",
    "ActivityStatistics",
    "LIFParameters",
    "LIFState",
    "SpikeFunction",
    "initial_state",
    "lif_multistep",
    "lif_step",
    "lif_steps",
    "lif_trace",
    "reset_states",
    "spike",
]
