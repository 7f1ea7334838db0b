"""The run of the model on the sample that links ``initialize``'s layers and neurons."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor, nn

from spikeinit._validation import check_positive
from spikeinit.network import (
    Forward,
    NetworkMap,
    SampleError,
    TimeAxisError,
    check_finite_sample,
    describe_neuron,
    discover,
    is_spiking_neuron,
)
from spikeinit.theory.temporal import data_autocorrelation

__all__ = ["TRACE_BATCH", "sample_autocorrelation", "traced", "traced_or_in_module_order"]

TRACE_BATCH = 2
"""When every layer is then measured on the whole sample (``realize``), the tracing pass, which
links layers and neurons and gives the theory its first statistics, runs on this many of the
sample's batch (multi-step models with a ``(T, B, ...)`` tensor sample): the measured pass
corrects every statistic it takes from there."""


def traced(model: nn.Module, sample: Any, forward: Forward | None, realizing: bool
           ) -> NetworkMap:
    """:func:`~spikeinit.network.discover` on ``sample``, or on its first :data:`TRACE_BATCH`
    samples where that is unambiguous (see there); a model that cannot run on the slice is
    traced on the whole."""
    if not (realizing and forward is None and isinstance(sample, Tensor) and sample.ndim >= 3
            and sample.shape[1] > TRACE_BATCH):
        return discover(model, sample, forward)
    check_finite_sample(sample)  # the whole sample, not only the traced slice
    neurons = [describe_neuron(m) for m in model.modules() if is_spiking_neuron(m)]
    if not neurons or any(d is None or d.step_mode != "multi" for d in neurons):
        return discover(model, sample, forward)
    try:
        return discover(model, sample[:, :TRACE_BATCH], forward)
    except SampleError:
        return discover(model, sample, forward)


def traced_or_in_module_order(model: nn.Module, sample: Any, forward: Forward | None,
                              realizing: bool, data_moment: float
                              ) -> tuple[NetworkMap, float]:
    r""":func:`traced`, and the :math:`E[x^2]` assumed for layers fed by data (``data_moment``).

    Where the model fails on a tensor ``sample`` that no layer is measured on (not
    ``realizing``), the layers are paired in module order instead, with a warning, and the
    data's :math:`E[x^2]` is the sample's. A :class:`~spikeinit.network.TimeAxisError` (the
    axes read wrong) is raised as it is."""
    try:
        return traced(model, sample, forward, realizing), data_moment
    except SampleError as error:
        if isinstance(error, TimeAxisError) or not isinstance(sample, Tensor) or realizing:
            raise
        warnings.warn(f"{error}; layers are paired in module order instead, and the layers fed "
                      "by data use E[x^2] of the sample", stacklevel=3)
        moment = check_positive("E[x^2] of sample", float(sample.detach().double().pow(2).mean()))
        return discover(model), moment


def sample_autocorrelation(sample: Any, steps: int) -> tuple[tuple[float, ...], ...] | None:
    """The autocorrelation over the steps of a ``(T, B, ...)`` tensor sample with ``T = steps``
    (:func:`~spikeinit.theory.temporal.data_autocorrelation`); ``None`` for one step, another
    layout or an all-zero sample."""
    if isinstance(sample, Tensor) and steps > 1 and sample.dim() >= 3 and (
            sample.shape[0] == steps and float(sample.detach().abs().sum()) > 0):
        return data_autocorrelation(sample)
    return None
