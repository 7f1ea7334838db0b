"""Readouts: logits from the output layer, and the per-layer activity recorded in training.

``counts``
    ``z = sum_t s_t``: the output spike counts (the authors' readout). With ``T`` steps the
    logits are integers in ``[0, T]``.
``membrane``
    ``z = (1/T) sum_t u_t``: the output LIF layer's membrane averaged over the steps, recomputed
    (with its reset) from the output layer's input currents, which a forward hook keeps.
"""

from __future__ import annotations

from torch import Tensor, nn

from spikeinit.errors import InvalidArgumentError
from spikeinit.network.probe import ActivityProbe
from spikeinit.neurons.dynamics import lif_trace
from spikeinit.neurons.fused import lif_membranes
from spikeinit.neurons.lif import LIF

LOSSES = ("membrane", "counts")


def lif_layers(model: nn.Module) -> list[tuple[str, LIF]]:
    """``(name, LIF)`` for every LIF layer of ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LIF)]


def membrane_trace(lif: LIF, currents: Tensor) -> Tensor:
    """Membrane ``u[t]`` ``(T, B, ...)`` of ``lif`` driven by ``currents`` from rest (with grad).

    A ``fused`` LIF runs its fused loop, with the membranes' gradient in its hand-written
    backward (:func:`~spikeinit.neurons.fused.lif_membranes`: one autograd node); a
    ``reference`` one the step-by-step autograd loop
    (:func:`~spikeinit.neurons.dynamics.lif_trace`). When ``lif`` is the output layer of a
    fused :class:`~spikeinit.models.SpikingMLP` whose last forward took exactly ``currents``
    (the same, unmodified tensor), the membranes that forward computed are returned: the same
    values, with their gradient through the fused stack, and nothing recomputed.
    """
    memo = getattr(lif, "membrane_memo", None)
    if (memo is not None and memo[0] is currents and memo[1] == currents._version
            and lif.engine == "fused"):
        return memo[2]
    run = lif_membranes if lif.engine == "fused" else lif_trace
    return run(currents, lif.params, lif.beta, lif.threshold)[1]


class TrainingProbe:
    """The training loop's recorder: per-layer spike counts (the package's
    :class:`~spikeinit.network.ActivityProbe` in its cheap mode: spikes only, summed on the
    device) and the output layer's input currents, kept for the membrane readout."""

    def __init__(self, model: nn.Module, keep_output_current: bool, device: str = "cpu") -> None:
        self.layers = lif_layers(model)
        self.device = device
        self.recorder = ActivityProbe({name: (lif, 1.0) for name, lif in self.layers},
                                      currents=False).attach()
        self.output_current: Tensor | None = None
        # A forward hook (not a pre-hook, which would stop a SpikingMLP from fusing its
        # layers) sees the output layer's input as well.
        self._keep_handle = (self.layers[-1][1].register_forward_hook(self._keep)
                             if keep_output_current else None)

    @property
    def enabled(self) -> bool:
        return self.recorder.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.recorder.enabled = value

    def _keep(self, module: nn.Module, inputs: tuple[Tensor, ...], _output: object) -> None:
        self.output_current = inputs[0]

    def rates(self) -> Tensor:
        """``[spikes, elements]`` per layer, shape ``(2, layers)`` (sum them over processes)."""
        return self.recorder.spike_sums(self.device)

    def reset(self) -> None:
        self.recorder.clear()

    def remove(self) -> None:
        self.recorder.remove()
        if self._keep_handle is not None:
            self._keep_handle.remove()


def logits(spikes: Tensor, probe: TrainingProbe, loss: str) -> Tensor:
    """Class scores ``(B, classes)`` from the output spikes ``(T, B, classes)`` (see module)."""
    if loss == "counts":
        return spikes.sum(0)
    if loss != "membrane":
        raise InvalidArgumentError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if probe.output_current is None:
        raise RuntimeError("the membrane readout needs TrainingProbe(keep_output_current=True)")
    return membrane_trace(probe.layers[-1][1], probe.output_current).mean(0)
