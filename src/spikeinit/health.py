r"""The health report at initialization: what each spiking layer receives and does, and why.

For every spiking population in forward order, :func:`report` lists its fan-in, threshold, decay,
the std of the weights that drive it, and beside each other the *predicted* and the *measured*
firing rate and input-current variance. The prediction is the mean-field theory of each layer
given what it actually receives, over the sample's :math:`T` steps. From its input :math:`x`,
measured per step (:math:`m_t = E[x_t]`, :math:`M_{tt'} = E[x_t x_{t'}]`), and the layer's
actual weights, the current reaching its neurons is a Gaussian process with

.. math::

    \mu_t = \bar s\, m_t + \bar b, \qquad
    K_{tt'} = n q\, M_{tt'} + (\overline{s^2} - n q)\, m_t m_{t'}
        + \overline{b s}\,(m_t + m_{t'}) + \overline{b^2} - \mu_t \mu_{t'},

with :math:`n` the fan-in, :math:`q` the mean square weight and :math:`s_i` the weight sum of
unit :math:`i` (for i.i.d. weights of mean :math:`m_w` and variance :math:`v_w`:
:math:`K = n v_w M + n m_w^2 (M - m m^\top) + \mathrm{Var}[b]`); pooling, dropout,
normalization and residual additions between the layer and its neurons are applied in order
(:func:`~spikeinit.network.moments.predicted_process`; the other terms of an addition are
measured over the steps too). The predicted variance is that current's,
pooled over the steps, :math:`\overline{K_{tt}} + \mathrm{Var}_t[\mu_t]`. The predicted rate
runs the neurons' own update (the decay, threshold :math:`\tilde\theta = \theta/g`, reset and
its order, and synaptic filter that the adapter read) on that process, by a seeded Monte Carlo
of :data:`~spikeinit.theory.temporal.PROCESS_SAMPLES` neurons
(:func:`~spikeinit.theory.temporal.gaussian_process_rate`), averaged over the steps. A slow
membrane integrates its current (a held current of std :math:`\sigma` reaches
:math:`\sigma \sum_k \beta^k`), so the one-step :math:`Q((\tilde\theta - \mu)/\sigma)` can be
wrong by many orders of magnitude; at :math:`T = 1` the two coincide and the one-step formula
is used exactly. The time structure of the input is what the sample gives: a static image
held over the steps, fresh data at each step, or the measured autocorrelation of the spikes
below.

A recurrent population (:mod:`spikeinit.network.recurrent`) also receives its own spikes
through :math:`W_{rec}`, of gain :math:`g = \mathrm{std}(W_{rec})\sqrt N\,a/(1-\alpha)` and
mean gain :math:`m = N\,\overline{W_{rec}}\,a/(1-\alpha)` (spike amplitude :math:`a`, synaptic
decay :math:`\alpha`). A note per population gives :math:`g`, the loop gain, the regime and
the memory time of :func:`~spikeinit.theory.recurrent.recurrent_mean_field` at the pooled
moments of its predicted feed-forward current. Its rate is not predicted
(:data:`RECURRENT_NOT_PREDICTED`): a self-consistent Monte Carlo of the feed-forward process plus
a white recurrent current of variance :math:`g^2 r` missed the measured rate by up to 73 % at
the init's operating point (docs/architectures.md, "Recurrent SNNs"), where the loop carries
much of the current and amplifies every error.

Where the rate cannot be predicted the column reads ``-`` and a note says why: the neuron is
not understood, no synaptic layer drives it (the data do), an operation between the layer and
its neurons is not modelled (an unknown module, a tensor operation, max pooling of a current),
or the layer's input could not be laid out over the steps.

The measured values pool every step of the batch. Given ``init=``, the
:class:`~spikeinit.init.records.InitResult` of the :func:`spikeinit.initialize` that drew the
weights, the row of each layer it drew also gives the target membrane std :math:`\sigma` it
used (``init_sigma``) and whether it chose it itself (``init_sigma_auto``, marked ``*`` in the
table, with the reason in a note); a note names the layers whose :math:`\sigma` is an unstable
fixed point of the one-step map, slope :math:`a\varphi(a)/(2Q(a)) \ge 1` at
:math:`a = \tilde\theta/\sigma`. The report reads nothing else of earlier calls: the same
model and sample give the same report.

Flags: ``dead`` (measured rate below ``dead``, default 1e-3), ``saturated`` (above
``saturated``, default 0.9), ``exploding`` (the input current's mean square above ``exploding``
times :math:`\tilde\theta^2`, default 100, i.e. an RMS current ten times the threshold, or
non-finite values), ``not-understood`` (a neuron no adapter can read).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from spikeinit._validation import check_module, check_open_unit_interval, check_positive
from spikeinit.errors import InvalidArgumentError
from spikeinit.init.fan import compute_fans
from spikeinit.init.records import InitRecord, InitResult
from spikeinit.network import (
    Forward,
    NetworkMap,
    NeuronDescription,
    NeuronSite,
    Operation,
    StepRecorder,
    SynapticLayer,
    discover,
    gaussian_rate,
    kept_statistics,
    of_kind,
    predicted_process,
    run_model,
    sample_argument,
)
from spikeinit.network.recurrent import RecurrentLoop, find_loops, spike_current
from spikeinit.tables import TabularResult, fmt
from spikeinit.theory.recurrent import RecurrentPopulation, recurrent_mean_field
from spikeinit.theory.static import stability_slope
from spikeinit.theory.temporal import gaussian_process_rate

FLAGS = ("dead", "saturated", "exploding", "not-understood")
#: Why a recurrent population gets no predicted rate (module docstring).
RECURRENT_NOT_PREDICTED = ("a recurrent population: its own spikes, frozen in part in each "
                           "neuron, carry much of its current, which the mean field does not "
                           "predict within 25 %")


@dataclass(frozen=True)
class LayerHealth:
    """One row of the report: a spiking population and the synaptic layer that drives it.

    ``predicted_rate`` and ``predicted_variance`` are the theory of the module docstring for
    the layer's actual weights and measured input over the sample's steps (``None`` where it
    cannot be made: a note of the report says why); ``measured_rate`` and
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
        >>> drawn = initialize(net, "paper", sample=x)
        >>> health = report(net, x, init=drawn)
        >>> health.healthy, health.dead, len(health.as_dicts()), health.layers[1].init_sigma
        (True, [], 6, 1.0)
    """

    layers: tuple[LayerHealth, ...]
    dead_below: float = 1e-3
    saturated_above: float = 0.9
    exploding_above: float = 100.0
    notes: tuple[str, ...] = ()

    def flagged(self, flag: str | None = None) -> list[str]:
        """Names of the populations carrying ``flag`` (any flag when ``None``)."""
        if flag is not None and flag not in FLAGS:
            raise InvalidArgumentError(f"flag must be one of {', '.join(FLAGS)}, got {flag!r}")
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
    init: InitResult | None = None,
    forward: Forward | None = None,
    dead: float = 1e-3,
    saturated: float = 0.9,
    exploding: float = 100.0,
    batch: Any = None,
) -> HealthReport:
    r"""Run ``model`` once on ``sample`` and report every spiking population's health.

    See the module docstring for the prediction and the flags: ``dead`` and ``saturated`` are
    rates in (0, 1), ``exploding`` a factor > 0 on :math:`\tilde\theta^2`. ``init``, the
    :class:`~spikeinit.init.records.InitResult` of the :func:`spikeinit.initialize` that drew
    the current weights, adds its :math:`\sigma` to the rows of the layers it drew (by name).
    ``forward(model, sample)`` replaces ``model(sample)`` when given (``batch=`` is the
    deprecated name of ``sample``). The model runs from rest
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
    check_module("model", model)
    sample = sample_argument(sample, batch, "report")
    check_open_unit_interval("dead", dead)
    check_open_unit_interval("saturated", saturated)
    check_positive("exploding", exploding)
    if dead >= saturated:
        raise InvalidArgumentError(f"dead must be below saturated, got dead={dead!r}, "
                         f"saturated={saturated!r}")
    records = _records_by_layer(init)
    before = _rng_states()
    network = discover(model, sample, forward)
    steps = network.steps() or 1
    over_steps = _inputs_over_steps(model, sample, forward, network, steps, before)
    loops = {loop.neuron_name: loop for loop in find_loops(model, network)}
    loop_notes = []
    rows = []
    missing: dict[str, list[str]] = {}
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
        fan_in = weight_std = record = None
        loop = loops.get(site.name)
        if loop is not None and driver is not None and driver.name in loop.covers:
            pred_rate = pred_var = None  # SpikingJelly's rc: one weight over (x[t], s[t-1])
            why = (f"{driver.name} holds the feed-forward and the recurrent weights in one "
                   "matrix, whose two blocks the prediction does not tell apart")
        else:
            pred_rate, pred_var, why = _predict(network, site, driver, steps, over_steps, loop,
                                                loop_notes)
        if why is not None:
            missing.setdefault(why, []).append(site.name)
        if driver is not None:
            record = records.get(driver.name)
            if record is not None and record.sigma is not None:
                if record.sigma_auto:
                    chosen.setdefault(record.sigma_reason, []).append(site.name)
                if _unstable_fixed_point(record):
                    unstable.setdefault((record.threshold, record.sigma), []).append(site.name)
            fan_in = compute_fans(driver.module.weight)[0]
            weight_std = float(driver.module.weight.detach().double().std())
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
    covered = {name for loop in loops.values() for name in loop.covers}
    notes = [f"{name}: a weight layer inside a neuron, not reported" for name in network.internal
             if name not in covered]
    notes += loop_notes
    notes += [f"rate pred of {_names(names)}: -, {reason}" for reason, names in missing.items()]
    notes += [f"sigma* of {_names(names)}: chosen by initialize, {reason}"
              for reason, names in chosen.items()]
    notes += [f"sigma = {sigma:.3g} at theta/g = {theta:.3g} ({_names(names)}) is an unstable "
              f"fixed point (slope {stability_slope(theta, sigma):.3g} >= 1): the rate drifts with "
              "depth; initialize without sigma= chooses a stable one"
              for (theta, sigma), names in unstable.items()]
    return HealthReport(tuple(rows), dead, saturated, exploding, tuple(notes))


def _records_by_layer(init: InitResult | None) -> dict[str, InitRecord]:
    """The records of ``init`` by layer name (none without it)."""
    if init is None:
        return {}
    if not isinstance(init, InitResult):
        raise InvalidArgumentError(
            f"init must be the InitResult that spikeinit.initialize returned, got "
            f"{type(init).__name__}")
    return init.by_layer()


def _unstable_fixed_point(record: InitRecord) -> bool:
    r"""Whether the record's :math:`\sigma` is a fixed point of the one-step map with slope
    :math:`a\varphi(a)/(2Q(a)) \ge 1`, :math:`a = \tilde\theta/\sigma`."""
    return (record.sigma_fixed_point and record.threshold is not None
            and record.sigma is not None
            and stability_slope(record.threshold, record.sigma) >= 1.0)


def _names(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} ... {names[-1]} ({len(names)})"


def _rng_states() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """The global CPU (and, once initialized, CUDA) random states."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _set_rng_states(states: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    torch.set_rng_state(states[0])
    if states[1] is not None:
        torch.cuda.set_rng_state_all(states[1])


def _inputs_over_steps(model: torch.nn.Module, sample: Any, forward: Forward | None,
                       network: NetworkMap, steps: int,
                       rng: tuple[torch.Tensor, list[torch.Tensor] | None]
                       ) -> StepRecorder | None:
    """One more pass that records, over the steps, the input of every layer driving an
    understood population, and where a residual addition joins its current, the
    population's input and the tensor the layer's side adds (their difference is what the
    other terms add). ``None`` at one step: the probe's pooled moments are enough.

    The pass replays the measured one: it starts from the random state ``rng`` that pass
    started from (a dropout in training mode draws the same masks), and the global random
    state is left where the measured pass left it."""
    if steps <= 1 or network.activity is None:
        return None
    recorder = StepRecorder(steps)
    for site in network.neurons:
        driver = network.driver(site.name)
        if site.description is None or driver is None:
            continue
        recorder.watch(f"input:{driver.name}", driver.module)
        joined = _joined(driver)
        if joined is not None:
            recorder.watch(f"current:{site.name}", site.module)
            recorder.watch(f"feed:{driver.name}", joined[1], side="output")
    after = _rng_states()
    _set_rng_states(rng)
    try:
        with kept_statistics(model), recorder:
            run_model(model, sample, forward)
    finally:
        _set_rng_states(after)
    return recorder


def _joined(driver: SynapticLayer) -> tuple[Operation, torch.nn.Module] | None:
    """The residual addition between ``driver`` and its neurons, when only reshapes follow it,
    and the module whose output it adds to the others (``None`` otherwise)."""
    index = next((i for i, op in enumerate(driver.after) if op.kind == "residual-add"), None)
    if index is None or any(op.kind != "reshape" for op in driver.after[index + 1:]):
        return None
    before = driver.after[:index]
    feed = before[-1].module if before else driver.module
    return (driver.after[index], feed) if feed is not None else None


#: Why an attention population gets no predicted rate: its current is a count of coincident
#: Q, K, V spikes, and :mod:`spikeinit.theory.attention` gives it for spikes independent over
#: entries and steps, which those of a sample's tokens are not (docs/architectures.md,
#: "Spiking transformers: the init").
ATTENTION_NOT_PREDICTED = ("attention population: its current counts coincident Q, K, V "
                           "spikes, whose correlation over tokens and steps is not modelled")


def _predict(network: NetworkMap, site: NeuronSite, driver: SynapticLayer | None, steps: int,
             over_steps: StepRecorder | None, loop: RecurrentLoop | None = None,
             loop_notes: list[str] | None = None
             ) -> tuple[float | None, float | None, str | None]:
    """``(rate, variance, why not)`` predicted for the population ``site`` (module docstring),
    through the recurrent mean field where ``loop`` adds its own spikes (its note then goes to
    ``loop_notes``); the rate is ``None`` where ``why not`` says it cannot be predicted."""
    description = site.description
    if description is None:
        return None, None, f"its neuron is not understood ({site.problem})"
    if driver is None and site.name in network.attention:
        return None, None, ATTENTION_NOT_PREDICTED
    if driver is None:
        return None, None, ("driven by the data, not by a synaptic layer" if site.driven_by_data
                            else "no synaptic layer drives it")
    inputs = network.activity.inputs.get(driver.name) if network.activity is not None else None
    if inputs is None or not inputs.count:
        return None, None, f"{driver.name} did not run on the sample"
    addends = {}
    if steps == 1:
        moments = (np.array([inputs.mean]), np.array([[inputs.second_moment]]))
    else:
        moments = over_steps.moments(f"input:{driver.name}") if over_steps else None
        if moments is None:
            calls = over_steps.calls(f"input:{driver.name}") if over_steps else 0
            return None, None, (f"the input of {driver.name} could not be laid out over the "
                                f"{steps} steps ({calls} calls per pass)")
        joined = _joined(driver)
        others = joined and over_steps.moments(f"current:{site.name}",
                                               minus=f"feed:{driver.name}")
        if others:
            addends[joined[0].name] = others
    mean, covariance, notes = predicted_process(driver, *moments, addends=addends)
    unmodelled = of_kind(notes, "unmodelled")
    if unmodelled:
        labels = [op.label() for op in driver.after if op.name in {n.layer for n in unmodelled}]
        return None, None, (f"{', '.join(labels)} between {driver.name} and its neurons: not "
                            "modelled")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(covariance))):
        return None, None, f"the input of {driver.name} is not finite"
    variance = float(np.diag(covariance).mean() + mean.var())
    if loop is not None:
        if loop_notes is not None:
            loop_notes.append(_loop_note(loop, description, float(mean.mean()), variance))
        return None, None, RECURRENT_NOT_PREDICTED
    theta = description.effective_threshold
    if steps == 1:
        return gaussian_rate(theta, float(mean[0]), float(covariance[0, 0])), variance, None
    rates = gaussian_process_rate(mean, covariance, _update(description))
    return float(rates.mean()), variance, None


def _loop_population(loop: RecurrentLoop, description: NeuronDescription, input_mean: float = 0.0,
                     input_std: float = 1.0) -> RecurrentPopulation:
    """The :class:`RecurrentPopulation` of ``loop``'s actual recurrent weights (module
    docstring) and a feed-forward current of ``input_mean`` and ``input_std``."""
    weight = loop.weight.detach().double()
    per_spike = spike_current(description.spike_amplitude, description.synaptic_decay)
    return RecurrentPopulation(
        description.lif_parameters(), float(weight.std()) * math.sqrt(loop.width) * per_spike,
        mean_gain=float(weight.mean()) * loop.width * per_spike, input_mean=input_mean,
        input_std=max(input_std, 1e-6))


def _loop_note(loop: RecurrentLoop, description: NeuronDescription, mean: float,
               variance: float) -> str:
    """What :func:`~spikeinit.theory.recurrent.recurrent_mean_field` says of ``loop``'s actual
    weights with a feed-forward current of pooled ``mean`` and ``variance``."""
    population = _loop_population(loop, description, mean, math.sqrt(max(variance, 0.0)))
    theory = recurrent_mean_field(population)
    memory = (f"memory time {theory.memory_time:.3g} steps" if theory.regime == "stable"
              else "no memory time")
    return (f"{loop.name}: recurrent weights of {loop.neuron_name}, g_rec = "
            f"{population.gain:.3g}: loop gain {theory.loop_gain:.3g} ({theory.regime}), "
            f"{memory} (theory at its feed-forward current's pooled moments)")


def _update(description: NeuronDescription) -> Any:
    """The population's own update, ``(T, samples)`` currents to spikes in {0, 1}."""
    def spikes(currents: torch.Tensor) -> torch.Tensor:
        return description.simulate(currents) / description.spike_amplitude
    return spikes
