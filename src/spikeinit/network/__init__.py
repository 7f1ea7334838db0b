"""The network graph: what a model's layers and neurons are, how they connect, what they see.

- :mod:`.graph`: :func:`discover` traces any model (spikeinit, snnTorch, SpikingJelly, Norse)
  into synaptic layers, neuron populations and the operations between them;
- :mod:`.nodes`: what it returns, a :class:`NetworkMap` of :class:`SynapticLayer` s,
  :class:`NeuronSite` s, :class:`Addition` s and :class:`Product` s (with their
  :class:`Operand` s), the :class:`AttentionInput` s of the populations a product drives, and
  the :class:`Operation` s between them;
- :mod:`.units`: the modules the graph treats as wholes (neurons, synaptic layers, leaves) and
  the containers around them; :mod:`.module_kinds`: which :class:`Operation` a module is;
- :mod:`.tracer`: the forward hooks that record the traced run, :mod:`.provenance`: which unit
  produced a tensor (the same tensor, a view, an equal copy), :mod:`.tensor_ops`: the
  :class:`~torch.overrides.TorchFunctionMode` that sees the additions and products no module
  performs;
- :mod:`.run`: one pass from rest without gradients (:func:`run_model`), dropouts off,
  normalization statistics kept; :mod:`.sample`: the ``sample`` argument and its checks;
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
from spikeinit.network.graph import discover
from spikeinit.network.module_kinds import SYNAPTIC_TYPES, is_dropout
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
from spikeinit.network.nodes import (
    Addition,
    AttentionInput,
    NetworkMap,
    NeuronSite,
    Operand,
    Operation,
    Product,
    SynapticLayer,
)
from spikeinit.network.notes import NOTE_KINDS, Note, of_kind
from spikeinit.network.probe import ActivityProbe, Moments, NeuronActivity, StepRecorder
from spikeinit.network.run import Forward, dropout_off, kept_statistics, run_model
from spikeinit.network.sample import check_finite_sample, sample_argument
from spikeinit.network.time_axis import SampleError, TimeAxisError

__all__ = [
    "NOTE_KINDS",
    "SPIKE_PRESERVING",
    "SYNAPTIC_TYPES",
    "ActivityProbe",
    "Addition",
    "AttentionInput",
    "Forward",
    "Moments",
    "NetworkMap",
    "NeuronActivity",
    "NeuronDescription",
    "NeuronSite",
    "Note",
    "Operand",
    "Operation",
    "Product",
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
