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

where :math:`\mathrm{LIF}_l^\top` is the adjoint recursion of the fused LIF, run in the compiled
kernel; for a repeated frame :math:`\nabla_{W_1} = (\sum_t a^1_t)^\top x_0`. One autograd node
replaces the ``2 L`` nodes (and their views) of the module path, which is what a training step
of a narrow MLP spends most of its time on (``docs/benchmarks.md``).

Memory: each layer keeps one ``(T, B, n_l)`` tensor for the backward pass. On the compiled
kernel with ``T <= RECOMPUTE_STEPS`` and no membranes asked for, that is its currents (for the
repeated frame, the frame itself), and the backward kernel recomputes the membranes, as
:class:`~spikeinit.neurons.fused.RecomputingLIFFunction` does; otherwise its membranes. The
spikes :math:`h^l` that :math:`\nabla_{W_{l+1}}` needs are not kept but recomputed from that
tensor when layer :math:`l+1` is reached (:math:`s = H(u - \theta)`, or the kernel's forward
on the currents: the same arithmetic, so the same spikes), and the backward frees each
temporary before it allocates the next product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeinit.engine.event_linear import EventLinear, linear_rows, linear_rows_backward
from spikeinit.engine.kernels import RECOMPUTE_STEPS
from spikeinit.engine.layout import repeat_frame
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.fused import (
    lif_backward,
    lif_forward,
    neuron_vector,  # noqa: F401 (SpikingMLP imports it from here; neurons.fused owns it)
    uses_compiled_kernel,
)
from spikeinit.neurons.parameters import LIFParameters


class StackOutputs(NamedTuple):
    """What :func:`linear_lif_stack` returns, one entry per layer (``membranes``: ``None``
    for the layers whose membranes were not asked for, and without a graph)."""

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


def _product_backward(path: bool | None, grad_rows: Tensor, rows: Tensor | None, weight: Tensor,
                      needs: tuple[bool, bool, bool]
                      ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The gradients of :func:`_product` that ``needs`` asks for (``rows`` only read for the
    weight's)."""
    if path is not None:
        return linear_rows_backward(grad_rows, rows, weight, path, needs)  # type: ignore[arg-type]
    return (grad_rows @ weight if needs[0] else None,
            grad_rows.t() @ rows if needs[1] else None,
            grad_rows.sum(0) if needs[2] else None)


def _kept_currents(kept: Tensor, frame: bool, steps: int) -> Tensor:
    """The ``(T, B, n)`` currents of a layer that kept its currents (``frame``: the one frame
    of a repeated input, copied over the steps again)."""
    return repeat_frame(kept, steps) if frame else kept


def _spikes_again(layer: StackLayer, kept: Tensor, recompute: bool, frame: bool, steps: int,
                  beta: Tensor, theta: Tensor) -> Tensor:
    """The spikes ``(T, B, n)`` the forward pass computed, from what the layer kept: the
    kernel's forward over its currents (the same arithmetic), or ``H(u - theta)`` of its
    membranes (the comparison the forward made)."""
    if recompute:
        currents = _kept_currents(kept, frame, steps)
        return lif_forward(currents, beta, theta, None, None, layer.params, False, True)[0]
    return (kept > theta).to(kept.dtype)


class _LayerRun(NamedTuple):
    first_rows: Tensor
    kept: list[Tensor | None]
    recompute: list[bool]
    membranes: list[Tensor | None]
    spikes: list[Tensor]
    currents: list[Tensor]
    last: list[Tensor]
    paths: list[bool | None]
    compiled: list[bool]


def _forward_layers(layers: Sequence[StackLayer], steps: int, repeated: bool, x: Tensor,
                    tensors: Sequence[Tensor | None], with_graph: bool,
                    membranes: Sequence[bool]) -> _LayerRun:
    """The forward pass of the stack, layer by layer: the first layer's input rows; per layer
    what the backward keeps (``with_graph`` only: its currents or the frame when
    ``recompute``, else its membranes), its membranes where ``membranes`` asks (``with_graph``
    only), spikes, currents, final membranes, product path and LIF backend. Without a graph
    every input is read detached."""
    def plain(tensor: Tensor | None) -> Tensor | None:
        return tensor if with_graph or tensor is None else tensor.detach()

    batch = x.shape[-2]
    rows = plain(x if repeated else x.reshape(-1, x.shape[-1]))
    run = _LayerRun(rows, [], [], [], [], [], [], [], [])
    for index, layer in enumerate(layers):
        weight, bias, beta, theta = (plain(t) for t in tensors[4 * index: 4 * index + 4])
        product, path = _product(layer, rows, weight, bias, with_graph)
        neurons = weight.shape[0]
        frame = repeated and index == 0
        current = repeat_frame(product, steps) if frame else product.view(steps, batch, neurons)
        compiled = uses_compiled_kernel(current)
        wanted = with_graph and membranes[index]
        recompute = (with_graph and not wanted and compiled and steps <= RECOMPUTE_STEPS)
        spikes, membrane, u_last = lif_forward(current, beta, theta, None, None, layer.params,
                                               with_graph and not recompute, compiled)
        kept = (product if frame else current) if recompute else membrane
        for field, value in zip(run[1:], (kept, recompute, membrane if wanted else None,
                                          spikes, current, u_last, path, compiled)):
            field.append(value)
        del product, current, membrane
        rows = spikes.view(steps * batch, neurons)
    return run


_X = 4  # the position of ``x`` among FusedStackFunction's inputs; the tensors follow it


class FusedStackFunction(torch.autograd.Function):
    """``(layers, steps, repeated, membranes, x, W_1, b_1, beta_1, theta_1, ..., W_L, ...)`` ->
    ``(s^1..s^L, I^1..I^L, u^1..u^L, u^1_{T-1}..u^L_{T-1})`` (see the module docstring).

    ``x`` is ``(T, B, n_0)``, or the frame ``(B, n_0)`` when ``repeated`` (then every current
    ``I^1_t`` is the same). Spikes, currents and membranes :math:`u^l` are ``(T, B, n_l)``
    and differentiable (a gradient :math:`\\bar u^l_t` joins :math:`a^l_t` in the LIF
    adjoint); the membranes of layer ``l`` only where ``membranes[l]`` (``None`` elsewhere).
    The last membranes ``(B, n_l)`` are not differentiable (they are the layers' final
    states). Saves the first layer's input rows and one tensor per layer (module docstring).
    """

    @staticmethod
    def forward(ctx: Any, layers: Sequence[StackLayer], steps: int, repeated: bool,
                membranes: Sequence[bool], x: Tensor, *tensors: Tensor | None
                ) -> tuple[Tensor | None, ...]:
        run = _forward_layers(layers, steps, repeated, x, tensors, True, membranes)
        ctx.save_for_backward(run.first_rows, *run.kept, *tensors)
        ctx.layers, ctx.paths, ctx.compiled = layers, run.paths, run.compiled
        ctx.recompute, ctx.steps, ctx.batch = run.recompute, steps, x.shape[-2]
        ctx.repeated, ctx.x_shape = repeated, x.shape
        ctx.mark_non_differentiable(*run.last)
        ctx.set_materialize_grads(False)
        return (*run.spikes, *run.currents, *run.membranes, *run.last)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        layers, steps, batch = ctx.layers, ctx.steps, ctx.batch
        count = len(layers)
        first_rows, *saved = ctx.saved_tensors
        kept, tensors = saved[:count], saved[count:]
        del saved
        needs = ctx.needs_input_grad
        grad_spikes_out, grad_currents_out = grads[:count], grads[count: 2 * count]
        grad_membranes_out = grads[2 * count: 3 * count]
        del grads
        results: list[Tensor | None] = [None] * (1 + 4 * count)  # x, then per layer
        incoming: Tensor | None = None  # dL/dh^l from layer l+1, as (T*B, n_l) rows
        # Each temporary is dropped as soon as it is used, before the next one is allocated.
        for index in range(count - 1, -1, -1):
            layer = layers[index]
            weight, _bias, beta, theta = tensors[4 * index: 4 * index + 4]
            first = _X + 1 + 4 * index
            need_w, need_b, need_beta, need_theta = needs[first: first + 4]
            frame = ctx.repeated and index == 0
            neurons = weight.shape[0]
            grad_spikes = grad_spikes_out[index]
            if incoming is not None:
                incoming = incoming.view(steps, batch, neurons)
                grad_spikes = incoming if grad_spikes is None else grad_spikes + incoming
                incoming = None
            grad_current = None
            grad_membrane = grad_membranes_out[index]
            if grad_membrane is not None:
                grad_membrane = grad_membrane.contiguous()
                if grad_spikes is None:
                    grad_spikes = torch.zeros_like(grad_membrane)
            if grad_spikes is not None:
                lif_needs = (True, need_beta, need_theta, False, False)
                recompute = ctx.recompute[index]
                state = _kept_currents(kept[index], frame, steps) if recompute else kept[index]
                lif_grads = lif_backward(ctx.compiled[index], grad_spikes, state, beta, theta,
                                         None, None, None, layer.params, lif_needs,
                                         grad_membrane, recompute)
                del state
                del grad_spikes, grad_membrane
                grad_current, grad_beta, grad_theta = lif_grads[:3]
                del lif_grads
                if need_beta:
                    results[3 + 4 * index] = grad_beta.sum(0)
                if need_theta:
                    results[4 + 4 * index] = grad_theta.sum(0)
                del grad_beta, grad_theta
            if grad_currents_out[index] is not None:
                extra = grad_currents_out[index]
                grad_current = extra if grad_current is None else grad_current + extra
            if grad_current is None:
                continue
            if frame:
                grad_rows = grad_current.sum(0)
            else:
                grad_rows = grad_current.reshape(steps * batch, neurons)
            del grad_current
            path = ctx.paths[index]
            if need_w:  # first, so that the input rows are freed before dL/dh^(l-1)
                if index == 0:
                    rows = first_rows
                else:
                    before = index - 1
                    rows = _spikes_again(
                        layers[before], kept[before], ctx.recompute[before],
                        ctx.repeated and before == 0, steps,
                        *tensors[4 * before + 2: 4 * before + 4]).view(steps * batch, -1)
                results[1 + 4 * index] = _product_backward(path, grad_rows, rows, weight,
                                                           (False, True, False))[1]
                del rows
            need_input = index > 0 or needs[_X]
            if need_input or need_b:
                incoming, _, results[2 + 4 * index] = _product_backward(
                    path, grad_rows, None, weight, (need_input, False, need_b))
            del grad_rows
        if needs[_X] and incoming is not None:
            results[0] = incoming.view(ctx.x_shape)
        return (None,) * _X + tuple(results)


def linear_lif_stack(
    x: Tensor,
    layers: Sequence[StackLayer],
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None],
    betas: Sequence[Tensor],
    thetas: Sequence[Tensor],
    repeated: bool = False,
    steps: int | None = None,
    membranes: Sequence[bool] | None = None,
) -> StackOutputs:
    r"""Run ``L`` fused ``Linear -> LIF`` layers (module docstring): :math:`I^l = h^{l-1}
    W_l^\top + b_l`, :math:`s^l = \mathrm{LIF}_l(I^l)`, from rest.

    ``x`` is ``(T, B, n_0)``, or with ``repeated=True`` one frame ``(B, n_0)`` fed at each of
    ``steps`` steps. ``betas`` and ``thetas`` are contiguous ``(n_l,)`` vectors (they may
    require grad). Returns (:class:`StackOutputs`) the spikes, input currents and membranes
    ``(T, B, n_l)`` of every layer and the final membranes ``(B, n_l)``; ``membranes`` (one
    flag per layer, default all) says whose membranes to return (the others are ``None``,
    and the layers that need not keep them for the backward never write them). Builds a
    single autograd node when a gradient is needed; otherwise runs the same products and LIF
    loops without saving anything (and the membranes are ``None``).
    """
    steps = x.shape[0] if steps is None else steps
    tensors: list[Tensor | None] = []
    for weight, bias, beta, theta in zip(weights, biases, betas, thetas):
        tensors += [weight, bias, beta, theta]
    count = len(layers)
    wanted = (True,) * count if membranes is None else tuple(bool(m) for m in membranes)
    if len(wanted) != count:
        raise InvalidArgumentError(f"membranes has {len(wanted)} flags for {count} layers")
    needs_graph = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *tensors))
    if needs_graph:
        outputs = FusedStackFunction.apply(layers, steps, repeated, wanted, x, *tensors)
        return StackOutputs(list(outputs[:count]), list(outputs[count: 2 * count]),
                            list(outputs[2 * count: 3 * count]), list(outputs[3 * count:]))
    run = _forward_layers(layers, steps, repeated, x, tensors, False, wanted)
    return StackOutputs(run.spikes, run.currents, [None] * count, run.last)
