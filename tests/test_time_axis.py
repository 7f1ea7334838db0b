"""Which axis of the sample is time and which the batch: never guessed silently.

Three cases that went wrong without a word (measured on snnTorch and Norse models): a Norse
cell model called once on a ``(T, B, F)`` sample (T run as the batch, every layer dead), a 2-D
``(B, F)`` sample whose rows the model's own time loop took as the steps, and an snnTorch
``init_hidden=True`` conv net failing inside ``conv2d`` on a ``(T, B, C, H, W)`` sample. Each
now stops with a message that names the shape, the axes spikeinit took and the fix
(``forward=``); the unambiguous cases run as before, without a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.adapters.norse import run_over_steps
from spikeinit.models import SpikingMLP
from spikeinit.network import SampleError, TimeAxisError, discover

T, B = 6, 8


def _calls() -> dict[str, Callable[[nn.Module, Any, Any], Any]]:
    """initialize, calibrate and report: they share the tracer, each must stop."""
    return {
        "initialize": lambda model, x, forward: spikeinit.initialize(model, sample=x,
                                                                     forward=forward),
        "calibrate": lambda model, x, forward: spikeinit.calibrate(model, x, forward=forward,
                                                                   max_passes=2),
        "report": lambda model, x, forward: spikeinit.report(model, x, forward=forward),
    }


CALLS = tuple(_calls())


def _quiet(function: Callable[[], Any]) -> Any:
    """``function()``, failing on any warning that mentions the axes or ``forward=``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function()
    about_axes = [str(w.message) for w in caught
                  if any(word in str(w.message) for word in ("forward=", "axis", "shape ("))]
    assert not about_axes, about_axes
    return result


# ----------------------------------------------------------------- case 1: Norse cells, once


class NorseCellNet(nn.Module):
    """A user's model with Norse cells whose ``forward`` takes one step (no time loop)."""

    def __init__(self) -> None:
        super().__init__()
        import norse.torch as norse

        self.fc1, self.lif1 = nn.Linear(20, 32), norse.LIFCell()
        self.fc2, self.lif2 = nn.Linear(32, 10), norse.LIFCell()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self.lif1(self.fc1(x))
        z, _ = self.lif2(self.fc2(z))
        return z


def _norse_models() -> dict[str, nn.Module]:
    norse = pytest.importorskip("norse.torch", reason="norse is not installed "
                                "(pip install --no-deps norse)")
    return {"cells-in-forward": NorseCellNet(),
            "SequentialState": norse.SequentialState(nn.Linear(20, 32), norse.LIFCell(),
                                                     nn.Linear(32, 10), norse.LIFCell())}


def _norse_steps(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The fix the message names for a SequentialState: one step per call, state carried."""
    return run_over_steps(model, x)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kind", ["cells-in-forward", "SequentialState"])
def test_norse_cells_called_once_on_a_sequence_stop_and_name_forward(kind: str,
                                                                     call: str) -> None:
    model = _norse_models()[kind]
    x = torch.rand(T, B, 20)
    with pytest.raises(TimeAxisError) as caught:
        _calls()[call](model, x, None)
    message = str(caught.value)
    assert f"sample of shape ({T}, {B}, 20)" in message
    assert "norse LIFCell" in message and "one time step per call" in message
    assert f"axes 0 and 1 ({T} x {B}) both as the batch" in message
    assert f"If axis 0 is time (T = {T}, batch = {B}), pass forward=" in message
    assert "z, state = model(step, state)" in message  # Norse cells: the state is the loop's
    assert isinstance(caught.value, ValueError)


def test_norse_sequence_runs_with_the_forward_the_message_names() -> None:
    model = _norse_models()["SequentialState"]
    x = torch.rand(T, B, 20)
    network = _quiet(lambda: discover(model, x, _norse_steps))
    assert network.steps() == T
    _quiet(lambda: spikeinit.report(model, x, forward=_norse_steps))


def test_one_step_with_two_batch_axes_is_said_with_forward() -> None:
    """The escape the message offers: forward=lambda model, x: model(x) means one step."""
    model = _norse_models()["SequentialState"]
    network = _quiet(lambda: discover(model, torch.rand(T, B, 20), lambda m, x: m(x)))
    assert network.steps() == 1


def test_snntorch_init_hidden_linear_net_called_once_on_a_sequence_stops() -> None:
    """The same for snnTorch: a Linear net with init_hidden neurons runs (T, B, F) as one
    step of T x B examples unless told."""
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed "
                              "(pip install --no-deps snntorch)")
    net = nn.Sequential(nn.Linear(20, 16), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(TimeAxisError, match=r"snntorch Leaky.*pass forward="):
        spikeinit.report(net, torch.rand(T, B, 20))


# ------------------------------------------------- case 2: a 2-D sample taken as time steps


class LoopOverLeadingAxis(nn.Module):
    """The snnTorch tutorials' idiom: ``forward`` loops over ``x.shape[0]``."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1, self.lif1 = nn.Linear(20, 32), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(32, 10), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        out = []
        for t in range(x.shape[0]):
            spikes, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spikes, mem2 = self.lif2(self.fc2(spikes), mem2)
            out.append(spikes)
        return torch.stack(out)


class LoopOverFixedSteps(LoopOverLeadingAxis):
    """The other idiom: a fixed number of steps, ``x[t]`` at step ``t``."""

    steps = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        for t in range(self.steps):
            spikes, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spikes, mem2 = self.lif2(self.fc2(spikes), mem2)
        return spikes


def _looping(kind: str) -> nn.Module:
    pytest.importorskip("snntorch", reason="snntorch is not installed "
                        "(pip install --no-deps snntorch)")
    return LoopOverLeadingAxis() if kind == "x.shape[0]" else LoopOverFixedSteps()


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kind", ["x.shape[0]", "fixed steps"])
def test_a_2d_sample_looped_over_by_the_model_stops(kind: str, call: str) -> None:
    model = _looping(kind)
    x = torch.rand(16, 20)  # (B, F): the model's loop takes its rows as the steps
    with pytest.raises(TimeAxisError) as caught:
        _calls()[call](model, x, None)
    message = str(caught.value)
    calls = 16 if kind == "x.shape[0]" else LoopOverFixedSteps.steps
    assert "sample of shape (16, 20)" in message
    assert f"snntorch Leaky, one time step per call) {calls} times" in message
    assert "took axis 0 (16) as time and left no batch axis" in message
    assert "sample.expand(T, 16, 20)" in message and "sample.unsqueeze(1)" in message
    assert "pass forward=" in message


def test_the_reshaped_samples_the_message_names_run() -> None:
    model = _looping("x.shape[0]")
    x = torch.rand(16, 20)
    assert _quiet(lambda: discover(model, x.expand(T, 16, 20))).steps() == T
    assert _quiet(lambda: discover(model, x.unsqueeze(1))).steps() == 16


def test_a_model_repeating_a_static_2d_input_over_fixed_steps_is_unambiguous() -> None:
    """``(B, F)`` fed whole at each of a fixed number of steps: T is the loop's, B axis 0."""
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed "
                              "(pip install --no-deps snntorch)")

    class Repeat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif = nn.Linear(20, 32), snn.Leaky(beta=0.9)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem = self.lif.reset_mem()
            for _ in range(5):
                spikes, mem = self.lif(self.fc(x), mem)
            return spikes

    assert _quiet(lambda: discover(Repeat(), torch.rand(16, 20))).steps() == 5


# ------------------------------------- case 3: the model fails on the sample (snnTorch conv)


def _snntorch_conv() -> nn.Module:
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed "
                              "(pip install --no-deps snntorch)")
    return nn.Sequential(nn.Conv2d(1, 8, 3), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 10),
                         snn.Leaky(beta=0.9, init_hidden=True, output=True))


@pytest.mark.parametrize("call", CALLS)
def test_snntorch_init_hidden_conv_failing_on_a_sequence_names_forward(call: str) -> None:
    net = _snntorch_conv()
    x = torch.rand(5, 4, 1, 8, 8)
    with pytest.raises(SampleError) as caught:
        _calls()[call](net, x, None)
    message = str(caught.value)
    assert "sample: running the model on it failed (RuntimeError: Expected 3D" in message
    assert "of shape (5, 4, 1, 8, 8)" in message
    assert "one time step (T = 1) and axis 0 (5) as the batch" in message
    assert "If axis 0 is time (T = 5, batch = 4), pass forward=" in message
    assert "forward=lambda model, x: [model(step) for step in x]" in message
    assert isinstance(caught.value.__cause__, RuntimeError)  # the model's own error, chained
    assert "conv2d" in str(caught.value.__cause__)


def test_initialize_without_a_measured_step_keeps_the_module_order_fallback_and_says_why(
) -> None:
    """``paper`` uses the sample as data only: it falls back to module order, with the whole
    message (and its fix) in the warning."""
    net = _snntorch_conv()
    with pytest.warns(UserWarning, match=r"(?s)of shape \(5, 4, 1, 8, 8\).*pass forward=.*"
                                         r"paired in module order"):
        records = spikeinit.initialize(net, "paper", sample=torch.rand(5, 4, 1, 8, 8))
    assert [record.name for record in records] == ["0", "3"]


def test_snntorch_conv_runs_with_the_forward_the_message_names() -> None:
    net = _snntorch_conv()
    x = torch.rand(5, 4, 1, 8, 8)

    def forward(model: nn.Module, x: torch.Tensor) -> list[Any]:
        return [model(step) for step in x]

    assert _quiet(lambda: discover(net, x, forward)).steps() == 5
    _quiet(lambda: spikeinit.initialize(net, sample=x, forward=forward))
    assert _quiet(lambda: spikeinit.report(net, x, forward=forward)).layers


def test_a_failing_forward_names_the_shape_and_that_the_axes_are_its_own() -> None:
    net = _snntorch_conv()
    with pytest.raises(SampleError, match=r"forward\(model, sample\) on it failed.*"
                                          r"of shape \(5, 4, 1, 8, 8\)"):
        spikeinit.report(net, torch.rand(5, 4, 1, 8, 8), forward=lambda m, x: m(x))


def test_a_multi_step_model_failing_names_t_and_the_batch() -> None:
    net = SpikingMLP([20, 16, 4])
    with pytest.raises(SampleError, match=r"spikeinit LIF\) take a whole sequence per call, "
                                          r"so spikeinit took axis 0 \(6\) as time T and "
                                          r"axis 1 \(8\) as the batch"):
        spikeinit.report(net, torch.rand(T, B, 21))


# ------------------------------------------------------------ the unambiguous cases, quiet


@pytest.mark.parametrize("call", CALLS)
def test_spikeinit_mlp_on_a_sequence_is_unambiguous(call: str) -> None:
    net = SpikingMLP([20, 16, 4])
    x = torch.rand(T, B, 20)
    _quiet(lambda: _calls()[call](net, x, None))
    assert discover(net, x).steps() == T


def test_spikingjelly_multi_step_is_unambiguous() -> None:
    pytest.importorskip("spikingjelly", reason="spikingjelly is not installed "
                        "(pip install --no-deps spikingjelly)")
    from spikingjelly.activation_based import functional, layer, neuron

    net = nn.Sequential(layer.Linear(20, 16), neuron.LIFNode(), layer.Linear(16, 4),
                        neuron.LIFNode())
    functional.set_step_mode(net, "m")
    x = torch.rand(T, B, 20)
    assert _quiet(lambda: discover(net, x)).steps() == T
    _quiet(lambda: spikeinit.initialize(net, sample=x))
    _quiet(lambda: spikeinit.report(net, x))


def test_snntorch_with_forward_is_unambiguous() -> None:
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed "
                              "(pip install --no-deps snntorch)")
    net = nn.Sequential(nn.Linear(20, 16), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True))
    x = torch.rand(T, B, 20)

    def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([model(step) for step in x])

    assert _quiet(lambda: discover(net, x, forward)).steps() == T
    _quiet(lambda: spikeinit.initialize(net, sample=x, forward=forward))
    _quiet(lambda: spikeinit.calibrate(net, x, forward=forward, max_passes=2))
    _quiet(lambda: spikeinit.report(net, x, forward=forward))


def test_a_single_step_model_on_one_batched_step_is_unambiguous() -> None:
    """(B, F) through single-step neurons called once: one step, axis 0 the batch."""
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed "
                              "(pip install --no-deps snntorch)")
    net = nn.Sequential(nn.Linear(20, 16), snn.Leaky(beta=0.9, init_hidden=True))
    assert _quiet(lambda: discover(net, torch.rand(B, 20))).steps() == 1
    conv = _snntorch_conv()
    assert _quiet(lambda: discover(conv, torch.rand(B, 1, 8, 8))).steps() == 1
