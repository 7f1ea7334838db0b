r"""Data-driven calibration (LSUV-style): scale each layer until its neurons hit a target.

Layer by layer in forward order, :func:`calibrate` rescales the weights (and biases) that drive
each spiking population so that, on a real batch, its firing rate (or the variance of its input
current) matches a target. Upstream layers are fixed before a layer is calibrated, so in a
feed-forward network one scalar search per layer suffices; each search is a safeguarded secant
on :math:`\log s` (``s`` the scale) against the probit of the rate, started from the Gaussian
model :math:`r = Q(\tilde\theta / (s\,\sigma_I))`, and it stops after ``max_passes`` forward
passes per layer.

A recurrent population (:mod:`spikeinit.network.recurrent`) is calibrated through its
feed-forward drive; its recurrent weights are left as they are (their gain is the theory's,
:mod:`spikeinit.init.recurrent`), and a note says so. Its rate pools every step as for any
population, the transient from rest included (:func:`spikeinit.initialize` measures a recurrent
population from step :data:`~spikeinit.init.recurrent.RATE_FROM_STEP`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from spikeinit._validation import check_choice, check_module, check_positive, check_positive_int
from spikeinit.errors import InvalidArgumentError
from spikeinit.init.trainable import TRAINABLE_RATE
from spikeinit.network import (
    ActivityProbe,
    Forward,
    NetworkMap,
    NeuronSite,
    Note,
    SynapticLayer,
    discover,
    dropout_off,
    kept_statistics,
    of_kind,
    run_model,
    sample_argument,
)
from spikeinit.network.recurrent import find_loops
from spikeinit.tables import TabularResult, fmt
from spikeinit.theory.gaussian import inverse_tail_probability, tail_probability

QUANTITIES = ("rate", "variance")


@dataclass(frozen=True)
class LayerCalibration:
    """What :func:`calibrate` did for one spiking population.

    ``parameters`` are the tensors it multiplied by ``scale``; ``before``/``after`` are the
    measured quantity (rate or input-current variance) before and after, ``rate_before`` and
    ``rate_after`` the firing rates; ``passes`` the forward passes this layer's search used.

    Example:
        >>> import torch
        >>> from spikeinit.models import deep_network
        >>> _ = torch.manual_seed(0)
        >>> layer = calibrate(deep_network(100, 6), torch.rand(5, 16, 100)).layers[-1]
        >>> layer.neuron, layer.parameters, layer.rate_before, round(layer.after, 2)
        ('blocks.4.1', ('blocks.4.0.weight',), 0.0, 0.1)
    """

    neuron: str
    layer: str
    parameters: tuple[str, ...]
    target: float
    before: float
    after: float
    rate_before: float
    rate_after: float
    scale: float
    passes: int
    converged: bool

    @property
    def error(self) -> float:
        """Relative deviation of ``after`` from ``target``."""
        return abs(self.after - self.target) / self.target


@dataclass(frozen=True)
class CalibrationResult(TabularResult):
    """The outcome of :func:`calibrate`: one :class:`LayerCalibration` per calibrated layer
    (:meth:`table`, :meth:`print`, :meth:`to_csv`, :meth:`as_dicts`).

    ``converged`` says whether every layer ended within the tolerance of its target;
    ``forward_passes`` counts the passes of the whole call; ``skipped`` names the layers left
    unchanged, and ``notes`` says why.

    Example:
        >>> import torch
        >>> from spikeinit.models import deep_network
        >>> _ = torch.manual_seed(0)
        >>> result = calibrate(deep_network(20, 3), torch.rand(3, 8, 20))
        >>> result.converged, len(result.layers), result.table().splitlines()[0].split()[:3]
        (True, 2, ['neuron', 'scaled', 'target'])
    """

    quantity: str
    layers: tuple[LayerCalibration, ...]
    forward_passes: int
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def converged(self) -> bool:
        """Whether every layer reached its target within the tolerance."""
        return all(layer.converged for layer in self.layers)

    def as_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per layer (for JSON/CSV)."""
        return [asdict(layer) for layer in self.layers]

    def csv_fields(self) -> list[str]:
        return list(LayerCalibration.__dataclass_fields__)

    def table_rows(self) -> list[list[str]]:
        rows = [["neuron", "scaled", "target", f"{self.quantity} before", f"{self.quantity} after",
                 "scale", "passes", "ok"]]
        for layer in self.layers:
            rows.append([layer.neuron, ", ".join(layer.parameters), fmt(layer.target, 4),
                         fmt(layer.before, 4), fmt(layer.after, 4), fmt(layer.scale, 4),
                         str(layer.passes), "yes" if layer.converged else "NO"])
        return rows

    def table_notes(self) -> tuple[str, ...]:
        return (f"{self.forward_passes} forward passes", *self.notes)


@dataclass
class _Unit:
    site: NeuronSite
    driver: SynapticLayer
    handle: nn.Module
    handle_name: str
    names: tuple[str, ...]
    tensors: tuple[torch.Tensor, ...]
    originals: tuple[torch.Tensor, ...]
    target: float


def calibrate(
    model: nn.Module,
    sample: Any = None,
    *,
    target: float | Mapping[str, float] | None = None,
    quantity: str = "rate",
    sigma: float | None = None,
    tolerance: float = 0.02,
    max_passes: int = 12,
    scale_bias: bool = True,
    forward: Forward | None = None,
    batch: Any = None,
) -> CalibrationResult:
    r"""Rescale each layer, in forward order, until its neurons' rate (or variance) hits a target.

    ``quantity="rate"``: spikes per neuron per step, pooled over the sample and the steps;
    ``quantity="variance"``: the variance of the neurons' input current (in units of the
    effective threshold :math:`\tilde\theta = \theta/g`, the membrane variance at the first
    step). ``target`` is one number for every layer, a mapping from neuron (or synaptic layer)
    names to numbers, or ``None``: for ``"rate"``, the rate that trains best
    (:data:`~spikeinit.init.trainable.TRAINABLE_RATE`, 0.1, docs/operating-point.md), or with
    ``sigma`` given the rate :math:`Q(\tilde\theta/\sigma)` of the paper's initialization at
    the first step; for ``"variance"``, :math:`\sigma^2` (``sigma`` 1 when not given).

    The parameter scaled for a population is the weight (and, with ``scale_bias``, the bias) of
    the Linear/Conv layer that drives it, or the affine weight (and bias) of a normalization
    layer between them (in training mode a BatchNorm hides the synaptic layer's scale). Each
    layer's search stops when :math:`|x - x^*| \le` ``tolerance`` :math:`\cdot x^*` or after
    ``max_passes`` passes, so the whole call makes at most
    :math:`2 + L \cdot` ``max_passes`` forward passes for :math:`L` populations. The model runs
    without gradients, with its dropout layers in eval mode, its neurons reset before each
    pass and its normalization running statistics restored afterwards. ``forward(model,
    sample)`` replaces ``model(sample)`` when given. A
    :class:`~spikeinit.network.SampleError` (or :class:`~spikeinit.network.TimeAxisError`) says
    which axis of the sample was taken as time and batch, and how to pass ``forward=``, when
    the model fails on the sample or the run shows the axes wrong
    (:mod:`spikeinit.network.time_axis`).

    Example:
        >>> import torch
        >>> from spikeinit.models import deep_network
        >>> net = deep_network(100, 4)
        >>> result = calibrate(net, torch.rand(5, 32, 100), target=0.1)
        >>> all(abs(layer.after - 0.1) <= 0.002 for layer in result.layers)
        True
    """
    check_module("model", model)
    sample = sample_argument(sample, batch, "calibrate")
    check_choice("quantity", quantity, QUANTITIES)
    if sigma is not None:
        check_positive("sigma", sigma)
    if not 0.0 < float(tolerance) < 1.0:
        raise InvalidArgumentError(f"tolerance must lie in (0, 1), got {tolerance!r}")
    check_positive_int("max_passes", max_passes)
    _check_target(target, quantity)
    with dropout_off(model), kept_statistics(model):
        network = discover(model, sample, forward)
        units, skipped = _units(network, target, quantity, sigma, scale_bias)
        skipped += _loop_notes(model, network, units)
        neurons = {u.site.name: (u.site.module, u.site.description.spike_amplitude)
                   for u in units}
        passes = 1
        results = []
        with ActivityProbe(neurons) as probe:
            measured = _from_probe(network.activity, neurons)
            for unit in units:
                result, used, measured = _calibrate_unit(
                    model, sample, forward, probe, unit, measured, quantity, tolerance,
                    max_passes)
                passes += used
                results.append(result)
            probe.clear()
            run_model(model, sample, forward)
            passes += 1
            final = _from_probe(probe, neurons)
    layers = []
    for unit, result in zip(units, results):
        rate, variance = final[unit.site.name]
        after = rate if quantity == "rate" else variance
        converged = abs(after - unit.target) <= tolerance * unit.target
        layers.append(LayerCalibration(**{**result, "after": after, "rate_after": rate,
                                          "converged": converged}))
    unconverged = [layer.neuron for layer in layers if not layer.converged]
    if unconverged:
        warnings.warn(f"calibrate: {', '.join(unconverged)} did not reach the target within "
                      f"{max_passes} passes (see the result's 'after' column)", stacklevel=2)
    notes = tuple(note.qualified() for note in skipped)
    real_skips = [note.qualified() for note in of_kind(skipped, "skipped")]
    if real_skips:
        warnings.warn("calibrate left unchanged: " + "; ".join(real_skips), stacklevel=2)
    return CalibrationResult(quantity, tuple(layers), passes,
                             tuple(note.layer for note in skipped), notes)


def theory_target(site: NeuronSite, quantity: str = "rate", sigma: float | None = None) -> float:
    r"""The default target for a population.

    Rate: :data:`~spikeinit.init.trainable.TRAINABLE_RATE` without ``sigma``, else the rate
    :math:`Q(\tilde\theta/\sigma)` of the paper's initialization at the first step. Variance:
    :math:`\sigma^2` (1 without ``sigma``).

    Example:
        >>> import torch
        >>> from spikeinit.models import deep_network
        >>> from spikeinit.network import discover
        >>> site = discover(deep_network(20, 3), torch.rand(2, 4, 20)).neurons[1]
        >>> theory_target(site), round(theory_target(site, sigma=1.0), 4)  # Q(1) at theta = 1
        (0.1, 0.1587)
    """
    check_choice("quantity", quantity, QUANTITIES)
    if quantity == "variance":
        return 1.0 if sigma is None else sigma**2
    if sigma is None:
        return TRAINABLE_RATE
    if site.description is None:
        raise InvalidArgumentError(
            f"no theory target for {site.name}: its neuron is not understood")
    return float(tail_probability(site.description.effective_threshold / sigma))


def _check_target(target: float | Mapping[str, float] | None, quantity: str) -> None:
    values = [] if target is None else (
        list(target.values()) if isinstance(target, Mapping) else [target])
    for value in values:
        value = float(value)
        if quantity == "rate" and not 0.0 < value < 1.0:
            raise InvalidArgumentError(
                f"target must be a rate in (0, 1) for quantity='rate', got {value!r}")
        if quantity == "variance":
            check_positive("target", value)


def _units(
    network: NetworkMap,
    target: float | Mapping[str, float] | None,
    quantity: str,
    sigma: float | None,
    scale_bias: bool,
) -> tuple[list[_Unit], list[Note]]:
    units: list[_Unit] = []
    skipped: list[Note] = []
    for site in network.neurons:
        if site.description is None:
            skipped.append(Note("skipped", site.name, f"not understood ({site.problem})"))
            continue
        driver = network.driver(site.name)
        if driver is None and site.name in network.attention:
            skipped.append(Note("skipped", site.name, (
                f"an attention population (driven by {network.attention[site.name].product}): "
                "initialize sets it through its scale or threshold; calibrate scales weights")))
            continue
        if driver is None:
            skipped.append(
                Note("data-driven", site.name, "driven by the data directly: no weights to scale")
                if site.driven_by_data else
                Note("skipped", site.name, "no synaptic layer drives it"))
            continue
        handle, handle_name = driver.module, driver.name
        for op in driver.after:
            if op.kind == "normalization":
                if not isinstance(getattr(op.module, "weight", None), torch.Tensor):
                    handle = None
                    break
                handle, handle_name = op.module, op.name
        if handle is None:
            skipped.append(Note("skipped", site.name,
                                "a normalization without affine weight sits between "
                                f"{driver.name} and the neurons: nothing to scale"))
            continue
        names, tensors = ["weight"], [handle.weight]
        bias = getattr(handle, "bias", None)
        if scale_bias and isinstance(bias, torch.Tensor):
            names.append("bias")
            tensors.append(bias)
        if isinstance(target, Mapping):
            value = target.get(site.name, target.get(driver.name))
            if value is None:
                skipped.append(Note("skipped", site.name, "no target given for it"))
                continue
        else:
            value = target if target is not None else theory_target(site, quantity, sigma)
        units.append(_Unit(site, driver, handle, handle_name,
                           tuple(f"{handle_name}.{n}" for n in names), tuple(tensors),
                           tuple(t.detach().clone() for t in tensors), float(value)))
    return units, skipped


def _loop_notes(model: nn.Module, network: NetworkMap, units: list[_Unit]) -> list[Note]:
    """A note for each recurrent population among ``units``: its drive is scaled, its
    recurrent weights are kept."""
    scaled = {unit.site.name: unit for unit in units}
    return [Note("modelled", loop.name, (
                f"recurrent weights of {loop.neuron_name}, kept; its drive "
                f"{scaled[loop.neuron_name].handle_name} scaled; the rate pools every step, "
                "the transient from rest included"))
            for loop in find_loops(model, network) if loop.neuron_name in scaled]


def _from_probe(
    probe: ActivityProbe | None, neurons: Mapping[str, Any]
) -> dict[str, tuple[float, float]]:
    if probe is None:
        return {}
    return {name: (probe.neurons[name].rate, probe.neurons[name].current_variance)
            for name in neurons if name in probe.neurons}


def _calibrate_unit(
    model: nn.Module,
    sample: Any,
    forward: Forward | None,
    probe: ActivityProbe,
    unit: _Unit,
    measured: dict[str, tuple[float, float]],
    quantity: str,
    tolerance: float,
    max_passes: int,
) -> tuple[dict[str, Any], int, dict[str, tuple[float, float]]]:
    name = unit.site.name
    theta = unit.site.description.effective_threshold
    goal = unit.target
    passes = 0

    def evaluate(scale: float) -> tuple[float, float, dict[str, tuple[float, float]]]:
        nonlocal passes
        _apply(unit, scale)
        probe.clear()
        run_model(model, sample, forward)
        passes += 1
        everything = _from_probe(probe, probe.neurons)
        return (*everything[name], everything)

    scale = last = 1.0
    if name in measured:
        rate, variance = measured[name]
        latest = measured
    else:
        rate, variance, latest = evaluate(scale)
    rate_before = rate
    value_before = rate if quantity == "rate" else variance
    history: list[tuple[float, float]] = []
    best = (math.inf, scale, latest)
    low = high = None
    while True:
        value = rate if quantity == "rate" else variance
        error = abs(value - goal) / goal if math.isfinite(value) else math.inf
        if error < best[0]:
            best = (error, scale, latest)
        if error <= tolerance or passes >= max_passes:
            break
        log_scale = math.log(scale)
        if value < goal:
            low = log_scale if low is None else max(low, log_scale)
        else:
            high = log_scale if high is None else min(high, log_scale)
        proposal = _propose(quantity, history, log_scale, value, variance, goal, theta)
        history.append((log_scale, value))
        if low is not None and high is not None and not low < proposal < high:
            proposal = 0.5 * (low + high)
        scale = last = math.exp(proposal)
        rate, variance, latest = evaluate(scale)
    _, scale, latest = best
    if scale != last:  # the best pass was not the last one: its measurements are stale now
        _apply(unit, scale)
        latest = {}
    summary = {
        "neuron": name, "layer": unit.driver.name, "parameters": unit.names, "target": goal,
        "before": value_before, "after": math.nan, "rate_before": rate_before,
        "rate_after": math.nan, "scale": scale, "passes": passes, "converged": False,
    }
    return summary, passes, latest


def _apply(unit: _Unit, scale: float) -> None:
    with torch.no_grad():
        for tensor, original in zip(unit.tensors, unit.originals):
            tensor.copy_(original * scale)


def _propose(
    quantity: str,
    history: list[tuple[float, float]],
    log_scale: float,
    value: float,
    variance: float,
    goal: float,
    theta: float,
) -> float:
    """The next ``log s``: exact for the variance, a probit secant for the rate."""
    if quantity == "variance":
        if not value > 0 or not math.isfinite(value):
            return log_scale + math.log(4.0)
        return log_scale + 0.5 * math.log(goal / value)
    wanted = _probit(goal)
    if 0.0 < value < 1.0:
        for previous_log, previous in reversed(history):
            if 0.0 < previous < 1.0 and previous != value and previous_log != log_scale:
                slope = (_probit(value) - _probit(previous)) / (log_scale - previous_log)
                if slope > 0:
                    return log_scale + _clip((wanted - _probit(value)) / slope)
                break
        # Gaussian model r = Q(theta / (s * sd)): probit(r) = -theta / (s * sd)
        z_now, z_goal = _probit(value), wanted
        if z_now < 0 and z_goal < 0:
            return log_scale + _clip(math.log(z_now / z_goal))
        return log_scale + (math.log(2.0) if value < goal else -math.log(2.0))
    std = math.sqrt(variance) if math.isfinite(variance) and variance > 0 else 0.0
    if std > 0 and wanted < 0:
        jump = math.log(theta / (-wanted * std)) if theta > 0 else 0.0
        if (value <= 0.0 and jump > 0) or (value >= 1.0 and jump < 0):
            return log_scale + _clip(jump, 7.0)
    return log_scale + (math.log(4.0) if value <= 0.0 else -math.log(4.0))


def _probit(rate: float) -> float:
    r"""The probit :math:`\Phi^{-1}(r) = -Q^{-1}(r)` of a rate, clipped to [1e-9, 1 - 1e-9]."""
    return -float(inverse_tail_probability(min(max(rate, 1e-9), 1 - 1e-9)))


def _clip(step: float, limit: float = math.log(8.0)) -> float:
    return max(-limit, min(limit, step))
