r"""``deep``: weights around the identity that pass spike patterns on, for deep plain networks.

Every variance-only initialization draws i.i.d. zero-mean weights, and for those the
correlation map of a threshold neuron pulls every pair of inputs to the same correlation
:math:`c^*` with slope :math:`C'(c^*) \approx 0.4`-:math:`0.6` (:mod:`spikeinit.theory.correlation`,
docs/depth.md): the class signal fades within a few layers, whatever the variance. ``deep``
draws each square hidden layer as

.. math::

    W = \alpha\,I + Z, \qquad Z_{ij} \sim N(0, g/n),

with the diagonal :math:`\alpha` inside the *copy window* of the receiving neuron (the
:math:`\alpha` for which :math:`\alpha I` passes every :math:`T`-step spike pattern on
unchanged, :func:`~spikeinit.theory.copy_chain.copy_window`) and the i.i.d. part small enough
that its current, of std :math:`\sqrt{g\,E[s^2]}`, moves a membrane across the threshold
rarely: :math:`\sqrt{g\,E[s^2]} = m / z` for the window's margin :math:`m` and ``z`` standard
deviations (``z = 3``: about 0.3% of the neuron-steps). The correlation map is then close to
the identity, so rate and class signal survive depth. A layer whose width changes (the first
layer, the classifier) or that is fed by data is drawn as ``paper`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from spikeinit.errors import InvalidArgumentError
from spikeinit.init.context import LayerContext
from spikeinit.init.paper import paper_variance
from spikeinit.init.registry import InitMethod, register
from spikeinit.theory.copy_chain import copy_window
from spikeinit.theory.correlation import WeightStructure

#: Assumed second moment :math:`E[s^2]` of the spikes entering a hidden layer when choosing the
#: i.i.d. part (the rate of a unit-variance current at threshold 1 is about 0.16-0.2).
ASSUMED_SPIKE_MOMENT = 0.2
DEEP_OPTIONS: dict[str, Any] = {"diagonal": None, "noise_gain": None, "position": 0.25,
                                "z": 3.0}


def is_copy_layer(ctx: LayerContext) -> bool:
    """Whether ``deep`` draws the layer around the identity: square and fed by spikes."""
    return ctx.fan_in == ctx.fan_out and not ctx.input_is_data


def deep_structure(ctx: LayerContext, options: Mapping[str, Any] | None = None
                   ) -> WeightStructure:
    r"""The :class:`~spikeinit.theory.correlation.WeightStructure` that ``deep`` gives the
    square layer ``ctx``: :math:`\alpha` from the copy window (unless ``diagonal`` is given)
    and :math:`g = (m / z)^2 / E[s^2]` (unless ``noise_gain`` is given).

    Example:
        >>> from spikeinit.neurons.parameters import LIFParameters
        >>> ctx = LayerContext(100, 100, LIFParameters(beta=0.5, threshold=1.0), steps=3)
        >>> s = deep_structure(ctx)
        >>> round(s.diagonal, 3), round(s.gain, 3)
        (1.786, 0.217)
    """
    options = {**DEEP_OPTIONS, **(options or {})}
    window = copy_window(ctx.neuron, ctx.steps, position=float(options["position"]))
    diagonal = window.diagonal if options["diagonal"] is None else float(options["diagonal"])
    if options["noise_gain"] is not None:
        gain = float(options["noise_gain"])
    else:
        z = float(options["z"])
        if not z > 0:
            raise InvalidArgumentError(
                f"z must be > 0 (standard deviations of the margin), got {z}")
        gain = (window.margin / z) ** 2 / ASSUMED_SPIKE_MOMENT
    return WeightStructure(gain=gain, diagonal=diagonal)


def _deep_statistics(ctx: LayerContext, options: Mapping[str, Any]) -> tuple[float, float]:
    if not is_copy_layer(ctx):
        return 0.0, paper_variance(ctx)
    structure = deep_structure(ctx, options)
    return 0.0, (structure.diagonal**2 + structure.gain) / ctx.fan_in


def _deep_weight(weight: Tensor, ctx: LayerContext, options: Mapping[str, Any],
                 generator: torch.Generator | None) -> None:
    if not is_copy_layer(ctx) or weight.dim() != 2:
        weight.normal_(0.0, math.sqrt(paper_variance(ctx)), generator=generator)
        return
    structure = deep_structure(ctx, options)
    weight.normal_(0.0, math.sqrt(structure.gain / ctx.fan_in), generator=generator)
    weight.add_(structure.diagonal * torch.eye(ctx.fan_out, ctx.fan_in, dtype=weight.dtype,
                                               device=weight.device))


register(
    InitMethod(
        name="deep",
        summary="identity-plus-noise for square hidden layers: W = alpha I + N(0, g/n), alpha "
                "in the neuron's copy window (deep=<position> in it), sqrt(g E[s^2]) = margin / z; "
                "paper elsewhere",
        statistics_fn=_deep_statistics,
        sampler=_deep_weight,
        options=DEEP_OPTIONS,
        value_option="position",
        norm_sigma=lambda ctx, options: ctx.sigma,
    )
)
