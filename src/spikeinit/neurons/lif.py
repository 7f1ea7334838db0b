"""``LIF``: a leaky integrate-and-fire layer with parameters, explicit state and recording."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from spikeinit._validation import check_choice
from spikeinit.neurons.dynamics import LIFState, lif_multistep
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.statistics import ActivityStatistics

STEP_MODES = ("single", "multi")


class LIF(nn.Module):
    """A population of LIF neurons (see :class:`LIFParameters` for the update equations).

    ``step_mode="multi"`` takes currents shaped ``(T, B, ...)`` and returns spikes of the same
    shape; ``step_mode="single"`` takes one step ``(B, ...)`` per call. State persists across
    calls until :meth:`reset_state`. With ``record=True`` the layer accumulates per-step
    membrane and spike statistics in :attr:`statistics`; with ``record=False`` (the default) it
    computes nothing extra.

    Example:
        >>> lif = LIF(beta=0.5, threshold=1.0)
        >>> spikes = lif(torch.ones(3, 2, 4) * 1.2)
        >>> spikes[:, 0, 0].tolist()
        [1.0, 0.0, 1.0]
    """

    def __init__(
        self,
        beta: float = 0.5,
        threshold: float = 1.0,
        reset: str = "subtract",
        reset_order: str = "delayed",
        surrogate: str = "fast-sigmoid",
        surrogate_slope: float | None = None,
        step_mode: str = "multi",
        detach_reset: bool = True,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        record: bool = False,
    ) -> None:
        super().__init__()
        self.params = LIFParameters(
            beta=beta,
            threshold=threshold,
            reset=reset,
            reset_order=reset_order,
            surrogate=surrogate,
            surrogate_slope=surrogate_slope,
            detach_reset=detach_reset,
        )
        self.step_mode = check_choice("step_mode", step_mode, STEP_MODES)
        self.beta_parameter = nn.Parameter(torch.tensor(float(beta))) if learn_beta else None
        self.threshold_parameter = (
            nn.Parameter(torch.tensor(float(threshold))) if learn_threshold else None
        )
        self.record = record
        self.statistics = ActivityStatistics()
        self.state: LIFState | None = None
        self._step = 0

    @property
    def beta(self) -> float | Tensor:
        """The decay in use: the learnable parameter (clamped to [0, 1]) or the fixed float."""
        if self.beta_parameter is not None:
            return self.beta_parameter.clamp(0.0, 1.0)
        return self.params.beta

    @property
    def threshold(self) -> float | Tensor:
        if self.threshold_parameter is not None:
            return self.threshold_parameter
        return self.params.threshold

    def set_parameters(self, **changes: object) -> None:
        """Replace fixed parameters (validated), e.g. ``lif.set_parameters(beta=0.9)``."""
        self.params = replace(self.params, **changes)

    def reset_state(self) -> None:
        """Return to rest (``u = s = 0``) before a new input sequence."""
        self.state = None
        self._step = 0

    def reset_statistics(self) -> None:
        self.statistics = ActivityStatistics()

    def forward(self, current: Tensor) -> Tensor:
        if self.step_mode == "single":
            return self._forward_sequence(current.unsqueeze(0)).squeeze(0)
        return self._forward_sequence(current)

    def _forward_sequence(self, currents: Tensor) -> Tensor:
        membranes = torch.empty_like(currents, requires_grad=False) if self.record else None
        spikes, self.state = lif_multistep(
            currents, self.params, self.state, self.beta, self.threshold, membranes
        )
        if membranes is not None:
            self.statistics.add_sequence(self._step, membranes, spikes)
        self._step += currents.shape[0]
        return spikes

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"beta={p.beta}, threshold={p.threshold}, reset={p.reset!r}, "
            f"reset_order={p.reset_order!r}, surrogate={p.surrogate!r}, "
            f"step_mode={self.step_mode!r}"
        )


def reset_states(module: nn.Module) -> None:
    """Reset the state of every :class:`LIF` inside ``module`` (call between sequences)."""
    for child in module.modules():
        if isinstance(child, LIF):
            child.reset_state()


def set_recording(module: nn.Module, record: bool, clear: bool = True) -> list[LIF]:
    """Switch statistics recording on or off for every :class:`LIF`; returns them in order."""
    layers = [child for child in module.modules() if isinstance(child, LIF)]
    for layer in layers:
        layer.record = record
        if clear:
            layer.reset_statistics()
    return layers
