"""Readouts: logits from the output layer, and the per-layer activity recorded in training.

``counts``
    ``z = sum_t s_t``: the output spike counts (the authors' readout). With ``T`` steps the
    logits are integers in ``[0, T]``.
``membrane``
    ``z = (1/T) sum_t u_t``: the output LIF layer's membrane averaged over the steps, recomputed
    (with its reset) from the output layer's input currents, which a forward pre-hook keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.neurons.dynamics import initial_state, lif_step
from spikeinit.neurons.lif import LIF

LOSSES = ("membrane", "counts")


def lif_layers(model: nn.Module) -> list[tuple[str, LIF]]:
    """``(name, LIF)`` for every LIF layer of ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LIF)]


def membrane_trace(lif: LIF, currents: Tensor) -> Tensor:
    """Membrane ``u[t]`` ``(T, B, ...)`` of ``lif`` driven by ``currents`` from rest (with grad)."""
    state = initial_state(currents[0])
    membranes = []
    for t in range(currents.shape[0]):
        _, state = lif_step(currents[t], state, lif.params, lif.beta, lif.threshold)
        membranes.append(state.membrane)
    return torch.stack(membranes)


class ActivityProbe:
    """Forward hooks: per-layer spike counts, and the output layer's input currents."""

    def __init__(self, model: nn.Module, keep_output_current: bool, device: str = "cpu") -> None:
        self.layers = lif_layers(model)
        self.spikes = torch.zeros(len(self.layers), dtype=torch.float64, device=device)
        self.elements = torch.zeros(len(self.layers), dtype=torch.float64, device=device)
        self.output_current: Tensor | None = None
        self.enabled = True
        self.handles = []
        for index, (_, lif) in enumerate(self.layers):
            self.handles.append(lif.register_forward_hook(self._count(index)))
        if keep_output_current:
            self.handles.append(self.layers[-1][1].register_forward_pre_hook(self._keep))

    def _count(self, index: int) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            if self.enabled:
                self.spikes[index] += output.detach().sum(dtype=torch.float64)
                self.elements[index] += output.numel()
        return hook

    def _keep(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self.output_current = inputs[0]

    def rates(self) -> Tensor:
        """``[spikes, elements]`` per layer, shape ``(2, layers)`` (sum them over processes)."""
        return torch.stack([self.spikes, self.elements])

    def reset(self) -> None:
        self.spikes.zero_()
        self.elements.zero_()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def logits(spikes: Tensor, probe: ActivityProbe, loss: str) -> Tensor:
    """Class scores ``(B, classes)`` from the output spikes ``(T, B, classes)`` (see module)."""
    if loss == "counts":
        return spikes.sum(0)
    if loss != "membrane":
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if probe.output_current is None:
        raise RuntimeError("the membrane readout needs ActivityProbe(keep_output_current=True)")
    return membrane_trace(probe.layers[-1][1], probe.output_current).mean(0)
