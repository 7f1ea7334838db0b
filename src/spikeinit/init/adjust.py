r"""What ``initialize`` does to a layer after the method's draw: a normalization in front of its
neurons, the data it reads, its share of a residual addition, the measured step."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from spikeinit.init.context import LayerContext
from spikeinit.init.operating_point import OperatingPoint
from spikeinit.init.realized import Realized, RealizeUnit
from spikeinit.init.records import InitRecord
from spikeinit.init.registry import InitMethod
from spikeinit.init.residual import ResidualPlan, center_filters, scale_module
from spikeinit.network import Note, Operation, SynapticLayer, gaussian_rate

__all__ = ["draw_behind_norm", "exact_on_data", "realized_records", "residual_share",
           "training_normalization"]


def training_normalization(layer: SynapticLayer) -> Operation | None:
    """The normalization in training mode, with an affine weight, between ``layer`` and its
    neurons (the first one), or ``None``."""
    for op in layer.after:
        if (op.kind == "normalization" and op.module is not None and op.module.training
                and isinstance(getattr(op.module, "weight", None), Tensor)):
            return op
    return None


def draw_behind_norm(layer: SynapticLayer, norm: Operation, method: InitMethod,
                     ctx: LayerContext, generator: torch.Generator | None,
                     options: dict[str, Any]) -> tuple[float, float, float]:
    r"""Weights at PyTorch's default scale, :math:`\mathrm{Var}[w] = 1/(3n)`, and the
    normalization's :math:`\gamma` set to the method's current std (its :math:`\beta` to 0):
    ``(mean, var, gamma)``.

    Behind the normalization the forward pass does not see the weight scale; it sets the
    optimizer's relative step (docs/operating-point.md)."""
    resolved = method.resolve_options(options)
    gamma = float(method.norm_sigma(ctx, resolved))
    variance = 1.0 / (3.0 * ctx.fan_in)
    with torch.no_grad():
        layer.module.weight.normal_(0.0, variance**0.5, generator=generator)
        bias = getattr(layer.module, "bias", None)
        if isinstance(bias, Tensor):
            bias.zero_()
        norm.module.weight.fill_(gamma)
        if isinstance(getattr(norm.module, "bias", None), Tensor):
            norm.module.bias.zero_()
    return 0.0, variance, gamma


def exact_on_data(layer: SynapticLayer, data: Tensor, ctx: LayerContext, variance: float,
                  notes: list[Note]) -> float:
    r"""Rescale a layer fed by data so that its current's second moment on the sample is the
    one drawn for, :math:`n\,\mathrm{Var}[w]\,E[x^2]`; the new weight variance.

    The formula holds on average over weight draws; for one draw on correlated inputs (the
    pixels of a natural image patch) the realized :math:`E[I^2] = w^\top C w` varies from draw
    to draw (its projection on the patch mean is a :math:`\chi^2` with one degree of freedom
    per channel). The data does not depend on any weight, so one measurement makes the first
    layer exact."""
    intended = ctx.fan_in * variance * ctx.second_moment
    with torch.no_grad():
        measured = float(layer.module(data).double().square().mean())
    if not (measured > 0 and intended > 0 and math.isfinite(measured)):
        return variance
    factor = math.sqrt(intended / measured)
    scale_module(layer.module, factor)
    notes.append(Note("measured", layer.name,
                      f"its current on the sample had E[I^2] = {measured:.4g} for the "
                      f"{intended:.4g} drawn for: weights x {factor:.4g}"))
    return variance * factor**2


def residual_share(plan: ResidualPlan, layer: SynapticLayer, ctx: LayerContext,
                   norm: Operation | None, variance: float, gamma: float | None,
                   point: OperatingPoint, notes: list[Note]) -> tuple[float, float]:
    """Scale a layer for its place in a residual addition (:class:`ResidualPlan`), record its
    current and its neurons' rate for the layers after it: ``(weight variance, factor on the
    current std)``."""
    rate = point.rate if point.rate is not None else gaussian_rate(ctx.threshold, 0.0,
                                                                   ctx.sigma**2)
    std = (float(gamma) if norm is not None and gamma is not None
           else math.sqrt(ctx.fan_in * variance * ctx.second_moment))
    if layer.input == "sum" and norm is None:
        center_filters(layer.module.weight)
    factor = 1.0
    if plan.active and std > 0:
        share = plan.share(layer, std, ctx.threshold, rate)
        if share is not None:
            factor = share.factor
            if norm is not None:
                scale_module(norm.module, factor, bias=False)  # its gamma; its beta is 0
            else:
                scale_module(layer.module, factor)
            std *= share.factor
            if norm is None:
                variance *= share.factor**2
            notes.append(share.note)
    plan.spiked(layer.target_name, rate)
    plan.drawn(layer.name, std)
    return variance, factor


def realized_records(records: list[InitRecord], units: list[RealizeUnit],
                     realized: dict[str, Realized]) -> list[InitRecord]:
    """The records with the measured step's factor in their std (or the gamma they set,
    ``sigma``, behind a norm) and its note."""
    behind_norm = {unit.layer.name: unit.behind_norm for unit in units}
    updated = []
    for record in records:
        done = realized.get(record.name)
        if done is not None:
            changes: dict[str, Any] = {"notes": (*record.notes, done.note)}
            if not behind_norm[record.name]:
                changes["std"] = record.std * done.factor
            elif record.sigma is not None:
                changes["sigma"] = record.sigma * done.factor
            record = replace(record, **changes)
        updated.append(record)
    return updated
