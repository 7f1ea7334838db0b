"""Experiments 1 and 2 of the paper: activity propagation through a deep LIF network.

Input current ``I_0 ~ N(0, 1)`` (held constant over the ``T`` steps, or drawn i.i.d. per step)
feeds the first LIF layer, then ``(Linear(n, n) -> LIF)`` blocks. For each initialization we
record the rate (mean spikes per neuron per step) and the membrane variance (over batch and
neurons, averaged over steps) of every layer, beside the mean-field prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from spikeinit._validation import (
    check_choice,
    check_finite_nonnegative,
    check_positive_int,
    check_seed,
    check_unit_interval,
)
from spikeinit.errors import InvalidArgumentError
from spikeinit.experiments.training.readout import membrane_trace
from spikeinit.init.context import LayerContext
from spikeinit.init.model import initialize
from spikeinit.init.registry import get_method
from spikeinit.models.mlp import SpikingMLP, deep_network
from spikeinit.neurons.lif import LIF
from spikeinit.neurons.parameters import RESET_ORDERS, RESETS, LIFParameters
from spikeinit.neurons.statistics import ActivityStatistics
from spikeinit.theory.gradients import gradient_mean_field
from spikeinit.theory.static import static_mean_field
from spikeinit.theory.temporal import (
    DEFAULT_SAMPLES,
    FINITE_WIDTH_SAMPLES,
    INPUT_KINDS,
    MAX_FINITE_WIDTH,
    InputCurrentProcess,
    temporal_mean_field,
)

DEFAULT_INITS = ("paper", "kaiming", "xavier", "pytorch")
REPORTED_LAYERS = (1, 10, 50)


@dataclass(frozen=True)
class PropagationConfig:
    """Everything that defines one propagation experiment."""

    inits: tuple[str, ...] = DEFAULT_INITS
    depth: int = 100
    width: int = 1000
    steps: int = 1
    threshold: float = 1.0
    beta: float = 0.5
    reset: str = "subtract"
    reset_order: str = "delayed"
    input: str = "constant"
    batch: int = 64
    seed: int = 0
    device: str = "cpu"
    init_options: dict[str, Any] = field(default_factory=dict)
    finite_width_theory: bool = True

    def __post_init__(self) -> None:
        if not self.inits:
            raise InvalidArgumentError("inits must name at least one init method")
        for name in self.inits:
            get_method(name)
        check_positive_int("depth", self.depth)
        check_positive_int("width", self.width)
        check_seed(self.seed)
        check_positive_int("steps", self.steps)
        check_positive_int("batch", self.batch)
        check_finite_nonnegative("threshold", self.threshold)
        check_unit_interval("beta", self.beta)
        check_choice("reset", self.reset, RESETS)
        check_choice("reset_order", self.reset_order, RESET_ORDERS)
        check_choice("input", self.input, INPUT_KINDS)

    @property
    def lif_parameters(self) -> LIFParameters:
        return LIFParameters(
            beta=self.beta, threshold=self.threshold, reset=self.reset, reset_order=self.reset_order
        )

    def layer_context(self) -> LayerContext:
        """The context of every hidden connection: ``width -> width``, spikes in."""
        return LayerContext(
            fan_in=self.width,
            fan_out=self.width,
            neuron=self.lif_parameters,
            steps=self.steps,
            depth=self.depth,
        )


def input_currents(config: PropagationConfig, generator: torch.Generator) -> torch.Tensor:
    """``(T, B, n)`` first-layer currents ``N(0, 1)``: constant over steps, or i.i.d."""
    shape = (config.batch, config.width)
    if config.input == "constant":
        return torch.randn(shape, generator=generator).expand(config.steps, *shape)
    return torch.randn((config.steps, *shape), generator=generator)


def memory_estimate(config: PropagationConfig, gradients: bool = False) -> int:
    r"""Bytes one simulation needs, about: the weights, :math:`4 \cdot D W^2`, and a few
    activations of :math:`T \cdot B \cdot W` floats per layer in flight (all of them, and
    twice the weights, when ``gradients`` keeps the graph for the backward pass)."""
    weights = 4 * config.depth * config.width**2
    activations = 4 * 4 * config.steps * config.batch * config.width
    if gradients:
        return 2 * weights + activations * config.depth
    return weights + activations


def build_network(config: PropagationConfig, init: str, **lif_options: Any) -> SpikingMLP:
    """The ``depth x width`` network of ``config``, initialized with ``init`` (seeded)."""
    net = deep_network(
        config.width, config.depth, beta=config.beta, threshold=config.threshold,
        reset=config.reset, reset_order=config.reset_order, **lif_options,
    )
    initialize(
        net, init, steps=config.steps,
        generator=torch.Generator().manual_seed(config.seed + 1), **config.init_options,
    )
    return net.to(config.device)


@contextmanager
def recorded_activity(layers: Sequence[LIF]) -> Iterator[list[ActivityStatistics]]:
    r"""Inside, forward hooks accumulate each layer's per-step membrane and spike moments
    (:class:`~spikeinit.neurons.statistics.ActivityStatistics`, one per layer, in order).

    A multi-step call from rest is ``T`` steps from step 0; the membranes :math:`u_t` are
    recomputed from the layer's input currents by its own loop
    (:func:`~spikeinit.experiments.training.readout.membrane_trace`), so they are those of the
    forward pass.

    Example:
        >>> lif = LIF(beta=0.5)
        >>> with recorded_activity([lif]) as (stats,):
        ...     _ = lif(torch.full((3, 2, 4), 1.2))
        >>> stats.rate, [round(u, 4) for u in stats.membrane_mean]
        ([1.0, 0.0, 1.0], [1.2, 0.8, 1.6])
    """
    records = [ActivityStatistics() for _ in layers]

    def hook_into(stats: ActivityStatistics) -> Callable[..., None]:
        def hook(layer: LIF, args: tuple[torch.Tensor, ...], spikes: torch.Tensor) -> None:
            stats.add_sequence(0, membrane_trace(layer, args[0]), spikes)

        return hook

    handles = [layer.register_forward_hook(hook_into(stats))
               for layer, stats in zip(layers, records)]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def simulate(
    config: PropagationConfig, init: str, on_layer: Callable[[], None] | None = None
) -> dict[str, list]:
    """Run the network once for ``init``; per-layer rate, variance and rate per step."""
    net = build_network(config, init)
    currents = input_currents(config, torch.Generator().manual_seed(config.seed))
    with recorded_activity(net.lif_layers) as records, torch.no_grad():
        for _ in net.iter_layers(currents.to(config.device)):
            if on_layer is not None:
                on_layer()
    return {
        "rate": [stats.mean_rate for stats in records],
        "variance": [stats.mean_variance for stats in records],
        "rate_by_step": [stats.rate for stats in records],
    }


def measure_gradients(config: PropagationConfig, init: str, surrogate: str) -> dict[str, list]:
    r"""A real backward pass of :math:`L = \sum \xi\,s_L`, :math:`\xi \sim N(0,1)` (seeded).

    Returns the mean-square gradient on every LIF layer's input current (per neuron and step)
    and the Frobenius norm of every weight gradient, beside the mean-field predictions.
    """
    net = build_network(config, init, surrogate=surrogate)
    captured: list[torch.Tensor] = []

    def keep_input(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        args[0].retain_grad()
        captured.append(args[0])

    handles = [layer.register_forward_pre_hook(keep_input) for layer in net.lif_layers]
    generator = torch.Generator().manual_seed(config.seed)
    currents = input_currents(config, generator).clone().to(config.device).requires_grad_(True)
    spikes = net(currents)
    errors = torch.randn(spikes.shape, generator=generator).to(config.device)
    (spikes * errors).sum().backward()
    for handle in handles:
        handle.remove()
    method, options = get_method(init)
    _, variance = method.statistics(config.layer_context(), **options, **config.init_options)
    params = replace(config.lif_parameters, surrogate=surrogate)
    theory = gradient_mean_field(config.depth, config.width * variance, params, config.steps,
                                 InputCurrentProcess(kind=config.input), seed=config.seed)
    return {
        "current_gradient_square": [float(c.grad.pow(2).mean()) for c in captured],
        "predicted_current_gradient_square": theory.per_layer.tolist(),
        "weight_gradient_norm": [float(s.weight.grad.norm()) for s in net.synapses],
        "predicted_weight_gradient_norm": theory.weight_gradient_norm(
            config.width, config.width, config.batch).tolist(),
    }


def predict(config: PropagationConfig, init: str) -> dict[str, list]:
    """Mean-field prediction: exact static theory for ``T = 1``, temporal mean-field otherwise.

    For ``T > 1`` the temporal mean-field is evaluated at the network's width (finite-width
    groups, see :func:`temporal_mean_field`) unless ``finite_width_theory`` is off or the width
    exceeds 4096.
    """
    method, options = get_method(init)
    mean, variance = method.statistics(config.layer_context(), **options, **config.init_options)
    n = config.width
    if config.steps == 1:
        static = static_mean_field(config.depth, variance, n, config.threshold, weight_mean=mean)
        return {"rate": static.rate.tolist(), "variance": static.variance.tolist()}
    finite = config.finite_width_theory and n <= MAX_FINITE_WIDTH
    temporal = temporal_mean_field(
        config.depth, n * variance, config.lif_parameters, config.steps,
        InputCurrentProcess(kind=config.input), mean_gain=n * mean, seed=config.seed,
        samples=FINITE_WIDTH_SAMPLES if finite else DEFAULT_SAMPLES,
        width=n if finite else None,
    )
    return {
        "rate": temporal.time_averaged_rate.tolist(),
        "variance": temporal.time_averaged_variance.tolist(),
        "rate_by_step": temporal.rate.tolist(),
    }


def run_propagation(
    config: PropagationConfig,
    on_layer: Callable[[], None] | None = None,
    gradients: bool = False,
    surrogate: str = "atan",
) -> dict[str, Any]:
    """Simulate and predict every init of ``config``; the JSON-ready result.

    Shape: ``{"config": {...}, "results": {init: {"rate": [...], "variance": [...],
    "rate_by_step": [[...]], "prediction": {"rate": [...], "variance": [...]}}}}``; with
    ``gradients=True`` each init also gets ``"gradients"`` (see :func:`measure_gradients`).
    """
    results = {}
    for init in config.inits:
        measured = simulate(config, init, on_layer)
        measured["prediction"] = predict(config, init)
        if gradients:
            measured["gradients"] = measure_gradients(config, init, surrogate)
        results[init] = measured
    return {"config": asdict(config), "results": results}


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows: init, then rate and variance at layers 1, 10, 50 and the last."""
    depth = result["config"]["depth"]
    layers = sorted({layer for layer in (*REPORTED_LAYERS, depth) if layer <= depth})
    rows = [["init", *[f"rate@{layer}" for layer in layers], *[f"var@{layer}" for layer in layers]]]
    for init, data in result["results"].items():
        rows.append([
            init,
            *[f"{data['rate'][layer - 1]:.4g}" for layer in layers],
            *[f"{data['variance'][layer - 1]:.4g}" for layer in layers],
        ])
    return rows


def gradient_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows: measured and predicted mean-square current gradient at reported layers."""
    depth = result["config"]["depth"]
    layers = sorted({layer for layer in (*REPORTED_LAYERS, depth) if layer <= depth})
    rows = [["init", *[f"grad²@{layer}" for layer in layers],
             *[f"pred@{layer}" for layer in layers]]]
    for init, data in result["results"].items():
        grads = data["gradients"]
        rows.append([
            init,
            *[f"{grads['current_gradient_square'][layer - 1]:.3g}" for layer in layers],
            *[f"{grads['predicted_current_gradient_square'][layer - 1]:.3g}" for layer in layers],
        ])
    return rows
