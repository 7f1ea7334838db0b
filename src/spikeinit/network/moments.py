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
input moments. :func:`predicted_process` does the same over the ``T`` steps, for the mean per
step and the ``(T, T)`` covariance (:func:`process_through`): the current whose rate
:func:`spikeinit.report` predicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from torch import Tensor, nn

from spikeinit.network.nodes import Operation, SynapticLayer
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


def process_through(op: Operation, mean: np.ndarray, covariance: np.ndarray,
                    addend: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, Note | None]:
    r"""``(mean, covariance, note)`` over the steps after ``op``, for a current (not spikes).

    ``mean`` :math:`\mu` is ``(T,)`` and ``covariance`` :math:`K` ``(T, T)``, of the elements
    (neurons and samples) at each step. With :math:`S = K + \mu\mu^\top`:

    - reshape: unchanged; average pooling over :math:`k` elements: :math:`K \to K/k`;
    - dropout in training mode with probability :math:`q`: :math:`S_{tt} \to S_{tt}/(1-q)` for
      torch's (a new mask at every call), :math:`S \to S/(1-q)` for a mask shared over the
      steps (SpikingJelly's);
    - a residual addition of independent terms whose moments over the steps were measured
      (``addend``: their mean per step :math:`m^o` and second moments :math:`S^o`):
      :math:`\mu \to \mu + m^o`, :math:`K \to K + S^o - m^o m^{o\top}`;
    - normalization, and a residual addition known only by its pooled moments (``op.addend``):
      the pooled moments of :func:`through`, with the time profile of :math:`\mu` and the
      shape of :math:`K` kept;
    - anything else (max pooling of a current, unknown modules, tensor operations):
      unchanged, with a note of kind ``unmodelled``.

    Example:
        >>> pool = Operation("pool", "avg-pool", window=4)
        >>> mean, covariance, note = process_through(pool, np.zeros(2), np.eye(2))
        >>> covariance.tolist(), note.kind
        ([[0.25, 0.0], [0.0, 0.25]], 'modelled')
    """
    label = op.label()
    where = "after the layer"
    if op.kind == "reshape" or (op.kind == "dropout" and op.dropout_probability <= 0):
        return mean, covariance, None
    if op.kind == "avg-pool" and op.window > 0:
        return mean, covariance / op.window, Note("modelled", op.name,
                                                  f"{label} {where}: covariance / {op.window}")
    if op.kind == "dropout":
        q = op.dropout_probability
        second = covariance + np.outer(mean, mean)
        if isinstance(op.module, nn.modules.dropout._DropoutNd):  # torch's: masks per element
            second = second + np.diag(np.diag(second)) * (q / (1.0 - q))
            text = f"E[I_t^2]/(1-{q:g}) in training mode, a new mask per step"
        else:
            second = second / (1.0 - q)
            text = f"E[I_t I_t']/(1-{q:g}) in training mode, one mask for all steps"
        return mean, second - np.outer(mean, mean), Note("modelled", op.name,
                                                         f"{label} {where}: {text}")
    if op.kind == "residual-add" and addend is not None:
        added_mean, added_second = (np.asarray(a, dtype=float) for a in addend)
        return (mean + added_mean, covariance + added_second - np.outer(added_mean, added_mean),
                Note("modelled", op.name, f"{label} {where}: plus the other terms, measured "
                                          "over the steps"))
    if op.kind in ("normalization", "residual-add"):
        pooled_mean = float(mean.mean())
        pooled_second = float(np.diag(covariance).mean() + np.square(mean).mean())
        new_mean, new_second, note = through(op, pooled_mean, pooled_second, spikes=False,
                                             where=where)
        mean = mean - pooled_mean + new_mean
        fluctuation = float(np.diag(covariance).mean())
        wanted = max(new_second - float(np.square(mean).mean()), 0.0)
        covariance = covariance * (wanted / fluctuation) if fluctuation > 0 else (
            np.full_like(covariance, wanted))
        return mean, covariance, note
    return mean, covariance, Note("unmodelled", op.name, f"{label} {where}: not modelled")


def predicted_process(
    layer: SynapticLayer,
    mean_x: np.ndarray,
    second_x: np.ndarray,
    addends: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Note]]:
    r"""``(mean, covariance, notes)`` over the ``T`` steps of the current reaching ``layer``'s
    neurons, from its actual weights and its input's measured moments per step.

    ``mean_x`` :math:`m_t = E[x_t]` is ``(T,)`` and ``second_x``
    :math:`M_{tt'} = E[x_t x_{t'}]` is ``(T, T)``, over the input's elements, which are taken
    as independent but for a mean common to all: :math:`E[x_{j,t} x_{k,t'}] = m_t m_{t'}` for
    :math:`j \ne k`. The current of output unit :math:`i` is
    :math:`I_{i,t} = \sum_j w_{ij} x_{j,t} + b_i`; averaged over the units, with fan-in
    :math:`n`, the mean square weight :math:`q = \overline{w^2}` and the units' weight sums
    :math:`s_i = \sum_j w_{ij}`:

    .. math::

        \mu_t = \bar s\, m_t + \bar b, \qquad
        E[I_t I_{t'}] = n q\, M_{tt'} + (\overline{s^2} - n q)\, m_t m_{t'}
            + \overline{b s}\,(m_t + m_{t'}) + \overline{b^2},

    and :math:`K = E[I I^\top] - \mu\mu^\top`. For i.i.d. weights of mean :math:`m_w` and
    variance :math:`v_w` this is :math:`K_{tt'} = n v_w M_{tt'} + n m_w^2 (M_{tt'} - m_t m_{t'})
    + \mathrm{Var}[b]`; weights centred per unit (:math:`s_i = 0`, as ``initialize`` draws
    residual blocks) cancel the common mean exactly. Then ``layer.after`` in order
    (:func:`process_through`, with ``addends[name]`` for the residual addition ``name`` where
    its other terms were measured over the steps; notes of kind ``unmodelled`` name what is
    not modelled).

    Example:
        >>> from torch import nn
        >>> from spikeinit.network import SynapticLayer
        >>> linear = nn.Linear(4, 2, bias=False)
        >>> _ = nn.init.constant_(linear.weight[0], 1.0), nn.init.constant_(linear.weight[1], -1.0)
        >>> held = np.full((3, 3), 0.5)  # zero-mean inputs of E[x^2] = 0.5, held over the steps
        >>> mean, covariance, _ = predicted_process(SynapticLayer("fc", linear), np.zeros(3), held)
        >>> covariance.tolist()[0]  # n E[w^2] E[x^2] = 4 * 1 * 0.5 at every lag
        [2.0, 2.0, 2.0]
    """
    rows = layer.module.weight.detach().double().reshape(layer.module.weight.shape[0], -1)
    n = rows.shape[1]
    q = float(rows.square().mean())
    sums = rows.sum(dim=1)
    mean_x = np.asarray(mean_x, dtype=float)
    second_x = np.asarray(second_x, dtype=float)
    common = np.outer(mean_x, mean_x)
    second = n * q * second_x + (float(sums.square().mean()) - n * q) * common
    mean = float(sums.mean()) * mean_x
    bias = getattr(layer.module, "bias", None)
    if isinstance(bias, Tensor) and bias.numel() == rows.shape[0]:
        values = bias.detach().double()
        shared = float((values * sums).mean())
        second = second + shared * (mean_x[:, None] + mean_x[None, :]) + float(
            values.square().mean())
        mean = mean + float(values.mean())
    covariance = second - np.outer(mean, mean)
    notes = []
    for op in layer.after:
        mean, covariance, note = process_through(op, mean, covariance,
                                                 (addends or {}).get(op.name))
        if note is not None:
            notes.append(note)
    return mean, covariance, notes


def predicted_current(layer: SynapticLayer, mean_x: float, second_x: float
                      ) -> tuple[float, float]:
    r"""``(mean, variance)`` of the current reaching ``layer``'s neurons at one step, from its
    weights: :func:`predicted_process` for ``T = 1``. For i.i.d. weights of mean :math:`m_w`
    and variance :math:`v_w`, :math:`\mu = n m_w E[x] + \bar b`,
    :math:`\sigma^2 = n(v_w E[x^2] + m_w^2 (E[x^2]-E[x]^2)) + \mathrm{Var}[b]`; then
    ``layer.after`` in order (a normalization after a pooling undoes it).
    """
    mean, covariance, _ = predicted_process(layer, np.array([mean_x]), np.array([[second_x]]))
    return float(mean[0]), max(float(covariance[0, 0]), 0.0)


def gaussian_rate(theta: float, mean: float, variance: float) -> float:
    r"""Firing probability :math:`Q((\tilde\theta - \mu)/\sigma)` of a Gaussian current."""
    if variance <= 0:
        return 1.0 if mean > theta else 0.0
    return float(tail_probability((theta - mean) / math.sqrt(variance)))
