"""What an initializer needs to know about one synaptic layer and the neurons around it."""

from __future__ import annotations

from dataclasses import dataclass

from spikeinit._validation import (
    check_finite_nonnegative,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.gaussian import tail_probability


@dataclass(frozen=True)
class LayerContext:
    r"""One synaptic layer (Linear or Conv) between a source and the neurons it drives.

    ``neuron`` (a :class:`~spikeinit.neurons.LIFParameters`, the one neuron-parameter type of
    the engine, the adapters and the theory) describes the *receiving* neurons, as the
    equivalent unit-gain LIF: its threshold is :math:`\tilde\theta = \theta/g`. ``threshold``,
    ``beta``, ``reset``, ``reset_order``, ``surrogate`` and ``surrogate_slope`` read it.
    The input is either spikes of neurons with threshold ``input_threshold`` (the paper's
    assumption: their membrane is :math:`N(0,\sigma^2)`, so :math:`E[x^2] = Q(\theta/\sigma)`),
    or data with a known second moment ``input_second_moment`` (for the first layer).
    ``depth`` is the number of spiking layers of the whole network, when known.

    ``sigma`` is the target membrane std of the receiving neurons and ``input_sigma`` that of
    the source neurons (``None``: ``sigma``); :func:`~spikeinit.init.model.initialize` sets them
    per population when it chooses the operating point. ``input_is_data`` marks a layer fed by
    data (not spikes); ``first_sigma`` is the std of the current that drives the network's
    first spiking layer, when known (the temporal methods' input), and
    ``input_autocorrelation`` the autocorrelation over the steps of the data that drive it,
    when measured (:func:`~spikeinit.theory.temporal.data_autocorrelation`);
    ``synaptic_decay`` the receiving neurons' current filter :math:`\alpha` (0: none).

    Example:
        >>> ctx = LayerContext(fan_in=100, fan_out=10)  # fed by spikes, theta = sigma = 1
        >>> ctx.threshold, round(ctx.second_moment, 4)  # E[x^2] = Q(1)
        (1.0, 0.1587)
        >>> LayerContext(fan_in=784, fan_out=100, input_second_moment=0.3).second_moment
        0.3
    """

    fan_in: int
    fan_out: int
    neuron: LIFParameters = LIFParameters()
    sigma: float = 1.0
    steps: int = 1
    depth: int | None = None
    input_threshold: float | None = None
    input_second_moment: float | None = None
    input_sigma: float | None = None
    input_is_data: bool = False
    first_sigma: float | None = None
    synaptic_decay: float = 0.0
    input_autocorrelation: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        check_positive_int("fan_in", self.fan_in)
        check_positive_int("fan_out", self.fan_out)
        if not isinstance(self.neuron, LIFParameters):
            raise InvalidArgumentError(
                f"neuron must be a LIFParameters, got {type(self.neuron).__name__}")
        check_positive("sigma", self.sigma)
        check_positive_int("steps", self.steps)
        if self.depth is not None:
            check_positive_int("depth", self.depth)
        if self.input_threshold is not None:
            check_finite_nonnegative("input_threshold", self.input_threshold)
        if self.input_second_moment is not None:
            check_positive("input_second_moment", self.input_second_moment)
        if self.input_sigma is not None:
            check_positive("input_sigma", self.input_sigma)
        if self.first_sigma is not None:
            check_positive("first_sigma", self.first_sigma)
        check_unit_interval("synaptic_decay", self.synaptic_decay)

    @property
    def threshold(self) -> float:
        r"""The receiving neurons' effective threshold :math:`\tilde\theta`."""
        return self.neuron.threshold

    @property
    def beta(self) -> float:
        """The receiving neurons' membrane decay."""
        return self.neuron.beta

    @property
    def reset(self) -> str:
        return self.neuron.reset

    @property
    def reset_order(self) -> str:
        return self.neuron.reset_order

    @property
    def surrogate(self) -> str:
        return self.neuron.surrogate

    @property
    def surrogate_slope(self) -> float | None:
        return self.neuron.surrogate_slope

    @property
    def source_threshold(self) -> float:
        return self.threshold if self.input_threshold is None else self.input_threshold

    @property
    def source_sigma(self) -> float:
        """The membrane std assumed for the source neurons: ``input_sigma``, else ``sigma``."""
        return self.sigma if self.input_sigma is None else self.input_sigma

    @property
    def second_moment(self) -> float:
        r""":math:`E[x^2]` of the input: given (data) or :math:`Q(\theta_{src}/\sigma_{src})`
        (spikes).
        """
        if self.input_second_moment is not None:
            return self.input_second_moment
        return float(tail_probability(self.source_threshold / self.source_sigma))
