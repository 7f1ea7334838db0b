"""Norse adapter: LIFCell, LIF and LIFBoxCell reproduced exactly by their description."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.adapters import UnsupportedNeuronError, describe_neuron

norse = pytest.importorskip("norse.torch", reason="norse is not installed (see .ci/run)")
from norse.torch.functional.reset import reset_subtract  # noqa: E402

from adapter_checks import assert_description_reproduces  # noqa: E402


def run(cell: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(cell, norse.LIF):  # the multi-step module
        return cell(x)[0]
    state, out = None, []
    for step in x:
        z, state = cell(step, state)
        out.append(z)
    return torch.stack(out)


CASES = [
    (lambda: norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0),
                                                     reset_method=reset_subtract)),
     dict(beta=0.5, input_gain=0.5, reset="subtract", synaptic_decay=0.0)),
    (lambda: norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(300.0))),
     dict(beta=0.7, input_gain=0.3, reset="zero")),
    (lambda: norse.LIFCell(), dict(beta=0.9, input_gain=0.1, synaptic_decay=0.8)),
    (lambda: norse.LIFCell(norse.LIFParameters(tau_mem_inv=torch.tensor(500.0),
                                               tau_syn_inv=torch.tensor(1000.0),
                                               v_th=torch.tensor(0.3))),
     dict(threshold=0.3, synaptic_decay=0.0)),
    (lambda: norse.LIF(norse.LIFParameters(tau_mem_inv=torch.tensor(500.0),
                                           tau_syn_inv=torch.tensor(600.0))),
     dict(step_mode="multi", synaptic_decay=0.4)),
]


@pytest.mark.parametrize("make, expected", CASES)
def test_description_reproduces_norse(make, expected) -> None:
    cell = make()
    assert_description_reproduces(cell, expected, "norse", "immediate", lambda x: run(cell, x))


def test_reset_away_from_rest_is_not_supported() -> None:
    cell = norse.LIFBoxCell(norse.LIFBoxParameters(v_reset=torch.tensor(-0.5)))
    with pytest.raises(UnsupportedNeuronError, match="v_reset=-0.5 away from rest"):
        describe_neuron(cell)


def test_recurrent_cell_weights_are_initialized_without_autapses() -> None:
    model = norse.SequentialState(nn.Linear(10, 20), norse.LIFRecurrentCell(20, 5))
    before = model[1].recurrent_weights.detach().clone()
    result = spikeinit.initialize(model, "paper")  # the recurrent init: test_recurrent_init.py
    assert "1.recurrent_weights" in [record.name for record in result]
    assert not torch.equal(model[1].recurrent_weights, before)
    assert torch.count_nonzero(model[1].recurrent_weights.diagonal()) == 0


def test_norse_default_lifcell_is_far_below_threshold_and_says_so() -> None:
    """Norse's default LIFCell has dt * tau_mem_inv = 0.1, so theta/g = 10: warn, and the stable
    sigma gives sane weights."""
    model = norse.SequentialState(nn.Linear(10, 20), norse.LIFCell(), nn.Linear(20, 5),
                                  norse.LIFCell())
    assert describe_neuron(model[1]).effective_threshold == pytest.approx(10.0)
    with pytest.warns(UserWarning, match=r"theta/g = 10\) sit more than 3 sigma below"):
        spikeinit.initialize(model, "paper")
    sigma = spikeinit.theory.stable_sigma(10.0)
    records = spikeinit.initialize(model, "paper", sigma=sigma)
    assert records[1].std == pytest.approx(spikeinit.spike_std(20, 10.0, sigma))
    assert records[1].std < 10.0  # not 8e10 as with sigma = 1
