"""``SpikingMLP``: the paper's fully-connected SNN, run layer-major over all time steps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import check_positive_int
from spikeinit.engine.event_linear import EventLinear
from spikeinit.engine.layout import repeated_over_time
from spikeinit.errors import InvalidArgumentError
from spikeinit.models.fused_mlp import StackLayer, linear_lif_stack, neuron_vector
from spikeinit.neurons.lif import LIF, PendingState, reset_states

_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")
_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                 "_backward_pre_hooks")


def _global_hooks() -> bool:
    module = torch.nn.modules.module
    return any(getattr(module, name, None) for name in _GLOBAL_HOOKS)


def _hooked(module: nn.Module, names: Sequence[str] = _MODULE_HOOKS) -> bool:
    return any(getattr(module, name, None) for name in names)


class SpikingMLP(nn.Module):
    """Input current -> LIF, then ``(Linear -> LIF)`` for each further size.

    ``sizes = [n_0, n_1, ..., n_L]`` gives ``L + 1`` LIF layers: the input (``n_0`` features)
    feeds the first LIF directly, as in the paper. With ``input_layer=False`` there is no input
    LIF layer: the input goes straight into the first Linear ("direct encoding"), and the
    network has ``L`` LIF layers. Inputs are ``(T, B, n_0)`` currents; the output is the spikes
    of the last layer, ``(T, B, n_L)``. Each Linear runs once over all ``T * B`` rows
    (layer-major execution), and every forward starts from the resting state.

    With ``fused=True`` (default) the ``Linear -> LIF`` blocks run as one autograd node
    (:mod:`spikeinit.models.fused_mlp`): the same products and LIF loops, the same spikes, with
    a hand-written backward through the whole stack. The LIF modules are still called (through
    :meth:`LIF.replay`), so their forward hooks see each layer's input currents and spikes
    (to read them; a hook that replaces the output, or asks for the gradient of a hidden
    tensor with ``retain_grad``/``register_hook``, raises ``RuntimeError``). The blocks run
    module by module instead when any of them cannot be fused: a LIF that records, is
    stateful, single-step, uses ``engine="reference"`` or has forward pre-hooks or backward
    hooks; a hook on a block or a synapse; a global module hook; or ``fused=False``.

    Example:
        >>> import torch
        >>> net = SpikingMLP([784, 100, 10], beta=0.5, threshold=1.0)
        >>> net(torch.rand(3, 8, 784)).shape
        torch.Size([3, 8, 10])
    """

    def __init__(self, sizes: Sequence[int], bias: bool = False, input_layer: bool = True,
                 fused: bool = True, **lif_options: Any) -> None:
        super().__init__()
        self.fused = bool(fused)
        if len(sizes) < (1 if input_layer else 2):
            raise InvalidArgumentError("sizes must list at least one layer size"
                             + ("" if input_layer else " after the input size"))
        for index, size in enumerate(sizes):
            check_positive_int(f"sizes[{index}]", size)
        self.sizes = list(sizes)
        self.input_neurons = LIF(**lif_options) if input_layer else None
        # Blocks keep module order equal to computation order (initializers rely on it).
        self.blocks = nn.ModuleList(
            nn.Sequential(EventLinear(n_in, n_out, bias=bias), LIF(**lif_options))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )

    @property
    def synapses(self) -> list[nn.Linear]:
        return [block[0] for block in self.blocks]

    @property
    def neurons(self) -> list[LIF]:
        return [block[1] for block in self.blocks]

    @property
    def lif_layers(self) -> list[LIF]:
        """All LIF layers, from the input layer (if any) to the output."""
        first = [] if self.input_neurons is None else [self.input_neurons]
        return [*first, *self.neurons]

    def forward(self, currents: Tensor) -> Tensor:
        if getattr(self, "fused", True) and self.fusable(currents):
            return self._forward_fused(currents)
        *_, last = self.iter_layers(currents)
        return last

    def fusable(self, currents: Tensor) -> bool:
        """Whether :meth:`forward` runs the blocks as one fused stack for ``currents`` (see the
        class docstring for what prevents it)."""
        if currents.ndim != 3 or not self.blocks or _global_hooks():
            return False
        for block in self.blocks:
            if len(block) != 2 or _hooked(block):
                return False
            linear, lif = block
            if (not isinstance(linear, nn.Linear) or _hooked(linear)
                    or type(linear).forward not in (EventLinear.forward, nn.Linear.forward)):
                return False
            if (not isinstance(lif, LIF) or type(lif).forward is not LIF.forward
                    or lif.engine != "fused" or lif.step_mode != "multi" or lif.stateful
                    or _hooked(lif, _MODULE_HOOKS[1:])):
                return False
        return True

    def _forward_fused(self, currents: Tensor) -> Tensor:
        spikes = currents
        if self.input_neurons is not None:
            self.input_neurons.reset_state()
            spikes = self.input_neurons(currents)
        steps = spikes.shape[0]
        repeated = repeated_over_time(spikes)
        x = spikes[0] if repeated else spikes
        layers, weights, biases, betas, thetas = [], [], [], [], []
        for linear, lif in self.blocks:
            neurons = linear.out_features
            layers.append(StackLayer(linear, lif.params))
            weights.append(linear.weight)
            biases.append(linear.bias)
            betas.append(neuron_vector(lif.beta, neurons, x))
            thetas.append(neuron_vector(lif.threshold, neurons, x))
        final = len(self.blocks) - 1
        # Only the output layer's membranes, for a membrane readout of the same currents
        # (spikeinit.experiments.training.readout.membrane_trace) to reuse: the hidden
        # layers then need not write theirs.
        all_spikes, currents_in, membranes, last = linear_lif_stack(
            x, layers, weights, biases, betas, thetas, repeated, steps,
            membranes=[index == final for index in range(len(self.blocks))])
        output = spikes
        for index, ((_, lif), current, layer_spikes, u_last) in enumerate(
                zip(self.blocks, currents_in, all_spikes, last)):
            lif.__dict__["membrane_memo"] = (
                (current, current._version, membranes[index])
                if index == final and membranes[index] is not None else None)
            # The final state is the last membranes alone, its spikes computed if it is read:
            # spikes[-1] would keep all T steps of every layer's spikes alive until the next
            # forward, a copy one more (B, n) tensor per layer.
            theta = thetas[index]
            if isinstance(lif.threshold, Tensor):  # may change in place before it is read
                theta = theta.detach().clone()
            output = lif.replay(current, layer_spikes, PendingState(u_last, theta))
            if output is not layer_spikes:
                raise RuntimeError("a forward hook replaced the output of a LIF layer inside "
                                   "a fused stack, which cannot honour it; build the network "
                                   "with fused=False")
        # Inside the node, gradients pass between layers without reaching these tensors: a
        # hook that asked for theirs would silently get only the part from outside the stack.
        for tensor in (*currents_in, *all_spikes[:-1]):
            if tensor.retains_grad or getattr(tensor, "_backward_hooks", None):
                raise RuntimeError("a forward hook asked for the gradient of a hidden tensor "
                                   "of a fused stack (retain_grad or register_hook), which "
                                   "the stack cannot deliver; build the network with "
                                   "fused=False")
        return output

    def iter_layers(self, currents: Tensor) -> Iterator[Tensor]:
        """Yield the spikes ``(T, B, n_l)`` of every LIF layer in turn, from the resting state."""
        reset_states(self)
        spikes = currents
        if self.input_neurons is not None:
            spikes = self.input_neurons(currents)
            yield spikes
        for block in self.blocks:
            spikes = block(spikes)
            yield spikes


def deep_network(width: int, depth: int, **lif_options: Any) -> SpikingMLP:
    """The propagation network of the paper: ``depth`` LIF layers of ``width`` neurons.

    ``SpikingMLP([width] * depth)``: an input LIF layer, then ``depth - 1`` square
    ``Linear -> LIF`` blocks.

    Example:
        >>> import torch
        >>> net = deep_network(width=100, depth=5)
        >>> len(net.lif_layers), len(net.synapses)
        (5, 4)
        >>> net(torch.rand(3, 2, 100)).shape
        torch.Size([3, 2, 100])
    """
    width, depth = check_positive_int("width", width), check_positive_int("depth", depth)
    return SpikingMLP([width] * depth, **lif_options)
