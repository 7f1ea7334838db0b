r"""The health report at initialization: what each spiking layer receives and does, and why.

For every spiking population in forward order, :func:`report` lists its fan-in, threshold, decay,
the std of the weights that drive it, and beside each other the *predicted* and the *measured*
firing rate and input-current variance. The prediction is the static (first-step) mean-field
theory of each layer given what it actually receives:

.. math::

    \mu = n\,m_w\,E[x] + \bar b, \qquad
    \sigma_I^2 = n\,\big(v_w E[x^2] + m_w^2 (E[x^2] - E[x]^2)\big) + \mathrm{Var}[b], \qquad
    p = Q\big((\tilde\theta - \mu)/\sigma_I\big),

with :math:`n` the fan-in, :math:`m_w, v_w` the mean and variance of the layer's actual weights,
:math:`E[x], E[x^2]` its input's, measured on the batch, and :math:`\tilde\theta = \theta/g` the
effective threshold; pooling, dropout and normalization between the layer and its neurons are
applied in order. The measured values pool every step of the batch: where the predicted variance
matches and the rates do not, the gap is the neurons' dynamics over time (leak, integration,
reset), which the one-step theory does not see.

Where :func:`spikeinit.initialize` drew a layer's weights (and they have not changed since), the
row also gives the target membrane std :math:`\sigma` it used (``init_sigma``) and whether it
chose it itself (``init_sigma_auto``, marked ``*`` in the table, with the reason in a note); a
note names the layers whose :math:`\sigma` is an unstable fixed point of the one-step map,
slope :math:`a\varphi(a)/(2Q(a)) \ge 1` at :math:`a = \tilde\theta/\sigma`.

Flags: ``dead`` (measured rate below ``dead``, default 1e-3), ``saturated`` (above
``saturated``, default 0.9), ``exploding`` (the input current's mean square above ``exploding``
times :math:`\tilde\theta^2`, default 100, i.e. an RMS current ten times the threshold, or
non-finite values), ``not-understood`` (a neuron no adapter can read).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from spikeinit._validation import check_open_unit_interval, check_positive
from spikeinit.init.fan import compute_fans
from spikeinit.init.model import init_record
from spikeinit.init.registry import get_method
from spikeinit.network.graph import (
    Forward,
    NetworkMap,
    SynapticLayer,
    discover,
    sample_argument,
)
from spikeinit.network.moments import gaussian_rate, predicted_current
from spikeinit.tables import TabularResult, fmt
from spikeinit.theory.static import stability_slope

FLAGS = ("dead", "saturated", "exploding", "not-understood")
STATIC_METHODS = ("paper", "stable")  # Var[w] = sigma^2 / (n E[x^2]): sigma is a fixed point


@dataclass(frozen=True)
class LayerHealth:
    """One row of the report: a spiking population and the synaptic layer that drives it.

    ``predicted_rate`` and ``predicted_variance`` are the one-step theory of the module
    docstring for the layer's actual weights and measured input; ``measured_rate`` and
    ``measured_variance`` pool every step of the sample; ``flags`` lists ``dead``,
    ``saturated``, ``exploding`` or ``not-understood``.

    Example:
        >>> import torch
        >>> from spikeinit.models import deep_network
        >>> _ = torch.manual_seed(0)
        >>> row = report(deep_network(100, 6), torch.rand(5, 16, 100)).layers[-1]
        >>> row.neuron, row.layer, row.fan_in, row.measured_rate, row.flags
        ('blocks.4.1', 'blocks.4.0', 100, 0.0, ('dead',))
    """

    neuron: str
    layer: str | None
    framework: str | None
    kind: str
    fan_in: int | None
    threshold: float | None
    effective_threshold: float | None
    beta: float | None
    weight_std: float | None
    predicted_rate: float | None
    measured_rate: float
    predicted_variance: float | None
    measured_variance: float
    flags: tuple[str, ...] = ()
    init_sigma: float | None = None
    init_sigma_auto: bool = False


@dataclass(frozen=True)
class HealthReport(TabularResult):
    """Per-layer health of a model on one sample: :meth:`table`, :meth:`print`, :meth:`to_csv`,
    :meth:`as_dicts`.

    Example:
        >>> import torch
        >>> from spikeinit import initialize
        >>> from spikeinit.models import deep_network
        >>> _ = torch.manual_seed(0)
        >>> net, x = deep_network(100, 6), torch.rand(5, 16, 100)
        >>> report(net, x).healthy  # PyTorch's default init: the deep layers are dead
        False
        >>> _ = initialize(net, "paper", sample=x)
        >>> health = report(net, x)
        >>> health.healthy, health.dead, len(health.as_dicts())
        (True, [], 6)
    """

    layers: tuple[LayerHealth, ...]
    dead_below: float = 1e-3
    saturated_above: float = 0.9
    exploding_above: float = 100.0
    notes: tuple[str, ...] = ()

    def flagged(self, flag: str | None = None) -> list[str]:
        """Names of the populations carrying ``flag`` (any flag when ``None``)."""
        if flag is not None and flag not in FLAGS:
            raise ValueError(f"flag must be one of {', '.join(FLAGS)}, got {flag!r}")
        return [row.neuron for row in self.layers
                if (row.flags if flag is None else flag in row.flags)]

    @property
    def dead(self) -> list[str]:
        """Populations whose measured rate is below ``dead_below``."""
        return self.flagged("dead")

    @property
    def saturated(self) -> list[str]:
        """Populations whose measured rate is above ``saturated_above``."""
        return self.flagged("saturated")

    @property
    def exploding(self) -> list[str]:
        """Populations whose input current is exploding."""
        return self.flagged("exploding")

    @property
    def healthy(self) -> bool:
        """Whether no population is dead, saturated or exploding."""
        return not (self.dead or self.saturated or self.exploding)

    def as_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per population (``flags`` joined by ``;``, NaN as ``None``)."""
        return [{key: None if isinstance(value, float) and math.isnan(value) else value
                 for key, value in {**asdict(row), "flags": ";".join(row.flags)}.items()}
                for row in self.layers]

    def csv_fields(self) -> list[str]:
        return list(LayerHealth.__dataclass_fields__)

    def table_rows(self) -> list[list[str]]:
        header = ["neuron", "layer", "fan_in", "theta", "theta/g", "beta", "w std", "sigma",
                  "rate pred", "rate", "var pred", "var", "flags"]
        rows = [header]
        for row in self.layers:
            sigma = fmt(row.init_sigma) + ("*" if row.init_sigma_auto else "")
            rows.append([row.neuron, row.layer or "-", fmt(row.fan_in), fmt(row.threshold),
                         fmt(row.effective_threshold), fmt(row.beta), fmt(row.weight_std),
                         sigma, fmt(row.predicted_rate), fmt(row.measured_rate),
                         fmt(row.predicted_variance), fmt(row.measured_variance),
                         ",".join(row.flags) or "ok"])
        return rows


def report(
    model: torch.nn.Module,
    sample: Any = None,
    *,
    forward: Forward | None = None,
    dead: float = 1e-3,
    saturated: float = 0.9,
    exploding: float = 100.0,
    batch: Any = None,
) -> HealthReport:
    r"""Run ``model`` once on ``sample`` and report every spiking population's health.

    See the module docstring for the prediction and the flags: ``dead`` and ``saturated`` are
    rates in (0, 1), ``exploding`` a factor > 0 on :math:`\tilde\theta^2`.
    ``forward(model, sample)`` replaces ``model(sample)`` when given (``batch=`` is the old
    name of ``sample``). The model runs from rest
    without gradients; normalization statistics are restored. A
    :class:`~spikeinit.network.SampleError` (or :class:`~spikeinit.network.TimeAxisError`) says
    which axis of the sample was taken as time and batch, and how to pass ``forward=``, when
    the model fails on the sample or the run shows the axes wrong
    (:mod:`spikeinit.network.time_axis`).

    Example:
        >>> import torch
        >>> from spikeinit.models import deep_network
        >>> health = report(deep_network(100, 10), torch.rand(5, 16, 100))
        >>> health.dead[-1]
        'blocks.8.1'
    """
    sample = sample_argument(sample, batch, "report")
    check_open_unit_interval("dead", dead)
    check_open_unit_interval("saturated", saturated)
    check_positive("exploding", exploding)
    if dead >= saturated:
        raise ValueError(f"dead must be below saturated, got dead={dead!r}, "
                         f"saturated={saturated!r}")
    network = discover(model, sample, forward)
    rows = []
    chosen: dict[str, list[str]] = {}
    unstable: dict[tuple[float, float], list[str]] = {}
    for site in network.neurons:
        activity = network.activity.neurons[site.name]
        description = site.description
        driver = network.driver(site.name)
        flags = []
        rate, variance = activity.rate, activity.current_variance
        theta = description.effective_threshold if description is not None else None
        if description is None:
            flags.append("not-understood")
        if not math.isnan(rate) and rate < dead:
            flags.append("dead")
        if not math.isnan(rate) and rate > saturated:
            flags.append("saturated")
        loud = theta is not None and (
            activity.current.second_moment > exploding * max(theta, 1e-12) ** 2)
        if activity.current.nonfinite or activity.spikes.nonfinite or loud:
            flags.append("exploding")
        fan_in = weight_std = pred_rate = pred_var = record = None
        if driver is not None:
            record = init_record(driver.module)
            if record is not None and record.sigma is not None:
                if record.sigma_auto:
                    chosen.setdefault(record.sigma_reason, []).append(site.name)
                static = get_method(record.method)[0].name in STATIC_METHODS
                if static and record.threshold is not None and stability_slope(
                        record.threshold, record.sigma) >= 1.0:
                    unstable.setdefault((record.threshold, record.sigma), []).append(site.name)
            fan_in = compute_fans(driver.module.weight)[0]
            weight_std = float(driver.module.weight.detach().double().std())
            moments = _predicted_current(network, driver)
            if moments is not None and theta is not None:
                mean, pred_var = moments
                pred_rate = gaussian_rate(theta, mean, pred_var)
        rows.append(LayerHealth(
            neuron=site.name, layer=driver.name if driver is not None else None,
            framework=description.framework if description else None,
            kind=description.kind if description else type(site.module).__name__,
            fan_in=fan_in, threshold=description.threshold if description else None,
            effective_threshold=theta, beta=description.beta if description else None,
            weight_std=weight_std, predicted_rate=pred_rate, measured_rate=rate,
            predicted_variance=pred_var, measured_variance=variance, flags=tuple(flags),
            init_sigma=record.sigma if record is not None else None,
            init_sigma_auto=bool(record is not None and record.sigma_auto),
        ))
    notes = [f"{name}: a weight layer inside a neuron, not reported" for name in network.internal]
    notes += [f"sigma* of {_names(names)}: chosen by initialize, {reason}"
              for reason, names in chosen.items()]
    notes += [f"sigma = {sigma:.3g} at theta/g = {theta:.3g} ({_names(names)}) is an unstable "
              f"fixed point (slope {stability_slope(theta, sigma):.3g} >= 1): the rate drifts with "
              "depth; initialize without sigma= chooses a stable one"
              for (theta, sigma), names in unstable.items()]
    return HealthReport(tuple(rows), dead, saturated, exploding, tuple(notes))


def _names(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} ... {names[-1]} ({len(names)})"


def _predicted_current(network: NetworkMap, layer: SynapticLayer) -> tuple[float, float] | None:
    """``(mean, variance)`` of the current entering ``layer``'s neurons, from the theory."""
    inputs = network.activity.inputs.get(layer.name) if network.activity is not None else None
    if inputs is None or not inputs.count:
        return None
    return predicted_current(layer, inputs.mean, inputs.second_moment)
