r"""Moments through the operations between layers: the one place that models them.

A tensor entering an operation has mean :math:`m` and second moment :math:`s = E[x^2]` (over
elements); :func:`through` gives them after it, for independent elements:

- average pooling over :math:`k` elements: :math:`s \to m^2 + (s - m^2)/k`;
- max pooling of binary spikes of amplitude :math:`a` (rate :math:`p = m/a`):
  :math:`p \to 1-(1-p)^k`; of anything else: not modelled;
- dropout in training mode with probability :math:`q`: :math:`s \to s/(1-q)` (the mean is kept);
- normalization in training mode: :math:`m \to \bar\beta`,
  :math:`s \to \overline{\gamma^2+\beta^2}`; in eval mode
  (running statistics :math:`\mu_r, v_r`) per channel
  :math:`y = \gamma (x-\mu_r)/\sqrt{v_r+\epsilon} + \beta`, averaged over channels;
- a residual addition of independent terms of mean :math:`m_o` and second moment :math:`s_o`:
  :math:`m \to m + m_o`, :math:`s \to s + s_o + 2 m m_o`
  (:func:`spikeinit.theory.residual.sum_moments`; the terms measured on the sample);
- reshapes change nothing; unknown modules and tensor operations are not modelled (a note says so).

:func:`input_statistics` applies them to the spikes that enter a layer (what the initializers
assume), :func:`current_factor` to the current a layer sends to its neurons (what the
initializers scale by), and :func:`predicted_current` to the current predicted from measured
input moments (what :func:`spikeinit.report` compares with the measurement).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from spikeinit.network.graph import Operation, SynapticLayer
from spikeinit.network.notes import Note
from spikeinit.theory.gaussian import tail_probability
from spikeinit.theory.residual import sum_moments

#: Operations after which binary spikes are still binary spikes (of the same amplitude).
SPIKE_PRESERVING = ("max-pool", "reshape", "dropout")


def keeps_spikes(ops: tuple[Operation, ...] | list[Operation]) -> bool:
    """Whether spikes that go through ``ops`` are still binary spikes."""
    return all(op.kind in SPIKE_PRESERVING for op in ops)


def normalized_moments(module: nn.Module | None, mean: float, second: float) -> tuple[float, float]:
    r"""``(E[y], E[y^2])`` after a normalization layer, averaged over its channels.

    Training mode (or no running statistics): :math:`E[y] = \bar\beta`,
    :math:`E[y^2] = \overline{\gamma^2 + \beta^2}`. Eval mode, with :math:`d = (m - \mu_r)/
    \sqrt{v_r+\epsilon}` and :math:`v = s - m^2`: :math:`E[y] = \overline{\gamma d + \beta}`,
    :math:`E[y^2] = \overline{\gamma^2 (d^2 + v/(v_r+\epsilon)) + 2\gamma\beta d + \beta^2}`.

    Example:
        >>> from torch import nn
        >>> normalized_moments(nn.BatchNorm1d(4), 3.0, 10.0)
        (0.0, 1.0)
    """
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    running_mean = getattr(module, "running_mean", None)
    running_var = getattr(module, "running_var", None)
    eval_mode = (module is not None and not module.training and isinstance(running_mean, Tensor)
                 and isinstance(running_var, Tensor))
    if not eval_mode and not isinstance(weight, Tensor):
        return 0.0, 1.0
    if not eval_mode:
        gamma = weight.detach().double()
        beta = bias.detach().double() if isinstance(bias, Tensor) else gamma.new_zeros(())
        return float(beta.mean()), float((gamma.square() + beta.square()).mean())
    scale = (running_var.detach().double() + float(getattr(module, "eps", 1e-5))).rsqrt()
    gamma = weight.detach().double() if isinstance(weight, Tensor) else scale.new_ones(())
    beta = bias.detach().double() if isinstance(bias, Tensor) else scale.new_zeros(())
    shift = (mean - running_mean.detach().double()) * scale
    variance = max(second - mean**2, 0.0)
    out_mean = gamma * shift + beta
    out_second = gamma.square() * (shift.square() + variance * scale.square()) \
        + 2 * gamma * beta * shift + beta.square()
    return float(out_mean.mean()), float(out_second.mean())


def through(op: Operation, mean: float, second: float, *, spikes: bool, amplitude: float = 1.0,
            where: str = "before the layer") -> tuple[float, float, Note | None]:
    """``(mean, second moment, note)`` after ``op`` (see the module docstring for the maths).

    ``spikes`` says the elements are binary spikes of height ``amplitude`` (max pooling is
    modelled only for them); ``where`` names the position in the note's text.
    """
    label = op.label()
    if op.kind == "avg-pool" and op.window > 0:
        second = mean**2 + (second - mean**2) / op.window
        return mean, second, Note("modelled", op.name, f"{label} {where}: variance / {op.window}")
    if op.kind == "max-pool" and op.window > 0 and spikes:
        fired = 1.0 - (1.0 - min(mean / amplitude, 1.0)) ** op.window
        return (amplitude * fired, amplitude**2 * fired,
                Note("modelled", op.name, f"{label} {where}: rate 1-(1-p)^{op.window} "
                                          "(independent spikes)"))
    if op.kind == "dropout":
        q = op.dropout_probability
        if q <= 0:
            return mean, second, None
        return mean, second / (1.0 - q), Note("modelled", op.name,
                                              f"{label} {where}: E[x^2]/(1-{q:g}) in training mode")
    if op.kind == "normalization":
        mean, second = normalized_moments(op.module, mean, second)
        return mean, second, Note("modelled", op.name, f"{label} {where}: normalized, "
                                                       "E[x^2] from its gamma and beta")
    if op.kind == "reshape":
        return mean, second, None
    if op.kind == "residual-add" and op.addend is not None:
        added_mean, added_second = sum_moments([(mean, second), op.addend])
        return added_mean, added_second, Note(
            "modelled", op.name, f"{label} {where}: plus the other terms (E[x] = "
                                 f"{op.addend[0]:.3g}, E[x^2] = {op.addend[1]:.3g}, measured)")
    return mean, second, Note("unmodelled", op.name, f"{label} {where}: not modelled")


def input_statistics(
    layer: SynapticLayer, sigma: float = 1.0, threshold: float | None = None
) -> tuple[float, float, list[Note]]:
    r"""``(E[x], E[x^2], notes)`` of the spikes entering ``layer`` (before its weights).

    The source neurons (threshold :math:`\tilde\theta`, spike amplitude :math:`a`) have a
    :math:`N(0,\sigma^2)` membrane, so :math:`p = Q(\tilde\theta/\sigma)`, :math:`E[x] = ap`,
    :math:`E[x^2] = a^2 p`; then every operation of ``layer.before`` in order (:func:`through`).
    """
    description = layer.source_description
    theta = threshold if threshold is not None else (
        description.effective_threshold if description is not None else 1.0)
    amplitude = description.spike_amplitude if description is not None else 1.0
    p = float(tail_probability(theta / sigma))
    mean, second, notes = amplitude * p, amplitude**2 * p, []
    spikes = True
    for op in layer.before:
        mean, second, note = through(op, mean, second, spikes=spikes, amplitude=amplitude)
        spikes = spikes and op.kind in SPIKE_PRESERVING
        if note is not None:
            notes.append(note)
    return mean, second, notes


def current_factor(layer: SynapticLayer) -> tuple[float, list[Note]]:
    r"""The factor on the current's variance between ``layer`` and its neurons, with notes.

    The current of zero-mean weights has :math:`E[I] = 0`, so the factor is :math:`E[I^2]`
    after ``layer.after`` for :math:`E[I^2] = 1` before: :math:`1/k` for an average pooling
    over :math:`k`, :math:`1/(1-q)` for a dropout in training mode. A normalization replaces
    the variance by its :math:`\gamma^2` in training mode, whatever the synaptic weights, so
    it is left out of the factor and named in a note.
    """
    factor, notes = 1.0, []
    for op in layer.after:
        if op.kind == "residual-add":  # the share of the sum: spikeinit.init.residual
            continue
        if op.kind == "normalization":
            notes.append(Note("modelled", op.name,
                              f"{op.label()} normalizes the current: in training mode the neurons "
                              "see its weight gamma, not this layer's scale"))
            continue
        _, factor, note = through(op, 0.0, factor, spikes=False, where="after the layer")
        if note is not None:
            notes.append(note)
    return factor, notes


def predicted_current(layer: SynapticLayer, mean_x: float, second_x: float
                      ) -> tuple[float, float]:
    r"""``(mean, variance)`` of the current reaching ``layer``'s neurons, from its weights.

    With fan-in :math:`n` and the weights' mean :math:`m_w` and variance :math:`v_w`:
    :math:`\mu = n m_w E[x] + \bar b`,
    :math:`\sigma^2 = n(v_w E[x^2] + m_w^2 (E[x^2]-E[x]^2)) + \mathrm{Var}[b]`; then
    ``layer.after`` in order (:func:`through`; a normalization after a pooling undoes it).
    """
    weight = layer.module.weight.detach().double()
    n = weight[0].numel()
    m_w, v_w = float(weight.mean()), float(weight.var(unbiased=False))
    mean = n * m_w * mean_x
    variance = n * (v_w * second_x + m_w**2 * max(second_x - mean_x**2, 0.0))
    bias = getattr(layer.module, "bias", None)
    if isinstance(bias, Tensor):
        mean += float(bias.detach().double().mean())
        variance += float(bias.detach().double().var(unbiased=False)) if bias.numel() > 1 else 0.0
    second = variance + mean**2
    for op in layer.after:
        mean, second, _ = through(op, mean, second, spikes=False, where="after the layer")
    return mean, max(second - mean**2, 0.0)


def gaussian_rate(theta: float, mean: float, variance: float) -> float:
    r"""Firing probability :math:`Q((\tilde\theta - \mu)/\sigma)` of a Gaussian current."""
    if variance <= 0:
        return 1.0 if mean > theta else 0.0
    return float(tail_probability((theta - mean) / math.sqrt(variance)))
