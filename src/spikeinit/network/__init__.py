"""The network graph: what a model's layers and neurons are, how they connect, what they see.

- :mod:`.graph`: :func:`discover` traces any model (spikeinit, snnTorch, SpikingJelly, Norse)
  into synaptic layers, neuron populations and the operations between them;
- :mod:`.probe`: :class:`ActivityProbe`, forward hooks that measure rates and currents, and
  :class:`StepRecorder`, which keeps a tensor laid out over the time steps;
- :mod:`.time_axis`: which axis of the sample is time and which the batch, and the
  :class:`SampleError` / :class:`TimeAxisError` that say so when the run shows it wrong;
- :mod:`.moments`: the one model of how pooling, dropout and normalization change moments;
- :mod:`.notes`: structured :class:`Note` s (kind, layer, text).

:func:`spikeinit.initialize`, :func:`spikeinit.calibrate` and :func:`spikeinit.report` build on
them; :mod:`spikeinit.adapters` reads each framework's neurons.
"""

from spikeinit.adapters import NeuronDescription, describe_neuron, is_spiking_neuron
from spikeinit.network.graph import (
    SYNAPTIC_TYPES,
    Addition,
    Forward,
    NetworkMap,
    NeuronSite,
    Operand,
    Operation,
    SynapticLayer,
    check_finite_sample,
    discover,
    dropout_off,
    is_dropout,
    kept_statistics,
    run_model,
    sample_argument,
)
from spikeinit.network.moments import (
    SPIKE_PRESERVING,
    current_factor,
    gaussian_rate,
    input_statistics,
    keeps_spikes,
    normalized_moments,
    predicted_current,
    predicted_process,
    process_through,
    through,
)
from spikeinit.network.notes import NOTE_KINDS, Note, of_kind
from spikeinit.network.probe import ActivityProbe, Moments, NeuronActivity, StepRecorder
from spikeinit.network.time_axis import SampleError, TimeAxisError

__all__ = [
    "NOTE_KINDS",
    "SPIKE_PRESERVING",
    "SYNAPTIC_TYPES",
    "ActivityProbe",
    "Addition",
    "Forward",
    "Moments",
    "NetworkMap",
    "NeuronActivity",
    "NeuronDescription",
    "NeuronSite",
    "Note",
    "Operand",
    "Operation",
    "SampleError",
    "StepRecorder",
    "SynapticLayer",
    "TimeAxisError",
    "check_finite_sample",
    "current_factor",
    "describe_neuron",
    "discover",
    "dropout_off",
    "gaussian_rate",
    "input_statistics",
    "is_dropout",
    "is_spiking_neuron",
    "keeps_spikes",
    "kept_statistics",
    "normalized_moments",
    "of_kind",
    "predicted_current",
    "predicted_process",
    "process_through",
    "run_model",
    "sample_argument",
    "through",
]
