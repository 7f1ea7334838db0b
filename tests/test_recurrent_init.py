"""initialize on recurrent populations: snnTorch RLeaky, Norse LIFRecurrentCell, SpikingJelly
LinearRecurrentContainer and spikeinit's own SpikingRNN at reduced width, on a T = 784 sample
(one input per step).

The recurrent weights are drawn with std g_rec/sqrt(N) from the theory; the feed-forward drive is
measured for the rate 0.1. On held-out inputs the population's rate is within 25 % of the target at
every step from 10 to T, and the work is bounded: a fixed number of runs of the model, whatever T.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import spikeinit
from spikeinit.init.recurrent import MAX_RATE_RUNS, RATE_FROM_STEP, rates_per_step
from spikeinit.network.recurrent import find_loops

STEPS, WIDTH, BATCH, RATE = 784, 64, 64, 0.1
#: The held-out batch: the rate of each step is a mean over HELD_OUT_BATCH x WIDTH neurons.
HELD_OUT_BATCH = 256
#: Runs of the model by initialize besides the search: the trace and the measured step.
OTHER_RUNS = 2


def snntorch_case():
    snn = pytest.importorskip("snntorch")
    model = nn.Sequential(nn.Linear(1, WIDTH),
                          snn.RLeaky(beta=0.5, linear_features=WIDTH, init_hidden=True))

    def forward(net, x):
        return torch.stack([net(step) for step in x])
    return model, model[1], forward, "1.recurrent"


def norse_case():
    norse = pytest.importorskip("norse.torch")
    from spikeinit.adapters.norse import run_over_steps
    # dt * tau_mem_inv = 0.5: beta = 0.5, theta/g = 1; no synaptic filter
    params = norse.LIFParameters(tau_mem_inv=torch.tensor(500.0), tau_syn_inv=torch.tensor(1000.0),
                                 v_th=torch.tensor(0.5))
    cell = norse.LIFRecurrentCell(1, WIDTH, p=params)
    return cell, cell, run_over_steps, "recurrent_weights"


def spikingjelly_case():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron
    container = layer.LinearRecurrentContainer(neuron.LIFNode(tau=2.0, decay_input=False),
                                               WIDTH, WIDTH)
    model = nn.Sequential(nn.Linear(1, WIDTH), container)

    def forward(net, x):
        functional.reset_net(net)
        return torch.stack([net(step) for step in x])
    return model, container.sub_module, forward, f"1.rc[:, {WIDTH}:]"


def spikeinit_case():
    from spikeinit.models import SpikingRNN
    model = SpikingRNN(1, WIDTH, 10)
    return model, model.blocks[0].lif, None, "blocks.0.recurrent"


#: The cases whose neuron runs all the steps in one call.
MULTI_STEP = {"spikeinit"}


CASES = {"snntorch": snntorch_case, "norse": norse_case, "spikingjelly": spikingjelly_case,
         "spikeinit": spikeinit_case}


def counted_calls(neuron: nn.Module) -> list[int]:
    calls = [0]

    def hook(module, args, output):
        calls[0] += 1
    neuron.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("framework", sorted(CASES))
def test_recurrent_population_holds_the_rate_at_every_step(framework: str) -> None:
    torch.manual_seed(0)
    model, neuron, forward, name = CASES[framework]()
    loop = find_loops(model)[0]
    before = loop.weight.detach().clone()
    calls = counted_calls(neuron)
    sample = torch.rand(STEPS, BATCH, 1, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = spikeinit.initialize(model, sample=sample, forward=forward,
                                      generator=torch.Generator().manual_seed(2))
    assert not [w for w in caught if "left unchanged" in str(w.message)]
    if framework == "spikeinit":  # its own block's loop is modelled whole
        assert not [w for w in caught if "without modelling" in str(w.message)]
    # bounded work: a fixed number of runs of T steps, whatever T
    assert calls[0] <= (OTHER_RUNS + MAX_RATE_RUNS) * (1 if framework in MULTI_STEP else STEPS)
    record = next(r for r in result if r.name == name)
    assert not torch.equal(loop.weight, before)
    gain = float(record.notes[0].split("g_rec = ")[1].split()[0])
    assert record.std == pytest.approx(gain / math.sqrt(WIDTH), rel=0.05)
    assert float(loop.weight.detach().std()) == pytest.approx(record.std)
    held_out = torch.rand(STEPS, HELD_OUT_BATCH, 1, generator=torch.Generator().manual_seed(3))
    rates = rates_per_step(model, held_out, forward, neuron,
                           multi_step=framework in MULTI_STEP)[RATE_FROM_STEP:]
    assert rates.numel() == STEPS - RATE_FROM_STEP
    assert float(rates.min()) >= 0.75 * RATE and float(rates.max()) <= 1.25 * RATE


@pytest.mark.parametrize("framework", ["snntorch", "spikeinit"])
def test_report_sees_the_recurrent_population_and_its_weights(framework: str) -> None:
    torch.manual_seed(0)
    model, _, forward, name = CASES[framework]()
    steps = 100
    sample = torch.rand(steps, BATCH, 1, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = spikeinit.initialize(model, sample=sample, forward=forward,
                                      generator=torch.Generator().manual_seed(2))
    health = spikeinit.report(model, sample, forward=forward, init=result)
    row = health.layers[0]
    assert row.predicted_rate is None
    assert any("a recurrent population" in n for n in health.notes)
    assert not any(n.startswith(f"{name}: a weight layer inside") for n in health.notes)
    gain = float(next(r for r in result if r.name == name).notes[0].split("g_rec = ")[1].split()[0])
    note = next(n for n in health.notes if n.startswith(f"{name}: recurrent weights"))
    assert float(note.split("g_rec = ")[1].split(":")[0]) == pytest.approx(gain, rel=0.05)
    assert "(stable)" in note and "memory time" in note
    # recurrent weights of 10 times the gain: the theory says so
    with torch.no_grad():
        find_loops(model)[0].weight.mul_(10.0)
    louder = spikeinit.report(model, sample, forward=forward)
    note = next(n for n in louder.notes if n.startswith(f"{name}: recurrent weights"))
    assert float(note.split("g_rec = ")[1].split(":")[0]) == pytest.approx(10 * gain, rel=0.05)
    assert "(stable)" not in note


def test_report_names_why_a_joined_recurrent_weight_is_not_predicted() -> None:
    torch.manual_seed(0)
    model, _, forward, _ = spikingjelly_case()
    health = spikeinit.report(model, torch.rand(50, BATCH, 1), forward=forward)
    assert health.layers[0].predicted_rate is None
    assert any("feed-forward and the recurrent weights in one matrix" in n for n in health.notes)


@pytest.mark.parametrize("framework", ["snntorch", "spikeinit"])
def test_calibrate_scales_the_drive_of_a_recurrent_population_and_keeps_its_loop(
        framework: str) -> None:
    torch.manual_seed(0)
    model, _, forward, name = CASES[framework]()
    loop = find_loops(model)[0]
    with torch.no_grad():
        loop.weight.normal_(0.0, 1.5 / math.sqrt(WIDTH))
    kept = loop.weight.detach().clone()
    sample = torch.rand(50, BATCH, 1, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = spikeinit.calibrate(model, sample, forward=forward, target=0.1)
    assert torch.equal(loop.weight, kept)
    assert result.layers[0].neuron == loop.neuron_name and result.layers[0].converged
    assert result.layers[0].layer == {"snntorch": "0", "spikeinit": "blocks.0.input"}[framework]
    assert any(n.startswith(f"{name}: recurrent weights of") and "kept" in n
               for n in result.notes)


def test_a_recurrent_population_the_sample_cannot_drive_is_named_in_a_warning() -> None:
    from spikeinit.models import SpikingRNN

    torch.manual_seed(0)
    net = SpikingRNN(28, 32, 10)
    with pytest.warns(UserWarning, match=r"blocks\.0\.lif: a recurrent population left at rate 0"):
        spikeinit.initialize(net, sample=torch.zeros(28, 8, 28))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spikeinit.initialize(net, sample=torch.rand(28, 8, 28))
    assert not [w for w in caught if "recurrent population left" in str(w.message)]
