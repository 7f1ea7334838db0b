"""The correctness side of ``benchmarks/engine.py``, importable without running it.

The shared semantics of the comparison (:data:`SEMANTICS`), the models each workload builds
with spikeinit, the hand-written references (an eager PyTorch LIF network, a plain-autograd
LIF, the GEMM-only floors) and the spike checks (end to end and teacher-forced, layer by
layer, against spikeinit exact).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine_peers import BETA, SLOPE, THRESHOLD, Engine
from spikeinit.engine.gemm import use_backend
from spikeinit.models import ConvBlock, EventLinear, SpikingMLP
from spikeinit.neurons import LIF, reset_states

SPIKE_TOLERANCE = 1e-4

NUM_CLASSES = 10

SEMANTICS = (
    "reset order: spikeinit(delayed) = snnTorch: u[t] = beta*u[t-1] + I[t] - theta*s[t-1]; "
    "SpikingJelly and Norse decay the reset with the membrane (immediate): "
    "u[t] = beta*(u[t-1] - theta*s[t-1]) + I[t], compared against spikeinit(immediate). "
    "SpikingJelly also fires at u >= theta where the others need u > theta: spikes differ on "
    "exact ties only, and one such flip then propagates through the later layers. "
    "spikeinit's synapses sum in another order than torch.mm (its oneDNN GEMM, and its "
    "event-driven path, which adds the weights of the inputs that spiked), so spikes can differ "
    "where float32 rounding decides a threshold crossing; the reference for every check is "
    "spikeinit exact (GEMM synapses through torch.mm, SPIKEINIT_GEMM=torch, bit-identical to "
    "nn.Linear)."
)


def lif_options(order: str = "delayed") -> dict[str, Any]:
    return dict(beta=BETA, threshold=THRESHOLD, reset="subtract", reset_order=order,
                surrogate="fast-sigmoid", surrogate_slope=SLOPE, step_mode="multi")


def spikeinit_mlp(sizes: Sequence[int], order: str = "delayed",
                  event_driven: bool = True) -> nn.Sequential:
    """``(EventLinear -> LIF)`` for every consecutive pair in ``sizes``, layer-major.

    ``EventLinear`` is spikeinit's synaptic layer: a GEMM, or the event-driven kernel at
    inference when its input spikes are sparse enough; ``event_driven=False`` forces the GEMM.
    """
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [EventLinear(fan_in, fan_out, bias=False, event_driven=event_driven),
                   LIF(**lif_options(order))]
    return nn.Sequential(*layers)


def spikeinit_stack(sizes: Sequence[int], weights: Sequence[Tensor]) -> SpikingMLP:
    """The same network as :func:`spikeinit_mlp` built as a user would, a ``SpikingMLP``
    without input layer (its ``Linear -> LIF`` blocks run as one fused autograd node), with
    the given weights."""
    stack = SpikingMLP(list(sizes), bias=False, input_layer=False, **lif_options())
    with torch.no_grad():
        for linear, weight in zip(stack.synapses, weights, strict=True):
            linear.weight.copy_(weight)
    return stack


def spikeinit_layer(model: nn.Sequential) -> Callable[[int, Tensor], Tensor]:
    """Layer ``index`` of a spikeinit MLP alone, from rest (for the teacher-forced check)."""

    def layer(index: int, x: Tensor) -> Tensor:
        reset_states(model)
        return model[2 * index + 1](model[2 * index](x))

    return layer


def spikeinit_vgg(channels: tuple[int, int], hw: int) -> nn.Sequential:
    """conv(3->c1) LIF, conv(c1->c1) LIF, pool, conv(c1->c2) LIF, conv(c2->c2) LIF, pool, FC."""
    c1, c2 = channels
    options = lif_options()
    return nn.Sequential(
        ConvBlock(3, c1, pool="none", **options),
        ConvBlock(c1, c1, pool="max", **options),
        ConvBlock(c1, c2, pool="none", **options),
        ConvBlock(c2, c2, pool="max", **options),
        nn.Flatten(2),
        EventLinear(c2 * (hw // 4) ** 2, NUM_CLASSES, bias=False),
        LIF(**options),
    )

VGG_POOLS = (False, True, False, True, False)


def synaptic_weights(model: nn.Module) -> list[Tensor]:
    """The Linear/Conv2d weights of ``model`` in module order (detached copies)."""
    return [m.weight.detach().clone() for m in model.modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))]


def run_spikeinit(model: nn.Module) -> Callable[[Tensor], Tensor]:
    def forward(x: Tensor) -> Tensor:
        reset_states(model)
        return model(x)

    return forward


def lif_inplace_(currents: Tensor, beta: float, threshold: float) -> Tensor:
    """Turn ``currents`` (T, B, N) into spikes in place: delayed subtract reset, one state."""
    membrane = torch.zeros_like(currents[0])
    mask = torch.empty(currents.shape[1:], dtype=torch.bool)
    for t in range(currents.shape[0]):
        membrane.mul_(beta).add_(currents[t])
        if t:
            membrane.sub_(currents[t - 1], alpha=threshold)  # currents[t-1] now holds s[t-1]
        torch.gt(membrane, threshold, out=mask)
        currents[t].copy_(mask)
    return currents


def eager_reference(weights: Sequence[Tensor]) -> Engine:
    """Layer-major eager loop: one GEMM over all T*B rows per layer, then an in-place LIF."""

    def layer(index: int, x: Tensor) -> Tensor:
        steps, batch = x.shape[:2]
        currents = torch.mm(x.reshape(steps * batch, -1), weights[index].t())
        return lif_inplace_(currents.view(steps, batch, -1), BETA, THRESHOLD)

    def forward(x: Tensor) -> Tensor:
        for index in range(len(weights)):
            x = layer(index, x)
        return x

    return Engine("eager reference", forward, nn.Module(), "delayed", layer,
                  "hand-written in-place LIF")


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward (``x > 0``), fast-sigmoid surrogate ``1 / (1 + k|x|)^2`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad / (SLOPE * x.abs() + 1.0) ** 2


def plain_lif(currents: Tensor) -> Tensor:
    """Plain-autograd LIF over (T, B, ...): delayed subtract reset, detached reset term."""
    membrane = torch.zeros_like(currents[0])
    spikes = torch.zeros_like(currents[0])
    outputs = []
    for t in range(currents.shape[0]):
        membrane = BETA * membrane + currents[t] - THRESHOLD * spikes.detach()
        spikes = FastSigmoidSpike.apply(membrane - THRESHOLD)
        outputs.append(spikes)
    return torch.stack(outputs)


class PlainLIF(nn.Module):
    def __init__(self, function: Callable[[Tensor], Tensor] = plain_lif) -> None:
        super().__init__()
        self.function = function

    def forward(self, currents: Tensor) -> Tensor:
        return self.function(currents)


def plain_mlp(weights: Sequence[Tensor], function: Callable[[Tensor], Tensor]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for weight in weights:
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            linear.weight.copy_(weight)
        layers += [linear, PlainLIF(function)]
    return nn.Sequential(*layers)


def mm_nt(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T`` with ``torch.mm`` (MKL on PyTorch's x86 builds): the issue's GEMM floor."""
    return torch.mm(a, b.t())


def gemm_inference(weights: Sequence[Tensor], spikes: Tensor,
                   matmul: Callable[[Tensor, Tensor], Tensor] = mm_nt) -> Callable[[], Tensor]:
    """The A matmuls alone: ``x.view(T*B, N) @ W.T`` per layer on a fixed binary input.

    Every layer multiplies the same spike matrix (values cannot blow up or go denormal, and a
    dense GEMM's cost does not depend on its values).
    """
    rows = spikes.reshape(-1, spikes.shape[-1])

    def run() -> Tensor:
        for weight in weights:
            out = matmul(rows, weight)
        return out

    return run


def gemm_training(weights: Sequence[Tensor], rows: int, seed: int,
                  matmul: Callable[[Tensor, Tensor], Tensor] = mm_nt,
                  first_rows: int | None = None) -> Callable[[], None]:
    """The B matmuls alone at ``rows = T*B``: forward, grad-input and grad-weight per layer.

    ``first_rows`` sets the rows of layer 1 (``B`` when its input is one frame repeated over
    time and spikeinit multiplies it once).
    """
    generator = torch.Generator().manual_seed(seed)
    counts = [first_rows or rows] + [rows] * (len(weights) - 1)
    inputs = [torch.rand(n, w.shape[1], generator=generator) for n, w in zip(counts, weights)]
    grads = [torch.randn(n, w.shape[0], generator=generator) for n, w in zip(counts, weights)]

    def run() -> None:
        for index, (weight, x, grad) in enumerate(zip(weights, inputs, grads)):
            matmul(x, weight)
            if index:  # the first layer needs no gradient with respect to the data
                matmul(grad, weight.t())
            matmul(grad.t(), x.t())

    return run


def gemm_conv(model: nn.Sequential, x: Tensor, channels_last: bool = False
              ) -> Callable[[], None]:
    """Each conv/linear forward + backward alone (autograd) at its real input shape.

    No neurons and no pooling: every synaptic layer gets a random input of the shape it sees in
    the real network (T folded into the batch), forward, then ``autograd.grad`` for its weight
    and (except the first layer) its input; with ``channels_last`` the conv inputs (and so
    outputs and gradients) are channels-last.
    """
    inputs: list[Tensor] = []
    layers: list[nn.Module] = []

    def hook(module: nn.Module, args: tuple[Tensor, ...], _: Tensor) -> None:
        frames = args[0].reshape(-1, *args[0].shape[-3:]) if isinstance(module, nn.Conv2d) \
            else args[0].reshape(-1, args[0].shape[-1])
        frames = torch.rand(frames.shape)
        if channels_last and frames.ndim == 4:
            frames = frames.contiguous(memory_format=torch.channels_last)
        inputs.append(frames)
        layers.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        run_spikeinit(model)(x)
    for handle in handles:
        handle.remove()
    for index, tensor in enumerate(inputs):
        tensor.requires_grad_(index > 0)

    def run() -> None:
        for module, tensor in zip(layers, inputs):
            weight = module.weight.detach().requires_grad_()
            if isinstance(module, nn.Conv2d):
                out = F.conv2d(tensor, weight, padding=module.padding)
            else:
                out = F.linear(tensor, weight)
            wrt = [weight, tensor] if tensor.requires_grad else [weight]
            torch.autograd.grad(out, wrt, torch.ones_like(out))  # ones_like keeps the layout

    return run


def end_to_end(outputs: dict[str, Tensor], engines: Sequence[Engine]) -> dict[str, float]:
    """Fraction of the final layer's spikes equal to spikeinit exact's (GEMM synapses through
    ``torch.mm``) of the same reset order."""
    result = {}
    for engine in engines:
        if engine.name not in outputs:
            continue
        reference = outputs["spikeinit exact" if engine.order == "delayed"
                            else "spikeinit(immediate)"]
        result[engine.name] = (outputs[engine.name] == reference).double().mean().item()
    return result


def spikeinit_chain(model: nn.Sequential, x: Tensor, layers: int) -> list[Tensor]:
    """spikeinit's output spikes of each of the first ``layers`` layers."""
    outputs = []
    for index in range(layers):
        reset_states(model)
        x = model[2 * index + 1](model[2 * index](x))
        outputs.append(x)
    return outputs


def teacher_forced(
    model: nn.Sequential, weights: Sequence[Tensor], x_full: Tensor,
    engines: Sequence[Engine], check_layers: int, check_batch: int,
) -> dict[str, dict[str, float | int]]:
    """Per engine: min and mean over layers of the fraction of spikes equal to spikeinit exact's
    (``model``, a GEMM-synapse spikeinit MLP, run with ``torch.mm``) when every engine's layer
    ``l`` gets the reference's layer ``l-1`` output; plus the end-to-end fraction at the last
    checked layer when each engine feeds itself."""
    layers = min(check_layers, len(weights))
    x = x_full[:, :check_batch]
    immediate = spikeinit_mlp([weights[0].shape[1]] * (len(weights) + 1), "immediate",
                              event_driven=False)
    immediate.load_state_dict(model.state_dict())
    with use_backend("torch"):
        references = {"delayed": spikeinit_chain(model, x, layers),
                      "immediate": spikeinit_chain(immediate, x, layers)}
    result = {}
    for engine in engines:
        if engine.layer is None:
            continue
        reference = references[engine.order]
        try:
            fractions = []
            mismatches = 0
            own = x
            for index in range(layers):
                forced = engine.layer(index, x if index == 0 else reference[index - 1])
                fractions.append((forced == reference[index]).double().mean().item())
                mismatches += int((forced != reference[index]).sum().item())
                own = engine.layer(index, own)
            chained = (own == reference[-1]).double().mean().item()
        except Exception as error:  # report, do not abort the benchmark
            print(f"  spike check failed for {engine.name}: {error!r}")
            continue
        result[engine.name] = {"teacher_forced_min": min(fractions),
                               "teacher_forced_mean": statistics.fmean(fractions),
                               "end_to_end_last": chained, "layers": layers,
                               "mismatched_spikes": mismatches}
    return result
