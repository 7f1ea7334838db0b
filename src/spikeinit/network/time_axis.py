"""Which axis of the ``sample`` is time and which is the batch: read from the model, never
guessed silently.

spikeinit runs ``model(sample)`` once (or ``forward(model, sample)``) and reads the time steps
from the neurons:

- **multi-step** neurons (spikeinit's ``LIF``, SpikingJelly ``step_mode="m"``, Norse ``LIF``)
  take a whole sequence per call: axis 0 of the sample is time ``T``, axis 1 the batch;
- **single-step** neurons (snnTorch, Norse cells, SpikingJelly ``step_mode="s"``, spikeinit's
  ``LIF(step_mode="single")``) take one step per call: ``T`` is the number of calls, so a model
  whose ``forward`` loops over time gives one call per step, and a model called once on the
  whole sample runs it as one step.

Without ``forward=``, :func:`check_time_axis` stops with a :class:`TimeAxisError` where the
run shows that this reading cannot be what was meant: single-step neurons called once on a
sample whose two leading axes both went through the first layer as batch (``(T, B, F)`` run as
one step of ``T x B`` examples), or a 2-D sample whose rows the model's own loop took as the
steps, leaving each step without a batch axis. When the model fails on the sample,
:func:`run_failure` says what spikeinit took as ``T`` and batch and how to pass ``forward=``.
A ``forward(model, sample)`` given by the user is trusted: it says how the model runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from spikeinit.adapters.description import NeuronDescription
from spikeinit.errors import InvalidArgumentError
from spikeinit.nested import first_tensor

#: The one-line ``forward`` that feeds a stateful single-step model one step per call.
STEP_LOOP = "forward=lambda model, x: [model(step) for step in x]"


class SampleError(InvalidArgumentError):
    """The model could not run on the ``sample`` (or ``batch``) it was given.

    A :class:`ValueError`; its message names the sample's shape, what spikeinit took as the
    time and batch axes, and how to pass ``forward=``. The model's own exception is chained
    (``__cause__``).

    Example:
        >>> import torch
        >>> from spikeinit.network import discover
        >>> try:
        ...     discover(torch.nn.Linear(3, 2), torch.rand(4, 5))
        ... except SampleError as error:
        ...     text, cause = str(error), error.__cause__
        >>> text.split(": ")[0], type(cause).__name__, "of shape (4, 5)" in text
        ('sample', 'RuntimeError', True)
    """


class TimeAxisError(SampleError):
    """The model ran on the sample, but not with the time and batch axes that were meant.

    Raised without ``forward=`` where the run shows it (see the module docstring); the
    message says which axis spikeinit took for what, and how to pass ``forward=`` or reshape
    the sample.

    Example:
        >>> issubclass(TimeAxisError, SampleError), issubclass(TimeAxisError, ValueError)
        (True, True)
    """


@dataclass(frozen=True)
class CalledNeuron:
    """One understood neuron population as the traced run called it: how many times, and
    the shape of its input at the first call."""

    name: str
    description: NeuronDescription
    calls: int
    input_shape: tuple[int, ...] | None


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _kind(description: NeuronDescription) -> str:
    text = f"{description.framework} {description.kind}"
    if description.framework == "spikingjelly":
        text += " step_mode='m'" if description.step_mode == "multi" else " step_mode='s'"
    elif description.framework == "spikeinit" and description.step_mode == "single":
        text += " step_mode='single'"
    return text


def _kinds(descriptions: Sequence[NeuronDescription]) -> str:
    return ", ".join(dict.fromkeys(_kind(d) for d in descriptions))


def _norse_cells(descriptions: Sequence[NeuronDescription]) -> str:
    if not any(d.framework == "norse" and d.step_mode == "single" for d in descriptions):
        return ""
    return (" (Norse cells keep no state between calls: the loop must carry it, for a "
            "SequentialState `state = None` then `z, state = model(step, state)` per step)")


def _step_fix(shape: Sequence[int], descriptions: Sequence[NeuronDescription]) -> str:
    """How to run a ``(T, B, ...)`` sample through single-step neurons."""
    batch = f", batch = {shape[1]}" if len(shape) > 1 else ""
    return (f"If axis 0 is time (T = {shape[0]}{batch}), pass forward=, a function "
            "forward(model, sample) that runs the model once per time step and carries the "
            f"neurons' state, e.g. {STEP_LOOP}{_norse_cells(descriptions)}")


def sample_shape(sample: Any) -> tuple[int, ...] | None:
    """The shape of ``sample`` (its first tensor when it is a tuple, list or dict)."""
    tensor = first_tensor(sample)
    return tuple(tensor.shape) if tensor is not None else None


def run_failure(error: BaseException, sample: Any, forward_given: bool,
                descriptions: Sequence[NeuronDescription]) -> SampleError:
    """The :class:`SampleError` for a model that failed while running ``sample``: the
    model's error, the sample's shape, what spikeinit took as ``T`` and batch (from the
    step mode of the model's understood neurons, ``descriptions``) and how to pass
    ``forward=``. Chain the model's error to it (``raise run_failure(...) from error``).

    Example:
        >>> import torch
        >>> failure = run_failure(RuntimeError("boom"), torch.rand(5, 4, 3), False, [])
        >>> print(str(failure).split(". ")[0])
        sample: running the model on it failed (RuntimeError: boom)
    """
    shape = sample_shape(sample)
    shown = _shape(shape) if shape is not None else "(no tensor)"
    if forward_given:
        return SampleError(
            f"sample: running forward(model, sample) on it failed ({type(error).__name__}: "
            f"{error}). The sample, of shape {shown}, went to forward as it is: the time and "
            "batch axes are forward's to take; check that it runs the model on that shape")
    head = (f"sample: running the model on it failed ({type(error).__name__}: {error}). "
            f"spikeinit called model(sample) once on the whole sample, of shape {shown}")
    if not shape:
        return SampleError(f"{head}. Pass forward=, a function forward(model, sample) that "
                           "calls the model as it needs")
    single = [d for d in descriptions if d.step_mode == "single"]
    multi = [d for d in descriptions if d.step_mode == "multi"]
    first = f"axis 0 ({shape[0]})"
    if single and not multi:
        return SampleError(
            f"{head}: the model's neurons ({_kinds(single)}) take one time step per call, so "
            f"spikeinit took that call as one time step (T = 1) and {first} as the batch. "
            f"{_step_fix(shape, single)}")
    if multi and not single:
        second = f" and axis 1 ({shape[1]}) as the batch" if len(shape) > 1 else \
            ", with no batch axis"
        return SampleError(
            f"{head}: the model's neurons ({_kinds(multi)}) take a whole sequence per call, "
            f"so spikeinit took {first} as time T{second}. Pass a sample shaped (T, B, ...) "
            "as the model takes it, or forward=, a function forward(model, sample) that calls "
            "the model as it needs")
    if single and multi:
        return SampleError(
            f"{head}: the model mixes neurons that take one time step per call "
            f"({_kinds(single)}) and neurons that take a whole sequence ({_kinds(multi)}), so "
            f"{first} is T for the latter and the batch for the former. Pass forward=, a "
            "function forward(model, sample) that calls the model as it needs")
    return SampleError(
        f"{head}: no spiking neuron that spikeinit reads says which axis is time; {first} "
        "went in as the model's first axis. Pass forward=, a function forward(model, sample) "
        "that calls the model as it needs")


def check_time_axis(sample: Any, neurons: Sequence[CalledNeuron],
                    first_layer: tuple[str, tuple[int, ...] | None, bool] | None) -> None:
    """Raise a :class:`TimeAxisError` where the run of ``model(sample)`` (no ``forward=``)
    shows that spikeinit's reading of the axes cannot be what was meant.

    ``neurons`` are the understood populations in the order they ran, ``first_layer`` the
    first synaptic layer that ran: its name, the shape of its first input and whether it is a
    ``Linear`` (``None`` without one). Models with multi-step neurons take ``(T, B, ...)``
    and are not questioned; for single-step neurons (module docstring):

    - called once, on a sample of 3 or more axes whose first two both reached the first
      ``Linear`` as batch axes: ``(T, B, F)`` would run as one step of ``T x B`` examples;
    - called several times on a 2-D sample with a 1-D input per call: the model's own loop
      took the rows as the time steps, and no step has a batch axis.

    Example:
        >>> import torch
        >>> from spikeinit.adapters.description import NeuronDescription
        >>> cell = NeuronDescription("norse", "LIFCell", 1.0, 0.9, step_mode="single")
        >>> called = [CalledNeuron("lif", cell, calls=1, input_shape=(8, 16, 32))]
        >>> try:
        ...     check_time_axis(torch.rand(8, 16, 20), called, ("fc", (8, 16, 20), True))
        ... except TimeAxisError as error:
        ...     print(str(error).split(":")[0])
        sample of shape (8, 16, 20)
    """
    if not isinstance(sample, Tensor) or not neurons:
        return
    if any(n.description.step_mode == "multi" for n in neurons):
        return
    shape = tuple(sample.shape)
    descriptions = [n.description for n in neurons]
    kinds = _kinds(descriptions)
    first = neurons[0]
    if len(shape) == 2 and first.calls > 1 and first.input_shape is not None and len(
            first.input_shape) <= 1:
        raise TimeAxisError(
            f"sample of shape {_shape(shape)}: the model ran its neurons ({kinds}, one time "
            f"step per call) {first.calls} times, each time on one row ({first.name} received "
            f"{_shape(first.input_shape)} per step): the model's own forward took axis 0 "
            f"({shape[0]}) as time and left no batch axis. If axis 0 is the batch, pass a "
            f"(T, B, ...) sample, e.g. sample.expand(T, {shape[0]}, {shape[1]}) to repeat it "
            f"over T steps; if it is one sequence of {shape[0]} steps, give it a batch axis, "
            f"sample.unsqueeze(1) (shape ({shape[0]}, 1, {shape[1]})); or pass forward=, a "
            "function forward(model, sample) that runs the model as meant")
    if len(shape) < 3 or max(n.calls for n in neurons) != 1 or first_layer is None:
        return
    name, received, linear = first_layer
    if not linear or received is None or len(received) < 3 or received[:2] != shape[:2]:
        return
    raise TimeAxisError(
        f"sample of shape {_shape(shape)}: the model's neurons ({kinds}) take one time step "
        "per call and ran once, on the whole sample, so spikeinit would take it as one time "
        f"step (T = 1) with axes 0 and 1 ({shape[0]} x {shape[1]}) both as the batch (the "
        f"first layer, {name}, received {_shape(received)}). {_step_fix(shape, descriptions)}"
        "; if it really is one time step with two batch axes, pass "
        "forward=lambda model, x: model(x) to say so")
