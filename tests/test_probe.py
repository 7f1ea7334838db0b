"""ActivityProbe and StepRecorder: what they measure on tiny models whose values are known.

The models have fixed weights and a threshold neuron whose spikes follow from the current by
hand, so every rate and moment below is computed from the numbers in the test, not read back
from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from spikeinit.errors import InvalidArgumentError
from spikeinit.network import ActivityProbe, StepRecorder
from spikeinit.neurons import LIF

AMPLITUDE = 2.0


class Threshold(nn.Module):
    """A stateless neuron: spikes of ``amplitude`` where the current reaches 1, and the current
    itself as a second output (as snnTorch returns (spikes, membrane))."""

    def __init__(self, amplitude: float = AMPLITUDE) -> None:
        super().__init__()
        self.amplitude = amplitude

    def forward(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (current >= 1.0).float() * self.amplitude, current


def fixed_linear() -> nn.Linear:
    """``I = (x_0, 2 x_1)``: no bias, a diagonal weight."""
    linear = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    return linear


#: Two single-step calls: x = (1, 1) then (0.5, 0), so I = (1, 2) then (0.5, 0).
STEPS = (torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.0]]))
CURRENTS = (1.0, 2.0, 0.5, 0.0)
INPUTS = (1.0, 1.0, 0.5, 0.0)


def probed_pass(**options) -> tuple[ActivityProbe, nn.Linear, Threshold]:
    linear, neuron = fixed_linear(), Threshold()
    with ActivityProbe({"lif": (neuron, AMPLITUDE)}, {"fc": linear}, **options) as probe:
        for x in STEPS:
            neuron(linear(x))
    return probe, linear, neuron


def test_rate_and_current_moments_match_the_hand_computation() -> None:
    probe, _, _ = probed_pass()
    activity = probe.neurons["lif"]
    spikes = [1.0 if current >= 1.0 else 0.0 for current in CURRENTS]  # (1, 1, 0, 0)
    mean = sum(CURRENTS) / len(CURRENTS)
    second = sum(c * c for c in CURRENTS) / len(CURRENTS)
    assert activity.calls == len(STEPS)
    assert activity.shape == (1, 2)  # the first call's output
    assert activity.rate == pytest.approx(sum(spikes) / len(spikes))  # amplitude divided out
    assert activity.spikes.mean == pytest.approx(AMPLITUDE * sum(spikes) / len(spikes))
    assert activity.current.count == len(CURRENTS)
    assert activity.current.mean == pytest.approx(mean)
    assert activity.current_variance == pytest.approx(second - mean**2)
    assert activity.amplitude == AMPLITUDE


def test_the_synaptic_input_second_moment_is_that_of_the_layer_input() -> None:
    probe, _, _ = probed_pass()
    moments = probe.inputs["fc"]
    assert moments.count == len(INPUTS)
    assert moments.second_moment == pytest.approx(sum(x * x for x in INPUTS) / len(INPUTS))


def test_the_hooks_are_removed_when_the_probe_closes() -> None:
    probe, linear, neuron = probed_pass()
    assert not linear._forward_hooks and not neuron._forward_hooks
    neuron(linear(torch.tensor([[3.0, 3.0]])))  # after the probe: not counted
    assert probe.neurons["lif"].calls == len(STEPS)
    assert probe.inputs["fc"].count == len(INPUTS)


def test_the_hooks_are_removed_when_the_pass_fails() -> None:
    linear, neuron = fixed_linear(), Threshold()
    with pytest.raises(RuntimeError), ActivityProbe({"lif": (neuron, 1.0)}, {"fc": linear}):
        linear(torch.ones(1, 3))  # wrong width
    assert not linear._forward_hooks and not neuron._forward_hooks


def test_attach_and_remove_do_what_the_context_manager_does() -> None:
    linear, neuron = fixed_linear(), Threshold()
    probe = ActivityProbe({"lif": (neuron, AMPLITUDE)}, {"fc": linear}).attach()
    assert len(linear._forward_hooks) == 1 and len(neuron._forward_hooks) == 1
    neuron(linear(STEPS[0]))
    probe.remove()
    assert not linear._forward_hooks and not neuron._forward_hooks
    assert probe.neurons["lif"].calls == 1


def test_disabled_probe_counts_nothing_and_clear_forgets() -> None:
    linear, neuron = fixed_linear(), Threshold()
    with ActivityProbe({"lif": (neuron, AMPLITUDE)}, {"fc": linear}) as probe:
        probe.enabled = False
        neuron(linear(STEPS[0]))
        assert probe.neurons["lif"].calls == 0 and probe.inputs["fc"].count == 0
        probe.enabled = True
        neuron(linear(STEPS[0]))
        assert probe.neurons["lif"].calls == 1
        probe.clear()
        assert probe.neurons["lif"].calls == 0 and probe.inputs["fc"].count == 0
        assert math.isnan(probe.neurons["lif"].rate)  # nothing seen since
        assert probe.neurons["lif"].amplitude == AMPLITUDE  # kept over the clear


def test_without_currents_only_the_spikes_are_counted() -> None:
    probe, _, _ = probed_pass(currents=False)
    activity = probe.neurons["lif"]
    assert activity.current.count == 0
    assert activity.rate == pytest.approx(0.5)  # spikes (1, 1, 0, 0)
    assert math.isnan(activity.spikes.second_moment)  # the cheap mode keeps no squares


def test_spike_sums_are_spikes_and_elements_per_population_in_order() -> None:
    linear, first, second = fixed_linear(), Threshold(), Threshold(amplitude=1.0)
    neurons = {"first": (first, AMPLITUDE), "second": (second, 1.0)}
    with ActivityProbe(neurons) as probe:
        current = linear(STEPS[0])  # I = (1, 2)
        first(current)
        second(current * 0.75)  # (0.75, 1.5): one spike of amplitude 1
    sums = probe.spike_sums()
    assert sums.dtype == torch.float64
    assert sums.tolist() == [[2 * AMPLITUDE, 1.0], [2.0, 2.0]]
    assert probe.spike_sums().shape == (2, 2)
    assert ActivityProbe({}).spike_sums().shape == (2, 0)


def test_a_nonfinite_current_is_flagged_and_left_out_of_the_moments() -> None:
    neuron = Threshold()
    with ActivityProbe({"lif": (neuron, AMPLITUDE)}) as probe:
        neuron(torch.tensor([1.0, float("nan"), 3.0]))
    current = probe.neurons["lif"].current
    assert current.nonfinite
    assert current.mean == pytest.approx((1.0 + 0.0 + 3.0) / 3)  # counted as 0


def test_a_multi_step_neuron_gives_its_rate_over_all_steps_and_its_time_axis(one_thread) -> None:
    neuron = LIF()  # multi-step: (T, B, n) per call
    current = torch.rand(5, 3, 4, generator=torch.Generator().manual_seed(0)) * 3
    spikes = neuron(current).detach()
    neuron.reset()
    with ActivityProbe({"lif": (neuron, 1.0)}) as probe:
        neuron(current)
    activity = probe.neurons["lif"]
    assert activity.calls == 1 and activity.shape == (5, 3, 4)
    assert activity.rate == pytest.approx(float(spikes.double().mean()))
    assert 0.0 < activity.rate < 1.0  # the check can fail: some, not all, neurons fire
    assert activity.current.mean == pytest.approx(float(current.double().mean()))


# StepRecorder -------------------------------------------------------------------------------


def test_step_recorder_lays_out_one_call_per_step() -> None:
    linear = nn.Identity()
    steps = [torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, -2.0]])]
    with StepRecorder(steps=2).watch("x", linear) as recorder:
        for x in steps:
            linear(x)
    assert recorder.calls("x") == 2
    assert recorder.over_steps("x").tolist() == [[1.0, 3.0], [2.0, -2.0]]
    mean, second = recorder.moments("x")
    np.testing.assert_allclose(mean, [(1 + 3) / 2, (2 - 2) / 2])
    np.testing.assert_allclose(second, [[(1 + 9) / 2, (2 - 6) / 2],
                                        [(2 - 6) / 2, (4 + 4) / 2]])


def test_step_recorder_lays_out_a_single_call_over_its_leading_time_axis() -> None:
    module = nn.Identity()
    sequence = torch.arange(12.0).reshape(3, 2, 2)  # (T, B, n)
    with StepRecorder(steps=3).watch("out", module, side="output") as recorder:
        module(sequence)
    assert recorder.over_steps("out").tolist() == sequence.reshape(3, 4).tolist()
    mean, _ = recorder.moments("out")
    np.testing.assert_allclose(mean, [1.5, 5.5, 9.5])  # (0+1+2+3)/4, (4+...+7)/4, ...


def test_step_recorder_subtracts_and_refuses_what_does_not_fit() -> None:
    a, b = nn.Identity(), nn.Identity()
    with StepRecorder(steps=2).watch("a", a).watch("b", b) as recorder:
        a(torch.tensor([[3.0, 5.0], [1.0, 1.0]]))
        b(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    mean, second = recorder.moments("a", minus="b")  # (2, 4) then (0, 1)
    np.testing.assert_allclose(mean, [3.0, 0.5])
    np.testing.assert_allclose(np.diag(second), [(4 + 16) / 2, (0 + 1) / 2])
    assert not a._forward_hooks and not b._forward_hooks
    with StepRecorder(steps=3).watch("a", a) as recorder:
        a(torch.ones(2, 2))  # 4 elements are not 3 steps
    assert recorder.over_steps("a") is None and recorder.moments("a") is None


def test_step_recorder_keeps_at_most_elements_per_step() -> None:
    module = nn.Identity()
    with StepRecorder(steps=2, elements=2).watch("x", module) as recorder:
        module(torch.arange(12.0).reshape(2, 6))  # 6 per step: every third is kept
    assert recorder.over_steps("x").tolist() == [[0.0, 3.0], [6.0, 9.0]]


def test_step_recorder_rejects_an_unknown_side() -> None:
    with pytest.raises(InvalidArgumentError, match="side"):
        StepRecorder(steps=2).watch("x", nn.Identity(), side="gradient")


def test_a_silent_populations_zeros_are_not_taken_for_a_copy_of_an_earlier_one() -> None:
    """Two gated blocks whose first is silent: the second neuron's input (zeros too) comes from
    its own product, not from the first neuron's equal zeros."""
    from spikeinit.network import discover

    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.a_lif, self.b_lif, self.gate_lif = LIF(), LIF(), LIF()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.gate_lif((self.a_lif(self.a(x)) * self.b_lif(self.b(x))).sum(-1))

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = Gate(), Gate()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.first(x)
            return self.second(x)

    net = Two()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear):
                module.weight.fill_(-1.0)  # every population silent: every tensor is zeros
                module.bias.fill_(-1.0)
    network = discover(net, torch.rand(3, 2, 4))
    assert set(network.attention) == {"first.gate_lif", "second.gate_lif"}
    assert network.attention["second.gate_lif"].product.startswith("second.")
