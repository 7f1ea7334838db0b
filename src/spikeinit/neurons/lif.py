"""``LIF``: a leaky integrate-and-fire layer with parameters and explicit state."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from spikeinit._validation import check_choice, check_positive_int
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.dynamics import LIFState, lif_multistep
from spikeinit.neurons.fused import fused_lif
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.neurons.surrogate import DEFAULT_SURROGATE

STEP_MODES = ("single", "multi")
#: SpikingJelly's spellings of the step modes.
STEP_MODE_ALIASES = {"s": "single", "m": "multi"}
ENGINES = ("fused", "reference")


class PendingState(NamedTuple):
    """A final state known by its membrane ``u`` alone (a fused stack's, which keeps no copy of
    the last spikes): the spikes :math:`H(u - \\theta)` are computed the first time
    :attr:`LIF.state` is read, the comparison the forward pass made.

    ``threshold`` broadcasts over ``membrane`` (the ``(N,)`` vector the stack used for its
    ``(B, N)`` membranes) and must not change before then.

    Example:
        >>> state = PendingState(torch.tensor([[0.5, 1.5]]), torch.tensor([1.0, 1.0]))
        >>> state.resolve().spikes.tolist()
        [[0.0, 1.0]]
    """

    membrane: Tensor
    threshold: Tensor

    def resolve(self) -> LIFState:
        return LIFState(self.membrane, (self.membrane > self.threshold).to(self.membrane.dtype))


class LIF(nn.Module):
    """A population of LIF neurons (see :class:`LIFParameters` for the update equations).

    ``step_mode="multi"`` (or ``"m"``) takes currents shaped ``(T, B, ...)`` and returns spikes of
    the same shape; each call is a whole sequence and starts at rest, unless ``stateful=True``,
    which carries the state from one call to the next until :meth:`reset_state` (for sequences
    fed in chunks). ``step_mode="single"`` (or ``"s"``) takes one step ``(B, ...)`` per call,
    and its state persists across calls until :meth:`reset_state` (or
    :func:`spikeinit.reset` of the model), as in SpikingJelly.

    It records nothing itself: forward hooks measure its activity
    (:class:`spikeinit.network.ActivityProbe`).

    ``beta`` and ``threshold`` are one value per layer, or one per neuron when
    ``neuron_shape`` is given (a shape that broadcasts to one sample, e.g. ``(1000,)`` for a
    Linear layer or ``(C, 1, 1)`` for one value per conv channel); ``learn_beta`` and
    ``learn_threshold`` make them trainable (beta is clamped to [0, 1] in use).

    ``engine="fused"`` (default) runs all T steps in one fused pass with a hand-written
    backward (:mod:`spikeinit.neurons.fused`), keeping one tensor for backward (the
    membranes, or the currents they are recomputed from);
    ``engine="reference"`` is the plain step-by-step autograd loop, for checking.

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
        surrogate: str = DEFAULT_SURROGATE,
        surrogate_slope: float | None = None,
        step_mode: str = "multi",
        detach_reset: bool = True,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        neuron_shape: tuple[int, ...] | None = None,
        engine: str = "fused",
        stateful: bool = False,
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
        self.step_mode = check_choice(
            "step_mode",
            STEP_MODE_ALIASES.get(step_mode, step_mode) if isinstance(step_mode, str)
            else step_mode,
            STEP_MODES)
        self.stateful = bool(stateful)
        self.engine = check_choice("engine", engine, ENGINES)
        if neuron_shape is not None:
            neuron_shape = tuple(check_positive_int(f"neuron_shape[{i}]", size)
                                 for i, size in enumerate(neuron_shape))
        self.neuron_shape = neuron_shape
        shape = () if neuron_shape is None else neuron_shape
        self.beta_parameter = self._value_tensor("beta", beta, shape, learn_beta)
        self.threshold_parameter = self._value_tensor("threshold", threshold, shape,
                                                      learn_threshold)
        self.state = None
        self._step = 0
        self._replayed: tuple[Tensor, Tensor, LIFState | PendingState] | None = None
        #: ``(currents, their version, membranes)`` left by a fused stack's forward for the
        #: output layer (:meth:`spikeinit.models.SpikingMLP.forward`), else ``None``.
        self.membrane_memo: tuple[Tensor, int, Tensor] | None = None

    def _value_tensor(self, name: str, value: float, shape: tuple[int, ...],
                      learn: bool) -> Tensor | None:
        """A learnable parameter, a fixed per-neuron buffer, or ``None`` (a fixed float)."""
        if not learn and not shape:
            self.register_buffer(f"{name}_values", None)
            return None
        tensor = torch.full(shape, float(value))
        if learn:
            self.register_buffer(f"{name}_values", None)
            return nn.Parameter(tensor)
        self.register_buffer(f"{name}_values", tensor)
        return None

    @property
    def beta(self) -> float | Tensor:
        """The decay in use: the learnable parameter (clamped to [0, 1]), the fixed per-neuron
        values, or the fixed float."""
        if self.beta_parameter is not None:
            return self.beta_parameter.clamp(0.0, 1.0)
        if self.beta_values is not None:
            return self.beta_values
        return self.params.beta

    @property
    def threshold(self) -> float | Tensor:
        """The threshold in use: learnable, fixed per neuron, or the fixed float."""
        if self.threshold_parameter is not None:
            return self.threshold_parameter
        if self.threshold_values is not None:
            return self.threshold_values
        return self.params.threshold

    def set_parameters(self, **changes: object) -> None:
        """Replace fixed parameters (validated), e.g. ``lif.set_parameters(beta=0.9)``."""
        self.params = replace(self.params, **changes)
        with torch.no_grad():
            for name in ("beta", "threshold"):
                if name not in changes:
                    continue
                for tensor in (getattr(self, f"{name}_parameter"), getattr(self, f"{name}_values")):
                    if tensor is not None:
                        tensor.fill_(float(changes[name]))  # type: ignore[arg-type]

    @property
    def state(self) -> LIFState | None:
        """Membrane and spikes after the last step (``None`` at rest)."""
        state = self.__dict__.get("_state")
        if isinstance(state, PendingState):
            state = self.__dict__["_state"] = state.resolve()
        return state

    @state.setter
    def state(self, value: LIFState | PendingState | None) -> None:
        self.__dict__["_state"] = value

    def reset_state(self) -> None:
        """Return to rest (``u = s = 0``) before a new input sequence."""
        self.state = None
        self._step = 0

    def reset(self) -> None:
        """Deprecated: :meth:`reset_state` (``reset`` names the reset mode of the neuron)."""
        warnings.warn("LIF.reset() is deprecated; use LIF.reset_state() (or "
                      "spikeinit.reset(model))", DeprecationWarning, stacklevel=2)
        self.reset_state()

    def replay(self, current: Tensor, spikes: Tensor, state: LIFState | PendingState) -> Tensor:
        """Deliver spikes computed elsewhere (a fused stack of layers,
        :mod:`spikeinit.models.fused_mlp`) through this module's call.

        The module's forward hooks (and pre-hooks) see ``current`` and ``spikes`` as if the
        layer had computed ``spikes = LIF(current)`` itself, and the layer's state (``state``;
        a :class:`PendingState` is resolved when first read) and step count advance as they
        would; nothing is recomputed. Returns what the call returned
        (``spikes``, unless a forward hook replaced it). A pre-hook that replaces the input
        cannot be honoured: that raises ``RuntimeError``.
        """
        # Plain attributes, set past nn.Module.__setattr__ (which looks for parameters,
        # buffers and submodules first): this runs for every layer at every training step.
        self.__dict__["_replayed"] = (current, spikes, state)
        try:
            return self(current)
        finally:
            self.__dict__["_replayed"] = None

    def _take_replayed(self, current: Tensor) -> Tensor:
        expected, spikes, state = self._replayed  # type: ignore[misc]
        attributes = self.__dict__
        attributes["_replayed"] = None
        if current is not expected:
            raise RuntimeError("a forward pre-hook replaced the input of a LIF layer inside a "
                               "fused stack, which cannot honour it; build the network with "
                               "fused=False")
        attributes["_state"] = state
        attributes["_step"] = self._step + current.shape[0]
        return spikes

    def forward(self, current: Tensor) -> Tensor:
        if getattr(self, "_replayed", None) is not None:
            return self._take_replayed(current)
        if getattr(self, "membrane_memo", None) is not None:
            self.__dict__["membrane_memo"] = None  # computed here now, not by a stack
        if self.step_mode == "single":
            return self._forward_sequence(current.unsqueeze(0)).squeeze(0)
        return self._forward_sequence(current)

    def _forward_sequence(self, currents: Tensor) -> Tensor:
        check_currents(currents)
        if self.step_mode == "multi" and not self.stateful:
            self.reset_state()
        run = fused_lif if self.engine == "fused" else lif_multistep
        spikes, self.state = run(currents, self.params, self.state, self.beta, self.threshold)
        self._step += currents.shape[0]
        return spikes

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"beta={p.beta}, threshold={p.threshold}, reset={p.reset!r}, "
            f"reset_order={p.reset_order!r}, surrogate={p.surrogate!r}, "
            f"step_mode={self.step_mode!r}, engine={self.engine!r}"
            + (", stateful=True" if self.stateful else "")
            + ("" if self.neuron_shape is None else f", neuron_shape={self.neuron_shape}")
        )


def check_currents(currents: Tensor) -> None:
    """Check a sequence of input currents ``(T, ...)``: at least one time step, and, when a
    gradient will flow back through it on the CPU, no NaN or infinite value (a NaN current
    makes every gradient behind it NaN; the check costs one pass over the currents, so it is
    left out on GPUs, where it would wait for the device at every call).

    Raises:
        InvalidArgumentError: zero time steps, or k non-finite currents.
    """
    if currents.dim() == 0 or currents.shape[0] == 0:
        raise InvalidArgumentError(
            f"current must hold at least one time step (T, ...), got shape {tuple(currents.shape)}")
    if currents.requires_grad and currents.device.type == "cpu" and torch.is_grad_enabled():
        bad = int((~torch.isfinite(currents.detach())).sum())
        if bad:
            raise InvalidArgumentError(
                f"current: {bad} of its {currents.numel()} values are NaN or infinite; every "
                "gradient behind them would be NaN. Check the layer before this LIF")


def reset_states(module: nn.Module) -> None:
    """Reset the state of every :class:`LIF` inside ``module`` (call between sequences).

    Example:
        >>> lif = LIF(step_mode="single")  # keeps its state from call to call
        >>> _ = lif(torch.ones(2, 4))
        >>> lif.state is None
        False
        >>> reset_states(nn.Sequential(lif))
        >>> lif.state is None
        True
    """
    for child in module.modules():
        if isinstance(child, LIF):
            child.reset_state()

