r"""Realized statistics: each layer of a residual network made exact on the sample.

The theory of :mod:`spikeinit.init.residual` predicts what every layer of a residual network
reads: spikes at their rate, sums of independent terms, currents at their drawn std. Two
things it cannot predict move the blocks off their rate (docs/architectures.md, Limits):

- the *temporal* statistics of a current. The std :math:`\sigma^*` at which a LIF population
  fires at rate :math:`r` over :math:`T` steps depends on how its current is correlated over
  the steps (:func:`~spikeinit.theory.temporal_gain.input_std_for_rate`: 0.69 for a current
  held constant, 0.83 for a new draw each step, at :math:`\tilde\theta = 1`,
  :math:`\beta = 0.5`, :math:`T = 4`, :math:`r = 0.1`). A layer that reads a static image
  or a count of many spike trains does not get the correlation of one spike train;
- *finite width*: with a few channels, one draw's realized :math:`E[I^2] = w^\top C w`
  on correlated inputs misses its mean :math:`n\,\mathrm{Var}[w]\,E[x^2]` by up to 2x.

:func:`realize` removes both with one forward pass per layer, in forward order (the layers
upstream are final when a layer is measured). On the sample it measures the current
:math:`I` that the layer's neurons receive, its second-moment matrix over the steps
:math:`M_{tt'} = E[I_t I_{t'}]` (pooled over neurons and samples) and its autocorrelation
:math:`C = M/\overline{M_{tt}}`, and solves the temporal theory for that :math:`C`:

- a layer that alone drives its neurons is scaled by
  :math:`c = \sigma^*(C) / \sqrt{\overline{M_{tt}}}`;
- a layer that starts a membrane stream (the stem of an MS-ResNet) gets the stream's base
  variance :math:`(1-\rho/2)\,\sigma^{*2}`; the :math:`k`-th of the :math:`L` branches
  adding to it is scaled so that the stream after it has
  :math:`E[(P + cD)^2] = (1 - \rho/2 + k\rho/L)\,\sigma^{*2}`, with :math:`P` the stream
  before it and :math:`D` its current (the root of a quadratic in :math:`c`). The stream's
  rate then stays inside the band of :func:`~spikeinit.theory.residual.stream_fraction`.

The attention populations of a spiking transformer (:mod:`~spikeinit.init.attention`) are set
in the same pass, in forward order: their current is measured the same way and their scale
or threshold set for the rate.

Behind a BatchNorm the norm's :math:`\gamma` is scaled instead of the weights. A layer whose
current is added to spikes before its neurons keeps the one-step mixture share of
:class:`~spikeinit.init.residual.ResidualPlan` (its input is not Gaussian). Nothing here
measures a rate: :func:`spikeinit.calibrate` does that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit.init.attention import AttentionFactor, AttentionUnit, attention_factor
from spikeinit.init.context import LayerContext
from spikeinit.init.residual import STREAM_TOLERANCE, ResidualPlan, scale_module
from spikeinit.nested import first_tensor
from spikeinit.network import (
    Forward,
    NetworkMap,
    Note,
    SynapticLayer,
    dropout_off,
    keeps_spikes,
    kept_statistics,
    run_model,
)
from spikeinit.theory.residual import stream_fraction
from spikeinit.theory.temporal_gain import scale_for_rate

#: The smallest factor a branch is scaled by, when the stream before it is already too wide.
BRANCH_FLOOR = 0.05


@dataclass(frozen=True)
class Realized:
    """What :func:`realize_units` did for one layer: the factor on the layer's current, and why."""

    factor: float
    note: Note


class _StopPassError(Exception):
    """Raised by a hook once the measured neurons have had all their calls."""


def second_moments(current: Tensor, steps: int) -> Tensor:
    r"""The ``(T, T)`` matrix :math:`M_{tt'} = E[I_t I_{t'}]` of a current laid out
    ``(T, ...)``, pooled over everything but the steps (float64).

    Example:
        >>> second_moments(torch.ones(3, 5), 3)
        tensor([[1., 1., 1.],
                [1., 1., 1.],
                [1., 1., 1.]], dtype=torch.float64)
    """
    rows = current.detach().double().reshape(steps, -1)
    return rows @ rows.T / rows.shape[1]


class _Capture:
    """Forward hooks that keep the input of the neurons and the output of the driver."""

    def __init__(self, neuron: nn.Module, driver: nn.Module, calls: int) -> None:
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.calls = calls
        self._handles = [driver.register_forward_hook(self._driver),
                         neuron.register_forward_hook(self._neuron)]

    def _driver(self, module: nn.Module, args: Any, output: Any) -> None:
        tensor = first_tensor(output)
        if tensor is not None:
            self.outputs.append(tensor.detach())

    def _neuron(self, module: nn.Module, args: Any, output: Any) -> None:
        tensor = first_tensor(args)
        if tensor is not None:
            self.inputs.append(tensor.detach())
        if len(self.inputs) >= self.calls:
            raise _StopPassError

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _over_steps(tensors: Sequence[Tensor], steps: int) -> Tensor | None:
    """The calls' tensors as one ``(T, ...)`` tensor: one call per step, or one multi-step
    call whose leading axis is ``T``; ``None`` for any other layout."""
    if len(tensors) == steps and steps > 1:
        return torch.stack(list(tensors))
    if len(tensors) == 1 and tensors[0].dim() >= 1 and tensors[0].shape[0] == steps:
        return tensors[0]
    return None


def measure_layer(model: nn.Module, sample: Any, forward: Forward | None, neuron: nn.Module,
                  driver: nn.Module, calls: int, steps: int) -> tuple[Tensor, Tensor] | None:
    """One pass: ``(current into the neurons, output of the driver)``, both ``(T, ...)``,
    or ``None`` when their layouts cannot be matched."""
    capture = _Capture(neuron, driver, calls)
    try:
        run_model(model, sample, forward)
    except _StopPassError:
        pass
    finally:
        capture.remove()
    current = _over_steps(capture.inputs, steps)
    if current is None:
        return None
    return current, _as_current(capture.outputs, current)


def _as_current(outputs: Sequence[Tensor], current: Tensor) -> Tensor:
    """The driver's output laid out as the neurons' ``current``: one call (``(T, B, ...)`` or
    ``(T*B, ...)``) or one call per step; ``current`` itself when the layouts differ
    (pooling or the like between them: the neurons' input then scales with the driver)."""
    if len(outputs) == 1 and outputs[0].numel() == current.numel():
        return outputs[0].reshape(current.shape)
    if len(outputs) == current.shape[0] and sum(o.numel() for o in outputs) == current.numel():
        return torch.stack(list(outputs)).reshape(current.shape)
    return current


def stream_branch_factor(stream: Tensor, branch: Tensor, target: float) -> float | None:
    r"""The factor :math:`c` on ``branch`` :math:`D` that gives the stream
    :math:`P + cD` (``stream`` is :math:`P + D`) the second moment ``target``:
    :math:`a c^2 + 2 b c + p = V` with :math:`a = E[D^2]`, :math:`b = E[PD]`,
    :math:`p = E[P^2]`; the larger root, ``None`` when no positive root exists.

    Example:
        >>> p, d = torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0])
        >>> stream_branch_factor(p + d, d, 2.0 + 1.0)  # E[P^2] = 1, E[D^2] = 1, E[PD] = 0
        1.4142135623730951
    """
    base = (stream - branch).double()
    branch = branch.double()
    a = float(branch.square().mean())
    b = float((base * branch).mean())
    p = float(base.square().mean())
    discriminant = b * b - a * (p - target)
    if a <= 0 or discriminant < 0:
        return None
    root = (-b + math.sqrt(discriminant)) / a
    return root if root > 0 else None


@dataclass(frozen=True)
class RealizeUnit:
    """A layer to make exact: its record's layer, the module scaled (the layer, or the norm
    behind it) and its context."""

    layer: SynapticLayer
    driver: nn.Module
    ctx: LayerContext

    @property
    def behind_norm(self) -> bool:
        """Whether the scaled module is a norm behind the layer (its gamma), not the layer."""
        return self.driver is not self.layer.module


def realize_units(model: nn.Module, sample: Any, forward: Forward | None, network: NetworkMap,
                  plan: ResidualPlan, units: Sequence[RealizeUnit], rate: float,
                  attention: Sequence[AttentionUnit] = ()
                  ) -> tuple[dict[str, Realized], dict[str, AttentionFactor]]:
    """Make every unit exact on the sample, and set every attention population with a knob
    (:mod:`~spikeinit.init.attention`), in forward order; what was done, per layer name and
    per attention neuron.

    Where every measured population runs all its steps in one call (multi-step neurons), one
    pass does it all: a hook before each population rescales
    its driver (or its attention knob) and, in place, the current it is about to receive, so
    that everything downstream sees the rescaled network. Neurons called once per step need
    the whole current before the factor is known: one pass per layer, stopped at its neurons'
    last call.
    """
    measured = [unit for unit in units if _site(network, plan, unit) is not None]
    attending = [unit for unit in attention if unit.knob is not None
                 and unit.site.name in network.activity.neurons
                 and network.activity.neurons[unit.site.name].calls]
    done: dict[str, Realized] = {}
    attended: dict[str, AttentionFactor] = {}
    with dropout_off(model), kept_statistics(model):
        if all(_calls(network, unit) == 1 for unit in measured) and all(
                network.activity.neurons[unit.name].calls == 1 for unit in attending):
            done = _in_one_pass(model, sample, forward, network, plan, measured, rate,
                                attending, attended)
        order = {site.name: index for index, site in enumerate(network.neurons)}
        pending = sorted([*measured, *attending], key=lambda unit: order.get(
            unit.name if isinstance(unit, AttentionUnit) else unit.layer.target_name, 0))
        for unit in pending:  # what one pass could not do (or every unit, one step a call)
            if isinstance(unit, AttentionUnit):
                if unit.name not in attended:
                    _attend_alone(model, sample, forward, network, unit, rate, attended)
                continue
            if unit.layer.name in done:
                continue
            pair = _measured_pair(model, sample, forward, network, plan, unit)
            if pair is not None:
                result = _factor(plan, unit, *pair, rate)
                if result is not None:
                    scale_module(unit.driver, result.factor)
                    done[unit.layer.name] = result
    return done, attended


def _measured_pair(model: nn.Module, sample: Any, forward: Forward | None, network: NetworkMap,
                   plan: ResidualPlan, unit: RealizeUnit) -> tuple[Tensor, Tensor] | None:
    """:func:`measure_layer` for ``unit``; for a branch of a membrane stream whose output
    cannot be laid out as its neurons' current (a mean over tokens between them), its part of
    the current is measured instead as the change when the driver is doubled (the operations
    between are linear)."""
    site = _site(network, plan, unit).module
    calls = _calls(network, unit)
    pair = measure_layer(model, sample, forward, site, unit.driver, calls, unit.ctx.steps)
    if pair is None or pair[1] is not pair[0] or plan.chain_position(unit.layer) is None:
        return pair
    scale_module(unit.driver, 2.0)
    try:
        doubled = measure_layer(model, sample, forward, site, unit.driver, calls,
                                unit.ctx.steps)
    finally:
        scale_module(unit.driver, 0.5)
    if doubled is None:
        return pair
    return pair[0], doubled[0] - pair[0]


def _attend_alone(model: nn.Module, sample: Any, forward: Forward | None, network: NetworkMap,
                  unit: AttentionUnit, rate: float, attended: dict[str, AttentionFactor]
                  ) -> None:
    """Set one attention population from a pass of its own (its neurons' every call)."""
    module = unit.site.module
    pair = measure_layer(model, sample, forward, module, module,
                         network.activity.neurons[unit.name].calls, unit.steps)
    if pair is None:
        return
    result = attention_factor(unit, pair[0], rate)
    if result is not None:
        unit.knob.rescale(result.factor)
        attended[unit.name] = result


def _site(network: NetworkMap, plan: ResidualPlan, unit: RealizeUnit) -> Any:
    """The neuron site the unit's layer drives, when it can be measured, else ``None``."""
    layer = unit.layer
    site = network.neuron(layer.target_name) if layer.target_name is not None else None
    activity = network.activity
    if site is None or site.description is None or activity is None or (
            site.name not in activity.neurons or not activity.neurons[site.name].calls):
        return None
    addition = plan.addition_after(layer)
    others = addition.others(layer.name) if addition is not None else ()
    if others and all(t.kind == "spikes" and keeps_spikes(t.ops) for t in others):
        return None  # spikes join the current: the mixture share stays
    return site


def _calls(network: NetworkMap, unit: RealizeUnit) -> int:
    return network.activity.neurons[unit.layer.target_name].calls


def _in_one_pass(model: nn.Module, sample: Any, forward: Forward | None, network: NetworkMap,
                 plan: ResidualPlan, units: Sequence[RealizeUnit], rate: float,
                 attention: Sequence[AttentionUnit] = (),
                 attended: dict[str, AttentionFactor] | None = None) -> dict[str, Realized]:
    """The one pass of :func:`realize_units`: the layers done, by name; the attention
    populations set go to ``attended``."""
    done: dict[str, Realized] = {}
    attended = {} if attended is None else attended
    outputs: dict[str, list[Tensor]] = {}
    by_neuron: dict[str, list[RealizeUnit]] = {}
    for unit in units:
        by_neuron.setdefault(unit.layer.target_name, []).append(unit)

    def keep(name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                outputs[name] = [tensor]
        return hook

    def level(group: list[RealizeUnit]):
        def hook(module: nn.Module, args: Any) -> None:
            current = first_tensor(args)
            if current is None or current.dim() < 1 or current.shape[0] != group[0].ctx.steps:
                return
            for unit in group:
                branch = _as_current(outputs.get(unit.layer.name, []), current)
                if branch is current and plan.chain_position(unit.layer) is not None:
                    continue  # its share of the stream is not known: a pass of its own
                result = _factor(plan, unit, current, branch, rate)
                if result is None:
                    continue
                try:
                    if plan.chain_position(unit.layer) is None:  # the current is the driver's
                        current.mul_(result.factor)
                    else:  # the stream before it, plus the branch
                        current.add_(branch, alpha=result.factor - 1.0)
                except RuntimeError:  # a view that cannot be written: one pass per layer
                    return
                scale_module(unit.driver, result.factor)
                done[unit.layer.name] = result
        return hook

    def attend(unit: AttentionUnit):
        def hook(module: nn.Module, args: Any) -> None:
            current = first_tensor(args)
            if current is None or current.dim() < 1 or current.shape[0] != unit.steps:
                return
            result = attention_factor(unit, current, rate)
            if result is None:
                return
            try:
                current.mul_(result.factor)
            except RuntimeError:  # a view that cannot be written: a pass of its own
                return
            unit.knob.rescale(result.factor)
            attended[unit.name] = result
        return hook

    handles = []
    try:
        for unit in units:
            handles.append(unit.driver.register_forward_hook(keep(unit.layer.name)))
        for name, group in by_neuron.items():
            module = network.neuron(name).module
            handles.append(module.register_forward_pre_hook(level(group)))
        for unit in attention:
            handles.append(unit.site.module.register_forward_pre_hook(attend(unit)))
        run_model(model, sample, forward)
    finally:
        for handle in handles:
            handle.remove()
    return done


def _factor(plan: ResidualPlan, unit: RealizeUnit, current: Tensor, branch: Tensor,
            rate: float) -> Realized | None:
    """The factor on ``unit``'s driver, from the current its neurons receive and the part of
    it that the driver sends (module docstring); ``None`` where nothing can be solved."""
    layer, ctx = unit.layer, unit.ctx
    moments = second_moments(current, ctx.steps)
    power = float(moments.diagonal().mean())
    if not (power > 0 and math.isfinite(power)):
        return None
    try:  # sigma*: the rms at which the neurons, driven by the current rescaled, fire at rate
        sigma = scale_for_rate(current, ctx.neuron, rate, ctx.synaptic_decay) * math.sqrt(power)
    except ValueError:
        return None
    fraction = stream_fraction(rate, STREAM_TOLERANCE)
    chain = plan.chain_position(layer)
    if plan.stream_base(layer) is not None:
        target, role = (1 - fraction / 2) * sigma**2, "starts a membrane stream"
        factor = math.sqrt(target / power)
    elif chain is not None:
        index, length = chain
        target = (1 - fraction / 2 + index * fraction / length) * sigma**2
        role = f"branch {index} of {length} of a membrane stream"
        factor = stream_branch_factor(current, branch, target)
        if factor is None:
            factor = BRANCH_FLOOR
    else:
        target, role = sigma**2, "drives its neurons alone"
        factor = math.sqrt(target / power)
    return Realized(factor, Note(
        "measured", layer.name,
        f"{role}: its neurons' current on the sample had E[I^2] = {power:.4g} with "
        f"autocorrelation {_describe(moments)} over the steps; sigma* = {sigma:.4g} fires "
        f"them at {rate:g} for it (target E[I^2] = {target:.4g}): x {factor:.4g}"))


def _describe(moments: Tensor) -> str:
    diagonal = float(moments.diagonal().mean())
    steps = moments.shape[0]
    if steps == 1:
        return "(one step)"
    off = (float(moments.sum()) - float(moments.diagonal().sum())) / (steps * (steps - 1))
    return f"{off / diagonal:.3g} (mean off the diagonal)"
