r"""A stack of ``Linear -> LIF`` layers as one autograd node: the training path of
:class:`~spikeinit.models.SpikingMLP`.

Layer by layer (layer-major, all ``T`` steps at once), with :math:`h^0 = x` and
:math:`l = 1 \dots L`,

.. math::

    I^l_t = h^{l-1}_t W_l^\top + b_l, \qquad
    (s^l, u^l) = \mathrm{LIF}_l(I^l), \qquad h^l = s^l,

where :math:`\mathrm{LIF}_l` is the fused multi-step LIF of :mod:`spikeinit.neurons.fused`
(every reset mode and order, every surrogate of :mod:`spikeinit.neurons.surrogate`). The
products are those of :class:`~spikeinit.models.EventLinear` (:func:`linear_rows`: the GEMM
backend of :mod:`spikeinit.engine.gemm`, or the event kernel on sparse inputs), so the spikes
are the same as layer by layer through the modules. A frame repeated over time
(:func:`~spikeinit.models.time_distributed.repeated_over_time`, the ``direct`` encoding) is
multiplied once, on ``B`` rows.

The backward pass walks the layers in reverse. With :math:`\bar s^l`, :math:`\bar I^l` the
gradients arriving at the outputs (spikes and currents of every layer, usually only the last
layer's) and :math:`a^l = \partial L / \partial I^l`:

.. math::

    g^l &= \bar s^l + a^{l+1} W_{l+1} \quad (\text{no second term for } l = L), \\
    a^l &= \mathrm{LIF}_l^\top(g^l) + \bar I^l, \\
    \nabla_{W_l} &= \sum_{t} (a^l_t)^\top h^{l-1}_t, \qquad
    \nabla_{b_l} = \sum_{t, b} a^l_{t,b},

where :math:`\mathrm{LIF}_l^\top` is the adjoint recursion of the fused LIF (its membranes are
the only LIF tensors kept), run in the compiled kernel; for a repeated frame
:math:`\nabla_{W_1} = (\sum_t a^1_t)^\top x_0`. One autograd node replaces the ``2 L`` nodes
(and their views) of the module path, which is what a training step of a narrow MLP spends
most of its time on (``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeinit.engine.event_linear import EventLinear, linear_rows, linear_rows_backward
from spikeinit.engine.layout import repeat_frame
from spikeinit.neurons.fused import (
    _backward_compiled,
    _backward_torch,
    _forward_compiled,
    _forward_torch,
    uses_compiled_kernel,
)
from spikeinit.neurons.parameters import LIFParameters


class StackOutputs(NamedTuple):
    """What :func:`linear_lif_stack` returns, one entry per layer."""

    spikes: list[Tensor]
    currents: list[Tensor]
    membranes: list[Tensor | None]
    last: list[Tensor]


@dataclass
class StackLayer:
    """One ``Linear -> LIF`` layer of a fused stack: its synapse (for the event-path choice)
    and the LIF parameters (reset, order, surrogate and slope; ``beta`` and ``theta`` come as
    tensors)."""

    linear: torch.nn.Module
    params: LIFParameters


def _product(layer: StackLayer, rows: Tensor, weight: Tensor, bias: Tensor | None,
             needs_graph: bool) -> tuple[Tensor, bool | None]:
    """``rows @ weight.T + bias`` as the layer's module would compute it, and its path."""
    linear = layer.linear
    path = linear.choose_path(rows, needs_graph) if isinstance(linear, EventLinear) else None
    if path is None:
        return F.linear(rows, weight, bias), None
    return linear_rows(rows, weight, bias, path), path


def _product_backward(path: bool | None, grad_rows: Tensor, rows: Tensor, weight: Tensor,
                      needs: tuple[bool, bool, bool]
                      ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    if path is not None:
        return linear_rows_backward(grad_rows, rows, weight, path, needs)
    return (grad_rows @ weight if needs[0] else None,
            grad_rows.t() @ rows if needs[1] else None,
            grad_rows.sum(0) if needs[2] else None)


def _lif_forward(current: Tensor, beta: Tensor, theta: Tensor, params: LIFParameters,
                 save_membrane: bool) -> tuple[Tensor, Tensor | None, Tensor, bool]:
    compiled = uses_compiled_kernel(current)
    run = _forward_compiled if compiled else _forward_torch
    spikes, membrane, u_last = run(current, beta, theta, None, None, params, save_membrane)
    return spikes, membrane, u_last, compiled


class _LayerRun(NamedTuple):
    rows: list[Tensor]
    membranes: list[Tensor | None]
    spikes: list[Tensor]
    currents: list[Tensor]
    last: list[Tensor]
    paths: list[bool | None]
    compiled: list[bool]


def _forward_layers(layers: Sequence[StackLayer], steps: int, repeated: bool, x: Tensor,
                    tensors: Sequence[Tensor | None], with_graph: bool) -> _LayerRun:
    """The forward pass of the stack, layer by layer: each layer's input rows, membranes
    (kept only ``with_graph``), spikes, currents, final membranes, product path and LIF
    backend. Without a graph every input is read detached."""
    def plain(tensor: Tensor | None) -> Tensor | None:
        return tensor if with_graph or tensor is None else tensor.detach()

    run = _LayerRun([], [], [], [], [], [], [])
    batch = x.shape[-2]
    rows = plain(x if repeated else x.reshape(-1, x.shape[-1]))
    for index, layer in enumerate(layers):
        weight, bias, beta, theta = (plain(t) for t in tensors[4 * index: 4 * index + 4])
        product, path = _product(layer, rows, weight, bias, with_graph)
        neurons = weight.shape[0]
        if repeated and index == 0:
            current = repeat_frame(product, steps)
        else:
            current = product.view(steps, batch, neurons)
        spikes, membrane, u_last, kernel = _lif_forward(current, beta, theta, layer.params,
                                                        with_graph)
        for field, value in zip(run, (rows, membrane, spikes, current, u_last, path, kernel)):
            field.append(value)
        rows = spikes.view(steps * batch, neurons)
    return run


class FusedStackFunction(torch.autograd.Function):
    """``(layers, steps, repeated, x, W_1, b_1, beta_1, theta_1, ..., W_L, ...)`` ->
    ``(s^1..s^L, I^1..I^L, u^1..u^L, u^1_{T-1}..u^L_{T-1})`` (see the module docstring).

    ``x`` is ``(T, B, n_0)``, or the frame ``(B, n_0)`` when ``repeated`` (then every current
    ``I^1_t`` is the same). Spikes, currents and membranes :math:`u^l` are ``(T, B, n_l)``
    and differentiable (a gradient :math:`\\bar u^l_t` joins :math:`a^l_t` in the LIF
    adjoint); the last membranes ``(B, n_l)`` are not (they are the layers' final states).
    Saves each layer's input rows and membranes.
    """

    @staticmethod
    def forward(ctx: Any, layers: Sequence[StackLayer], steps: int, repeated: bool, x: Tensor,
                *tensors: Tensor | None) -> tuple[Tensor, ...]:
        run = _forward_layers(layers, steps, repeated, x, tensors, with_graph=True)
        saved = [t for pair in zip(run.rows, run.membranes) for t in pair]
        ctx.save_for_backward(*saved, *tensors)
        ctx.layers, ctx.paths, ctx.compiled = layers, run.paths, run.compiled
        ctx.repeated, ctx.x_shape = repeated, x.shape
        ctx.mark_non_differentiable(*run.last)
        ctx.set_materialize_grads(False)
        return (*run.spikes, *run.currents, *run.membranes, *run.last)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        layers = ctx.layers
        count = len(layers)
        saved = ctx.saved_tensors
        tensors = saved[2 * count:]
        needs = ctx.needs_input_grad
        grad_spikes_out, grad_currents_out = grads[:count], grads[count: 2 * count]
        grad_membranes_out = grads[2 * count: 3 * count]
        results: list[Tensor | None] = [None] * (1 + 4 * count)  # x, then per layer
        incoming: Tensor | None = None  # dL/dh^l from layer l+1, as (T*B, n_l) rows
        for index in range(count - 1, -1, -1):
            layer = layers[index]
            rows, membrane = saved[2 * index], saved[2 * index + 1]
            weight, _bias, beta, theta = tensors[4 * index: 4 * index + 4]
            need_w, need_b, need_beta, need_theta = needs[4 + 4 * index: 8 + 4 * index]
            grad_spikes = grad_spikes_out[index]
            if incoming is not None:
                incoming = incoming.view_as(membrane)
                grad_spikes = incoming if grad_spikes is None else grad_spikes + incoming
            grad_current = None
            grad_membrane = grad_membranes_out[index]
            if grad_membrane is not None:
                grad_membrane = grad_membrane.contiguous()
                if grad_spikes is None:
                    grad_spikes = torch.zeros_like(membrane)
            if grad_spikes is not None:
                lif_needs = (True, need_beta, need_theta, False, False)
                if ctx.compiled[index]:
                    lif_grads = _backward_compiled(grad_spikes.contiguous(), membrane, beta,
                                                   theta, None, None, None, layer.params,
                                                   lif_needs, grad_membrane)
                else:
                    lif_grads = _backward_torch(grad_spikes, membrane, beta, theta, None, None,
                                                None, layer.params, grad_membrane)
                grad_current, grad_beta, grad_theta = lif_grads[:3]
                if need_beta:
                    results[3 + 4 * index] = grad_beta.sum(0)
                if need_theta:
                    results[4 + 4 * index] = grad_theta.sum(0)
            if grad_currents_out[index] is not None:
                extra = grad_currents_out[index]
                grad_current = extra if grad_current is None else grad_current + extra
            if grad_current is None:
                incoming = None
                continue
            steps, batch, neurons = membrane.shape
            if ctx.repeated and index == 0:
                grad_rows = grad_current.sum(0)
            else:
                grad_rows = grad_current.reshape(steps * batch, neurons)
            need_input = index > 0 or needs[3]
            grad_input, grad_weight, grad_bias = _product_backward(
                ctx.paths[index], grad_rows, rows, weight, (need_input, need_w, need_b))
            results[1 + 4 * index] = grad_weight
            results[2 + 4 * index] = grad_bias
            incoming = grad_input
        if needs[3] and incoming is not None:
            results[0] = incoming.view(ctx.x_shape)
        return (None, None, None, *results)


_VECTORS: dict[tuple[float, int, torch.dtype, torch.device], Tensor] = {}


def neuron_vector(value: float | Tensor, neurons: int, like: Tensor) -> Tensor:
    """``value`` (a float, or a tensor that broadcasts to ``(neurons,)``) as a contiguous
    ``(neurons,)`` vector of ``like``'s dtype and device. Vectors of a float are cached and
    shared (the stack only reads them); tensors keep their graph (a learnable beta or
    threshold gets its gradient through it)."""
    if isinstance(value, Tensor):
        return value.to(dtype=like.dtype, device=like.device).expand(neurons).contiguous()
    key = (float(value), neurons, like.dtype, like.device)
    vector = _VECTORS.get(key)
    if vector is None:
        if len(_VECTORS) >= 256:
            _VECTORS.clear()
        vector = _VECTORS[key] = torch.full((neurons,), float(value), dtype=like.dtype,
                                            device=like.device)
    return vector


def linear_lif_stack(
    x: Tensor,
    layers: Sequence[StackLayer],
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None],
    betas: Sequence[Tensor],
    thetas: Sequence[Tensor],
    repeated: bool = False,
    steps: int | None = None,
) -> StackOutputs:
    r"""Run ``L`` fused ``Linear -> LIF`` layers (module docstring): :math:`I^l = h^{l-1}
    W_l^\top + b_l`, :math:`s^l = \mathrm{LIF}_l(I^l)`, from rest.

    ``x`` is ``(T, B, n_0)``, or with ``repeated=True`` one frame ``(B, n_0)`` fed at each of
    ``steps`` steps. ``betas`` and ``thetas`` are contiguous ``(n_l,)`` vectors (they may
    require grad). Returns (:class:`StackOutputs`) the spikes, input currents and membranes
    ``(T, B, n_l)`` of every layer and the final membranes ``(B, n_l)``. Builds a single
    autograd node when a gradient is needed; otherwise runs the same products and LIF loops
    without saving anything (and the membranes are ``None``).
    """
    steps = x.shape[0] if steps is None else steps
    tensors: list[Tensor | None] = []
    for weight, bias, beta, theta in zip(weights, biases, betas, thetas):
        tensors += [weight, bias, beta, theta]
    count = len(layers)
    needs_graph = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *tensors))
    if needs_graph:
        outputs = FusedStackFunction.apply(layers, steps, repeated, x, *tensors)
        return StackOutputs(list(outputs[:count]), list(outputs[count: 2 * count]),
                            list(outputs[2 * count: 3 * count]), list(outputs[3 * count:]))
    run = _forward_layers(layers, steps, repeated, x, tensors, with_graph=False)
    return StackOutputs(run.spikes, run.currents, [None] * count, run.last)
