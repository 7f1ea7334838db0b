"""Peer engines for ``benchmarks/engine.py``: snnTorch, SpikingJelly and Norse.

Every builder takes the weights of the spikeinit model (same order, already initialized) and
returns an engine, or raises :class:`PeerUnavailableError` with a printable reason when the peer is
not installed or has no matching neuron. The peers are written the way their tutorials write
them: snnTorch and Norse loop over time outside and layers inside, SpikingJelly runs multi-step
modules layer by layer.

Norse's ``LIFBoxCell`` integrates ``v <- v + dt/tau (i - v)``; with ``dt/tau = 1/2`` the input
enters with weight 1/2, so Norse gets every weight times 2 (exact in floating point) to see the
same current ``I`` as the others (``v <- v/2 + I``, up to rounding: ``v + (2I - v)/2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

BETA = 0.5
THRESHOLD = 1.0
SLOPE = 25.0

Forward = Callable[[Tensor], Tensor]
LayerFn = Callable[[int, Tensor], Tensor]


class PeerUnavailableError(RuntimeError):
    """A peer engine cannot run here; the message says why."""


@dataclass
class Engine:
    """One engine: the whole forward, a single-layer forward (for checks) and its modules.

    ``order`` is the reset order it implements (``"delayed"`` or ``"immediate"``), ``note``
    says anything that differs from spikeinit besides that.
    """

    name: str
    forward: Forward
    module: nn.Module
    order: str = "delayed"
    layer: LayerFn | None = None
    note: str = ""


# ----------------------------------------------------------------------------- helpers


def _copy_weights(modules: Sequence[nn.Module], weights: Sequence[Tensor], scale: float) -> None:
    """Copy ``weights`` (times ``scale``) into the ``weight`` of ``modules`` in order."""
    if len(modules) != len(weights):
        raise ValueError(f"{len(modules)} synaptic layers for {len(weights)} weights")
    with torch.no_grad():
        for module, weight in zip(modules, weights):
            module.weight.copy_(weight * scale)


def _linear(weight: Tensor) -> nn.Linear:
    out_features, in_features = weight.shape
    return nn.Linear(in_features, out_features, bias=False)


def _conv(weight: Tensor) -> nn.Conv2d:
    out_channels, in_channels, kernel, _ = weight.shape
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)


def _synapses(weights: Sequence[Tensor]) -> list[nn.Module]:
    """Fresh Linear/Conv2d modules shaped like ``weights`` (weights copied later)."""
    return [_conv(w) if w.dim() == 4 else _linear(w) for w in weights]


def _conv_plan(weights: Sequence[Tensor], pools: Sequence[bool]) -> list[tuple[str, int]]:
    """The per-frame program of the conv workload: ``("syn", i)``, ``("pool", i)``, flatten."""
    plan: list[tuple[str, int]] = []
    for index, weight in enumerate(weights):
        if weight.dim() == 2 and (not plan or plan[-1][0] != "flatten"):
            plan.append(("flatten", index))
        plan.append(("syn", index))
        if index < len(pools) and pools[index]:
            plan.append(("pool", index))
    return plan


def _time_outer(
    synapses: nn.ModuleList,
    cells: nn.ModuleList,
    step: Callable[[nn.Module, Tensor, object], tuple[Tensor, object]],
    plan: list[tuple[str, int]],
) -> Forward:
    """A time-outer, layer-inner forward over ``(T, B, ...)`` that restarts from rest."""

    def forward(x: Tensor) -> Tensor:
        states: list[object] = [None] * len(cells)
        outputs = []
        for t in range(x.shape[0]):
            h = x[t]
            for kind, index in plan:
                if kind == "flatten":
                    h = h.flatten(1)
                elif kind == "pool":
                    h = nn.functional.max_pool2d(h, 2)
                else:
                    h, states[index] = step(cells[index], synapses[index](h), states[index])
            outputs.append(h)
        return torch.stack(outputs)

    return forward


def _layer_loop(
    synapses: nn.ModuleList,
    cells: nn.ModuleList,
    step: Callable[[nn.Module, Tensor, object], tuple[Tensor, object]],
) -> LayerFn:
    """Layer ``l`` alone over all T steps (teacher-forced spike check)."""

    def layer(index: int, x: Tensor) -> Tensor:
        state: object = None
        outputs = []
        for t in range(x.shape[0]):
            spikes, state = step(cells[index], synapses[index](x[t]), state)
            outputs.append(spikes)
        return torch.stack(outputs)

    return layer


def _mlp_plan(count: int) -> list[tuple[str, int]]:
    return [("syn", index) for index in range(count)]


# ----------------------------------------------------------------------------- snnTorch


def build_snntorch(weights: Sequence[Tensor], pools: Sequence[bool] = ()) -> Engine:
    """snnTorch ``Leaky`` (subtract reset, delayed: snnTorch's own order), time-outer loop."""
    try:
        import snntorch as snn
        from snntorch import surrogate
    except Exception as error:
        raise PeerUnavailableError(f"import snntorch failed: {error!r}") from error
    synapses = nn.ModuleList(_synapses(weights))
    _copy_weights(synapses, weights, 1.0)
    cells = nn.ModuleList(
        snn.Leaky(beta=BETA, threshold=THRESHOLD, reset_mechanism="subtract",
                  spike_grad=surrogate.fast_sigmoid(slope=SLOPE))
        for _ in weights
    )

    def step(cell: nn.Module, current: Tensor, mem: object) -> tuple[Tensor, object]:
        if mem is None:
            mem = cell.reset_mem()
        return cell(current, mem)

    plan = _conv_plan(weights, pools) if pools else _mlp_plan(len(weights))
    module = nn.ModuleList([synapses, cells])
    return Engine("snntorch", _time_outer(synapses, cells, step, plan), module, "delayed",
                  _layer_loop(synapses, cells, step), "snn.Leaky, fast_sigmoid(25)")


# ----------------------------------------------------------------------------- SpikingJelly


def build_spikingjelly(weights: Sequence[Tensor], pools: Sequence[bool] = ()) -> Engine:
    """SpikingJelly multi-step ``LIFNode`` (tau 2, no input decay, soft reset), layer-major."""
    try:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    except Exception as error:
        raise PeerUnavailableError(f"import spikingjelly failed: {error!r}") from error

    def lif() -> nn.Module:
        # SpikingJelly 2.0's LIFNode has no ``backend`` argument: CPU tensors take its torch path.
        return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=THRESHOLD, v_reset=None,
                              surrogate_function=surrogate.Sigmoid(), detach_reset=True,
                              step_mode="m")

    modules: list[nn.Module] = []
    synapses: list[nn.Module] = []
    neurons: list[nn.Module] = []
    for index, weight in enumerate(weights):
        if weight.dim() == 4:
            out_channels, in_channels, kernel, _ = weight.shape
            syn: nn.Module = layer.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2,
                                          bias=False, step_mode="m")
        else:
            if index and weights[index - 1].dim() == 4:
                modules.append(layer.Flatten(step_mode="m"))
            syn = layer.Linear(weight.shape[1], weight.shape[0], bias=False, step_mode="m")
        cell = lif()
        modules += [syn, cell]
        synapses.append(syn)
        neurons.append(cell)
        if index < len(pools) and pools[index]:
            modules.append(layer.MaxPool2d(2, step_mode="m"))
    net = nn.Sequential(*modules)
    _copy_weights(synapses, weights, 1.0)

    def forward(x: Tensor) -> Tensor:
        functional.reset_net(net)
        return net(x)

    def single(index: int, x: Tensor) -> Tensor:
        functional.reset_net(net)
        return neurons[index](synapses[index](x))

    return Engine("spikingjelly", forward, net, "immediate", single,
                  "LIFNode(tau=2, decay_input=False, v_reset=None), surrogate Sigmoid(alpha=4)")


# ----------------------------------------------------------------------------- Norse


def build_norse(weights: Sequence[Tensor], pools: Sequence[bool] = ()) -> Engine:
    """Norse ``LIFBoxCell`` (LIF without synaptic current), subtract reset, time-outer loop."""
    try:
        from norse.torch import LIFBoxCell
        from norse.torch.functional.lif_box import LIFBoxParameters
        from norse.torch.functional.reset import reset_subtract
    except Exception as error:
        raise PeerUnavailableError(f"import norse (LIFBoxCell) failed: {error!r}") from error
    parameters = LIFBoxParameters(
        tau_mem_inv=torch.as_tensor(1.0 - BETA), v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(THRESHOLD), v_reset=torch.as_tensor(0.0), method="super",
        alpha=torch.as_tensor(SLOPE), reset_method=reset_subtract,
    )
    synapses = nn.ModuleList(_synapses(weights))
    _copy_weights(synapses, weights, 1.0 / (1.0 - BETA))
    cells = nn.ModuleList(LIFBoxCell(parameters, dt=1.0) for _ in weights)

    def step(cell: nn.Module, current: Tensor, state: object) -> tuple[Tensor, object]:
        return cell(current, state)

    plan = _conv_plan(weights, pools) if pools else _mlp_plan(len(weights))
    module = nn.ModuleList([synapses, cells])
    return Engine("norse", _time_outer(synapses, cells, step, plan), module, "immediate",
                  _layer_loop(synapses, cells, step),
                  "LIFBoxCell(dt/tau=1/2, reset_subtract, SuperSpike 25), weights x2")


PEERS: dict[str, Callable[..., Engine]] = {
    "snntorch": build_snntorch,
    "spikingjelly": build_spikingjelly,
    "norse": build_norse,
}
