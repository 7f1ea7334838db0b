r"""The init of recurrent populations: recurrent weights from the theory, the drive measured.

A recurrent population (:mod:`spikeinit.network.recurrent`) receives
:math:`I[t] = W_{in} x[t] + b + W_{rec}\,s[t-1]`. :func:`initialize_loops` sets both parts:

1. **The recurrent gain, from the theory** (:mod:`spikeinit.theory.recurrent`). With the
   population's unit-gain LIF (threshold :math:`\tilde\theta = \theta/g`, decay :math:`\beta`),
   the feed-forward std :math:`\sigma_0` that gives the target rate :math:`r` without recurrence,
   and the rms slope :math:`s_0 = \sqrt{\langle\hat\chi_i(1)^2\rangle}` of the neurons' transfer
   function there, the recurrent weights are drawn

   .. math::

       W_{rec,ij} \sim N\!\left(0,\ \frac{g_{rec}^2 (1-\alpha)^2}{N a^2}\right), \qquad
       g_{rec} = \frac{\Lambda^*}{s_0},

   with :math:`a` the spike amplitude (times :math:`1 - \alpha` behind a synaptic filter
   :math:`I_{syn} = \alpha I_{syn} + I`, whose gain at zero frequency is :math:`1/(1-\alpha)`:
   the loop gain of the slow modes is kept) and the loop gain :math:`\Lambda^*` =
   :data:`DEFAULT_LOOP_GAIN` (1/2, half-way to the edge :math:`\Lambda = 1` of the stable
   regime): the memory time is lengthened by the loop (the response decays as
   :math:`(b + g_{rec} a_\chi)^t` for a geometric kernel :math:`a_\chi b^k`) while a
   perturbation still dies out. ``memory_time=`` asks for a memory time :math:`\tau` instead:
   :math:`g_{rec}` is then :func:`~spikeinit.theory.recurrent.gain_for_memory_time` at
   :math:`\sigma_0` (a minute of Monte Carlo). The theory depends on :math:`(\tilde\theta,
   \beta, r)` only, not on :math:`T` or the model, and is cached.
2. **The drive, measured on the sample.** With :math:`W_{rec}` in place, the feed-forward
   tensors (:math:`W_{in}` and :math:`b`) are multiplied by one factor :math:`c`, found by a
   secant search in :math:`(\log c, \log r)` so that the population's mean rate over the steps
   from :data:`RATE_FROM_STEP` to :math:`T` is the target within :data:`RATE_TOLERANCE`. Each try
   is one run of the model on the sample that keeps only the mean spike of each step; at most
   :data:`MAX_RATE_RUNS` runs, whatever :math:`T`.

Without a sample (or without a rate target) only step 1 is done.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from spikeinit._validation import check_open_unit_interval, check_positive
from spikeinit.init.records import InitRecord
from spikeinit.nested import first_tensor
from spikeinit.network import Forward, NetworkMap, Note, dropout_off, kept_statistics, run_model
from spikeinit.network.recurrent import RecurrentLoop, spike_current
from spikeinit.neurons.parameters import LIFParameters
from spikeinit.theory.recurrent import (
    RecurrentPopulation,
    gain_for_memory_time,
    input_std_for_rate,
    recurrent_mean_field,
)

__all__ = ["DEFAULT_LOOP_GAIN", "DEFAULT_RATE", "MAX_RATE_RUNS", "RATE_FROM_STEP",
           "RATE_TOLERANCE", "RecurrentGain", "initialize_loops", "recurrent_gain",
           "recurrent_options"]

#: The loop gain :math:`\Lambda^*` the recurrent weights are drawn for (the edge is at 1).
DEFAULT_LOOP_GAIN = 0.5
#: The rate the recurrent gain is solved for when the method sets no rate.
DEFAULT_RATE = 0.1
#: The first step of the measured rate (the steps before it are the transient from rest).
RATE_FROM_STEP = 10
#: Most runs of the model in the search for the drive, and its relative tolerance on the rate.
MAX_RATE_RUNS, RATE_TOLERANCE = 8, 0.02
#: How far from the target a population may end before a warning says so.
RATE_WARNING = 0.25
#: The options of :func:`~spikeinit.init.model.initialize` read here (not the method's).
OPTIONS = ("loop_gain", "memory_time")
#: Relative tolerance in :math:`\log\sigma` of the theory's search for :math:`\sigma_0`.
_STD_TOLERANCE = 0.02


@dataclass(frozen=True)
class RecurrentGain:
    r"""The recurrent gain :math:`g_{rec}` and what the theory says about it.

    ``input_std`` is :math:`\sigma_0` (the feed-forward std for the rate without recurrence),
    ``slope`` :math:`s_0`, ``loop_gain`` :math:`\Lambda = g_{rec} s_0`, ``own_memory`` the
    memory time of the population without recurrence (steps) and ``memory_time`` the one asked
    for (``None``: the default loop gain).
    """

    gain: float
    input_std: float
    slope: float
    loop_gain: float
    own_memory: float
    memory_time: float | None = None


@functools.lru_cache(maxsize=64)
def recurrent_gain(params: LIFParameters, rate: float, loop_gain: float = DEFAULT_LOOP_GAIN,
                   memory_time: float | None = None) -> RecurrentGain:
    r""":math:`g_{rec} = \Lambda^*/s_0` (module docstring), or the gain with the memory time
    ``memory_time`` when one is given; cached per ``(params, rate, loop_gain, memory_time)``.

    Example:
        >>> gain = recurrent_gain(LIFParameters(beta=0.5), 0.1)  # doctest: +SKIP
        >>> round(gain.loop_gain, 2)  # doctest: +SKIP
        0.5
    """
    check_open_unit_interval("rate", rate)
    check_positive("loop_gain", loop_gain)
    std = input_std_for_rate(RecurrentPopulation(params, 0.0), rate, tolerance=_STD_TOLERANCE)
    alone = recurrent_mean_field(RecurrentPopulation(params, 0.0, input_std=std))
    if memory_time is None:
        gain = loop_gain / alone.slope
    else:
        gain = gain_for_memory_time(params, memory_time, input_std=std)
    return RecurrentGain(gain, std, alone.slope, gain * alone.slope, alone.memory_time,
                         memory_time)


def recurrent_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(method's options, recurrent options)``: ``loop_gain`` and ``memory_time`` split off."""
    ours = {key: options[key] for key in OPTIONS if key in options}
    for key, value in ours.items():
        check_positive(key, value)
    return {k: v for k, v in options.items() if k not in OPTIONS}, ours


def covered_internal(network: NetworkMap, loops: Sequence[RecurrentLoop]) -> list[str]:
    """The names of :attr:`NetworkMap.internal` that no loop accounts for."""
    covered = {name for loop in loops for name in loop.covers}
    return [name for name in network.internal if name not in covered]


def _parameters(network: NetworkMap, loop: RecurrentLoop, threshold: float | None,
                beta: float | None) -> tuple[LIFParameters, float, float, bool] | None:
    """The population's unit-gain LIF (``threshold``/``beta`` override it), its spike amplitude,
    its synaptic decay and whether it runs all the steps in one call."""
    site = network.neuron(loop.neuron_name)
    description = site.description if site is not None else None
    if description is None:
        return None
    params = description.lif_parameters()
    if threshold is not None or beta is not None:
        params = replace(params, threshold=threshold if threshold is not None
                         else params.threshold, beta=beta if beta is not None else params.beta)
    return (params, description.spike_amplitude, description.synaptic_decay,
            description.step_mode == "multi")


def _draw_recurrent(loop: RecurrentLoop, std: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        loop.weight.copy_(torch.randn(loop.weight.shape, generator=generator,
                                      dtype=loop.weight.dtype) * std)
        if loop.zero_diagonal:
            loop.weight.fill_diagonal_(0.0)
        if loop.bias is not None:
            loop.bias.zero_()


def _scale_drive(loop: RecurrentLoop, factor: float) -> None:
    with torch.no_grad():
        for tensor in loop.drive:
            tensor.mul_(factor)


def rates_per_step(model: nn.Module, sample: Any, forward: Forward | None, neuron: nn.Module,
                   amplitude: float = 1.0, multi_step: bool = False) -> Tensor:
    r"""The mean spike of ``neuron`` at each step of one run on ``sample``, ``(T,)``.

    One value per call of a single-step neuron; with ``multi_step`` one per leading index of
    each call's ``(T, ...)`` output. Spikes of amplitude :math:`a` count as 1.

    Example:
        >>> from spikeinit.neurons import LIF
        >>> lif = LIF(beta=0.5, threshold=1.0)
        >>> rates_per_step(lif, torch.full((3, 1, 2), 1.5), None, lif, multi_step=True).tolist()
        [1.0, 1.0, 1.0]
    """
    rates: list[Tensor] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        spikes = first_tensor(output)
        if spikes is None:
            return
        spikes = spikes.detach().float() / amplitude
        if multi_step and spikes.dim() > 1:
            rates.append(spikes.flatten(1).mean(1))
        else:
            rates.append(spikes.mean().reshape(1))

    handle = neuron.register_forward_hook(hook)
    try:
        run_model(model, sample, forward)
    finally:
        handle.remove()
    return torch.cat(rates) if rates else torch.zeros(0)


@dataclass(frozen=True)
class _Search:
    factor: float
    rate: float
    runs: int


def _measured_rate(model: nn.Module, sample: Any, forward: Forward | None,
                   loop: RecurrentLoop, amplitude: float, multi_step: bool) -> float:
    rates = rates_per_step(model, sample, forward, loop.neuron, amplitude, multi_step)
    kept = rates[RATE_FROM_STEP:] if rates.numel() > RATE_FROM_STEP else rates
    return float(kept.mean()) if kept.numel() else 0.0


def search_drive(model: nn.Module, sample: Any, forward: Forward | None, loop: RecurrentLoop,
                 amplitude: float, target: float, multi_step: bool = False) -> _Search:
    r"""Scale ``loop``'s drive by the :math:`c` whose measured rate is ``target`` (module
    docstring); the best try is kept.

    Until the target is bracketed (one try below it, one above) each step is a secant step in
    :math:`(\log c, \log r)` from an assumed slope :math:`d\log r/d\log c = 2`, at most a
    factor 4. Once bracketed, the secant guess between the two ends of the bracket is kept at
    least a quarter of the bracket from either end, so that the bracket shrinks by a quarter
    or more at every run even where the rate jumps (a loop that sustains its own activity
    switches on over a narrow range of drives, where plain secant steps oscillate)."""
    below: tuple[float, float] | None = None  # (log c, rate) of the tightest try under target
    above: tuple[float, float] | None = None
    last: tuple[float, float] | None = None  # (log c, log r) of the latest try that fired
    current = 0.0  # log of the factor now on the drive
    best = (math.inf, 0.0, 0.0)  # (error, log c, rate)
    for run in range(1, MAX_RATE_RUNS + 1):
        rate = _measured_rate(model, sample, forward, loop, amplitude, multi_step)
        error = abs(math.log(max(rate, 1e-12) / target))
        if error < best[0]:
            best = (error, current, rate)
        if abs(rate / target - 1.0) <= RATE_TOLERANCE or run == MAX_RATE_RUNS:
            break
        if rate < target:
            below = (current, rate)
        else:
            above = (current, rate)
        if below is not None and above is not None:
            goal = _inside_bracket(below, above, target)
        else:
            goal = current + _open_step(rate, target, last, current)
        if rate > 0.0:
            last = (current, math.log(rate))
        _scale_drive(loop, math.exp(goal - current))
        current = goal
    _scale_drive(loop, math.exp(best[1] - current))
    return _Search(math.exp(best[1]), best[2], run)


def _open_step(rate: float, target: float, last: tuple[float, float] | None,
               current: float) -> float:
    r"""The step in :math:`\log c` before the target is bracketed: a secant step (slope 2 or
    the one measured from the latest try that fired), at most a factor 4 either way."""
    if rate <= 0.0:
        return math.log(4.0)
    slope = 2.0
    if last is not None and last[0] != current:
        measured = (math.log(rate) - last[1]) / (current - last[0])
        if measured > 0.1:
            slope = measured
    step = (math.log(target) - math.log(rate)) / slope
    return max(-math.log(4.0), min(math.log(4.0), step))


def _inside_bracket(below: tuple[float, float], above: tuple[float, float],
                    target: float) -> float:
    r"""The next :math:`\log c` between ``below`` and ``above`` (``(log c, rate)``): the
    secant guess in :math:`(\log c, \log r)` (the middle when the lower try was silent),
    kept a quarter of the bracket from its ends."""
    (c0, r0), (c1, r1) = below, above
    guess = (c0 + c1) / 2.0
    if r0 > 0.0 and r1 > r0:
        guess = c0 + (math.log(target) - math.log(r0)) * (c1 - c0) / (math.log(r1) - math.log(r0))
    low, high = min(c0, c1), max(c0, c1)
    margin = (high - low) / 4.0
    return min(max(guess, low + margin), high - margin)


def initialize_loops(model: nn.Module, network: NetworkMap, loops: Sequence[RecurrentLoop],
                     records: list[InitRecord], spec: str, sample: Any,
                     forward: Forward | None, rate: float | None,
                     threshold: float | None, beta: float | None,
                     generator: torch.Generator | None,
                     options: dict[str, Any]) -> list[InitRecord]:
    """Set every recurrent population ``loops`` of ``model`` (:func:`~spikeinit.network.recurrent.
    find_loops`, module docstring); the records with one
    for each recurrent weight and the drive's factor in its record (or a record of its own)."""
    if not loops:
        return records
    records = list(records)
    with dropout_off(model), kept_statistics(model):
        for loop in loops:
            records = _initialize_loop(model, network, records, spec, sample, forward, rate,
                                       threshold, beta, generator, options, loop)
    return records


def _initialize_loop(model: nn.Module, network: NetworkMap, records: list[InitRecord],
                     spec: str, sample: Any, forward: Forward | None, rate: float | None,
                     threshold: float | None, beta: float | None,
                     generator: torch.Generator | None, options: dict[str, Any],
                     loop: RecurrentLoop) -> list[InitRecord]:
    found = _parameters(network, loop, threshold, beta)
    if found is None:
        return records
    params, amplitude, decay, multi_step = found
    target = rate if rate is not None else DEFAULT_RATE
    theory = recurrent_gain(params, target, options.get("loop_gain", DEFAULT_LOOP_GAIN),
                            options.get("memory_time"))
    std = theory.gain / (math.sqrt(loop.width) * spike_current(amplitude, decay))
    _draw_recurrent(loop, std, generator)
    asked = (f"memory time {theory.memory_time:g}" if theory.memory_time is not None
             else f"loop gain {theory.loop_gain:.3g}")
    notes = [Note("modelled", loop.name, (
        f"recurrent weights of {loop.neuron_name or '<model>'}: g_rec = {theory.gain:.4g} "
        f"(std g_rec/sqrt({loop.width})) for the {asked} at rate {target:g} (theory: slope "
        f"{theory.slope:.3g} at sigma_0 = {theory.input_std:.3g}, own memory "
        f"{theory.own_memory:.3g} steps)"))]
    search = None
    if sample is not None and rate is not None and loop.drive:
        search = search_drive(model, sample, forward, loop, amplitude, target, multi_step)
        notes.append(Note("measured", loop.name, (
            f"drive {loop.drive_name} x {search.factor:.4g}: mean rate {search.rate:.4g} "
            f"from step {RATE_FROM_STEP} on the sample ({search.runs} runs)")))
    records.append(InitRecord(
        loop.name, spec, loop.width, 0.0, float(loop.weight.detach().double().std()),
        neuron=loop.neuron_name, threshold=params.threshold, beta=params.beta,
        notes=tuple(notes)))
    if search is not None:
        records = _drive_record(records, loop, spec, search, notes[-1], params)
        if abs(search.rate / target - 1.0) > RATE_WARNING:
            warnings.warn(
                f"{loop.neuron_name or '<model>'}: a recurrent population left at rate "
                f"{search.rate:.3g} on the sample from step {RATE_FROM_STEP}, not {target:g}, "
                f"after {search.runs} runs scaling its drive {loop.drive_name}"
                + (" (the sample gives it no current: is the sample all zeros?)"
                   if search.rate == 0.0 else ""), stacklevel=2)
    return records


def _drive_record(records: list[InitRecord], loop: RecurrentLoop, spec: str, search: _Search,
                  note: Note, params: LIFParameters) -> list[InitRecord]:
    """The drive's record with the factor (a new one where the drive has none)."""
    weight = loop.drive[0]
    for index, record in enumerate(records):
        if record.name == loop.drive_name:
            records[index] = replace(record, std=record.std * search.factor,
                                     notes=(*record.notes, note))
            return records
    records.append(InitRecord(
        loop.drive_name or loop.name, spec, int(weight.shape[1]),
        float(weight.detach().double().mean()), float(weight.detach().double().std()),
        neuron=loop.neuron_name, threshold=params.threshold, beta=params.beta,
        notes=(note,)))
    return records
