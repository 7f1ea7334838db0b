r"""Fused multi-step LIF: one forward pass over all T steps and a hand-written backward.

The autograd graph of a step-by-step LIF holds a handful of tensors per time step. The fused
function keeps one: the membrane ``u[t]`` of every step (the spikes are ``u[t] > theta``), or,
for up to ``RECOMPUTE_STEPS`` steps on the compiled kernel, the currents, from which the
backward recomputes the membranes (:class:`RecomputingLIFFunction`). Its
backward runs the adjoint recursion in reverse time, with :math:`a_t = \partial L/\partial u_t`
over all paths and :math:`g_t = \partial L/\partial s_t`:

.. math::

    g_t &= \bar s_t + \frac{\partial u_{t+1}}{\partial s_t} a_{t+1}
          \quad(\text{second term only when the reset is not detached}) \\
    a_t &= g_t\,h'(u_t - \theta) + \frac{\partial u_{t+1}}{\partial u_t} a_{t+1} \\
    \frac{\partial L}{\partial I_t} &= a_t,\quad
    \frac{\partial L}{\partial \beta} = \sum_t a_t \frac{\partial u_t}{\partial \beta},\quad
    \frac{\partial L}{\partial \theta} = \sum_t \Big(-g_t h'(u_t-\theta)
          + a_t \frac{\partial u_t}{\partial \theta}\Big)

where :math:`\bar s_t` is the incoming gradient of the spikes and :math:`h'` the surrogate.
The partial derivatives, per reset mode and order, as
(du[t+1]/ds[t], du[t+1]/du[t], du[t]/dbeta, du[t]/dtheta)::

    subtract, delayed:    (-theta,        beta,            u[t-1],                  -s[t-1])
    subtract, immediate:  (-beta*theta,   beta,            u[t-1] - theta*s[t-1],   -beta*s[t-1])
    zero (either order):  (-beta*u[t],    beta*(1-s[t]),   u[t-1]*(1 - s[t-1]),     0)
    none:                 (0,             beta,            u[t-1],                  0)

The time loop runs in the compiled kernel (:mod:`spikeinit.engine.kernels`) for float32 and
float64 CPU tensors, and in the equivalent PyTorch loops otherwise (other devices and dtypes,
or no compiler). Both follow the reference :func:`spikeinit.neurons.dynamics.lif_multistep`
operation by operation, so the spikes are identical.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
from torch import Tensor

from spikeinit.engine.kernels import (
    ORDER_CODES,
    RECOMPUTE_STEPS,
    RESET_CODES,
    SURROGATE_CODES,
    compiled_kernel,
    kernel_threads,
)
from spikeinit.engine.layout import NeuronLayout
from spikeinit.errors import InternalError
from spikeinit.neurons.dynamics import LIFState, lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import surrogate_derivative

_KERNEL_DTYPES = {torch.float32: "f32", torch.float64: "f64"}


def _pointer(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def uses_compiled_kernel(tensor: Tensor) -> bool:
    """Whether the compiled kernel serves ``tensor`` (CPU float32/float64, kernel available)."""
    return (tensor.device.type == "cpu" and tensor.dtype in _KERNEL_DTYPES
            and compiled_kernel() is not None)


# --------------------------------------------------------------------------- reference loops
def _forward_torch(current: Tensor, beta: Tensor, theta: Tensor, u0: Tensor | None,
                   s0: Tensor | None, params: LIFParameters,
                   save_membrane: bool) -> tuple[Tensor, Tensor | None, Tensor]:
    """The forward pass in PyTorch: the reference loop, :func:`lif_multistep`."""
    membrane = torch.empty_like(current) if save_membrane else None
    state = None
    if u0 is not None or s0 is not None:
        rest = torch.zeros_like(current[0])
        state = LIFState(rest if u0 is None else u0, rest if s0 is None else s0)
    spikes, state = lif_multistep(current, params, state, beta, theta, membrane)
    return spikes, membrane, state.membrane


def _reset_sensitivity(u: Tensor, beta: Tensor, theta: Tensor, params: LIFParameters) -> Tensor:
    """:math:`\\partial u_{t+1} / \\partial s_t` for the reset mode (zero for ``none``)."""
    if params.reset == "subtract":
        return -(theta if params.reset_order == "delayed" else beta * theta).expand_as(u)
    if params.reset == "zero":
        return -beta * u
    return torch.zeros_like(u)


def _carry(s: Tensor, beta: Tensor, params: LIFParameters) -> Tensor:
    """:math:`\\partial u_{t+1} / \\partial u_t`."""
    return beta * (1.0 - s) if params.reset == "zero" else beta.expand_as(s)


def _backward_torch(grad_spikes: Tensor, membrane: Tensor, beta: Tensor, theta: Tensor,
                    u0: Tensor | None, s0: Tensor | None, grad_u_last: Tensor | None,
                    params: LIFParameters, grad_membrane: Tensor | None = None,
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    steps = membrane.shape[0]
    zeros = torch.zeros_like(membrane[0])
    u_start = zeros if u0 is None else u0
    s_start = zeros if s0 is None else s0
    grad_current = torch.empty_like(membrane)
    grad_beta, grad_theta = torch.zeros_like(zeros), torch.zeros_like(zeros)
    a_next = zeros
    for t in range(steps - 1, -1, -1):
        u = membrane[t]
        fired = (u > theta).to(u.dtype)
        u_prev = membrane[t - 1] if t > 0 else u_start
        s_prev = (u_prev > theta).to(u.dtype) if t > 0 else s_start
        d = surrogate_derivative(params.surrogate, u - theta, params.slope)
        g = grad_spikes[t]
        if not params.detach_reset:
            g = g + _reset_sensitivity(u, beta, theta, params) * a_next
        a = g * d + _carry(fired, beta, params) * a_next
        if t == steps - 1 and grad_u_last is not None:
            a = a + grad_u_last
        if grad_membrane is not None:
            a = a + grad_membrane[t]
        grad_current[t] = a
        if params.reset == "subtract" and params.reset_order == "immediate":
            grad_beta += a * (u_prev - theta * s_prev)
        elif params.reset == "zero":
            grad_beta += a * u_prev * (1.0 - s_prev)
        else:
            grad_beta += a * u_prev
        grad_theta -= g * d
        if params.reset == "subtract":
            grad_theta -= a * (s_prev if params.reset_order == "delayed" else beta * s_prev)
        a_next = a
    grad_u0 = _carry(s_start, beta, params) * a_next
    grad_s0 = (zeros if params.detach_reset
               else _reset_sensitivity(u_start, beta, theta, params) * a_next)
    return grad_current, grad_beta, grad_theta, grad_u0, grad_s0


# ---------------------------------------------------------------------------- compiled loops
def _forward_compiled(current: Tensor, beta: Tensor, theta: Tensor, u0: Tensor | None,
                      s0: Tensor | None, params: LIFParameters,
                      save_membrane: bool) -> tuple[Tensor, Tensor | None, Tensor]:
    kernel = compiled_kernel()
    steps, batch, neurons = current.shape
    spikes = torch.empty_like(current)
    membrane = torch.empty_like(current) if save_membrane else None
    u_last = torch.empty_like(current[0])
    status = getattr(kernel, f"lif_forward_{_KERNEL_DTYPES[current.dtype]}")(
        current.data_ptr(), spikes.data_ptr(), _pointer(membrane), beta.data_ptr(),
        theta.data_ptr(), _pointer(u0), _pointer(s0), u_last.data_ptr(),
        steps, batch, neurons, RESET_CODES[params.reset], ORDER_CODES[params.reset_order],
        kernel_threads(),
    )
    if status != 0:
        raise RuntimeError(f"LIF kernel forward failed with status {status}")
    return spikes, membrane, u_last


def _backward_compiled(grad_spikes: Tensor, membrane: Tensor, beta: Tensor, theta: Tensor,
                       u0: Tensor | None, s0: Tensor | None, grad_u_last: Tensor | None,
                       params: LIFParameters, needs: tuple[bool, ...] = (True,) * 5,
                       grad_membrane: Tensor | None = None, recompute: bool = False,
                       ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None,
                                  Tensor | None]:
    """The compiled backward; gradients nobody needs are neither computed nor allocated.
    ``grad_membrane`` (contiguous, like ``membrane``) adds :math:`\\partial L/\\partial u_t`
    of the returned membranes into :math:`a_t`. With ``recompute``, ``membrane`` holds the
    currents instead and the kernel recomputes the membranes (at most
    :data:`~spikeinit.engine.kernels.abi.RECOMPUTE_STEPS` steps)."""
    kernel = compiled_kernel()
    steps, batch, neurons = membrane.shape
    grad_current = torch.empty_like(membrane)
    wanted = (needs[1], needs[2], needs[3] and u0 is not None, needs[4] and s0 is not None)
    grad_beta, grad_theta, grad_u0, grad_s0 = (
        torch.empty_like(membrane[0]) if want else None for want in wanted)
    status = getattr(kernel, f"lif_backward_{_KERNEL_DTYPES[membrane.dtype]}")(
        grad_spikes.data_ptr(), membrane.data_ptr(), beta.data_ptr(), theta.data_ptr(),
        _pointer(u0), _pointer(s0), _pointer(grad_u_last), _pointer(grad_membrane),
        grad_current.data_ptr(),
        _pointer(grad_beta), _pointer(grad_theta), _pointer(grad_u0), _pointer(grad_s0),
        steps, batch, neurons, RESET_CODES[params.reset], ORDER_CODES[params.reset_order],
        int(params.detach_reset), SURROGATE_CODES[params.surrogate], ctypes.c_double(params.slope),
        int(recompute), kernel_threads(),
    )
    if status != 0:
        raise RuntimeError(f"LIF kernel backward failed with status {status}")
    return grad_current, grad_beta, grad_theta, grad_u0, grad_s0


# --------------------------------------------------------------------------------- dispatch
def lif_forward(current: Tensor, beta: Tensor, theta: Tensor, u0: Tensor | None,
                s0: Tensor | None, params: LIFParameters, save_membrane: bool,
                compiled: bool | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """The forward pass over contiguous ``current`` ``(T, B, N)``, per-neuron ``beta`` and
    ``theta`` ``(N,)`` and the state before the first step ``u0``, ``s0`` (``(B, N)``, or
    ``None`` for rest): ``(spikes, membranes or None, u[T-1])``, without autograd.

    Runs on the compiled kernel when ``compiled`` (default: :func:`uses_compiled_kernel`),
    else the reference loop :func:`~spikeinit.neurons.dynamics.lif_multistep`; the spikes are
    the same. The membranes are written only when ``save_membrane``.
    """
    compiled = uses_compiled_kernel(current) if compiled is None else compiled
    run = _forward_compiled if compiled else _forward_torch
    return run(current, beta, theta, u0, s0, params, save_membrane)


def lif_backward(compiled: bool, grad_spikes: Tensor, membrane: Tensor, beta: Tensor,
                 theta: Tensor, u0: Tensor | None, s0: Tensor | None,
                 grad_u_last: Tensor | None, params: LIFParameters,
                 needs: tuple[bool, ...] = (True,) * 5, grad_membrane: Tensor | None = None,
                 recompute: bool = False) -> tuple[Tensor | None, ...]:
    r"""The adjoint recursion of the module docstring, in reverse time, on the backend the
    forward pass ran on (``compiled``): the gradients ``(current, beta, theta, u0, s0)``, per
    sample for beta and theta (``(B, N)``).

    ``grad_membrane`` adds :math:`\partial L/\partial u_t` of the returned membranes into
    :math:`a_t`. With ``recompute`` (compiled kernel only) ``membrane`` holds the currents and
    the kernel recomputes the membranes; ``needs`` lets the kernel skip gradients nobody needs
    (``None`` there; the PyTorch loop computes them all).
    """
    if compiled:
        return _backward_compiled(grad_spikes.contiguous(), membrane, beta, theta, u0, s0,
                                  grad_u_last, params, needs, grad_membrane, recompute)
    if recompute:
        raise InternalError("only the compiled LIF kernel recomputes the membranes")
    return _backward_torch(grad_spikes, membrane, beta, theta, u0, s0, grad_u_last, params,
                           grad_membrane)


# ------------------------------------------------------------------------------ autograd glue
class FusedLIFFunction(torch.autograd.Function):
    """``(currents (T,B,N), beta (N,), theta (N,), u0, s0) -> (spikes, u[T-1], membranes)``.

    ``u0``/``s0`` are the state before the first step (``(B, N)`` or ``None`` for rest). Saves
    only the membranes for the backward pass. The membranes are returned too, differentiable:
    a gradient :math:`\\bar u_t` arriving at them is added into :math:`a_t` (the membrane
    readout of ``spikeinit train`` uses it, :func:`lif_membranes`).
    """

    @staticmethod
    def forward(ctx: Any, current: Tensor, beta: Tensor, theta: Tensor, u0: Tensor | None,
                s0: Tensor | None, params: LIFParameters) -> tuple[Tensor, Tensor, Tensor]:
        compiled = uses_compiled_kernel(current)
        spikes, membrane, u_last = lif_forward(current, beta, theta, u0, s0, params, True,
                                               compiled)
        ctx.save_for_backward(membrane, beta, theta, u0, s0)
        ctx.params, ctx.compiled = params, compiled
        ctx.set_materialize_grads(False)  # no zero tensors for the unused outputs
        return spikes, u_last, membrane

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_u_last: Tensor | None,
                 grad_membrane: Tensor | None) -> tuple:
        membrane, beta, theta, u0, s0 = ctx.saved_tensors
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(membrane)
        grad_spikes = grad_spikes.contiguous()
        grad_u_last = None if grad_u_last is None else grad_u_last.contiguous()
        grad_membrane = None if grad_membrane is None else grad_membrane.contiguous()
        needs = ctx.needs_input_grad
        grads = lif_backward(ctx.compiled, grad_spikes, membrane, beta, theta, u0, s0,
                             grad_u_last, ctx.params, needs, grad_membrane)
        return _input_grads(grads, needs)


def _input_grads(grads: tuple[Tensor | None, ...], needs: tuple[bool, ...]) -> tuple:
    """The kernel's ``(current, beta, theta, u0, s0)`` gradients as an autograd Function
    returns them: ``None`` where not needed, beta and theta summed over the batch."""
    grad_current, grad_beta, grad_theta, grad_u0, grad_s0 = grads
    return (
        grad_current if needs[0] else None,
        grad_beta.sum(0) if needs[1] else None,
        grad_theta.sum(0) if needs[2] else None,
        grad_u0 if needs[3] else None,
        grad_s0 if needs[4] else None,
        None,
    )


class RecomputingLIFFunction(torch.autograd.Function):
    """``(currents (T,B,N), beta, theta, u0, s0) -> (spikes, u[T-1])`` on the compiled kernel,
    saving the currents instead of the membranes: the forward pass writes only the spikes, and
    the backward recomputes each chunk's membranes before its adjoint recursion (the same
    arithmetic, so the same gradients as :class:`FusedLIFFunction`). For ``T`` up to
    :data:`~spikeinit.engine.kernels.abi.RECOMPUTE_STEPS`; the layer's memory is the same (the
    currents are kept instead of the membranes), its forward traffic a third lower.
    """

    @staticmethod
    def forward(ctx: Any, current: Tensor, beta: Tensor, theta: Tensor, u0: Tensor | None,
                s0: Tensor | None, params: LIFParameters) -> tuple[Tensor, Tensor]:
        spikes, _, u_last = _forward_compiled(current, beta, theta, u0, s0, params, False)
        ctx.save_for_backward(current, beta, theta, u0, s0)
        ctx.params = params
        ctx.set_materialize_grads(False)
        return spikes, u_last

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_u_last: Tensor | None) -> tuple:
        current, beta, theta, u0, s0 = ctx.saved_tensors
        grad_spikes = (torch.zeros_like(current) if grad_spikes is None
                       else grad_spikes.contiguous())
        grad_u_last = None if grad_u_last is None else grad_u_last.contiguous()
        needs = ctx.needs_input_grad
        return _input_grads(_backward_compiled(
            grad_spikes, current, beta, theta, u0, s0, grad_u_last, ctx.params, needs,
            recompute=True), needs)


def recomputes(current: Tensor) -> bool:
    """Whether a fused LIF over ``current`` ``(T, B, N)`` that needs no membranes runs
    :class:`RecomputingLIFFunction` (compiled kernel, ``T <= RECOMPUTE_STEPS``)."""
    return current.shape[0] <= RECOMPUTE_STEPS and uses_compiled_kernel(current)


#: Cache of the vectors of a float (see :func:`neuron_vector`), bounded.
_VECTORS: dict[tuple[float, int, torch.dtype, torch.device, bool], Tensor] = {}
_VECTORS_KEPT = 256


def neuron_vector(value: float | Tensor, neurons: int, like: Tensor,
                  layout: NeuronLayout | None = None) -> Tensor:
    """``value`` as a contiguous ``(neurons,)`` vector of ``like``'s dtype and device.

    A tensor ``value`` broadcasts to ``(neurons,)``, or, with ``layout``, to one sample of
    ``like`` ``(T, B, ...)`` (per layer, per channel or per neuron), taken in ``layout``'s
    neuron order (:class:`~spikeinit.engine.layout.NeuronLayout`); it keeps its graph (a
    learnable beta or threshold gets its gradient through it). The vectors of a float are
    cached and shared: the engine only reads them.

    Example:
        >>> neuron_vector(0.5, 3, torch.zeros(1)).tolist()
        [0.5, 0.5, 0.5]
        >>> neuron_vector(torch.tensor([[1.0], [2.0]]), 4, torch.zeros(1, 1, 2, 2),
        ...               NeuronLayout(None)).tolist()
        [1.0, 1.0, 2.0, 2.0]
    """
    if isinstance(value, Tensor):
        value = value.to(dtype=like.dtype, device=like.device)
        if layout is not None:
            value = layout.per_neuron(value.expand(like.shape[2:]))
        return value.expand(neurons).contiguous()
    # An inference tensor cannot be saved for a backward pass: kept apart from the others.
    key = (float(value), neurons, like.dtype, like.device, torch.is_inference_mode_enabled())
    vector = _VECTORS.get(key)
    if vector is None:
        if len(_VECTORS) >= _VECTORS_KEPT:
            _VECTORS.clear()
        vector = _VECTORS[key] = torch.full((neurons,), float(value), dtype=like.dtype,
                                            device=like.device)
    return vector


def fused_lif(
    currents: Tensor,
    params: LIFParameters,
    state: LIFState | None = None,
    beta: float | Tensor | None = None,
    threshold: float | Tensor | None = None,
    membranes_out: Tensor | None = None,
) -> tuple[Tensor, LIFState]:
    """Run ``T = currents.shape[0]`` LIF steps fused; same contract as ``lif_multistep``.

    ``currents`` is ``(T, B, ...)``; ``beta`` and ``threshold`` are floats or tensors that
    broadcast to one sample's shape ``currents.shape[2:]`` (per layer, per channel or per
    neuron) and may require grad. With no graph to build (inference, or nothing requiring
    grad) the membranes are not kept unless ``membranes_out`` asks for them.
    """
    layout, flat, beta_vec, theta_vec = _flat_inputs(currents, params, beta, threshold)
    steps, batch, neurons = flat.shape
    u0 = s0 = None
    if state is not None:
        u0 = layout.flat_state(state.membrane, batch, neurons).to(flat.dtype).contiguous()
        s0 = layout.flat_state(state.spikes, batch, neurons).to(flat.dtype).contiguous()
    inputs = (flat, beta_vec, theta_vec, u0, s0)
    grad_needed = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in inputs)
    if grad_needed and membranes_out is None and recomputes(flat):
        spikes, u_last = RecomputingLIFFunction.apply(flat, beta_vec, theta_vec, u0, s0, params)
    elif grad_needed:
        spikes, u_last, membrane = FusedLIFFunction.apply(flat, beta_vec, theta_vec, u0, s0,
                                                          params)
        if membranes_out is not None:
            membranes_out.copy_(layout.unflatten(membrane.detach(), currents.shape))
    else:
        spikes, membrane, u_last = lif_forward(flat.detach(), beta_vec.detach(),
                                               theta_vec.detach(), u0, s0, params,
                                               membranes_out is not None)
        if membranes_out is not None:
            membranes_out.copy_(layout.unflatten(membrane, currents.shape))
    spikes = layout.unflatten(spikes, currents.shape)
    u_last = layout.unflatten(u_last.unsqueeze(0), (1, *currents.shape[1:]))[0]
    return spikes, LIFState(u_last, spikes[-1])


def _flat_inputs(currents: Tensor, params: LIFParameters, beta: float | Tensor | None,
                 threshold: float | Tensor | None
                 ) -> tuple[NeuronLayout, Tensor, Tensor, Tensor]:
    """The memory order of ``currents``' neurons (:class:`NeuronLayout`), ``currents`` as a
    contiguous ``(T, B, N)`` in that order, and beta and threshold as ``(N,)`` vectors in the
    same order (``params``' values where not given)."""
    layout = NeuronLayout.of(currents)
    beta = params.beta if beta is None else beta
    threshold = params.threshold if threshold is None else threshold
    flat = layout.flatten(currents)
    neurons = flat.shape[2]
    return (layout, flat, neuron_vector(beta, neurons, currents, layout),
            neuron_vector(threshold, neurons, currents, layout))


def lif_membranes(
    currents: Tensor,
    params: LIFParameters,
    beta: float | Tensor | None = None,
    threshold: float | Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Spikes and membranes ``(T, B, ...)`` of ``T`` fused LIF steps from rest, both with
    gradient.

    :math:`u_t` follows the reset mode and order of ``params`` (:class:`LIFParameters`),
    :math:`s_t = H(u_t - \theta)`. A loss on the membranes (e.g. the membrane readout
    :math:`z = \frac1T \sum_t u_t`) backpropagates through the adjoint recursion of the
    module docstring with :math:`\partial L/\partial u_t` added into :math:`a_t`; the
    result equals autograd through :func:`~spikeinit.neurons.dynamics.lif_step`, in one node.

    Example:
        >>> currents = torch.full((3, 1, 1), 1.2, requires_grad=True)
        >>> spikes, membranes = lif_membranes(currents, LIFParameters(beta=0.5))
        >>> [round(u, 4) for u in membranes.flatten().tolist()]
        [1.2, 0.8, 1.6]
        >>> membranes.mean().backward()  # du/dI: 1 + 0.5 + 0.25 for I[0], 1/3 each
        >>> [round(g, 4) for g in currents.grad.flatten().tolist()]
        [0.5833, 0.5, 0.3333]
    """
    layout, flat, beta_vec, theta_vec = _flat_inputs(currents, params, beta, threshold)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (flat, beta_vec, theta_vec)):
        spikes, _, membrane = FusedLIFFunction.apply(flat, beta_vec, theta_vec, None, None,
                                                     params)
    else:
        spikes, membrane, _ = lif_forward(flat.detach(), beta_vec.detach(), theta_vec.detach(),
                                          None, None, params, True)
    return (layout.unflatten(spikes, currents.shape),
            layout.unflatten(membrane, currents.shape))
